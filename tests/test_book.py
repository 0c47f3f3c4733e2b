"""The website: built from scratch with zero warnings, then read in headless Chromium, offline."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys

import pytest
from helpers import (
    ROOT,
    assert_offline_and_clean,
    assert_transformer_weights,
    axe_violations,
    open_page,
    show_widgets,
    sphinx_project,
)

from attnlab.web import export

sys.path.insert(0, str(ROOT / "book"))

# The live box's own sentence field and button (the views below a result have theirs).
MAIN_INPUT, MAIN_BUTTON = ":scope > form input[type=text]", ":scope > form button"
import notebooks  # noqa: E402  (book/notebooks.py)


@pytest.mark.slow
def test_book_builds_without_warnings(built_book):
    html, result = built_book
    log = result.stdout + result.stderr
    warnings = [
        line for line in log.splitlines() if re.search(r"\bWARNING:|\bERROR:", line)
    ]
    assert result.returncode == 0, log[-5000:]
    assert warnings == []
    assert (html / "index.html").is_file()
    assert (html / "chapters" / "01_sentences_to_tensors.html").is_file()


@pytest.mark.slow
def test_each_chapter_shows_its_budget_from_the_committed_timings(built_book):
    """The book writes each chapter's budget note when it builds (book/_ext/budgets.py),
    from benchmarks/results/chapters-*.json: the measured table replaces the line a
    notebook shows."""
    html, _ = built_book
    cpu = json.loads((ROOT / "benchmarks/results/chapters-cpu.json").read_text("utf-8"))
    for path in notebooks.chapter_paths():
        page = (html / "chapters" / f"{path.stem}.html").read_text(encoding="utf-8")
        text = re.sub(r"<[^>]+>", "", page)
        assert "Budget" in text and "top to bottom" in text, path.stem
        assert f"chapters-cpu.json, {cpu['measured_at'][:10]}" in text, path.stem
        assert "measured, on the" not in text, path.stem  # the notebook's line is gone
        seconds = next(
            m["seconds"]
            for m in cpu["measurements"]
            if m["chapter"] == path.stem
            and (m["profile"], m["cache"]) == ("full", "cold")
        )
        assert notebooks._duration(seconds) in text, path.stem


def test_the_build_links_an_exercise_to_its_solution_on_any_page(tmp_path):
    """The exercise-links extension on a two-page Sphinx project: an exercise solved on
    another page links there, one with no solution gets no link, and nothing warns."""
    build = sphinx_project(
        tmp_path,
        ["myst_parser", "sphinx_exercise", "exercise_links"],
        {
            "index.md": "# Book\n\n```{toctree}\nchapter\nanswers\n```\n",
            "chapter.md": "# Chapter\n\n:::{exercise}\n:label: ch1-ex-1\n\nDo a.\n:::\n\n"
            ":::{exercise}\n:label: ch1-ex-2\n\nDo b.\n:::\n",
            "answers.md": "# Answers\n\n:::{solution} ch1-ex-1\n:label: ch1-sol-1\n\n"
            "Like so.\n:::\n",
        },
    )
    result = subprocess.run(build, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "out" / "chapter.html").read_text(encoding="utf-8")
    first, second = page.split('id="ch1-ex-2"')
    assert re.search(
        r'href="answers\.html#ch1-sol-1"[^>]*>.*?Worked solution', first, re.S
    )
    assert "Worked solution" not in second


def test_every_exercise_links_its_worked_solution(built_book):
    """The book ends each exercise with a link to its solution (book/_ext/exercise_links.py),
    wherever among the chapter's solutions pages it is; the notebooks carry no link."""
    html, _ = built_book
    for path in notebooks.chapter_paths():
        page = (html / "chapters" / f"{path.stem}.html").read_text(encoding="utf-8")
        answers = notebooks.chapter_answers(path)
        for exercise, solution in answers.items():
            block = page[page.index(f'id="{exercise}"') :]
            block = (
                block[: block.index('<div class="exercise')]
                if '<div class="exercise' in block
                else block
            )
            href = re.search(
                rf'<a class="reference internal" href="(solutions/[^"#]+)#{solution}"',
                block,
            )
            assert href, (path.stem, exercise)
            target = html / "chapters" / href.group(1)
            assert f'id="{solution}"' in target.read_text(encoding="utf-8")


def test_pages_say_smoke_and_serve_their_own_scripts(built_book):
    html, _ = built_book
    chapter = (html / "chapters" / "01_sentences_to_tensors.html").read_text(
        encoding="utf-8"
    )
    assert "attnlab-smoke" in chapter and "Smoke run." in chapter
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', chapter)
    # The widget manager loads on demand (lazy-widgets.js), from the site too.
    assert re.search(
        r'<script [^>]*data-manager="[./]*_static/vendor/html-manager/embed\.js"',
        chapter,
    )
    # Equations come typeset in the page (KaTeX, run when the book is built): the page
    # needs KaTeX's style sheet, from the site, and no script for them.
    assert re.search(
        r'<link [^>]*href="[./]*_static/vendor/katex/katex\.min\.css', chapter
    )
    assert not [s for s in scripts if re.search(r"mathjax|katex", s, re.I)]
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))]
    # The Colab cell is removed from the page; the library source is shown from the file.
    assert "google.colab" not in chapter
    assert re.search(
        r'<span class="k">def</span>.{0,40}<span class="nf">normalize</span>', chapter
    )


@pytest.mark.slow
def test_write_it_pages_show_the_stub_and_the_worked_solutions_pass(built_book):
    """The book executes each write-it exercise's checker on the stub (the chapter) and
    on the worked solution (its solutions page), and shows what it said."""
    from attnlab.course import check

    html, _ = built_book

    def text(folder):  # the pages' text, without the highlighting's tags
        return "".join(
            re.sub(r"<[^>]+>", "", p.read_text(encoding="utf-8"))
            for p in folder.glob("0*.html")
        )

    pages, solutions = text(html / "chapters"), text(html / "chapters" / "solutions")
    for name in check.__all__:
        assert f"check.{name}(my_{name})" in pages, name  # the stub and its call
        assert f"… {name}: not written yet" in pages, name
        assert (
            f"def my_{name}(" in solutions and f"check.{name}(my_{name})" in solutions
        )
        assert re.search(rf"✓ {name}: passes all \d+ cases", solutions), name
    lab = (html / "chapters" / "lab" / "debugging.html").read_text(encoding="utf-8")
    assert "Debugging lab" in lab and "✓ Model " in lab and "diagnose" in lab


