"""The chapters: committed clean, runnable top to bottom in the smoke profile, checked by nbval."""

from __future__ import annotations

import json
import re
import sys

import pytest
from helpers import ROOT, built_notebook, nbval_replayed

sys.path.insert(0, str(ROOT / "book"))
import notebooks  # noqa: E402  (book/notebooks.py, the chapters' maintenance tool)

from attnlab.course import compare  # noqa: E402

CHAPTERS = notebooks.chapter_paths()
SOLUTIONS = notebooks.solution_paths()
LABS = notebooks.lab_paths()
SECTIONS = notebooks.section_paths()


def test_there_are_chapters():
    assert [p.name for p in CHAPTERS][:1] == ["01_sentences_to_tensors.ipynb"]


@pytest.mark.parametrize(
    "path",
    CHAPTERS + SECTIONS + SOLUTIONS + LABS,
    ids=lambda p: p.relative_to(ROOT / "chapters").with_suffix("").as_posix(),
)
def test_chapter_is_committed_clean(path):
    """No outputs but tagged ones, and the Colab cell built from _config.yml's URL."""
    assert notebooks.problems(path) == []


def test_nbstripout_keeps_only_the_checked_outputs(tmp_path):
    """A chapter as a run leaves it: nbstripout keeps the checked cell's output and
    count, drops the others' outputs and the widget state, and the check names each
    problem."""
    notebook = notebooks.read(CHAPTERS[0])
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    checked = next(c for c in cells if notebooks.CHECKED in c.metadata.get("tags", []))
    other = next(c for c in cells if not c.metadata.get("tags"))
    other.outputs = [notebooks.nbformat.v4.new_output("stream", text="noise\n")]
    other.execution_count = 7
    notebook.metadata["widgets"] = {"state": {}}
    path = tmp_path / CHAPTERS[0].name
    notebooks.write(notebook, path)
    assert any("nbstripout removes" in p for p in notebooks.problems(path))

    assert notebooks.strip(path, verify=True) is False
    assert notebooks.strip(path) is True and notebooks.strip(path, verify=True)
    stripped = notebooks.read(path)
    kept = {c.id: c for c in stripped.cells}
    assert kept[other.id].outputs == [] and "widgets" not in stripped.metadata
    assert kept[checked.id].outputs == checked.outputs
    assert kept[checked.id].execution_count == checked.execution_count is not None

    # a checked cell that nbstripout would strip: it lacks the keep_output tag
    kept[checked.id].metadata["tags"].remove(notebooks.KEPT)
    notebooks.write(stripped, path)
    found = notebooks.problems(path)
    assert any(f"both {notebooks.CHECKED} and {notebooks.KEPT}" in p for p in found)
    assert any("nbstripout removes" in p for p in found)


def test_colab_cell_uses_the_configured_repository():
    source = notebooks.colab_cell_source()
    assert notebooks.repository_url() in source and "google.colab" in source
    assert notebooks.colab_cell_source("https://example.org/x") != source


