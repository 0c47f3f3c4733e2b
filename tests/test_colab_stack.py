"""The Colab path on Colab's own packages.

A fresh virtual environment gets exactly the versions Colab preinstalls
(``tests/colab/``, a dated snapshot of Colab's published list; torch==2.13.0,
the CPU build these machines have, stands in for Colab's torch 2.11 CUDA build).
attnlab, built from this checkout, is installed with the command of the
chapters' own first cell, and pip must change none of Colab's packages. Then
every chapter runs there (smoke profile), and in the live kernel each explorer
is driven through a change of value, as a reader moving a slider would, and the
view it shows must change. The snapshot's ipywidgets is 7, which Colab renders.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import venv

import nbformat
import pytest
from helpers import ROOT

SNAPSHOT = ROOT / "tests" / "colab" / "colab-2026-08-19.txt"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# Run in the kernel after a chapter's last cell: move every control of every widget tree and
# report whether what the tree shows changed. The front end sends such a change to the kernel
# as a new value of the control's trait; setting the trait here is the same message.
PROBE = r"""
import json
import ipywidgets as _w

def _visible(widget):
    if getattr(_w, "Stack", None) and isinstance(widget, _w.Stack):
        return _visible(widget.children[widget.selected_index])
    if isinstance(widget, _w.Box):
        return [v for child in widget.children for v in _visible(child)]
    if isinstance(widget, (_w.HTML, _w.Image)):
        return [widget.value]
    return []

def _controls(widget):
    if isinstance(widget, (_w.Dropdown, _w.IntSlider, _w.SelectionSlider, _w.ToggleButtons, _w.Text)):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _controls(child)

def _move(control):
    if isinstance(control, _w.Text):
        return "value", "She is very happy ."
    if isinstance(control, _w.IntSlider):
        return "value", control.max if control.value == control.min else control.min
    return "index", (control.index + 1) % len(control.options)

_all = list((getattr(_w.Widget, "widgets", None) or _w.widget._instances).values())
_inside = {id(c) for w in _all for c in getattr(w, "children", ())}
_report = {"ipywidgets": _w.__version__, "moved": [],
           "progress_bars": sum(isinstance(w, _w.FloatProgress) for w in _all)}
for _root in [w for w in _all if isinstance(w, _w.Box) and id(w) not in _inside]:
    for _control in list(_controls(_root)):
        _trait, _new = _move(_control)
        _before, _old = _visible(_root), getattr(_control, _trait)
        setattr(_control, _trait, _new)
        _report["moved"].append({"control": type(_control).__name__,
                                 "description": _control.description,
                                 "changed": _visible(_root) != _before})
        setattr(_control, _trait, _old)
print("PROBE " + json.dumps(_report))
"""

RUNNER = r"""
import json, os, sys
import nbformat
from nbclient import NotebookClient

class Client(NotebookClient):
    # Counts the messages that redraw a figure in place (the live loss plot), by cell.
    redraws = {}

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data":
            Client.redraws[cell_index] = Client.redraws.get(cell_index, 0) + 1
        return super().process_message(msg, cell, cell_index)

source, target, probe = sys.argv[1:4]
notebook = nbformat.read(source, as_version=4)
expected = {i: cell.outputs for i, cell in enumerate(notebook.cells)
            if "nbval-check-output" in cell.metadata.get("tags", [])}
notebook.cells.append(nbformat.v4.new_code_cell(open(probe).read()))
Client(notebook, timeout=600, kernel_name="python3",
       resources={"metadata": {"path": os.path.dirname(target)}}).execute()
nbformat.write(notebook, target)
live_plots = [i for i, cell in enumerate(notebook.cells) if "LiveLossPlot(" in cell.source]
text = lambda outputs: "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
for i, outputs in expected.items():
    if text(notebook.cells[i].outputs) != text(outputs):
        sys.exit(f"cell {i} printed something else than its committed output")