@pytest.mark.slow
def test_pages_link_the_repository_and_state_the_licence(built_book):
    """Every page: "open an issue" and "suggest an edit" at the repository _config.yml
    names, its Colab button at that branch, and the CC BY 4.0 footer."""
    import yaml

    html, _ = built_book
    repository = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))[
        "repository"
    ]
    url, branch = repository["url"].rstrip("/"), repository["branch"]
    slug = url.removeprefix("https://github.com/")
    for page in (
        "chapters/01_sentences_to_tensors.html",
        "chapters/05_transformer.html",
        "book/after.html",
    ):
        text = (html / page).read_text(encoding="utf-8")
        assert f"{url}/issues/new?title=" in text, page
        source = page.replace(".html", ".md" if page.startswith("book/") else ".ipynb")
        assert f"{url}/edit/{branch}/{source}" in text, page
        assert "creativecommons.org/licenses/by/4.0/" in text and "CC BY 4.0" in text, (
            page
        )
    chapter = (html / "chapters" / "01_sentences_to_tensors.html").read_text(
        encoding="utf-8"
    )
    assert (
        f"colab.research.google.com/github/{slug}/blob/{branch}/chapters/"
        "01_sentences_to_tensors.ipynb"
    ) in chapter


@pytest.mark.slow
def test_preface_in_the_browser(site, browser):
    page, requests, errors = open_page(browser, f"{site}/index.html")
    assert "Attention, step by step" in page.title()
    assert page.locator("h1").first.inner_text().startswith("Attention, step by step")
    assert (
        page.get_by_text("CC-BY", exact=False).count()
        + page.get_by_text("Creative Commons Attribution", exact=False).count()
        > 0
    )
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


# Every equation on the page, once the page's fonts have come: whether it carries KaTeX's
# layout and the MathML screen readers read, and which of KaTeX's fonts the page loaded.
TYPESET = """async () => {
    await document.fonts.ready;
    const maths = [...document.querySelectorAll("article .math")];
    // Those a reader sees now (not in a closed solution or a hidden cell) are drawn.
    const shown = maths.filter(m => m.checkVisibility({visibilityProperty: true}));
    const drawn = shown.filter(m => m.querySelector(".katex-html")?.getBoundingClientRect().width > 0);
    return {
        count: maths.length,
        bare: maths.filter(m => !m.querySelector(".katex-mathml math")).map(m => m.textContent),
        shown: shown.length,
        drawn: drawn.length,
        fonts: [...document.fonts].filter(f => f.family.includes("KaTeX") && f.status === "loaded")
            .map(f => f.family),
    };
}"""


def assert_typeset(page):
    """The page's equations came typeset from the build, and are drawn in KaTeX's own
    fonts, which the site serves (KaTeX's layout is wrong in any other font)."""
    math = page.evaluate(TYPESET)
    assert math["count"] >= 1 and math["bare"] == [], math
    assert math["shown"] >= 1 and math["drawn"] == math["shown"], math
    assert {"KaTeX_Main", "KaTeX_Math"} <= set(math["fonts"]), math


CHAPTER_PAGES = sorted(
    p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")
) + sorted(
    f"sections/{p.stem}"
    for p in (ROOT / "chapters" / "sections").glob("[0-9][0-9]_*.ipynb")
)


@pytest.mark.parametrize("stem", CHAPTER_PAGES)
@pytest.mark.slow
def test_every_chapter_in_the_browser(site, browser, stem):
    """Each chapter: its title, every figure loaded, its Colab link, typeset equations,
    nothing fetched from another host, no console error."""
    page, requests, errors = open_page(browser, f"{site}/chapters/{stem}.html")
    assert page.locator("article h1").first.inner_text().strip()
    assert page.locator("article img").count() >= 1
    colab = page.locator('a[href^="https://colab.research.google.com/github/"]')
    assert colab.first.get_attribute("href").endswith(f"chapters/{stem}.ipynb")
    if page.locator("article .math").count():
        assert_typeset(page)
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_chapter_1_in_the_browser(site, browser, tmp_path):
    page, requests, errors = open_page(
        browser, f"{site}/chapters/01_sentences_to_tensors.html"
    )
    show_widgets(page)
    assert "From sentences to tensors" in page.title()
    images = page.locator("article img")
    assert images.count() >= 3  # length histogram, coverage, mask
    colab = page.locator('a[href^="https://colab.research.google.com/github/"]')
    assert colab.count() >= 1
    assert colab.first.get_attribute("href").endswith(
        "chapters/01_sentences_to_tensors.ipynb"
    )
    assert_typeset(page)
    # The precomputed pipeline explorer responds with no kernel.
    select = page.locator(".widget-dropdown select").first
    select.wait_for(timeout=15_000)
    # A Stack renders only its selected child, in the box beside the dropdown.
    visible = lambda: page.locator(".widget-dropdown + .widget-box").first.inner_text()  # noqa: E731
    before = visible()
    choice = select.locator("option").nth(3).inner_text()
    select.select_option(index=3)
    page.wait_for_timeout(300)
    after = visible()
    assert after != before
    assert choice.split("  →  ")[0].split()[0] in after
    page.screenshot(path=str(tmp_path / "chapter1.png"), full_page=False)
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


def test_vendored_assets_are_not_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "book/vendor"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert sorted(tracked) == [
        "book/vendor/eslint.config.mjs",
        "book/vendor/install.py",
        "book/vendor/package-lock.json",
        "book/vendor/package.json",
    ]