def test_readme_links_the_configured_repository():
    """The README's Colab link and clone command follow _config.yml's repository URL."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    slug = notebooks.repository_url().removeprefix("https://github.com/")
    links = re.findall(
        r"colab\.research\.google\.com/github/([^/\s>]+/[^/\s>]+)/", readme
    )
    assert links and set(links) == {slug}
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert f"git clone {notebooks.repository_url()}" in intro


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_checked_outputs(path):
    """Each chapter pins some deterministic teaching outputs for nbval to compare."""
    notebook = notebooks.read(path)
    checked = [
        c
        for c in notebook.cells
        if notebooks.CHECKED in c.metadata.get("tags", []) and c.outputs
    ]
    assert checked


PAGES = CHAPTERS + SECTIONS + SOLUTIONS + LABS


@pytest.mark.parametrize(
    "path",
    PAGES,
    ids=lambda p: p.relative_to(ROOT / "chapters").with_suffix("").as_posix(),
)
def test_nbval_checks_the_page_as_the_book_built_it(path, built_book, tmp_path):
    """Every page runs once a test run, when the smoke book is built (every cell without
    an error: test_book_builds_without_warnings); nbval then holds its tagged cells to
    the committed outputs, replayed from that run (replay_kernel.py), and each chapter
    recorded its results."""
    html, _ = built_book
    executed = built_notebook(html, path)
    assert executed.is_file(), f"the book's build did not execute {path.name}"
    result = nbval_replayed(path, executed, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
    if path not in CHAPTERS:
        return
    record = html.parents[1] / "attnlab" / "results" / f"{path.stem}.json"
    assert record.is_file()
    if path.stem == "05_transformer":  # chapter 6 reads it by the library's model names
        results = json.loads(record.read_text(encoding="utf-8"))["results"]
        assert list(results["comparison"]) == list(compare.MODEL_NAMES)


@pytest.mark.kernel
def test_nbval_on_the_replayed_build_fails_where_the_build_differs(tmp_path):
    """The replayed check is nbval's: a tagged cell whose built output differs fails it,
    as does a cell the build did not run or one that raised; the same outputs pass."""
    v4 = notebooks.nbformat.v4

    def page(name, printed, *, other="x = 1", error=False):
        shown = v4.new_code_cell("print('attention')", execution_count=1)
        shown.metadata["tags"] = [notebooks.CHECKED, notebooks.KEPT]
        shown.outputs = [v4.new_output("stream", name="stdout", text=printed)]
        rest = v4.new_code_cell(other)
        if error:
            rest.outputs = [
                v4.new_output(
                    "error",
                    ename="ValueError",
                    evalue="no",
                    traceback=["ValueError: no"],
                )
            ]
        path = tmp_path / f"{name}.ipynb"
        notebooks.nbformat.write(v4.new_notebook(cells=[shown, rest]), path)
        return path

    committed = page("committed", "attention\n")
    runs = {
        "same": page("same", "attention\n"),
        "changed": page("changed", "attentoin\n"),
        "another cell": page("another", "attention\n", other="x = 2"),
        "raised": page("raised", "attention\n", error=True),
    }
    results = {
        case: nbval_replayed(committed, run, tmp_path / case)
        for case, run in runs.items()
    }
    assert results["same"].returncode == 0, results["same"].stdout[-3000:]
    assert "Cell outputs differ" in results["changed"].stdout
    assert "did not execute this cell" in results["another cell"].stdout
    assert "ValueError" in results["raised"].stdout
    assert all(r.returncode != 0 for case, r in results.items() if case != "same")


def test_the_debugging_lab_is_a_numbered_page_after_chapter_5():
    assert [p.name for p in LABS] == ["debugging.ipynb"]
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    chapter5 = toc.index("file: chapters/05_transformer")
    assert (
        chapter5
        < toc.index("file: chapters/lab/debugging")
        < toc.index("file: chapters/06_")
    )
    assert toc.index("numbered: true") < chapter5


def test_a_chapter_s_further_pages_come_before_its_solutions():
    """Chapters 2's and 5's second pages (chapters/sections/) are numbered sections of
    their chapters, before its worked solutions; every such page belongs to an existing
    chapter."""
    assert [p.name for p in SECTIONS] == [
        "02_gradients_through_time.ipynb",
        "05_warmup_ablation.ipynb",
    ]
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for page in SECTIONS:
        chapter = next(p for p in CHAPTERS if p.name[:3] == page.name[:3])
        at = toc.index(f"file: chapters/sections/{page.stem}")
        assert toc.index(f"file: chapters/{chapter.stem}") < at
        assert at < toc.index(f"file: chapters/solutions/{chapter.stem}")


MODEL_NAMES = list(compare.MODEL_NAMES)


def test_comparison_chapter_shows_the_recorded_results(built_book):
    """Chapter 6's table and prose, as the book's build ran them, show what chapter 5
    recorded in that build, and say where they came from. Its training times are that
    run's own measurements, so a chapter 6 that trained or timed the models again would
    show others."""
    html, _ = built_book
    out = html.parents[1]  # the build's folder: _build/ and its attnlab/ results
    record = json.loads(
        (out / "attnlab" / "results" / "05_transformer.json").read_text(
            encoding="utf-8"
        )
    )
    comparison = record["results"]["comparison"]
    assert list(comparison) == MODEL_NAMES
    cells = notebooks.read(
        out / "_build" / "jupyter_execute" / "chapters" / "06_comparison.ipynb"
    ).cells
    outputs = json.dumps(
        [cell.get("outputs", []) for cell in cells], default=str, ensure_ascii=False
    )
    provenance = f"recorded by 05_transformer on {record['recorded_at'][:10]}"
    assert provenance in outputs
    assert "measured now" not in outputs, "chapter 6 did not read chapter 5's record"
    for row in comparison.values():
        shown = [
            f"{row['parameters'] / 1e6:.2f} M",
            f"{row['train_seconds']:.0f} s",
            f"{row['test_bleu']:.1f} ± ",
            f"{row['test_bleu_beam5']:.1f}",
            f"{row['test_chrf']:.1f}",
            f"{row['bleu_by_length'][-1]['bleu']:.1f}",
            f"{row['sentences_per_second']:.0f}",
            row["device"],
        ]
        missing = [text for text in shown if text not in outputs]
        assert not missing, f"chapter 6 does not show {missing} of {row['device']}"
    # The prose that reads the table is written from the same numbers, in the text itself.
    prose = " ".join(
        "".join(output.get("data", {}).get("text/markdown", ""))
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    greedy = ", ".join(f"{n} {comparison[n]['test_bleu']:.1f}" for n in MODEL_NAMES)
    assert f"Held-out BLEU, greedy: {greedy};" in prose
    times = ", ".join(
        f"{comparison[n]['train_seconds']:.0f} s ({n})" for n in MODEL_NAMES
    )
    assert f"Training took {times} on `{comparison[MODEL_NAMES[0]]['device']}`" in prose


def test_budget_notes_come_from_the_measured_timings(tmp_path):
    """The note lists each device's measured run, the models trained, and its source file."""

    def record(device, machine, seconds):
        runs = [
            {
                "chapter": "02_x",
                "profile": p,
                "cache": c,
                "seconds": seconds * f,
                "trained": [
                    {"name": "gru-fra-eng", "steps": 3200, "seconds": seconds * 0.6}
                ],
            }
            for p, c, f in [
                ("smoke", "cold", 0.05),
                ("full", "cold", 1.0),
                ("full", "warm", 0.1),
            ]
        ]
        (tmp_path / f"chapters-{device}.json").write_text(
            json.dumps(
                {
                    "measured_at": "2026-11-26T00:00:00+00:00",
                    "machine": {
                        "device": device,
                        "cpu_count": 2,
                        "torch": "2.13.0",
                        **machine,
                    },
                    "measurements": runs,
                }
            )
        )

    record("cpu", {}, 400.0)
    note = notebooks.budget_note("02_x", tmp_path)
    assert "| | 2 CPU cores |" in note and "| top to bottom | 6.7 min |" in note
    assert "`gru-fra-eng`: 3,200 steps, 4.0 min" in note and "No GPU run" in note
    record("cuda", {"gpu": "NVIDIA H100"}, 40.0)
    note = notebooks.budget_note("02_x", tmp_path)
    assert (
        "| | 2 CPU cores | one NVIDIA H100 GPU |" in note and "No GPU run" not in note
    )
    assert "| with its models cached | 40 s | 4 s |" in note
    assert "chapters-cuda.json`, 2026-11-26" in note
    with pytest.raises(ValueError, match="no full-profile run of 07_y"):
        notebooks.budget_note("07_y", tmp_path)
    # A GPU run that failed in this chapter, or never reached it: said, not hidden.
    failed = json.loads((tmp_path / "chapters-cuda.json").read_text())
    failed["measurements"][1]["error"] = "RuntimeError: out of memory"
    (tmp_path / "chapters-cuda.json").write_text(json.dumps(failed))
    note = notebooks.budget_note("02_x", tmp_path)
    assert "| top to bottom | 6.7 min | did not finish |" in note
    assert (
        "the run of 2026-11-26 did not finish this chapter: RuntimeError: out of memory."
        in note
    )
    # A GPU run of an earlier version, with other budgets: said too.
    failed["measurements"][1]["trained"][0]["steps"] = 4000
    (tmp_path / "chapters-cuda.json").write_text(json.dumps(failed))
    note = notebooks.budget_note("02_x", tmp_path)
    assert (
        "trained an earlier version's budgets (`gru-fra-eng` 4,000 steps, not 3,200): "
        "its times are not this version's."
    ) in note
    # A GPU run of an earlier version that trained models this chapter no longer trains.
    failed["measurements"][1]["trained"][0]["steps"] = 3200
    failed["measurements"][1]["trained"].append(
        {"name": "gru-ablation", "steps": 100, "seconds": 5.0}
    )
    (tmp_path / "chapters-cuda.json").write_text(json.dumps(failed))
    note = notebooks.budget_note("02_x", tmp_path)
    assert (
        "trained models this version's chapter no longer trains (`gru-ablation`): its "
        "times include them."
    ) in note and "earlier version's budgets" not in note
    failed["measurements"] = []
    (tmp_path / "chapters-cuda.json").write_text(json.dumps(failed))
    note = notebooks.budget_note("02_x", tmp_path)
    assert "| trains | `gru-fra-eng`: 3,200 steps, 4.0 min | not measured yet |" in note
    assert "did not reach this chapter" in note


