"""The website stays light: no icon script, icon fonts cut to the icons used, widgets
and their saved state loaded only near the viewport, equations typeset when the book is
built, no script in the way of the page, and every page's first visit within its byte
budget, measured in Chromium on the smoke build of the whole book."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    book_pages,
    open_page,
    show_widgets,
    sphinx_project,
)

MB = 1_000_000
VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'


def _theme_file(name: str) -> Path:
    import pydata_sphinx_theme

    return (
        Path(pydata_sphinx_theme.__file__).parent
        / "theme"
        / "pydata_sphinx_theme"
        / name
    )


def test_the_macro_override_is_the_themes_without_its_icon_script():
    """book/_ext/templates/static/webpack-macros.html is the theme's file (the pinned
    version) less the Font Awesome script and its comment: a theme upgrade that changes
    the file fails here, to be copied again."""
    ours = (
        ROOT / "book" / "_ext" / "templates" / "static" / "webpack-macros.html"
    ).read_text(encoding="utf-8")
    ours = re.sub(r"\A\{#-.*?-#\}\n", "", ours, flags=re.S)
    theirs = _theme_file("static/webpack-macros.html").read_text(encoding="utf-8")
    assert "fontawesome.js" in theirs
    kept = [
        line
        for line in theirs.splitlines()
        if "fontawesome.js" not in line and "custom icons" not in line
    ]
    assert ours.splitlines() == kept


def test_the_layout_override_is_the_themes_block_but_for_search_scripts():
    """book/_ext/templates/layout.html redefines the theme's ``extrahead`` block with one
    condition changed: the search scripts load only with search-as-you-type on."""
    block = re.compile(r"\{%- block extrahead %\}.*?\{%- endblock extrahead %\}", re.S)
    ours = (ROOT / "book" / "_ext" / "templates" / "layout.html").read_text(
        encoding="utf-8"
    )
    theirs = block.search(_theme_file("layout.html").read_text(encoding="utf-8")).group(
        0
    )
    condition = "{% if pagename == 'search' %}"
    assert theirs.count(condition) == 1 and "searchindex.js" in theirs
    assert block.search(ours).group(0) == theirs.replace(
        condition,
        "{% if pagename == 'search' or theme_search_as_you_type|string|lower != "
        "'true' %}",
    )
    assert '{%- extends "!layout.html" %}' in ours


@pytest.mark.slow
def test_search_works_from_a_page_without_the_search_scripts(site, browser):
    """The pages no longer load the search index, and searching from one still finds
    the chapters: the search page loads what it needs."""
    page, requests, errors = open_page(browser, f"{site}/book/intro.html")
    assert not [url for url in requests if "searchindex.js" in url]
    page.keyboard.press("Control+k")
    field = page.locator("#pst-search-dialog input[type=search]")
    field.wait_for(timeout=5_000)
    field.fill("Bahdanau")
    field.press("Enter")
    page.wait_for_url("**/search.html?q=Bahdanau*")
    page.locator("#search-results li a").first.wait_for(timeout=30_000)
    titles = page.locator("#search-results li a").all_inner_texts()
    assert any("Bahdanau" in title for title in titles), titles
    assert errors == []
    page.close()


def test_pages_load_no_icon_script_and_the_icon_fonts_are_subsets(built_book):
    from fontTools.ttLib import TTFont

    html, result = built_book
    assert result.returncode == 0
    for path in book_pages():
        text = (html / path).read_text(encoding="utf-8")
        assert "fontawesome.js" not in text, path
        assert "_static/icons.css" in text, path
    css = (html / "_static" / "icons.css").read_text(encoding="utf-8")
    faces = re.findall(
        r'font-family:"([^"]+)";font-style:normal;font-weight:(\d+);'
        r"src:url\((icons/[^)]+)\)",
        css,
    )
    assert {(family, weight) for family, weight, _ in faces} == {
        ("Font Awesome 6 Free", "900"),
        ("Font Awesome 6 Free", "400"),
        ("Font Awesome 6 Brands", "400"),
    }
    for _, _, url in faces:
        font = html / "_static" / url
        full = (
            html
            / "_static"
            / "vendor"
            / "fontawesome"
            / "webfonts"
            / (font.name.split(".")[0] + ".woff2")
        )
        assert font.stat().st_size < min(20_000, full.stat().st_size / 5), font
    solid = TTFont(
        html / "_static" / "icons" / "fa-solid-900.subset.woff"
    ).getBestCmap()
    brands = TTFont(
        html / "_static" / "icons" / "fa-brands-400.subset.woff"
    ).getBestCmap()
    assert 0xF002 in solid  # the magnifying glass of the search button
    assert 0xF09B in brands  # the repository button's GitHub mark
    assert 0xF1E3 not in solid  # a football: the site shows none


MATH = re.compile(r'<(span|div) class="math[^"]*"[^>]*>(.*?)</\1>', re.S)


def test_equations_are_typeset_when_the_book_is_built(built_book):
    """Every equation of every page comes as KaTeX's HTML with the MathML screen readers
    read, none failed, and no page loads a script to typeset: the reader's phone does no
    typesetting."""
    html, result = built_book
    assert result.returncode == 0
    typeset = {}
    for path in book_pages():
        text = (html / path).read_text(encoding="utf-8")
        assert "katex-error" not in text, path
        assert not re.search(r'<script[^>]*src="[^"]*(mathjax|katex)', text, re.I), path
        equations = MATH.findall(text)
        assert all(
            'class="katex' in body and "<math" in body for _, body in equations
        ), path
        assert not any(re.search(r"\\[(\[]", body) for _, body in equations), path
        typeset[path] = len(equations)
    # The chapters' derivations are there (a build that dropped them would pass the above).
    assert typeset["chapters/02_encoder_decoder.html"] >= 20, typeset
    assert typeset["chapters/05_transformer.html"] >= 10, typeset
    assert sum(typeset.values()) >= 200, typeset


def test_an_equation_katex_cannot_read_fails_the_build(tmp_path):
    """The book's extension turns an equation KaTeX cannot typeset (which it would show as
    red source text) into a warning, which ``-W`` makes an error."""
    build = sphinx_project(
        tmp_path,
        ["offline_assets"],
        {
            "index.rst": "Equations\n=========\n\nGood :math:`\\frac{a}{b}`, bad :math:`\\frac{a}{b`.\n"
        },
    )
    failed = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert "KaTeX could not typeset 1 equation" in failed.stderr, failed.stderr
    (tmp_path / "index.rst").write_text(
        "Equations\n=========\n\nGood :math:`\\frac{a}{b}`.\n", encoding="utf-8"
    )
    shutil.rmtree(tmp_path / "out")
    built = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert 'class="katex"' in page and "<mfrac>" in page


def test_no_script_holds_up_a_page(built_book):
    """The browser reads every page without stopping for a script: all of them are
    deferred or async, but documentation_options.js, which inline scripts read (the
    search page keeps its own: test_search_works_from_a_page_without_the_search_scripts
    checks it)."""
    html, result = built_book
    assert result.returncode == 0
    for path in book_pages():
        head = (html / path).read_text(encoding="utf-8").split("</head>")[0]
        blocking = [
            src
            for tag, src in re.findall(r'(<script[^>]*src="([^"]+)"[^>]*>)', head)
            if not re.search(r"\b(defer|async)\b", tag)
        ]
        assert [src.split("?")[0].rsplit("/", 1)[-1] for src in blocking] == [
            "documentation_options.js"
        ], (path, blocking)


@pytest.mark.slow
def test_deferred_scripts_still_do_their_work(site, browser):
    """What the deferred scripts do is there: copy buttons on code cells, the toggles of
    hidden cells, the theme's colour switch and table of contents, no console error."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/01_sentences_to_tensors.html"
    )
    assert page.locator("article button.copybtn").count() >= 5
    toggle = page.locator("article details.hide > summary").first
    toggle.click()
    assert page.locator("article details.hide[open]").count() >= 1
    mode = page.evaluate("document.documentElement.dataset.theme")
    page.locator("button.theme-switch-button").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") != mode
    assert page.locator("#pst-page-toc-nav a, .bd-toc-nav a").count() >= 5
    assert errors == []
    page.close()


