"""Shared fixtures: the real corpus, the built book and the browser, and an isolated
build/cache folder for every test; and the markers each test gets from the fixtures it
uses. Helpers that are not fixtures are in helpers.py."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, DATA_DIR, ROOT, TOY_SRC, TOY_TGT, chromium_path

# What a test needs, read from the fixtures it uses (and its own marks): the corpus
# (fra-eng.zip), a Jupyter kernel (the book's build executes every chapter), Chromium. A
# test that needs a kernel or a browser is slow too: `make test-fast` (-m "not slow")
# never starts a 20-minute build, and `-m "not browser"` runs without Chromium.
NEEDS = {
    "fra_eng_dir": {"corpus"},
    "fra_eng_pairs": {"corpus"},
    "built_book": {"corpus", "kernel"},
    "site": {"corpus", "kernel"},
    "browser": {"browser"},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        needs = {m.name for m in item.iter_markers()}
        for fixture in getattr(item, "fixturenames", ()):
            needs |= NEEDS.get(fixture, set())
        for name in sorted(needs & {"corpus", "kernel", "browser"}):
            item.add_marker(name)
        if needs & {"kernel", "browser"}:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def fra_eng_dir() -> Path:
    folder = DATA_DIR
    if not (folder / "fra-eng.zip").is_file():
        pytest.fail(
            f"the tests need the real corpus: put fra-eng.zip in {folder} or set "
            "ATTNLAB_DATA_DIR to its folder"
        )
    return folder


@pytest.fixture(scope="session")
def fra_eng_pairs(fra_eng_dir):
    """The corpus's (English, French) token pairs, read once a session. A tuple, so that
    no test can change what the others read."""
    from attnlab.data import corpus

    return tuple(corpus.load_fra_eng(fra_eng_dir))


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, fra_eng_dir):
    """Build the whole book in the smoke profile into a fresh folder, as CI does."""
    out = tmp_path_factory.mktemp("book")
    env = {
        **os.environ,
        "ATTNLAB_PROFILE": "smoke",
        "ATTNLAB_DATA_DIR": str(fra_eng_dir),
        "ATTNLAB_BUILD_DIR": str(out / "attnlab"),
    }
    start = time.perf_counter()
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-book")),
            "build",
            str(ROOT),
            "--all",
            "--path-output",
            str(out),
            "-n",
            "-W",
            "--keep-going",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(f"book (smoke) built in {time.perf_counter() - start:.1f} s")
    return out / "_build" / "html", result


@pytest.fixture(scope="session")
def site(built_book):
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    handler = functools.partial(QuietHandler, directory=str(html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


@pytest.fixture(scope="session")
def browser():
    chromium = chromium_path()
    if not chromium.exists():
        pytest.fail(
            f"the browser tests need Chromium, not found at {chromium}: install it "
            "(Debian: apt-get install chromium; .ci/run does) or set "
            "ATTNLAB_CHROMIUM to its path"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path, monkeypatch):
    """Results, models and downloads of a test go to its own temporary folders, and the
    corpus is found only where a test says (so the download path is really exercised)."""
    monkeypatch.delenv("ATTNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("ATTNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ATTNLAB_DEVICE", raising=False)
    monkeypatch.delenv("ATTNLAB_PROFILE", raising=False)


@pytest.fixture(scope="session")
def d2l():
    """d2l's PyTorch module, the course's reference implementation (see reference/)."""
    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    try:
        from d2l import torch as d2l_torch
    finally:
        sys.path.remove(str(ROOT / "tests" / "reference"))
    return d2l_torch


@pytest.fixture
def toy_transformer():
    """A small untrained Transformer on the toy vocabularies that never writes <pad> or <bos>,
    so its output reads back as written."""
    import torch

    from attnlab.core import runtime
    from attnlab.models.transformer import Transformer

    runtime.seed_everything(0)
    transformer = Transformer(
        len(TOY_SRC),
        len(TOY_TGT),
        d_model=16,
        num_heads=2,
        num_layers=3,
        d_ff=32,
        dropout=0.0,
        max_len=40,
    ).eval()
    with torch.no_grad():
        transformer.out.bias[: TOY_TGT.eos_id] = -1e4
    return transformer
