"""Maintain the chapters' notebooks.

    python book/notebooks.py sync-colab        # write each chapter's Colab cell from _config.yml,
                                               # and the metadata that opens it on a GPU runtime;
                                               # the README's and preface's repository links
    python book/notebooks.py refresh [NB ...]  # re-execute (smoke profile), then nbstripout:
                                               # only cells tagged keep_output keep outputs
    python book/notebooks.py check             # report what `make test` would reject

A chapter is committed as nbstripout leaves it: without outputs, except for cells
tagged ``nbval-check-output`` (and ``keep_output``, nbstripout's tag): small
deterministic outputs that nbval compares on every test run. Its first cell installs attnlab in Colab only, from the
repository URL and branch (or release tag) in ``_config.yml`` (the one place
they are defined), and is removed from the book by its ``remove-cell`` tag.

Each chapter's exercises are ``{exercise}`` blocks (sphinx-exercise) labelled
``chN-ex-K``; their worked solutions are in ``chapters/solutions/`` under the
chapter's file name, one ``{solution}`` (or gated ``{solution-start}`` …
``{solution-end}`` around code cells) labelled ``chN-sol-K`` per exercise. The
chapter ends with a "Check yourself" section of 3 to 5 questions, each with
its answer in a dropdown; at least two of them ask for thinking rather than recall
and say so in their first words (``THINKING``: predict, trace the shapes, diagnose).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
SOLUTIONS = CHAPTERS / "solutions"
CHECKED = "nbval-check-output"
# nbstripout keeps the outputs of the cells tagged keep_output: every checked cell
# carries both tags. It keeps the execution counts too, since nbval compares only the
# cells that have one, and the cell ids; it drops widget state and timings. The same
# command is the pre-commit hook (.pre-commit-config.yaml).
KEPT = "keep_output"
NBSTRIPOUT = [sys.executable, "-m", "nbstripout", "--keep-count", "--keep-id"]
COLAB_TAGS = ["remove-cell"]
# Notebook metadata Colab reads: open the chapter on a GPU runtime (Colab's free GPU is a T4).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def _repository() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))[
        "repository"
    ]


def repository_url() -> str:
    return _repository()["url"].rstrip("/")


def repository_ref() -> str:
    """The branch or release tag this copy of the course is published from
    (``repository.branch``): the Colab buttons open the chapters there, and the Colab
    cell installs the library from there."""
    return str(_repository().get("branch") or "main")


def colab_cell_source(url: str | None = None, ref: str | None = None) -> str:
    url = url or repository_url()
    ref = ref or repository_ref()
    return (
        "# In Colab only: install the course's library from its repository, at the branch or\n"
        "# release tag the chapter was opened from (a tag such as v0.1.0 pins a class to it).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "attnlab @ git+{url}@{ref}"\n'
        "    # Colab forgets trained models when the session ends. To keep them on your Google Drive\n"
        "    # (a later session then reuses them, or resumes an interrupted training), uncomment:\n"
        '    # from google.colab import drive; drive.mount("/content/drive"); import os; '
        'os.environ["ATTNLAB_BUILD_DIR"] = "/content/drive/MyDrive/attnlab"'
    )


# --- budget notes, written from the measured chapter times ------------------------------------

RESULTS = ROOT / "benchmarks" / "results"
# A chapter places its budget note with this directive; book/_ext/budgets.py writes the
# note (budget_note) when the book is built.
BUDGET = re.compile(r"^:::\{budget\}\n.*?^:::$", flags=re.S | re.M)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _device_name(machine: dict) -> str:
    if machine.get("gpu"):
        return f"one {machine['gpu']} GPU"
    return f"{machine['cpu_count']} CPU cores"


FULL, WARM, SMOKE = ("full", "cold"), ("full", "warm"), ("smoke", "cold")
BUDGET_INTRO = (
    "Measured in the `full` profile, with the chapters before this one run first (their "
    "models come from the cache; run alone on an empty cache, a chapter trains them "
    "again). The `smoke` profile's numbers are meaningless; it only checks that the "
    "code runs."
)


def budget_note(chapter: str, results: Path = RESULTS) -> str:
    """The budget note of ``chapter`` (a stem such as ``02_encoder_decoder``), from the chapter
    times that ``benchmarks/bench_chapters.py`` recorded on each device: a table with a
    column a device, what it says of runs that cannot be compared, and its sources."""
    columns = _measured(chapter, results)
    machines = [record["machine"] for record, _ in columns]
    caveats = [c for record, runs in columns for c in _caveats(record, runs, columns)]
    sources = "; ".join(
        f"`benchmarks/results/chapters-{m['device'].split(':')[0]}.json`, "
        f"{record['measured_at'][:10]}, torch {m['torch']}"
        for (record, _), m in zip(columns, machines)
    )
    gpu = (
        ""
        if any(m.get("gpu") for m in machines)
        else " No GPU run has been measured yet."
    )
    return "\n".join(
        [":::{admonition} Budget", ":class: note", BUDGET_INTRO + gpu, ""]
        + _budget_table(columns)
        + [
            "",
            *([" ".join(caveats), ""] if caveats else []),
            f"Source: {sources}.",
            ":::",
        ]
    )


def _measured(chapter: str, results: Path) -> list[tuple[dict, dict]]:
    """Per device that has a ``chapters-<device>.json`` (CPU first: the reference, which
    must have a full cold run), its record and the chapter's runs by (profile, cache)."""
    columns = []
    for device in ("cpu", "cuda", "mps"):
        path = results / f"chapters-{device}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        runs = {
            (m["profile"], m["cache"]): m
            for m in record["measurements"]
            if m["chapter"] == chapter
        }
        if FULL not in runs and device == "cpu":
            raise ValueError(
                f"{path.name} has no full-profile run of {chapter}: run "
                "benchmarks/bench_chapters.py"
            )
        columns.append((record, runs))
    if not columns:
        raise ValueError(
            f"no chapters-*.json in {results}: run benchmarks/bench_chapters.py"
        )
    return columns