def test_every_chapter_is_in_the_table_of_contents():
    """A chapter missing from _toc.yml would not be built (only_build_toc_files); its further
    pages, then its worked solutions, are sections right below it."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries = [
        entry
        for part in toc["parts"]
        for entry in part["chapters"]
        if entry["file"].startswith("chapters/")
    ]
    assert [e["file"] for e in entries] == [
        f"chapters/{path.stem}" for path in CHAPTERS
    ]
    sections = {e["file"]: [s["file"] for s in e.get("sections", [])] for e in entries}
    below = {}
    for chapter in CHAPTERS:
        further = [
            f"chapters/sections/{p.stem}"
            for p in SECTIONS
            if p.name[:3] == chapter.name[:3]
        ]
        answers = [
            f"chapters/solutions/{p.stem}" for p in notebooks.solution_pages(chapter)
        ]
        below[chapter.stem] = [*further, *answers]
        assert (
            answers
            and sections[f"chapters/{chapter.stem}"][: len(below[chapter.stem])]
            == below[chapter.stem]
        )
    labs = [f"chapters/lab/{page.stem}" for page in LABS]
    assert sum(map(len, sections.values())) == len(SECTIONS) + len(SOLUTIONS) + len(
        labs
    )
    assert sections["chapters/05_transformer"][len(below["05_transformer"]) :] == labs


def test_solutions_pages_belong_to_chapters():
    """Each solutions page is a chapter's, named after it (or its continuation, -2 ...);
    every chapter's exercises are solved once over its pages."""
    pages = [page for chapter in CHAPTERS for page in notebooks.solution_pages(chapter)]
    assert SOLUTIONS and sorted(pages) == SOLUTIONS
    assert [
        p.name
        for p in notebooks.solution_pages(ROOT / "chapters" / "05_transformer.ipynb")
    ] == ["05_transformer.ipynb", "05_transformer-2.ipynb"]
    for chapter in CHAPTERS:
        assert set(notebooks.chapter_answers(chapter)) == set(
            notebooks.exercises(notebooks.read(chapter))
        )