@pytest.mark.slow
def test_chapter_3_explorer_works_without_a_kernel(site, browser):
    """The attention explorer's precomputed views follow the step slider, the temperature
    slider and the sentence menu on the static page, served offline."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    show_widgets(page)
    view = page.locator(".attnlab-step")
    view.first.wait_for(timeout=15_000)
    assert view.count() == 1  # a Stack renders only the selected view
    step_slider, temperature_slider = page.locator(
        ".widget-hslider .noUi-handle"
    ).all()[:2]

    def state():
        return view.first.get_attribute("data-step"), view.first.inner_text()

    step0, text0 = state()
    assert step0 == "0" and "temperature 1" in text0
    step_slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    step1, text1 = state()
    assert step1 == "1" and text1 != text0 and "Step 2 of" in text1
    temperature_slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    _, text2 = state()
    assert "temperature 2" in text2 and text2 != text1
    select = page.locator(".widget-dropdown select").first
    first_sentence = select.locator("option").nth(0).inner_text()
    select.select_option(index=1)
    page.wait_for_timeout(300)
    step_b, text_b = state()
    assert step_b == "0" and text_b != text2
    assert select.locator("option").nth(1).inner_text() != first_sentence
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_chapter_4_positions_slider_works_without_a_kernel(site, browser):
    """The positional-encoding slider switches between precomputed figures on the static page."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/04_self_attention.html"
    )
    show_widgets(page)
    handle = page.locator(".widget-hslider .noUi-handle").first
    handle.wait_for(timeout=15_000)
    figure = page.locator(".widget-hslider + .widget-box img").first
    before = figure.get_attribute("src")
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    after = page.locator(".widget-hslider + .widget-box img").first.get_attribute("src")
    assert before and after and after != before
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_chapter_5_layer_explorer_works_without_a_kernel(site, browser):
    """The Transformer explorer's kind, layer and head buttons and its sentence menu switch
    precomputed maps on the static page, served offline."""
    page, requests, errors = open_page(browser, f"{site}/chapters/05_transformer.html")
    show_widgets(page)
    view = page.locator(".attnlab-map")
    view.first.wait_for(timeout=15_000)
    assert view.count() == 1  # nested Stacks render only the selected map

    def state():
        element = view.first
        return (
            element.get_attribute("data-kind"),
            element.get_attribute("data-layer"),
            element.get_attribute("data-head"),
            element.inner_text(),
        )

    kind, layer, head, text = state()
    assert (kind, layer, head) == ("encoder self-attention", "1", "mean")
    assert "Encoder self-attention, layer 1, mean of the heads" in text
    groups = page.locator(".widget-toggle-buttons")
    assert groups.count() >= 3  # kind, layer, head
    groups.nth(0).locator("button").nth(2).click()
    page.wait_for_timeout(300)
    assert state()[:3] == ("cross-attention", "1", "mean")
    groups.nth(1).locator("button").nth(1).click()
    groups.nth(2).locator("button").nth(3).click()
    page.wait_for_timeout(300)
    kind, layer, head, text = state()
    assert (kind, layer, head) == ("cross-attention", "2", "3")
    assert "Cross-attention, layer 2, head 3" in text
    select = page.locator(".widget-dropdown select").first
    select.select_option(index=1)
    page.wait_for_timeout(300)
    kind, layer, head, other = state()
    assert (kind, layer, head) == ("cross-attention", "2", "3") and other != text
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_speed_appendix_shows_the_committed_benchmarks(site, browser):
    """The appendix is built from benchmarks/results: every committed file appears in it."""
    committed = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert committed, "no benchmark results are committed"
    page, requests, errors = open_page(browser, f"{site}/book/speed.html")
    assert "How fast is this course?" in page.title()
    tables = page.locator("table.attnlab-bench")
    # The first table says where and when each committed file was measured, one row each;
    # the others put the devices side by side.
    assert tables.first.locator("tbody tr").count() == len(committed)
    assert tables.count() >= 1 + len({p.stem.rsplit("-", 1)[0] for p in committed})
    text = page.locator("article").inner_text()
    if any(p.stem.endswith("-cuda") for p in committed):
        assert "NVIDIA" in text and "device busy" in text
    assert "01_sentences_to_tensors" in text and "d2l.AdditiveAttention" in text
    assert "no results committed yet" not in text
    scaled = ROOT / "benchmarks" / "results" / "distributed-cpu.json"
    if scaled.exists():
        assert "Training on several processes" in text
        for m in json.loads(scaled.read_text())["measurements"]:
            assert m["name"] in text
            assert f"{m['target_tokens_per_second']:,.0f}" in text
    live = ROOT / "benchmarks" / "results" / "browser-cpu.json"
    if live.exists():
        assert (
            "Live translation in the browser" in text
            and "per translation, once loaded" in text
        )
        # Each model's beam search, as recorded, against its 150 ms goal; and which
        # profile the pages came from when it is not the models'.
        record = json.loads(live.read_text())
        pages = {m["chapter"]: m for m in record["measurements"]}
        for beam in pages["06_comparison"].get("beam_ms", {}).values():
            assert f"{beam['median']:.0f} ms ({beam['steps']} steps)" in text
        if pages["06_comparison"].get("beam_ms"):
            assert "beam of 5, per search (median)" in text and "under 150 ms" in text
        models = sorted({p for m in pages.values() for p in m["profile"]})
        built = record.get("pages_profile")
        if built and built != models:
            assert f"pages: {', '.join(built)} profile" in text
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


# --- Live translation on the static site (book/live, attnlab.web.export) -------------------

LIVE_MODELS = {
    "gru-fra-eng": "02_encoder_decoder",
    "bahdanau-fra-eng": "03_bahdanau_attention",
    "transformer-fra-eng": "05_transformer",
}


def _heavy(url: str) -> bool:
    return (
        "/_static/models/" in url
        or "onnxruntime-web" in url
        or "/live/translate.mjs" in url
    )


@pytest.mark.slow
def test_the_build_publishes_the_chapters_models(built_book):
    html, _ = built_book
    index = json.loads((html / "_static" / "models" / "index.json").read_text())
    assert sorted(m["name"] for m in index["models"]) == sorted(LIVE_MODELS)
    assert {m["profile"] for m in index["models"]} == {"smoke"}
    for name in LIVE_MODELS:
        export.load_manifest(html / "_static" / "models" / name)  # hashes checked
    pages = {
        stem: (html / "chapters" / f"{stem}.html").read_text(encoding="utf-8")
        for stem in CHAPTER_PAGES
    }
    with_box = {stem for stem, text in pages.items() if "live/live.mjs" in text}
    assert with_box == {"03_bahdanau_attention", "05_transformer", "06_comparison"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE_MODELS))
def test_the_browser_decodes_as_pytorch(
    site, browser, built_book, name, fra_eng_dir, monkeypatch
):
    """On the static page, 50 held-out sentences per model: the browser's tokens are
    PyTorch's greedy ones and its attention weights are within 1e-4 of PyTorch's."""
    html, _ = built_book
    model = _trained(html, name)
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data = _smoke_data()
    sentences = [" ".join(s) for s in data.references("test")[0][:50]]
    assert len(sentences) == 50
    page, requests, errors = open_page(browser, f"{site}/chapters/06_comparison.html")
    assert not [url for url in requests if _heavy(url)]  # nothing loaded before asked
    results = page.evaluate(
        """async ([name, sentences]) => {
        const base = new URL("../_static/", location.href);
        const { translate } = await import(new URL("live/translate.mjs", base).href);
        const out = [];
        for (const s of sentences) {
            const r = await translate(new URL(`models/${name}/`, base), new URL("vendor/", base), s);
            out.push({ tokens: r.tokens, weights: r.weights });
        }
        return out;
    }""",
        [name, sentences],
    )
    for sentence, ours in zip(sentences, results):
        assert_browser_matches_pytorch(model, data, sentence, ours)
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