def _budget_table(columns: list[tuple[dict, dict]]) -> list[str]:
    rows = {
        "trains": _trained,
        "top to bottom": lambda runs: _time(runs, FULL),
        "with its models cached": lambda runs: _time(runs, WARM),
        "`smoke` profile": lambda runs: _time(runs, SMOKE),
    }
    devices = " | ".join(_device_name(record["machine"]) for record, _ in columns)
    return [f"| | {devices} |", "|---" * (len(columns) + 1) + "|"] + [
        f"| {label} | " + " | ".join(show(runs) for _, runs in columns) + " |"
        for label, show in rows.items()
    ]


def _trained(runs: dict) -> str:
    if FULL not in runs:
        return "not measured yet"
    models = runs[FULL].get("trained")
    if models is None:
        return "not recorded"
    shown = (
        f"`{m['name']}`: {m['steps']:,} steps, {_duration(m['seconds'])}"
        for m in models
    )
    return " · ".join(shown) or "nothing"


def _time(runs: dict, key: tuple[str, str]) -> str:
    if key not in runs:
        return "–"
    return "did not finish" if "error" in runs[key] else _duration(runs[key]["seconds"])


def _caveats(record: dict, runs: dict, columns: list[tuple[dict, dict]]) -> list[str]:
    """Said, not hidden: a full run that failed in this chapter or never reached it, and
    a run of another device that trained other budgets than the reference (CPU) run."""
    run = (
        f"On {_device_name(record['machine'])}, the run of {record['measured_at'][:10]}"
    )
    if FULL not in runs:
        return [f"{run} did not reach this chapter."]
    found = []
    if "error" in runs[FULL]:
        found.append(f"{run} did not finish this chapter: {runs[FULL]['error']}.")
    reference = columns[0][1].get(FULL) or {}
    steps = {m["name"]: m["steps"] for m in reference.get("trained") or []}
    trained = runs[FULL].get("trained") or []
    other = [
        f"`{m['name']}` {m['steps']:,} steps, not {steps[m['name']]:,}"
        for m in trained
        if m["name"] in steps and m["steps"] != steps[m["name"]]
    ]
    if other:
        found.append(
            f"{run} trained an earlier version's budgets ({'; '.join(other)}): "
            "its times are not this version's."
        )
    gone = sorted({m["name"] for m in trained if m["name"] not in steps})
    if steps and gone:
        found.append(
            f"{run} trained models this version's chapter no longer trains "
            f"({', '.join(f'`{name}`' for name in gone)}): its times include them."
        )
    return found