# Every element the icon fonts draw (its ::before): the glyph is in the font, i.e. it is
# not drawn as the fallback font draws an unknown character.
ICONS_DRAWN = """async () => {
    const canvas = document.createElement("canvas").getContext("2d");
    const missing = [], seen = new Set();
    for (const element of document.querySelectorAll("body *")) {
        const style = getComputedStyle(element, "::before");
        if (!style.fontFamily.includes("Font Awesome")) continue;
        const glyph = style.content.replace(/^"|"$/g, "");
        if (!glyph || glyph === "none" || glyph.codePointAt(0) < 0xe000) continue;
        const font = `${style.fontWeight} 32px ${style.fontFamily}`;
        const key = font + glyph;
        if (seen.has(key)) continue;
        seen.add(key);
        await document.fonts.load(font, glyph);
        canvas.font = `${font}, monospace`;
        const drawn = canvas.measureText(glyph).width;
        canvas.font = "32px monospace";
        if (Math.abs(drawn - canvas.measureText(glyph).width) < 0.01) {
            missing.push(`${element.className}: U+${glyph.codePointAt(0).toString(16)}`);
        }
    }
    return [seen.size, missing];
}"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "book/intro.html",
        "chapters/03_bahdanau_attention.html",
        "chapters/solutions/05_transformer.html",
    ],
)
def test_every_icon_is_drawn(site, browser, path):
    page, requests, errors = open_page(browser, f"{site}/{path}")
    show_widgets(page)
    icons, missing = page.evaluate(ICONS_DRAWN)
    page.close()
    assert icons >= 10 and missing == []
    assert not [
        url for url in requests if "fontawesome" in url or "webfonts/fa-" in url
    ]
    assert errors == []


def test_widget_state_is_moved_out_of_the_pages(built_book):
    """A page with widgets carries no saved state and loads no widget manager itself;
    its loader names a state file that holds the page's widgets."""
    html, _ = built_book
    pages_with_widgets = 0
    for path in book_pages():
        text = (html / path).read_text(encoding="utf-8")
        assert "application/vnd.jupyter.widget-state+json" not in text, path
        assert 'html-manager/embed.js"' not in text.split("data-manager=")[0], path
        views = re.findall(r'widget-view\+json">(\{.*?\})</script>', text)
        if not views:
            assert "lazy-widgets.js" not in text, path
            continue
        pages_with_widgets += 1
        loader = re.search(r'<script ([^>]*src="[^"]*lazy-widgets\.js[^"]*")>', text)
        assert loader, path
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', loader.group(1)))
        assert attributes["defer"] == "defer", path
        state = json.loads(
            ((html / path).parent / attributes["data-state"]).read_text(
                encoding="utf-8"
            )
        )["state"]
        assert {json.loads(view)["model_id"] for view in views} <= set(state), path
        assert (
            (html / path).parent / attributes["data-manager"].split("?")[0]
        ).is_file()
    assert pages_with_widgets >= 5