def test_a_chapter_s_solutions_may_continue_on_further_pages(tmp_path, monkeypatch):
    """Solutions split over two pages count together; one solved twice is named."""
    good = [
        ("**Predict.** Why?", "Because."),
        ("**Diagnose.** How?", "So."),
        ("What?", "That."),
    ]
    path = _chapter(
        tmp_path, monkeypatch, ["Do a.", "Do b."], good, [("ch2-ex-1", "ch2-sol-1")]
    )
    v4 = notebooks.nbformat.v4
    more = tmp_path / "chapters" / "solutions" / "02_x-2.ipynb"

    def second(*solved):
        cells = [
            v4.new_markdown_cell(
                f":::{{solution}} {e}\n:label: {s}\n:class: dropdown\n\nBecause.\n:::"
            )
            for e, s in solved
        ]
        notebooks.write(v4.new_notebook(cells=cells), more)

    assert "exercise ch2-ex-2 has no worked solution" in " ".join(
        notebooks.exercise_problems(path)
    )
    second(("ch2-ex-2", "ch2-sol-2"))
    assert notebooks.chapter_answers(path) == {
        "ch2-ex-1": "ch2-sol-1",
        "ch2-ex-2": "ch2-sol-2",
    }
    assert notebooks.exercise_problems(path) == []
    second(("ch2-ex-2", "ch2-sol-2"), ("ch2-ex-1", "ch2-sol-1b"))
    assert notebooks.exercise_problems(path) == [
        "solutions/02_x-2.ipynb: solves ch2-ex-1 again"
    ]