def chapter_paths() -> list[Path]:
    return sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))


def section_paths() -> list[Path]:
    """A chapter's further pages (chapters/sections/NN_*.ipynb): numbered sections of
    chapter NN, before its worked solutions, run and checked like its solutions."""
    return sorted((CHAPTERS / "sections").glob("[0-9][0-9]_*.ipynb"))


def lab_paths() -> list[Path]:
    """The labs (chapters/lab/): pages of the numbered table of contents that are not
    chapters (no budget note, exercises or worked solutions of their own)."""
    return sorted((CHAPTERS / "lab").glob("*.ipynb"))


def solution_paths() -> list[Path]:
    """The worked-solutions notebooks, each named after its chapter (a chapter whose
    solutions take too long for one page continues them on ``<chapter>-2.ipynb``, ...)."""
    return sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))


def solution_pages(chapter: Path) -> list[Path]:
    """The worked-solutions pages of ``chapter``, in order: ``solutions/<chapter>.ipynb``,
    then its continuations ``solutions/<chapter>-2.ipynb``, ``-3``, ..."""
    first = SOLUTIONS / chapter.name
    more = sorted(
        SOLUTIONS.glob(f"{chapter.stem}-[0-9]*.ipynb"),
        key=lambda page: int(page.stem.rsplit("-", 1)[1]),
    )
    return ([first] if first.is_file() else []) + more


def chapter_answers(chapter: Path) -> dict[str, str]:
    """Every worked solution of ``chapter``, over all its solutions pages: the exercise's
    label -> the solution's label."""
    found: dict[str, str] = {}
    for page in solution_pages(chapter):
        answers = solutions(read(page))
        twice = sorted(set(found) & set(answers))
        if twice:
            raise ValueError(
                f"{page.relative_to(CHAPTERS)}: solves {', '.join(twice)} again"
            )
        found.update(answers)
    return found


# --- exercises, their worked solutions, and the self-check questions ------------------------

EXERCISE = re.compile(
    r"^:::\{exercise\}[^\n]*\n:label: (\S+)\n(.*?)^:::$", flags=re.S | re.M
)
SOLUTION = re.compile(r"^:::\{solution(?:-start)?\} (\S+)\n:label: (\S+)$", flags=re.M)
# A question that asks the reader to think, not recall, says which kind it is: predict a
# result before running a cell, trace the shapes through the code, or diagnose a symptom.
THINKING = ("**Predict.**", "**Trace the shapes.**", "**Diagnose.**")
SELF_CHECK = re.compile(r"^## Check yourself\n(.*)", flags=re.S | re.M)
ANSWER = ":::{admonition} Answer\n   :class: dropdown"
# The link from an exercise to its worked solution is added when the book is built.
WRITTEN_LINK = re.compile(r"\{ref\}`[^`]*<ch\d+-sol-")