# What a beam test reads of each hypothesis the page's beamSearch returns.
BEAM_FIELDS = """h => ({ids: h.ids, logp: h.logp, score: h.score, parent: h.parent,
                 ended: h.ended, place: h.place})"""


def _browser_beams(browser, site, name, cases, max_len=None):
    """The page's beamSearch on each (sentence, width, α[, forced prefix]) of ``cases``;
    with ``max_len``, the model's manifest says that many steps at most."""
    page, requests, errors = open_page(browser, f"{site}/chapters/06_comparison.html")
    if max_len is not None:

        def shorter(route):
            manifest = json.loads(route.fetch().text())
            route.fulfill(json={**manifest, "max_len": max_len})

        page.route(re.compile(rf"/models/{name}/manifest\.json(\?.*)?$"), shorter)
    results = page.evaluate(
        """async ([name, cases]) => {
        const base = new URL("../_static/", location.href);
        const { beamSearch } = await import(new URL("live/translate.mjs", base).href);
        const out = [];
        for (const [s, beamSize, alpha, prefix = null] of cases) {
            const r = await beamSearch(new URL(`models/${name}/`, base), new URL("vendor/", base),
                                       s, { beamSize, alpha, prefix });
            out.push({ steps: r.steps.map((step) => step.map(%s)), best: (%s)(r.best),
                       tokens: r.tokens, text: r.text, forced: r.forced,
                       path: r.path.map((h) => h.ids) });
        }
        return out;
    }"""
        % (BEAM_FIELDS, BEAM_FIELDS),
        [name, cases],
    )
    assert_offline_and_clean(site, page, requests, errors)
    page.close()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE_MODELS))
def test_the_browser_beam_searches_as_pytorch(
    site, browser, built_book, name, fra_eng_dir, monkeypatch
):
    """On the static page, 50 held-out sentences per model at beam 5, α 0.6, and 10 of
    them at three other settings and cut to 2 steps: every step reads PyTorch's
    candidates in PyTorch's order (tokens, the place each extends, whether it ended or
    goes on, and where), with log-probabilities and normalised scores within 1e-4, and
    chooses PyTorch's translation (an ended hypothesis, or the best live one)."""
    from attnlab.infer.beams import beam_translate

    html, _ = built_book
    model = _trained(html, name)
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data = _smoke_data()
    sentences = [" ".join(s) for s in data.references("test")[0][:50]]
    cases = [(s, 5, 0.6) for s in sentences] + [
        (s, k, alpha)
        for s in sentences[:10]
        for k, alpha in ((1, 0.6), (3, 0.0), (8, 1.0))
    ]
    cut = [(s, 4, 0.6) for s in sentences[10:20]]
    compared = {"ended": 0, "live": 0}
    for max_len, batch in ((export.MAX_LEN, cases), (2, cut)):
        results = _browser_beams(
            browser, site, name, batch, None if max_len == export.MAX_LEN else max_len
        )
        for (sentence, k, alpha), ours in zip(batch, results, strict=True):
            theirs = beam_translate(
                model,
                sentence,
                data.src_vocab,
                data.tgt_vocab,
                beam_size=k,
                alpha=alpha,
                max_len=max_len,
            )
            _assert_same_search(ours, theirs, (sentence, k, alpha, max_len))
            compared["ended" if theirs.best.ended else "live"] += 1
    print(f"{name}: chose an ended hypothesis / a live one: {compared}")
    # Cut to 2 steps, the smoke build's GRU and Transformer choose a live hypothesis
    # (none ended) on some sentences; its Bahdanau model ended one on every sentence.
    assert compared["ended"] >= 50


def _assert_same_search(ours, theirs, where):
    """The page's beam search (``ours``, as _browser_beams reads it) is beam_translate's
    (``theirs``): the same candidates read at every step, in the same order, the same
    fates, scores within 1e-4, the same choice and words; its path leads to its choice."""
    assert [
        [(h["ids"], h["parent"], h["ended"], h["place"]) for h in step]
        for step in ours["steps"]
    ] == [
        [(list(h.ids), h.parent, h.ended, h.place) for h in step]
        for step in theirs.steps
    ], where
    for step, their_step in zip(ours["steps"], theirs.steps):
        for h, their in zip(step, their_step):
            assert h["logp"] == pytest.approx(their.logp, abs=1e-4), where
            assert h["score"] == pytest.approx(their.score, abs=1e-4), where
    assert ours["best"]["ids"] == list(theirs.best.ids), where
    assert ours["best"]["score"] == pytest.approx(theirs.best.score, abs=1e-4), where
    assert (ours["tokens"], ours["text"]) == (theirs.tokens, theirs.text), where
    best = ours["best"]["ids"]
    assert ours["path"] == [best[: i + 1] for i in range(len(best))], where


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE_MODELS))
def test_the_browser_beam_searches_from_a_forced_prefix_as_pytorch(
    site, browser, built_book, name, fra_eng_dir, monkeypatch
):
    """On the static page, 20 held-out sentences with the first one to three words of
    a reference forced (one with a word the model lacks), at beam 5, α 0.6, and 5 of them
    at beam 3, α 0: the search is PyTorch's step by step (a forced step's one candidate
    included), and the probability of each forced word is PyTorch's within 1e-4."""
    import numpy as np

    from attnlab.infer.beams import beam_translate

    html, _ = built_book
    model = _trained(html, name)
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data = _smoke_data()
    sources, references = data.references("test")
    pairs = [
        (" ".join(src), " ".join(refs[0].split()[: 1 + i % 3]))
        for i, (src, refs) in enumerate(zip(sources[20:40], references[20:40]))
    ]
    pairs[0] = (pairs[0][0], pairs[0][1] + " zorglub")
    cases = [(s, 5, 0.6, p) for s, p in pairs] + [(s, 3, 0.0, p) for s, p in pairs[:5]]
    results = _browser_beams(browser, site, name, cases)
    for (sentence, k, alpha, prefix), ours in zip(cases, results, strict=True):
        theirs = beam_translate(
            model,
            sentence,
            data.src_vocab,
            data.tgt_vocab,
            beam_size=k,
            alpha=alpha,
            prefix=prefix,
        )
        _assert_same_search(ours, theirs, (sentence, k, alpha, prefix))
        assert ours["forced"]["words"] == theirs.forced
        assert ours["forced"]["unknown"] == theirs.forced_unknown
        np.testing.assert_allclose(
            ours["forced"]["probs"], theirs.forced_probs, atol=1e-4
        )
        assert all(len(step) == 1 for step in ours["steps"][: len(theirs.forced)])
    assert results[0]["forced"]["unknown"] == ["zorglub"]