def test_progress_bars_are_plain_html_and_figures_load_lazily(built_book):
    """Training's saved progress bars need no widget manager: each is a <progress>
    element named by its text, with tqdm's counts beside it; a page with bars only loads
    no widget code. Every figure in a page's text loads when the reader nears it."""
    html, _ = built_book
    bars = 0
    for path in book_pages():
        text = (html / path).read_text(encoding="utf-8")
        found = re.findall(
            r'<div class="attnlab-progress" data-style="[a-z]*"><span>(.*?)'
            r'</span><progress max="([\d.e+]+)" value="([\d.e+]+)" '
            r'aria-label="([^"]+)"></progress><span>(.*?)</span></div>',
            text,
        )
        for _, top, value, label, counts in found:
            assert (
                0 <= float(value) <= float(top) and label.strip() and "/" in counts
            ), path
        bars += len(found)
        if found and "widget-view+json" not in text:
            assert "embed.js" not in text and "lazy-widgets.js" not in text, path
        body = text.split('<article class="bd-article">', 1)[-1]
        images = re.findall(r"<img\b[^>]*>", body)
        assert all('loading="lazy"' in image for image in images), path
    assert bars >= 20


@pytest.mark.slow
def test_widgets_load_when_they_come_near(site, browser):
    """Chapter 3 opens without the widget manager or its state; scrolling to the
    explorer loads both, and the explorer shows."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    page.wait_for_timeout(500)
    assert not [url for url in requests if "embed.js" in url or "widget-state" in url]
    assert page.locator(".attnlab-step").count() == 0
    page.locator(".attnlab-live").scroll_into_view_if_needed()  # beside the explorer
    page.locator(VIEW).last.evaluate("view => view.parentElement.scrollIntoView()")
    page.locator(".attnlab-step").first.wait_for(timeout=30_000)
    assert [url for url in requests if "embed.js" in url]
    assert [url for url in requests if "widget-state" in url]
    assert errors == []
    page.close()


@pytest.mark.slow
def test_every_page_is_within_its_byte_budget(first_visits, built_book):
    """A first visit, before the reader does anything, transfers at most 1.0 MB with
    gzip, and at most 0.5 MB on a page without widgets."""
    html, _ = built_book
    over = []
    for path in book_pages():
        weight = first_visits[path]["weight"]
        has_widgets = "widget-view+json" in (html / path).read_text(encoding="utf-8")
        budget = 1.0 * MB if has_widgets else 0.5 * MB
        print(
            f"{path}: {weight['requests']} requests, {weight['raw'] / MB:.2f} MB raw, "
            f"{weight['gzip'] / MB:.2f} MB gzip (budget {budget / MB:.1f} MB)"
        )
        if weight["gzip"] > budget:
            over.append((path, weight["gzip"], weight["largest"]))
    assert over == []