def _markdown(notebook: nbformat.NotebookNode) -> str:
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def exercises(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """The chapter's exercises: label -> body."""
    return {m.group(1): m.group(2) for m in EXERCISE.finditer(_markdown(notebook))}


def solutions(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """A solutions notebook's solutions: the exercise's label -> the solution's label."""
    found: dict[str, str] = {}
    for exercise, label in SOLUTION.findall(_markdown(notebook)):
        if exercise in found:
            raise ValueError(f"two solutions to {exercise}")
        found[exercise] = label
    return found


def self_check_questions(notebook: nbformat.NotebookNode) -> list[str]:
    """The numbered questions of the "Check yourself" section (each item's text)."""
    match = SELF_CHECK.search(_markdown(notebook))
    if not match:
        return []
    return re.split(r"^\d+\. ", match.group(1), flags=re.M)[1:]


def exercise_problems(path: Path) -> list[str]:
    """What is wrong with a chapter's exercises, solutions and self-check questions."""
    found = []
    notebook = read(path)
    chapter = int(path.name[:2])
    labels = exercises(notebook)
    if not labels:
        found.append(f"{path.name}: no exercises (':::{{exercise}}' blocks)")
    for label in labels:
        if not re.fullmatch(rf"ch{chapter}-ex-\d+", label):
            found.append(
                f"{path.name}: exercise label {label} is not ch{chapter}-ex-<number>"
            )
    questions = self_check_questions(notebook)
    if not 3 <= len(questions) <= 5:
        found.append(
            f"{path.name}: 'Check yourself' has {len(questions)} questions, not 3 to 5"
        )
    found += [
        f"{path.name}: self-check question {i} has no answer in a dropdown"
        for i, q in enumerate(questions, 1)
        if ANSWER not in q
    ]
    thinking = [q for q in questions if q.startswith(THINKING)]
    if questions and len(thinking) < 2:
        found.append(
            f"{path.name}: 'Check yourself' has {len(thinking)} questions that ask "
            f"for thinking, not 2 or more (begin them with one of {', '.join(THINKING)})"
        )
    page = SOLUTIONS / path.name
    if not page.is_file():
        return found + [
            f"{path.name}: no worked solutions ({page.relative_to(CHAPTERS.parent)} "
            "is missing)"
        ]
    try:
        answers = chapter_answers(path)
    except ValueError as twice:
        return found + [str(twice)]
    if len(solution_pages(path)) > 1:
        page = SOLUTIONS / f"{path.stem}*.ipynb"
    found += [
        f"{page.relative_to(CHAPTERS)}: a solution to {e}, which chapter "
        f"{chapter} does not have"
        for e in answers
        if e not in labels
    ]
    for label, body in labels.items():
        if label not in answers:
            found.append(
                f"{path.name}: exercise {label} has no worked solution in "
                f"{page.relative_to(CHAPTERS)}"
            )
        if WRITTEN_LINK.search(body):
            found.append(
                f"{path.name}: exercise {label} links its solution by hand; the book "
                "adds the link when it builds (book/_ext/exercise_links.py)"
            )
    return found


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(notebook)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, tmp)
    os.replace(tmp, path)


def strip(path: Path, *, verify: bool = False) -> bool:
    """Strip ``path`` with nbstripout, as the pre-commit hook does (with ``verify``,
    only say whether it would change). True when it is (or was) already stripped."""
    result = subprocess.run(
        [*NBSTRIPOUT, *(["--verify"] if verify else []), str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 1) or (result.returncode and not verify):
        raise RuntimeError(f"nbstripout failed on {path}: {result.stderr.strip()}")
    return result.returncode == 0


def sync_colab(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Write the Colab install cell and the metadata that opens the chapter on a GPU runtime."""
    notebook.metadata.update(nbformat.from_dict(COLAB_METADATA))
    source = colab_cell_source()
    first = notebook.cells[0] if notebook.cells else None
    if (
        first is not None
        and first.cell_type == "code"
        and "google.colab" in first.source
    ):
        first.source = source
        first.metadata["tags"] = COLAB_TAGS
    else:
        notebook.cells.insert(
            0, nbformat.v4.new_code_cell(source, metadata={"tags": COLAB_TAGS})
        )
    return notebook


# --- the repository's links in the README and the preface --------------------------------

LINKED = [ROOT / "README.md", ROOT / "book" / "intro.md"]
_COLAB_LINK = re.compile(
    r"colab\.research\.google\.com/github/[^/\s>]+/[^/\s>]+/blob/[^/\s>]+/"
)
_CLONE = re.compile(r"git clone https://\S+\ncd \S+")


def sync_links(text: str) -> str:
    """``text`` with its Colab links and its clone command following ``_config.yml``."""
    url, ref = repository_url(), repository_ref()
    slug = url.removeprefix("https://github.com/")
    text = _COLAB_LINK.sub(f"colab.research.google.com/github/{slug}/blob/{ref}/", text)
    return _CLONE.sub(f"git clone {url}\ncd {url.rsplit('/', 1)[-1]}", text)


def link_problems() -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: its repository links do not follow _config.yml "
        "(run: python book/notebooks.py sync-colab)"
        for path in LINKED
        if sync_links(path.read_text(encoding="utf-8"))
        != path.read_text(encoding="utf-8")
    ]


def problems(path: Path) -> list[str]:
    """What is wrong with a committed chapter, as readable sentences."""
    notebook = read(path)
    found = []
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.source != colab_cell_source():
        found.append(
            f"{path.name}: the first cell is not the Colab install cell for "
            f"{repository_url()} (run: python book/notebooks.py sync-colab)"
        )
    elif first.metadata.get("tags") != COLAB_TAGS:
        found.append(f"{path.name}: the Colab cell must be tagged {COLAB_TAGS}")
    if any(
        notebook.metadata.get(key) != value for key, value in COLAB_METADATA.items()
    ):
        found.append(
            f"{path.name}: the notebook metadata does not ask Colab for a GPU runtime "
            "(run: python book/notebooks.py sync-colab)"
        )
    notes = sum(
        len(BUDGET.findall(c.source))
        for c in notebook.cells
        if c.cell_type == "markdown"
    )
    if path.parent == CHAPTERS and notes != 1:
        found.append(
            f"{path.name}: {notes} budget notes; a chapter places one, with a "
            "':::{budget}' directive (the book writes it from the measurements)"
        )
    for i, cell in enumerate(notebook.cells):
        tags = cell.metadata.get("tags", [])
        if (CHECKED in tags) != (KEPT in tags):
            found.append(
                f"{path.name}: cell {i} must be tagged both {CHECKED} and {KEPT}"
            )
        elif CHECKED in tags and (not cell.outputs or cell.execution_count is None):
            found.append(
                f"{path.name}: cell {i} is tagged {CHECKED} but keeps no output for "
                "nbval to compare (run: python book/notebooks.py refresh)"
            )
    if not strip(path, verify=True):
        found.append(
            f"{path.name}: outputs or metadata that nbstripout removes (only cells "
            f"tagged {KEPT} keep outputs; run: python book/notebooks.py refresh, or "
            f"{' '.join(NBSTRIPOUT[1:])} {path.name})"
        )
    if path.parent == CHAPTERS:
        found += exercise_problems(path)
    return found


def refresh(path: Path) -> None:
    """Execute a chapter in the smoke profile and keep only the checked outputs."""
    from nbclient import NotebookClient

    notebook = sync_colab(read(path))
    os.environ["ATTNLAB_PROFILE"] = "smoke"
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    write(notebook, path)
    strip(path)


def main(argv: list[str]) -> int:
    command, *names = argv or ["check"]
    paths = [
        Path(n).resolve() for n in names
    ] or chapter_paths() + section_paths() + solution_paths() + lab_paths()
    if command == "sync-colab":
        for path in paths:
            write(sync_colab(read(path)), path)
        for path in LINKED:
            path.write_text(
                sync_links(path.read_text(encoding="utf-8")), encoding="utf-8"
            )
    elif command == "refresh":
        for path in paths:
            print(f"executing {path.name} (smoke profile)")
            refresh(path)
    elif command == "check":
        found = [p for path in paths for p in problems(path)] + link_problems()
        print("\n".join(found) or f"{len(paths)} notebooks OK")
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
