"""The website for every reader: axe-core on every page in light mode and, at a phone's
width, in dark mode; the explorers and the live box by keyboard alone, text alternatives
for every figure, colour maps readable without telling colours apart, and a phone-sized
screen.

Runs on the smoke build of the whole book (the ``site`` fixture in conftest.py).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import (
    LIGHTHOUSE_PAGES,
    ROOT,
    axe_violations,
    book_pages,
    open_page,
    show_widgets,
)
from matplotlib import colormaps

from attnlab.view import plots

PAGES = book_pages()
PHONE = {"width": 390, "height": 844}


def _assert_no_serious_axe_violation(page, where: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    serious = _serious(axe_violations(page), where)
    assert serious == [], json.dumps(serious, indent=1)


def _serious(violations, where: str) -> list[dict]:
    """The serious and critical ones of axe-core's ``violations``; the lesser ones are
    printed (pytest -s shows them)."""
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    for v in violations:
        if v not in serious:
            print(
                f"axe, {where}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
            )
    return serious


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_serious_violation_in_light_mode(first_visits, path):
    """Every page, its widgets rendered, in light mode at a desktop's width (dark mode is
    checked at a phone's width, test_phone_screen_in_dark_mode): no serious or critical
    violation."""
    visit = first_visits[path]
    assert visit["theme"] == "light"
    serious = _serious(visit["violations"], f"light, {path}")
    assert serious == [], json.dumps(serious, indent=1)
    assert visit["errors"] == []


@pytest.mark.slow
def test_every_figure_has_a_text_alternative(first_visits):
    """Every image in every page's text (figures, diagrams, a widget's figure) has a
    name a screen reader can say: words, not its file name."""
    missing = [
        (path, src[:60], name[:60])
        for path in PAGES
        for src, name in first_visits[path]["figures"]
        if len(name.split()) < 3
        or any(part in name for part in ("_images", ".png", ".svg"))
    ]
    assert missing == []


def _lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* of sRGB colours (0-1), the lightness a reader sees whatever their hues."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    y = linear @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > 216 / 24389, 116 * np.cbrt(y) - 16, y * 24389 / 27)


@pytest.mark.parametrize("name", plots.SEQUENTIAL_MAPS + plots.DIVERGING_MAPS)
def test_colour_maps_are_ordered_by_lightness(name):
    """A reader who cannot tell hues apart (or prints in grey) still reads a heatmap:
    a sequential map's lightness changes monotonically, a diverging map's falls or rises
    from its centre to both ends."""
    lightness = _lightness(colormaps[name](np.linspace(0, 1, 256))[:, :3])
    steps = np.diff(lightness)
    if name in plots.SEQUENTIAL_MAPS:
        assert (steps > 0).all() or (steps < 0).all(), name
        assert abs(lightness[-1] - lightness[0]) > 50
    else:
        centre = int(np.argmax(lightness))
        assert 100 < centre < 156
        assert (steps[: centre - 1] >= -0.5).all() and (
            steps[centre + 1 :] <= 0.5
        ).all()


def test_every_heatmap_in_the_course_uses_an_ordered_map():
    """The library's plots and the chapters name only the maps tested above."""
    allowed = set(plots.SEQUENTIAL_MAPS + plots.DIVERGING_MAPS)
    sources = [
        ROOT / "code" / "attnlab" / "view" / "plots.py",
        *sorted((ROOT / "chapters").rglob("*.ipynb")),
        *sorted((ROOT / "book").glob("*.ipynb")),
    ]
    used = {}
    for source in sources:
        for name in re.findall(
            r"cmap\s*[=:]\s*\\?[\"']([A-Za-z_]+)", source.read_text(encoding="utf-8")
        ):
            used.setdefault(name, source.name)
    assert used and set(used) <= allowed, used