@pytest.mark.slow
def test_the_beam_view_shows_each_step_and_redecodes(site, browser):
    """Chapter 5's live box: the beam view lists every step's candidates with their
    scores, marks the one chosen, shows where the model looked for a candidate on focus,
    has no serious axe violation, fits a phone's width, and searches again when the
    width or α changes; a width out of range is refused with a message."""
    page, requests, errors = open_page(browser, f"{site}/chapters/05_transformer.html")
    beam = _view_below_a_translation(page, ".attnlab-live-beam")
    assert beam.locator(".attnlab-live-beam-steps").count() == 0  # searched when opened
    beam.locator("summary").click()
    page.wait_for_function(
        "b => b && b.textContent.includes('Beam of 5')",
        arg=beam.element_handle(timeout=120_000),
        timeout=120_000,
    )
    steps = beam.locator(".attnlab-live-beam-steps > li")
    assert steps.count() >= 1
    first = steps.nth(0).locator("li")
    assert 1 <= first.count() <= 10  # 2k read at most
    assert "log p" in first.nth(0).inner_text()
    assert beam.locator(".attnlab-live-beam-best").count() == 1
    if steps.count() > 1:  # a later step says which place each candidate extends
        assert "extends place" in steps.nth(1).inner_text()
    first.nth(0).focus()
    looked = beam.locator(".attnlab-live-beam-looked")
    assert "Where the model looked" in looked.inner_text()
    assert (
        looked.locator("span").count() == len("I think we should leave .".split()) + 1
    )
    serious = [
        v for v in axe_violations(page) if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious
    page.set_viewport_size({"width": 390, "height": 844})  # a phone's width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    beam.locator("select[aria-label='beam width']").select_option("2")
    page.wait_for_function(
        "b => b.textContent.includes('Beam of 2')", arg=beam.element_handle()
    )
    assert all(steps.nth(i).locator("li").count() <= 4 for i in range(steps.count()))
    beam.locator("select[aria-label='length penalty α']").select_option("0")
    page.wait_for_function(
        "b => b.textContent.includes('α = 0:')", arg=beam.element_handle()
    )
    refused = page.evaluate(
        """async () => {
        const base = new URL("../_static/", location.href);
        const { beamSearch } = await import(new URL("live/translate.mjs", base).href);
        const url = new URL("models/transformer-fra-eng/", base);
        const vendor = new URL("vendor/", base);
        const out = [];
        for (const options of [{ beamSize: 0 }, { beamSize: 9 }, { beamSize: 2.5 },
                               { alpha: -1 }, { alpha: NaN }]) {
            try { await beamSearch(url, vendor, "I am here.", options); out.push("accepted"); }
            catch (error) { out.push(error.message); }
        }
        return out;
    }"""
    )
    assert [m.split(",")[0] for m in refused[:3]] == [
        "the beam width must be a whole number from 1 to 8"
    ] * 3
    assert all(
        "length penalty α must be a number of at least 0" in m for m in refused[3:]
    )
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_the_browser_switches_heads_off_as_pytorch(
    site, browser, built_book, fra_eng_dir, monkeypatch
):
    """On the static page, 20 held-out sentences and four sets of heads switched off
    (one head; a layer's cross-attention; one head of each kind; all heads but one):
    the browser's greedy tokens are PyTorch's with the same heads off, and every
    layer's weights are within 1e-4."""
    from attnlab.infer import heads

    html, _ = built_book
    model = _trained(html, "transformer-fra-eng")
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data = _smoke_data()
    sentences = [" ".join(s) for s in data.references("test")[0][:20]]
    kinds, layers, count = heads.mask_shape(model)
    every = [
        (k, layer, h)
        for k in range(kinds)
        for layer in range(layers)
        for h in range(count)
    ]
    names = list(heads.attention_modules(model))
    sets = [
        [(0, 0, 1)],
        [(2, layers - 1, h) for h in range(count)],
        [(k, k % layers, k % count) for k in range(kinds)],
        every[1:],
    ]
    masks = [
        heads.mask_of(model, [(names[k], layer, h) for k, layer, h in off])
        for off in sets
    ]
    page, requests, errors = open_page(browser, f"{site}/chapters/05_transformer.html")
    results = page.evaluate(
        """async ([sentences, masks]) => {
        const base = new URL("../_static/", location.href);
        const { translate } = await import(new URL("live/translate.mjs", base).href);
        const url = new URL("models/transformer-fra-eng/", base);
        const out = [];
        for (const heads of masks) {
            for (const s of sentences) {
                const r = await translate(url, new URL("vendor/", base), s, { heads });
                out.push({ tokens: r.tokens, weights: r.weights });
            }
        }
        return out;
    }""",
        [sentences, [m.int().tolist() for m in masks]],
    )
    on = {s: _translate(model, data, s).tokens for s in sentences}
    changed = 0
    for i, mask in enumerate(masks):
        asked = results[i * len(sentences) : (i + 1) * len(sentences)]
        with heads.heads_off(model, mask):
            for sentence, ours in zip(sentences, asked, strict=True):
                assert_browser_matches_pytorch(model, data, sentence, ours)
        changed += sum(ours["tokens"] != on[s] for s, ours in zip(sentences, asked))
    print(f"{changed} of {len(masks) * len(sentences)} translations changed")
    assert changed > 0  # switching heads off is seen in what the model writes
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


def _translate(model, data, sentence):
    from attnlab.infer import decoding

    return decoding.translate(model, sentence, data.src_vocab, data.tgt_vocab)


@pytest.mark.slow
def test_the_heads_view_translates_without_the_unchecked_heads(
    site, browser, built_book
):
    """Chapter 5's live box: unchecking a head translates again and shows that
    translation with its attention (no serious axe violation); every head off, a mask
    of the wrong shape, and heads asked of a model without them are refused with a
    message."""
    page, requests, errors = open_page(browser, f"{site}/chapters/05_transformer.html")
    panel = _view_below_a_translation(page, ".attnlab-live-heads-panel")
    panel.locator("summary").click()
    checks = panel.locator("input[type=checkbox]")
    manifest = json.loads(
        (built_book[0] / "_static/models/transformer-fra-eng/manifest.json").read_text()
    )
    kinds, layers, count = manifest["head_mask"]
    assert checks.count() == kinds * layers * count
    checks.nth(0).uncheck()
    view = panel.locator(".attnlab-live-heads-view")
    page.wait_for_function(
        "v => v.textContent.includes('Without 1 head')", arg=view.element_handle()
    )
    assert view.locator(".attnlab-live-map tr").count() >= 2
    serious = [
        v for v in axe_violations(page) if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious
    checks.nth(0).check()
    page.wait_for_function(
        "v => v.textContent.includes('Every head is on')", arg=view.element_handle()
    )
    page.set_viewport_size({"width": 390, "height": 844})  # a phone's width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    refused = page.evaluate(
        """async () => {
        const base = new URL("../_static/", location.href);
        const { translate } = await import(new URL("live/translate.mjs", base).href);
        const vendor = new URL("vendor/", base);
        const transformer = new URL("models/transformer-fra-eng/", base);
        const { manifest } = await translate(transformer, vendor, "I am here.");
        const [kinds, layers, count] = manifest.head_mask;
        const off = [...Array(kinds)].map(() => [...Array(layers)].map(() => new Array(count).fill(0)));
        const out = [];
        for (const [url, heads] of [[transformer, off], [transformer, [[1]]],
                                    [new URL("models/gru-fra-eng/", base), off]]) {
            try { await translate(url, vendor, "I am here.", { heads }); out.push("accepted"); }
            catch (error) { out.push(error.message); }
        }
        return out;
    }"""
    )
    assert "every head is switched off" in refused[0]
    assert "the heads to keep must be 3 kinds" in refused[1]
    assert "no attention heads to switch off" in refused[2]
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE_MODELS))
def test_the_browser_forces_a_prefix_as_pytorch(
    site, browser, built_book, name, fra_eng_dir, monkeypatch
):
    """On the static page, 20 held-out sentences, each with the first one to three
    words of its reference forced (one with a word the model does not know): the
    browser reads the forced words as PyTorch does, gives each PyTorch's probability
    within 1e-4, and goes on with PyTorch's words and attention."""
    import numpy as np

    from attnlab.infer.forcing import force_prefix

    html, _ = built_book
    model = _trained(html, name)
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data = _smoke_data()
    sources, references = data.references("test")
    cases = [
        (" ".join(src), " ".join(refs[0].split()[: 1 + i % 3]))
        for i, (src, refs) in enumerate(zip(sources[:20], references))
    ]
    cases[0] = (cases[0][0], "zorglub " + cases[0][1])
    page, requests, errors = open_page(browser, f"{site}/chapters/06_comparison.html")
    results = page.evaluate(
        """async ([name, cases]) => {
        const base = new URL("../_static/", location.href);
        const { translate } = await import(new URL("live/translate.mjs", base).href);
        const out = [];
        for (const [s, prefix] of cases) {
            const r = await translate(new URL(`models/${name}/`, base), new URL("vendor/", base),
                                      s, { prefix });
            out.push({ tokens: r.tokens, forced: r.forced, weights: r.weights });
        }
        return out;
    }""",
        [name, cases],
    )
    for (sentence, prefix), ours in zip(cases, results, strict=True):
        theirs = force_prefix(model, sentence, prefix, data.src_vocab, data.tgt_vocab)
        assert ours["tokens"] == theirs.tokens, (sentence, prefix)
        assert ours["forced"]["words"] == theirs.forced
        assert ours["forced"]["unknown"] == theirs.forced_unknown
        np.testing.assert_allclose(
            ours["forced"]["probs"], theirs.forced_probs, atol=1e-4
        )
        weights = ours["weights"]
        if "attention" in weights:
            seen = np.array(weights["attention"])
        elif "cross" in weights:
            seen = np.array(weights["cross"])[-1].mean(0)
        else:
            assert theirs.attention is None
            continue
        np.testing.assert_allclose(seen, theirs.attention.numpy(), atol=1e-4)
    assert results[0]["forced"]["unknown"] == ["zorglub"]
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_the_prefix_view_continues_from_the_reader_s_words(site, browser):
    """Chapter 3's live box: forcing the first words shows the translation that follows
    them, greedy or from a beam, the probability of each forced word and the attention,
    forced rows first (no serious axe violation); an empty prefix and one longer than the
    model's limit get a message."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    panel = _view_below_a_translation(page, ".attnlab-live-prefix")
    panel.locator("summary").click()
    field, button = panel.locator("input[type=text]"), panel.locator("button")
    status = panel.locator(".attnlab-live-prefix-status")

    def force(text):
        field.fill(text)
        button.click()
        page.wait_for_function(
            "b => !b.disabled", arg=button.element_handle(), timeout=60_000
        )
        return status.inner_text(), panel.locator(".attnlab-live-prefix-view")

    message, view = force("je ne")
    assert message == "" and "Forced, then the model's own" in view.inner_text()
    assert view.locator(".attnlab-live-prefix-probs tr").count() == 3  # header, je, ne
    assert "%" in view.locator(".attnlab-live-prefix-probs").inner_text()
    assert view.locator("mark").count() == 2
    assert view.locator(".attnlab-live-steps input[type=range]").count() == 1
    serious = [
        v for v in axe_violations(page) if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious
    message, _ = force("   ")
    assert "the forced prefix is empty" in message
    message, _ = force("non " * 40)
    assert "the forced prefix has 40 words; at most" in message
    message, view = force("zorglub")
    assert message == "" and "Read as <unk>" in view.inner_text()
    panel.locator("select[aria-label='continue with']").select_option("5")
    message, view = force("je ne")
    assert message == "" and "Forced, then a beam of 5 from there" in view.inner_text()
    assert view.locator(".attnlab-live-prefix-probs tr").count() == 3
    words = view.locator("p").nth(0).locator("mark, b").count()
    assert view.locator("mark").count() == 2 and words >= 2
    # the chosen hypothesis's attention: a header row, then one row a word it wrote
    path = view.locator(".attnlab-live-path table tr")
    assert path.count() in (words + 1, words + 2)  # with the <eos> step or without
    page.set_viewport_size({"width": 390, "height": 844})  # a phone's width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


def _view_below_a_translation(page, view):
    """Translate a sentence in the page's live box; returns the ``view`` (a selector)
    below its first result, still closed."""
    box = page.locator(".attnlab-live")
    box.locator(MAIN_INPUT).fill("I think we should leave.")
    box.locator(MAIN_BUTTON).click()
    found = box.locator(view).first
    found.wait_for(timeout=120_000)
    return found


def _smoke_data():
    from attnlab.core.runtime import get_profile
    from attnlab.recipes import experiments

    return experiments.fra_eng_data(get_profile("smoke"))


def _trained(html, name):
    """The model the smoke build trained, from its model cache."""
    import re

    from attnlab.train.checkpoints import load_checkpoint

    # exactly NAME-<hash>.pt: chapter 6's seeds are cached as NAME-seeds-<hash>.pt
    (path,) = [
        p
        for p in sorted((html.parents[1] / "attnlab" / "models").glob(f"{name}-*.pt"))
        if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}\.pt", p.name)
    ]
    return load_checkpoint(path).model.eval()


def assert_browser_matches_pytorch(model, data, sentence, ours, atol=1e-4):
    import numpy as np

    from attnlab.infer import decoding

    theirs = decoding.translate(model, sentence, data.src_vocab, data.tgt_vocab)
    assert ours["tokens"] == theirs.tokens, sentence
    weights = {k: np.array(v, dtype=np.float32) for k, v in ours["weights"].items()}
    if "attention" in weights:
        np.testing.assert_allclose(
            weights["attention"], theirs.attention.numpy(), atol=atol
        )
    if "cross" in weights:
        assert_transformer_weights(
            model, data.src_vocab, data.tgt_vocab, theirs.source, weights, atol
        )


@pytest.mark.slow
def test_live_box_handles_bad_input_and_broken_files(site, browser):
    """Chapter 3's live box: a translation with its step view; then every kind of bad
    input gets a message, markup stays text, and a model file that fails to load or does
    not match its hash leaves a message while the precomputed explorer keeps working."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    box = page.locator(".attnlab-live")
    field, button = box.locator(MAIN_INPUT), box.locator(MAIN_BUTTON)
    status, results = (
        box.locator(".attnlab-live-status"),
        box.locator(".attnlab-live-results"),
    )
    assert not [url for url in requests if _heavy(url)]

    def ask(text):
        field.fill(text)
        button.click()
        page.wait_for_function(
            "b => !b.disabled", arg=button.element_handle(), timeout=60_000
        )
        return status.inner_text(), results.inner_text()

    message, shown = ask("The cat is on the mat.")
    assert message == "" and "Translation:" in shown
    assert box.locator(".attnlab-live-steps input[type=range]").count() == 1
    assert box.locator(".attnlab-live-map tr").count() >= 2
    assert [url for url in requests if _heavy(url)]  # now the model was fetched

    message, shown = ask("   ")
    assert "nothing to translate" in message and shown == ""
    message, shown = ask("qwxz vbnm plkj")
    assert message == "" and "Read as <unk>" in shown and "qwxz" in shown
    message, shown = ask(" ".join(["cat"] * 500))
    assert "cut to its first 50 words" in shown
    message, shown = ask("😀 Здравствуйте 你好 ✨")
    assert message == "" and "Read as <unk>" in shown and "😀" in shown
    message, shown = ask('<script>alert("x")</script><img src=x onerror=alert(1)>')
    assert message == "" and "<script>" in shown
    assert dialogs == [] and box.locator("script, img").count() == 0
    assert_offline_and_clean(site, page, requests, errors)
    page.close()

    # A broken deployment: the vocabulary altered, the graph replaced by another gzip,
    # the model file missing, the manifest malformed; the runtime's loader, glue or
    # WebAssembly tampered with, its list of hashes malformed. (Files are asked for with
    # their hash in the URL: the patterns allow a query.)
    def at(path):
        return re.compile(re.escape(path) + r"(\?.*)?$")

    def body(text, status=200):
        return lambda r: r.fulfill(status=status, body=text)

    model = at("/models/bahdanau-fra-eng/model.onnx.gz")
    ort = "/vendor/onnxruntime-web/"
    for pattern, route, expected in (
        (
            at("/models/bahdanau-fra-eng/tgt-vocab.json"),
            body('["<pad>"]'),
            "tgt-vocab.json does not match its SHA-256",
        ),
        (
            model,
            body(gzip.compress(b"not a model")),
            "model.onnx.gz does not match its SHA-256",
        ),
        (model, body("gone", 404), "HTTP 404"),
        (
            at("/models/bahdanau-fra-eng/manifest.json"),
            body("{broken"),
            "manifest.json is not readable",
        ),
        (
            at(ort + "ort.wasm.min.mjs"),
            body("export const env = {};"),
            "ort.wasm.min.mjs does not match its SHA-256",
        ),
        (
            at(ort + "ort-wasm-simd-threaded.mjs"),
            body("export default 1;"),
            "ort-wasm-simd-threaded.mjs does not match its SHA-256",
        ),
        (
            at(ort + "ort-wasm-simd-threaded.wasm.gz"),
            body(gzip.compress(b"\0asm")),
            "WebAssembly does not match its SHA-256",
        ),
        (
            at("/live/runtime.json"),
            body('{"format": 9}'),
            "runtime.json has an unknown format",
        ),
    ):
        page, requests, errors = open_page(
            browser, f"{site}/chapters/03_bahdanau_attention.html"
        )
        page.route(pattern, route)
        box = page.locator(".attnlab-live")
        box.locator(MAIN_INPUT).fill("The cat is on the mat.")
        box.locator(MAIN_BUTTON).click()
        page.wait_for_function(
            "b => !b.disabled",
            arg=box.locator(MAIN_BUTTON).element_handle(),
            timeout=60_000,
        )
        assert expected in box.locator(".attnlab-live-status").inner_text()
        # the precomputed explorer is untouched
        show_widgets(page)
        assert page.locator(".attnlab-step").count() == 1
        errors = [e for e in errors if "404" not in e]  # the failure we made
        assert_offline_and_clean(site, page, requests, errors)
        page.close()