print("REDRAWN", json.dumps({i: Client.redraws.get(i, 0) for i in live_plots}))
print(text(notebook.cells[-1].outputs))
"""


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def pins(path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(_name_version(line) for line in lines if line)


def _name_version(line: str) -> tuple[str, str]:
    name, version = line.split("==")
    return re.sub(r"[-_.]+", "-", name).lower(), version.strip()


def freeze(python) -> dict[str, str]:
    lines = run([python, "-m", "pip", "list", "--format=freeze"]).stdout.splitlines()
    return dict(_name_version(line) for line in lines if "==" in line)


def first_cell_install(notebook_path, wheel) -> list[str]:
    """The pip arguments of a chapter's first cell, pointed at ``wheel`` instead of the git URL."""
    source = nbformat.read(notebook_path, as_version=4).cells[0].source
    lines = re.findall(r"^\s*%pip (install .*)$", source, flags=re.M)
    assert len(lines) == 1, (
        f"the first cell of {notebook_path.name} should hold one %pip install"
    )
    args = shlex.split(lines[0])
    spec = [i for i, a in enumerate(args) if a.startswith("attnlab @ git+")]
    assert len(spec) == 1, (
        f"the first cell installs something else than attnlab: {lines[0]}"
    )
    args[spec[0]] = str(wheel)
    return args


def colab_sessions(tmp_path, fra_eng_dir) -> tuple[dict, dict]:
    """Colab's packages in a fresh virtual environment, attnlab installed by the
    chapters' own first cell (which must change none of them), then every chapter in a
    session of its own there: the snapshot's pins, and what the probe reported of each
    chapter. conftest.py starts this in the background once the book is built."""
    snapshot = pins(SNAPSHOT)
    assert snapshot["ipywidgets"].startswith("7."), (
        "this test proves the ipywidgets 7 path"
    )
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("attnlab-*.whl")

    env_dir = tmp_path / "colab-venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # Colab's packages (not what this test checks) without compiling their modules to
    # bytecode as pip installs them, which took half of this step: Python compiles the
    # modules a session imports when it first imports them.
    run(
        pip
        + ["install", "--quiet", "--no-compile", "torch==2.13.0", "-r", str(SNAPSHOT)],
        timeout=1200,
    )
    before = freeze(python)
    assert {name: before.get(name) for name in snapshot} == snapshot

    # The chapters' own install command; no chapter may differ from the others.
    commands = {tuple(first_cell_install(path, wheel)) for path in CHAPTERS}
    assert len(commands) == 1
    run(pip + list(commands.pop()), timeout=900)
    after = freeze(python)
    changed = {
        name: (before[name], after.get(name))
        for name in before
        if after.get(name) != before[name]
    }
    assert not changed, f"installing attnlab changed Colab's packages: {changed}"
    added = sorted(set(after) - set(before))
    assert "attnlab" in added and not set(added) & set(snapshot)
    print("installing attnlab added", added)

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))
    }
    env.update(
        ATTNLAB_PROFILE="smoke",
        ATTNLAB_DATA_DIR=str(fra_eng_dir),
        PATH=f"{env_dir / 'bin'}:{env['PATH']}",
    )
    # Copies outside the checkout, as Colab has no checkout either.
    work = tmp_path / "colab"
    work.mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)

    def session(chapter):
        # A reader opens a chapter in a new Colab session: nothing cached by another
        # chapter (the book's build runs them in order, sharing its model cache).
        result = run(
            [python, "-c", RUNNER, str(chapter), str(work / chapter.name), str(probe)],
            cwd=work,
            env={
                **env,
                "ATTNLAB_BUILD_DIR": str(tmp_path / "build" / chapter.stem),
                "OMP_NUM_THREADS": "1",
            },
            timeout=900,
        )
        lines = {
            x.split(" ", 1)[0]: x.split(" ", 1)[1]
            for x in result.stdout.splitlines()
            if x.startswith(("PROBE ", "REDRAWN "))
        }
        return {**json.loads(lines["PROBE"]), "redrawn": json.loads(lines["REDRAWN"])}

    # One session after another, each on one thread: this runs beside the browser
    # tests, on the core they leave free.
    reports = {chapter.stem: session(chapter) for chapter in CHAPTERS}
    return snapshot, reports


