"""Shared fixtures: the real corpus, and an isolated build/cache folder for every test."""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from attnlab.data.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]


# A test that needs the built book or the browser is slow, marked or not: `make
# test-fast` (-m "not slow") must never start a 20-minute build.
SLOW_FIXTURES = {"built_book", "site", "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# The folder holding fra-eng.zip: ATTNLAB_DATA_DIR as the tests start, else ../shared/data.
DATA_DIR = Path(os.environ.get("ATTNLAB_DATA_DIR") or ROOT.parent / "shared" / "data")


def chromium_path() -> Path:
    """The Chromium the browser tests (and benchmarks/bench_browser.py) drive:
    ``ATTNLAB_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH, else
    Debian's ``/usr/bin/chromium``."""
    env = os.environ.get("ATTNLAB_CHROMIUM")
    if env:
        return Path(env).expanduser()
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def fra_eng_dir() -> Path:
    folder = DATA_DIR
    if not (folder / "fra-eng.zip").is_file():
        pytest.fail(
            f"the tests need the real corpus: put fra-eng.zip in {folder} or set "
            "ATTNLAB_DATA_DIR to its folder"
        )
    return folder


# The website, built once per test session and served on localhost, and the browser that
# reads it (tests/test_book.py, tests/test_accessibility.py).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


def open_page(browser, url, **options):
    """Open ``url`` in a new page (``options`` for ``browser.new_page``: a colour scheme,
    a viewport); return the page, every request it made and every console error."""
    page = browser.new_page(**options)
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on(
        "console",
        lambda message: message.type == "error" and errors.append(message.text),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and errors.append(f"HTTP {response.status} for {response.url}")
        ),
    )
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, requests, errors


def show_widgets(page):
    """Bring the page's first widget near the viewport, as a reader scrolling would, and
    wait until the lazily loaded widget manager has rendered every widget on the page."""
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        page.locator(
            'script[type="application/vnd.jupyter.widget-view+json"]'
        ).first.evaluate("view => view.parentElement.scrollIntoView()")
        page.wait_for_function("() => window.attnlabLoadWidgets !== undefined")
        # Started, not awaited here: the wait below is for what the reader sees.
        page.evaluate("() => { window.attnlabLoadWidgets(); }")
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]')).every(view =>
            view.parentElement.querySelector('.jupyter-widgets, .widget-subarea'))""",
            timeout=30_000,
        )
        page.evaluate("() => window.scrollTo(0, 0)")


def book_pages() -> list[str]:
    """Every page of the book, in the table of contents' order, as paths in the site."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries:
            pages.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    return [f"{page}.html" for page in pages]