def test_the_policy_refuses_a_script_the_build_did_not_write(site, browser):
    """The page's Content-Security-Policy is in force: a script put into the page (as an
    injection would) does not run, and neither does a script from another host, while
    the page's own scripts did."""
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    ran = page.evaluate("""() => new Promise((resolve) => {
        window.injected = false;
        const inline = document.createElement("script");
        inline.textContent = "window.injected = true;";
        document.head.append(inline);
        const remote = document.createElement("script");
        remote.src = "https://example.org/x.js";
        remote.onerror = () => resolve(window.injected);
        document.head.append(remote);
    })""")
    assert ran is False
    refused = [e for e in errors if "Content Security Policy" in e]
    assert len(refused) == 2, errors
    assert any("inline script" in e for e in refused)
    assert any("https://example.org/x.js" in e for e in refused)
    assert page.locator(".attnlab-live input[type=text]").count() == 1  # live.mjs ran
    page.close()


def test_one_model_failing_leaves_the_others_translating(site, browser):
    """Chapter 6's box asks all three models: with the GRU's graph gone, the box says so
    in the GRU's place and the other two still translate."""
    page, requests, errors = open_page(browser, f"{site}/chapters/06_comparison.html")
    page.route(
        re.compile(r"/models/gru-fra-eng/model\.onnx\.gz(\?.*)?$"),
        lambda r: r.fulfill(status=404, body="gone"),
    )
    box = page.locator(".attnlab-live")
    box.locator(MAIN_INPUT).fill("The cat is on the mat.")
    box.locator(MAIN_BUTTON).click()
    page.wait_for_function(
        "b => !b.disabled",
        arg=box.locator(MAIN_BUTTON).element_handle(),
        timeout=90_000,
    )
    assert (
        "Not every model could be used"
        in box.locator(".attnlab-live-status").inner_text()
    )
    gru = box.locator('.attnlab-live-result[data-model="gru-fra-eng"]')
    assert "could not be used" in gru.inner_text() and "HTTP 404" in gru.inner_text()
    for name in ("bahdanau-fra-eng", "transformer-fra-eng"):
        assert (
            "Translation:"
            in box.locator(f'.attnlab-live-result[data-model="{name}"]').inner_text()
        )
    errors = [e for e in errors if "404" not in e]  # the failure we made
    assert_offline_and_clean(site, page, requests, errors)
    page.close()


