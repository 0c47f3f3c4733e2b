"""The chapters: committed clean, runnable top to bottom in the smoke profile, checked by nbval."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "book"))
import notebooks  # noqa: E402  (book/notebooks.py, the chapters' maintenance tool)

CHAPTERS = notebooks.chapter_paths()


def test_there_are_chapters():
    assert [p.name for p in CHAPTERS][:1] == ["01_sentences_to_tensors.ipynb"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_clean(path):
    """No outputs but tagged ones, and the Colab cell built from _config.yml's URL."""
    assert notebooks.problems(path) == []


def test_colab_cell_uses_the_configured_repository():
    source = notebooks.colab_cell_source()
    assert notebooks.repository_url() in source and "google.colab" in source
    assert notebooks.colab_cell_source("https://example.org/x") != source


def test_readme_links_the_configured_repository():
    """The README's Colab link and clone command follow _config.yml's repository URL."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    slug = notebooks.repository_url().removeprefix("https://github.com/")
    links = re.findall(r"colab\.research\.google\.com/github/([^/\s>]+/[^/\s>]+)/", readme)
    assert links and set(links) == {slug}
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert f"git clone {notebooks.repository_url()}" in intro


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_checked_outputs(path):
    """Each chapter pins some deterministic teaching outputs for nbval to compare."""
    notebook = notebooks.read(path)
    checked = [c for c in notebook.cells
               if notebooks.CHECKED in c.metadata.get("tags", []) and c.outputs]
    assert checked


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_nbval_smoke(path, tmp_path, fra_eng_dir):
    """Execute the chapter in the smoke profile; tagged cells must reproduce their outputs."""
    env = {**os.environ, "ATTNLAB_PROFILE": "smoke", "ATTNLAB_DATA_DIR": str(fra_eng_dir),
           "ATTNLAB_BUILD_DIR": str(tmp_path / "build")}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    print(f"{path.stem}: nbval (smoke) in {seconds:.1f} s")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
    # The chapter recorded its results where it was told to.
    assert (tmp_path / "build" / "results" / f"{path.stem}.json").is_file()