def page_weight(browser, site, html, path):
    """What a first visit to ``path`` costs before the reader does anything: every
    request, in a fresh profile, until the network is idle. Returns the number of
    requests, and bytes as served (raw) and with gzip (level 6, as a web server
    compresses; files that gzip does not shrink, such as fonts and images, count as
    they are), with the largest files."""
    context = browser.new_context()
    page = context.new_page()
    urls = []
    page.on("requestfinished", lambda request: urls.append(request.url))
    page.goto(f"{site}/{path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    context.close()
    files = []
    for url in urls:
        if not url.startswith(site):
            raise AssertionError(f"{path} requested {url}, outside the site")
        local = html / unquote(urlparse(url).path.lstrip("/"))
        data = (local / "index.html" if local.is_dir() else local).read_bytes()
        files.append(
            (local.name, len(data), min(len(data), len(gzip.compress(data, 6))))
        )
    files.sort(key=lambda item: -item[2])
    return {
        "requests": len(urls),
        "raw": sum(f[1] for f in files),
        "gzip": sum(f[2] for f in files),
        "largest": files[:5],
    }


LIGHTHOUSE = ROOT / "book" / "vendor" / "node_modules" / ".bin" / "lighthouse"
LIGHTHOUSE_CATEGORIES = ("performance", "accessibility", "best-practices")


def lighthouse(url: str, categories=LIGHTHOUSE_CATEGORIES) -> dict:
    """Lighthouse (pinned in book/vendor's lock) on ``url`` with its default settings,
    those of a phone (a 412 px screen, simulated slow 4G and a 4x slower CPU), in the
    course's Chromium. Returns the scores (0-100), the paint times and bytes it measured,
    and, per category, the audits that did not pass."""
    if not LIGHTHOUSE.exists():
        raise FileNotFoundError(
            f"Lighthouse is missing at {LIGHTHOUSE}: run `make vendor` "
            "(npm ci from book/vendor/package-lock.json)"
        )
    import json
    import tempfile

    flags = " ".join(["--headless=new", *CHROMIUM_FLAGS])
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        done = subprocess.run(
            [
                str(LIGHTHOUSE),
                url,
                "--quiet",
                "--output=json",
                f"--output-path={report_path}",
                f"--only-categories={','.join(categories)}",
                f"--chrome-flags={flags}",
            ],
            env={**os.environ, "CHROME_PATH": str(chromium_path()), "TMPDIR": folder},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not report_path.is_file():
            raise RuntimeError(
                f"Lighthouse failed on {url} (exit {done.returncode}): "
                f"{done.stderr[-2000:]}"
            )
        report = json.loads(report_path.read_text(encoding="utf-8"))
    if report.get("runtimeError"):
        raise RuntimeError(f"Lighthouse on {url}: {report['runtimeError']}")
    audits = report["audits"]
    failed = {}
    for name, category in report["categories"].items():
        failed[name] = sorted(
            ref["id"]
            for ref in category["auditRefs"]
            if ref["weight"] > 0
            and audits[ref["id"]]["score"] is not None
            and audits[ref["id"]]["score"] < 0.9
        )
    return {
        "scores": {
            name: None if c["score"] is None else round(100 * c["score"])
            for name, c in report["categories"].items()
        },
        "fcp_ms": audits.get("first-contentful-paint", {}).get("numericValue"),
        "lcp_ms": audits.get("largest-contentful-paint", {}).get("numericValue"),
        "tbt_ms": audits.get("total-blocking-time", {}).get("numericValue"),
        "bytes": audits.get("total-byte-weight", {}).get("numericValue"),
        "lighthouse": report["lighthouseVersion"],
        "failed": failed,
    }


def assert_offline_and_clean(site, page, requests, errors):
    foreign = [url for url in requests if not url.startswith((site, "data:", "blob:"))]
    assert foreign == []
    assert errors == []
    # Figures load lazily, as the reader scrolls: fetch them all now, then check each.
    broken = page.evaluate("""async () => {
        const images = Array.from(document.images);
        images.forEach(img => { img.loading = "eager"; });
        await Promise.all(images.map(img => img.decode().catch(() => null)));
        return images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src);
    }""")
    assert broken == []


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


# A toy translation task for the inspection and explorer tests.
TOY_SRC_SENTENCES = [["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "."]]
TOY_TGT_SENTENCES = [
    ["le", "chat", "est", "assis", "sur", "un", "tapis", "chien", "a", "couru", "."]
]


TOY_SRC, TOY_TGT = Vocab(TOY_SRC_SENTENCES), Vocab(TOY_TGT_SENTENCES)


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


def overfit_one_batch(build, *, lr: float, steps: int, max_len: int = 8) -> list[float]:
    """Train ``build(src_vocab_size, tgt_vocab_size)`` on one batch of 32 reversal strings
    and return the losses: a model that can learn anything should drive them to ~0."""
    from attnlab.core import runtime
    from attnlab.data import synthetic
    from attnlab.train.training import Trainer

    task = synthetic.reversal_task(
        n_train=32, n_val=4, n_test=4, min_len=3, max_len=max_len, seed=0
    )
    runtime.seed_everything(0)
    model = build(len(task.src_vocab), len(task.tgt_vocab))
    batch = next(iter(task.loader("train", 32)))
    trainer = Trainer(model, lr=lr, device="cpu")
    return [trainer.train_step(batch) for _ in range(steps)]


def decode_stepwise(model, src, src_len, tgt_in):
    """Run a model's ``decode_step`` over ``tgt_in`` one token at a time, as generation does.

    Returns the logits (B, T, V), the per-step attention weights stacked to
    (B, T, S) (or ``None`` for a model without attention) and the final state.
    """
    import torch

    memory, state, logits, weights = model.encode(src, src_len), None, [], []
    for t in range(tgt_in.shape[1]):
        step = model.decode_step(tgt_in[:, t], memory, state)
        state = step.state
        logits.append(step.logits)
        weights.append(step.attention)
    stacked = torch.stack(weights, 1) if weights[0] is not None else None
    return torch.stack(logits, 1), stacked, state


def assert_transformer_weights(model, src_vocab, tgt_vocab, source, weights, atol=1e-4):
    """An exported Transformer's weights of a greedy decode (``weights``: "encoder",
    "decoder_self" and "cross" arrays, one row per step) against every layer and head of
    PyTorch's pass over the same final prefix."""
    import numpy as np
    import torch

    from attnlab.infer import decoding

    ids = src_vocab.encode(source) + [src_vocab.eos_id]
    steps = np.asarray(weights["cross"]).shape[2]
    written = (
        decoding.greedy_decode(
            model,
            torch.tensor([ids]),
            torch.tensor([len(ids)]),
            bos_id=tgt_vocab.bos_id,
            eos_id=tgt_vocab.eos_id,
            max_len=steps,
        )
        .tokens[0]
        .tolist()
    )
    prefix = [tgt_vocab.bos_id] + written[: steps - 1]
    with torch.no_grad():
        out = model(
            src=torch.tensor([ids]),
            src_len=torch.tensor([len(ids)]),
            tgt_in=torch.tensor([prefix]),
            need_weights=True,
        )
    for key, layers in (
        ("encoder", out.layers.encoder),
        ("decoder_self", out.layers.decoder_self),
        ("cross", out.layers.cross),
    ):
        np.testing.assert_allclose(
            np.asarray(weights[key], dtype=np.float32),
            torch.cat(layers).numpy(),
            atol=atol,
        )