@pytest.mark.slow
def test_the_browser_benchmark_takes_another_build_s_models(built_book, tmp_path):
    """bench_browser.py --models: a copy of the site with another build's exports
    published as the build publishes them; an export whose files do not match its
    manifest is refused, naming it."""
    import filecmp
    import shutil

    html, _ = built_book
    exports = html.parents[1] / "attnlab" / "browser"  # the smoke build's own
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_browser
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    copy = bench_browser.with_models(html, exports, tmp_path / "site")
    index = json.loads((copy / "_static" / "models" / "index.json").read_text())
    assert sorted(m["name"] for m in index["models"]) == sorted(LIVE_MODELS)
    for name in LIVE_MODELS:
        compared = filecmp.dircmp(exports / name, copy / "_static" / "models" / name)
        assert not compared.diff_files and not compared.left_only, name
    assert (copy / "chapters" / "06_comparison.html").read_bytes() == (
        html / "chapters" / "06_comparison.html"
    ).read_bytes()
    tampered = tmp_path / "tampered"
    shutil.copytree(exports, tampered)
    (tampered / "gru-fra-eng" / "src-vocab.json").write_text("[]")
    with pytest.raises(SystemExit, match="gru-fra-eng"):
        bench_browser.with_models(html, tampered, tmp_path / "again")