def _chapter(tmp_path, monkeypatch, exercises, questions, solutions=None):
    """A chapter and (if ``solutions``) its solutions page, in folders like the real ones,
    which the notebooks tool is pointed at."""
    chapters = tmp_path / "chapters"
    (chapters / "solutions").mkdir(parents=True)
    monkeypatch.setattr(notebooks, "CHAPTERS", chapters)
    monkeypatch.setattr(notebooks, "SOLUTIONS", chapters / "solutions")
    v4 = notebooks.nbformat.v4
    body = "## Exercises\n\n" + "\n\n".join(
        f":::{{exercise}}\n:label: ch2-ex-{k}\n\n{text}\n:::"
        for k, text in enumerate(exercises, 1)
    )
    check = "## Check yourself\n\n" + "\n\n".join(
        f"{k}. {q}\n\n" + (f"   {notebooks.ANSWER}\n\n   {a}\n   :::" if a else "")
        for k, (q, a) in enumerate(questions, 1)
    )
    path = chapters / "02_x.ipynb"
    notebooks.write(
        v4.new_notebook(
            cells=[v4.new_markdown_cell(body), v4.new_markdown_cell(check)]
        ),
        path,
    )
    if solutions is not None:
        cells = [
            v4.new_markdown_cell(
                f":::{{solution}} {e}\n:label: {s}\n:class: dropdown\n\nBecause.\n:::"
            )
            for e, s in solutions
        ]
        notebooks.write(
            v4.new_notebook(cells=cells), chapters / "solutions" / "02_x.ipynb"
        )
    return path


def test_exercise_checks_catch_what_is_missing(tmp_path, monkeypatch):
    """Every exercise has a worked solution (the book links it), none links it by hand,
    no solution answers a missing exercise, and the chapter ends with 3 to 5 self-check
    questions, each with an answer."""
    good = [
        ("**Predict.** Why?", "Because."),
        ("**Diagnose.** How?", "So."),
        ("What?", "That."),
    ]
    solved = [("ch2-ex-1", "ch2-sol-1"), ("ch2-ex-2", "ch2-sol-2")]
    path = _chapter(tmp_path, monkeypatch, ["Do a.", "Do b."], good, solved)
    assert notebooks.exercise_problems(path) == []

    by_hand = ["Do a.\n\n{ref}`Worked solution <ch2-sol-1>`", "Do b."]
    path = _chapter(tmp_path / "a", monkeypatch, by_hand, good, solved)
    assert notebooks.exercise_problems(path) == [
        "02_x.ipynb: exercise ch2-ex-1 links its solution by hand; the book adds the "
        "link when it builds (book/_ext/exercise_links.py)"
    ]

    path = _chapter(
        tmp_path / "b",
        monkeypatch,
        ["Do a.", "Do b."],
        good[:2] + [("Who?", None)],
        [("ch2-ex-1", "ch2-sol-1"), ("ch2-ex-9", "ch2-sol-9")],
    )
    problems = " | ".join(notebooks.exercise_problems(path))
    assert "self-check question 3 has no answer" in problems
    assert "a solution to ch2-ex-9, which chapter 2 does not have" in problems
    assert "exercise ch2-ex-2 has no worked solution" in problems

    path = _chapter(tmp_path / "c", monkeypatch, ["Do a."], good[:2])
    assert notebooks.exercise_problems(path) == [
        "02_x.ipynb: 'Check yourself' has 2 questions, not 3 to 5",
        "02_x.ipynb: no worked solutions (chapters/solutions/02_x.ipynb is missing)",
    ]

    recall = [
        ("Why?", "Because."),
        ("**Trace the shapes.** How?", "So."),
        ("What?", "That."),
    ]
    path = _chapter(
        tmp_path / "d", monkeypatch, ["Do a."], recall, [("ch2-ex-1", "ch2-sol-1")]
    )
    assert notebooks.exercise_problems(path) == [
        "02_x.ipynb: 'Check yourself' has 1 questions that ask for thinking, not 2 or more "
        "(begin them with one of **Predict.**, **Trace the shapes.**, **Diagnose.**)",
    ]
