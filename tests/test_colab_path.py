"""The Colab path: the package built from this checkout, installed into a fresh virtual
environment with only its runtime dependencies, runs chapter 1 (smoke profile).

Colab brings its own torch, Jupyter kernel and notebook runner; the fresh
environment gets the same: torch, ipykernel and nbclient, then the wheel.
Nothing from the development requirements (jupyter-book, pytest, d2l ...) is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv

from conftest import ROOT

CHAPTER = ROOT / "chapters" / "01_sentences_to_tensors.ipynb"

RUNNER = r"""
import os, sys
import nbformat
from nbclient import NotebookClient

path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
expected = {i: cell.outputs for i, cell in enumerate(notebook.cells)
            if "nbval-check-output" in cell.metadata.get("tags", [])}
NotebookClient(notebook, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": os.path.dirname(path)}}).execute()
text = lambda outputs: "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
for i, outputs in expected.items():
    if text(notebook.cells[i].outputs) != text(outputs):
        sys.exit(f"cell {i} printed something else than its committed output")
import attnlab
print("ran", os.path.basename(path), "with attnlab from", os.path.dirname(attnlab.__file__))
"""


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_chapter_1_runs_from_the_built_package(tmp_path, fra_eng_dir):
    start = time.perf_counter()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
         str(ROOT)], timeout=600)
    wheels = list((tmp_path / "dist").glob("attnlab-*.whl"))
    assert len(wheels) == 1

    env_dir = tmp_path / "colab-venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch first and pinned, as Colab has it preinstalled; then the kernel side of Jupyter.
    run(pip + ["torch==2.13.0"], timeout=900)
    run(pip + ["ipykernel", "nbclient", str(wheels[0])], timeout=900)
    installed = run([python, "-m", "pip", "list", "--format=freeze"]).stdout.lower()
    for absent in ("jupyter-book", "pytest", "d2l", "nbval", "playwright"):
        assert f"{absent}==" not in installed

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(ATTNLAB_PROFILE="smoke", ATTNLAB_DATA_DIR=str(fra_eng_dir),
               ATTNLAB_BUILD_DIR=str(tmp_path / "build"), PATH=f"{env_dir / 'bin'}:{env['PATH']}")
    # Run a copy of the notebook outside the checkout, as Colab has no checkout either.
    notebook = tmp_path / "colab" / CHAPTER.name
    notebook.parent.mkdir()
    shutil.copy(CHAPTER, notebook)
    result = run([python, "-c", RUNNER, str(notebook)], cwd=notebook.parent, env=env, timeout=900)
    assert "site-packages" in result.stdout
    print(f"Colab path: built, installed and ran chapter 1 in {time.perf_counter() - start:.0f} s")