@pytest.mark.slow
def test_browser_benchmark_runs_quick(browser_benchmark):
    """benchmarks/bench_browser.py on the smoke site: what it measures is there and sane.
    It runs as the browser tests begin (conftest.browser_benchmark)."""
    result, output, pages_output = browser_benchmark.result()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads(output.read_text())
    pages = {m["chapter"]: m for m in record["measurements"]}
    assert set(pages) == {"03_bahdanau_attention", "05_transformer", "06_comparison"}
    for m in pages.values():
        assert m["page_bytes_after"] > m["page_bytes_before"] > 0
        assert set(m["first_use_bytes"]) == {"model", "runtime", "live scripts"}, m[
            "first_use_files"
        ]
        assert (
            m["press_ms"]["runs"] == 2
            and 0 < m["press_ms"]["median"] < m["first_press_ms"]
        )
        assert len(m["translations"]) == len(m["models"]) and all(m["translations"])
        assert m["profile"] == ["smoke"]
    beams = {stem: set(m["beam_ms"]) for stem, m in pages.items()}
    assert beams == {
        "03_bahdanau_attention": set(),
        "05_transformer": {"transformer-fra-eng"},
        "06_comparison": set(LIVE_MODELS),
    }
    for beam in [b for m in pages.values() for b in m["beam_ms"].values()]:
        assert beam["runs"] == 2 and 0 < beam["min"] <= beam["median"] <= beam["max"]
        assert beam["steps"] >= 1 and beam["beam_size"] == 5
    files = pages["06_comparison"]["first_use_files"]
    wasm = files["vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm.gz"]
    assert wasm < 5e6  # served compressed (14 MB plain)
    assert {f.split("/")[1] for f in files if f.startswith("models/")} == set(
        LIVE_MODELS
    )
    assert all(f.endswith((".gz", ".json", ".mjs")) for f in files)
    # Every page before the reader does anything (two pages in --quick), with Lighthouse.
    rows = json.loads(pages_output.read_text())["measurements"]
    assert [row["page"] for row in rows] == [
        "book/intro.html",
        "chapters/03_bahdanau_attention.html",
    ]
    for row in rows:
        assert row["requests"] > 5 and 0 < row["gzip"] < row["raw"]
        assert row["widgets"] == row["page"].startswith("chapters/")
        assert set(row["scores"]) == {"performance", "accessibility", "best-practices"}
        assert all(0 <= score <= 100 for score in row["scores"].values())
        assert 0 < row["fcp_ms"] <= row["lcp_ms"] and row["bytes"] > 0


@pytest.mark.slow
def test_live_box_takes_files_a_host_has_already_decompressed(
    site, browser, built_book
):
    """A host that sends model.onnx.gz and the WebAssembly with Content-Encoding: gzip
    hands the page plain bytes: the page checks them and translates as usual."""
    html, _ = built_book
    plain = {
        name: gzip.decompress(path.read_bytes())
        for name, path in (
            (
                "model",
                html / "_static" / "models" / "bahdanau-fra-eng" / "model.onnx.gz",
            ),
            (
                "wasm",
                html
                / "_static"
                / "vendor"
                / "onnxruntime-web"
                / "ort-wasm-simd-threaded.wasm.gz",
            ),
        )
    }
    page, requests, errors = open_page(
        browser, f"{site}/chapters/03_bahdanau_attention.html"
    )
    page.route(
        "**/models/bahdanau-fra-eng/model.onnx.gz",
        lambda r: r.fulfill(status=200, body=plain["model"]),
    )
    page.route(
        "**/ort-wasm-simd-threaded.wasm.gz",
        lambda r: r.fulfill(status=200, body=plain["wasm"]),
    )
    box = page.locator(".attnlab-live")
    box.locator(MAIN_INPUT).fill("The cat is on the mat.")
    box.locator(MAIN_BUTTON).click()
    page.wait_for_function(
        "b => !b.disabled",
        arg=box.locator(MAIN_BUTTON).element_handle(),
        timeout=60_000,
    )
    assert box.locator(".attnlab-live-status").inner_text() == ""
    assert "Translation:" in box.locator(".attnlab-live-results").inner_text()
    assert_offline_and_clean(site, page, requests, errors)
    page.close()