# What the keyboard tests look for: a slider by its label, the sentence menu, a toggle
# button by its text.
SLIDER = "e => e.getAttribute('role') === 'slider' && e.ariaLabel{}"
MENU = "e => e.tagName === 'SELECT' && e.closest('.widget-dropdown') !== null"
TOGGLE = (
    "e => e.tagName === 'BUTTON' && e.closest('.widget-toggle-buttons') !== null "
    "&& e.textContent.trim(){}"
)


def _tab_to(page, predicate: str, limit: int = 600) -> None:
    """Press Tab until ``predicate(document.activeElement)`` holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => ({predicate})(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached an element where {predicate}")


def _tab_and_press(page, predicate: str, key: str) -> None:
    """Tab to the element where ``predicate`` holds, press ``key``, let the view redraw."""
    _tab_to(page, predicate)
    page.keyboard.press(key)
    page.wait_for_timeout(300)


@pytest.mark.slow
def test_chapter_3_explorer_by_keyboard(site, browser):
    """Tab to the step slider, the temperature slider and the sentence menu; arrow keys
    change each, and the view follows."""
    page, _, errors = open_page(browser, f"{site}/chapters/03_bahdanau_attention.html")
    show_widgets(page)
    view = page.locator(".attnlab-step").first
    text = view.inner_text()
    _tab_and_press(page, SLIDER.format("=== 'Step'"), "ArrowRight")
    assert view.get_attribute("data-step") == "1" and view.inner_text() != text
    text = view.inner_text()
    _tab_and_press(page, SLIDER.format("=== 'Temperature'"), "ArrowRight")
    assert "temperature 2" in view.inner_text()
    text = view.inner_text()
    _tab_and_press(page, MENU, "ArrowDown")
    assert page.locator(".attnlab-step").first.inner_text() != text
    assert errors == []
    page.close()


@pytest.mark.slow
def test_chapter_4_slider_by_keyboard(site, browser):
    page, _, errors = open_page(browser, f"{site}/chapters/04_self_attention.html")
    show_widgets(page)
    figure = page.locator(".widget-hslider + .widget-box img").first
    before = figure.get_attribute("src")
    _tab_and_press(page, SLIDER.format(".startsWith('Dimension pair')"), "End")
    assert (
        page.locator(".widget-hslider + .widget-box img").first.get_attribute("src")
        != before
    )
    assert errors == []
    page.close()


@pytest.mark.slow
def test_chapter_5_explorer_by_keyboard(site, browser):
    """The kind, layer and head buttons are reached with Tab and pressed with Space or
    Enter; the sentence menu with the arrow keys."""
    page, _, errors = open_page(browser, f"{site}/chapters/05_transformer.html")
    show_widgets(page)
    view = page.locator(".attnlab-map").first
    _tab_and_press(page, TOGGLE.format(".toLowerCase().startsWith('cross')"), "Space")
    assert view.get_attribute("data-kind") == "cross-attention"
    _tab_and_press(page, TOGGLE.format(" === 'layer 2'"), "Enter")
    assert page.locator(".attnlab-map").first.get_attribute("data-layer") == "2"
    text = page.locator(".attnlab-map").first.inner_text()
    _tab_and_press(page, MENU, "ArrowDown")
    assert page.locator(".attnlab-map").first.inner_text() != text
    assert errors == []
    page.close()


@pytest.mark.slow
def test_live_box_by_keyboard(site, browser):
    """Tab to the live translation box, type a sentence, press Enter: a translation."""
    page, _, errors = open_page(browser, f"{site}/chapters/03_bahdanau_attention.html")
    _live_translation_by_keyboard(page, "I am happy.")
    box = page.locator(".attnlab-live")
    page.wait_for_function(
        "r => r.textContent.includes('Translation:')",
        arg=box.locator(".attnlab-live-results").element_handle(),
        timeout=120_000,
    )
    assert box.locator(".attnlab-live-status").inner_text() == ""
    assert errors == []
    page.close()


def _live_translation_by_keyboard(page, sentence):
    _tab_to(page, "e => e.tagName === 'INPUT' && e.closest('.attnlab-live') !== null")
    page.keyboard.press("Control+A")
    page.keyboard.type(sentence)
    page.keyboard.press("Enter")
    page.locator(".attnlab-live-result").first.wait_for(timeout=120_000)


@pytest.mark.slow
def test_beam_heads_and_prefix_views_by_keyboard(site, browser):
    """Chapter 6's live box, by keyboard alone: open the beam view with Enter and tab
    to a candidate (the view of where the model looked answers); open the heads panel
    and switch a head off with Space (a new translation shows); open the prefix view,
    type words and press Enter (the forced translation shows)."""
    page, _, errors = open_page(browser, f"{site}/chapters/06_comparison.html")
    _live_translation_by_keyboard(page, "I think we should leave.")
    box = page.locator(".attnlab-live")
    page.wait_for_function(
        "b => b.querySelectorAll('.attnlab-live-result').length === 3",
        arg=box.element_handle(),
        timeout=120_000,
    )
    summary = "e => e.tagName === 'SUMMARY' && e.textContent === '{}'"
    _tab_and_press(page, summary.format("Beam search, step by step"), "Enter")
    _tab_to(page, "e => e.tagName === 'LI' && e.closest('.attnlab-live-beam-steps')")
    # the first box is the GRU's, which has no attention to show, and says so
    looked = page.locator(".attnlab-live-beam-looked").first
    assert "This model has no attention" in looked.inner_text()
    _tab_and_press(page, summary.format("Switch heads off"), "Enter")
    _tab_and_press(page, "e => e.type === 'checkbox'", "Space")
    page.wait_for_function(
        "() => document.querySelector('.attnlab-live-heads-view')"
        ".textContent.includes('Without 1 head')",
        timeout=60_000,
    )
    _tab_and_press(page, summary.format("Force the first words"), "Enter")
    _tab_to(page, "e => e.ariaLabel === 'first words of the translation'")
    page.keyboard.type("je")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.attnlab-live-prefix-view')]"
        ".some((v) => v.textContent.includes('Forced, then'))",
        timeout=60_000,
    )
    assert errors == []
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_phone_screen_in_dark_mode(site, browser, path, tmp_path):
    """At 390 x 844, in dark mode: the page does not scroll sideways, every control in an
    explorer or the live box is a touch target of at least 24 x 24 px, and axe finds no
    serious or critical violation (light mode: the test above). On a failure, the page's
    screenshot is left in ``tmp_path``."""
    page, _, errors = open_page(
        browser,
        f"{site}/{path}",
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    show_widgets(page)
    page.wait_for_timeout(300)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    small = page.evaluate("""() => Array.from(document.querySelectorAll(
            ".jupyter-widgets button, .jupyter-widgets select, .jupyter-widgets input, "
            + ".jupyter-widgets [role=slider], .attnlab-live button, .attnlab-live input"))
        .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && (r.width < 24 || r.height < 24))
        .map(([html, r]) => `${html}: ${Math.round(r.width)} x ${Math.round(r.height)}`)""")
    if width > PHONE["width"] or small:
        page.screenshot(
            path=str(tmp_path / (path.replace("/", "-") + ".png")), full_page=True
        )
    assert width <= PHONE["width"], (
        f"{path} is {width} px wide on a {PHONE['width']} px screen"
    )
    assert small == []
    _assert_no_serious_axe_violation(page, f"dark, phone, {path}")
    assert errors == []
    page.close()


@pytest.mark.slow
@pytest.mark.last
@pytest.mark.parametrize("path", LIGHTHOUSE_PAGES)
def test_lighthouse_accessibility_and_best_practices(lighthouse_audits, path):
    """Lighthouse, with its phone settings, on every chapter: accessibility and best
    practices at least 95. (Its performance score is a timing: benchmarks/bench_browser.py
    records it with the other scores, and the appendix shows them.) The audits run beside
    the browser tests (conftest.lighthouse_audits)."""
    report = lighthouse_audits[path].result()
    scores = report["scores"]
    assert scores["accessibility"] >= 95 and scores["best-practices"] >= 95, report