@pytest.mark.kernel
@pytest.mark.last
def test_chapters_on_colabs_packages(colab_run):
    snapshot, reports = colab_run.result()
    start = colab_run.start
    moved = {
        name: [(m["control"], m["description"]) for m in report["moved"]]
        for name, report in reports.items()
    }
    dead = {
        name: [m for m in report["moved"] if not m["changed"]]
        for name, report in reports.items()
    }
    assert all(
        report["ipywidgets"] == snapshot["ipywidgets"] for report in reports.values()
    )
    assert not any(dead.values()), f"controls that changed nothing they show: {dead}"
    # Every explorer, box and slider the chapters show was among them.
    kinds = {
        name: {control for control, _ in controls} for name, controls in moved.items()
    }
    assert {"Dropdown"} <= kinds["01_sentences_to_tensors"]  # the pipeline views
    assert {"Text"} <= kinds["02_encoder_decoder"]  # translate your sentence
    assert {"Dropdown", "IntSlider", "SelectionSlider", "Text"} <= kinds[
        "03_bahdanau_attention"
    ]
    assert {"IntSlider"} <= kinds["04_self_attention"]  # positional encodings
    assert {"Dropdown", "ToggleButtons", "Text"} <= kinds["05_transformer"]
    assert (
        sum(c == "ToggleButtons" for c, _ in moved["05_transformer"]) >= 3
    )  # kind, layer, head
    # Progress bars are widgets (tqdm.auto), and each live loss plot was redrawn in place.
    for name in ("02_encoder_decoder", "03_bahdanau_attention", "05_transformer"):
        assert reports[name]["progress_bars"] >= 1, name
        assert (
            reports[name]["redrawn"] and min(reports[name]["redrawn"].values()) >= 1
        ), name
    print(
        f"Colab stack: {len(CHAPTERS)} chapters, {sum(map(len, moved.values()))} controls moved, "
        f"{time.perf_counter() - start:.0f} s"
    )


# Modules that Python 3.12 and 3.13 removed (PEP 594, PEP 632 and the 3.12/3.13 release notes).
# Colab runs Python 3.13, for which there is no CPU torch here, so the tests run on an older
# Python: this keeps the library and the chapters off what 3.13 no longer has.
REMOVED = {
    "aifc",
    "asynchat",
    "asyncore",
    "audioop",
    "cgi",
    "cgitb",
    "chunk",
    "crypt",
    "distutils",
    "imghdr",
    "imp",
    "lib2to3",
    "mailcap",
    "msilib",
    "nis",
    "nntplib",
    "ossaudiodev",
    "pipes",
    "smtpd",
    "sndhdr",
    "spwd",
    "sunau",
    "telnetlib",
    "tkinter.tix",
    "uu",
    "xdrlib",
}
REMOVED_NAMES = {
    ("locale", "resetlocale"),
    ("unittest", "makeSuite"),
    ("unittest", "findTestCases"),
    ("pathlib", "PurePath.is_reserved"),
    ("typing", "io"),
    ("typing", "re"),
}


def test_nothing_python_3_13_removed_is_used():
    import ast

    sources = {p: p.read_text() for p in (ROOT / "code" / "attnlab").rglob("*.py")}
    for chapter in CHAPTERS:
        cells = nbformat.read(chapter, as_version=4).cells
        code = "\n".join(c.source for c in cells if c.cell_type == "code")
        # IPython's magics (%pip) are not Python: read them as `pass`.
        sources[chapter] = re.sub(r"^(\s*)[%!].*$", r"\1pass", code, flags=re.M)
    imported, attributes = set(), set()
    for path, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {(path.name, alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add((path.name, node.module))
                attributes |= {
                    (path.name, f"{node.module}.{a.name}") for a in node.names
                }
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                attributes.add((path.name, f"{node.value.id}.{node.attr}"))
    assert {c.name for c in CHAPTERS} | {"training.py", "widgets.py"} <= {
        n for n, _ in imported
    }
    found = sorted(
        {(name, module) for name, module in imported if module.split(".")[0] in REMOVED}
        | {
            (name, attr)
            for name, attr in attributes
            if tuple(attr.split(".", 1)) in REMOVED_NAMES
        }
    )
    assert not found, f"removed in Python 3.12/3.13: {found}"
