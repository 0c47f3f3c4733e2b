"""What several test files share that is not a fixture: the repository's paths, the
browser helpers, small models and tasks, and the checks more than one model's tests
make. Fixtures live in conftest.py; tests import these by name (``from helpers import
...``)."""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch
from torch import nn

from attnlab.core import runtime
from attnlab.data import synthetic
from attnlab.data.vocab import Vocab
from attnlab.models import rnn
from attnlab.models.contract import Seq2SeqOutput, register
from attnlab.train import checkpoints
from attnlab.train.training import (
    Trainer,
)

ROOT = Path(__file__).resolve().parents[1]


# The folder holding fra-eng.zip: ATTNLAB_DATA_DIR as the tests start, else ../shared/data.
DATA_DIR = Path(os.environ.get("ATTNLAB_DATA_DIR") or ROOT.parent / "shared" / "data")


# The Actions workflow, whose build job's steps build the book the tests read (conftest).
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"

# The folders a checkout lacks until it is installed (`make test` installs them first):
# a copy of the checkout links them instead of copying them.
INSTALLED = (".venv", "book/vendor/static", "book/vendor/node_modules")

# How a GitHub runner on Linux runs a `run` step (its script in a file, ``{0}``), by the
# step's ``shell``; unspecified is ``bash -e``, without pipefail.
RUNNER_SHELLS = {
    None: "bash -e {0}",
    "bash": "bash --noprofile --norc -eo pipefail {0}",
    "sh": "sh -e {0}",
}


def workflow() -> dict:
    """The workflow, with ``on`` under its name (YAML 1.1 reads the key as True)."""
    import yaml

    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def copy_checkout(dest: Path) -> Path:
    """The working tree as a fresh clone of it would hold it, uncommitted changes included
    (what git tracks or would track, modification times kept, so that make sees what it
    saw here), with the installed folders (``INSTALLED``) linked: a place to run the
    workflow's steps that writes nothing into this checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted here is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in INSTALLED:
        if not (ROOT / name).exists():
            pytest.fail(f"{ROOT / name} is missing: run `make test`, which installs it")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).symlink_to(ROOT / name)
    return dest


def job_steps(job: str, config: dict | None = None) -> list[dict]:
    """The ``run`` steps of workflow job ``job`` (of WORKFLOW, or of ``config``), in
    order. Its ``uses`` steps are left out:
    they are GitHub's actions (checkout, caches, Pages) and the setup action, whose work
    (the locked packages, Chromium, the corpus) the test session has already done."""
    config = workflow() if config is None else config
    steps = [s for s in config["jobs"][job]["steps"] if "run" in s]
    for step in steps:
        text = (
            step["run"] + str(step.get("env", "")) + step.get("working-directory", "")
        )
        if "${{" in text:
            pytest.fail(
                f"{job}: the step {step.get('name', step['run'])!r} holds an expression "
                "(${{ }}), which only GitHub evaluates"
            )
        if step.get("shell") not in RUNNER_SHELLS:
            pytest.fail(f"{job}: shell {step['shell']!r} is not one a runner here has")
    return steps


def job_script(job: str, folder: Path, config: dict | None = None) -> Path:
    """A bash script that runs workflow job ``job``'s ``run`` steps (job_steps) in the
    folder it starts in, as a runner does: each in its own shell (RUNNER_SHELLS), with
    the step's ``env`` and ``working-directory``, stopping at the first that fails. Step
    N's output goes to ``folder/step-N.out`` and ``.err``, its exit status to
    ``step-N.rc``; a step not reached has no ``.rc``. ``config``: another workflow's
    contents than WORKFLOW's."""
    lines = ["set -u", 'start="$PWD"']
    for n, step in enumerate(job_steps(job, config)):
        script = folder / f"step-{n}.sh"
        script.write_text(step["run"])
        command = RUNNER_SHELLS[step.get("shell")].replace(
            "{0}", shlex.quote(str(script))
        )
        env = " ".join(
            f"{key}={shlex.quote(str(value))}"
            for key, value in step.get("env", {}).items()
        )
        where = shlex.quote(step.get("working-directory", "."))
        out = shlex.quote(str(folder / f"step-{n}"))
        lines += [
            f'(cd "$start" && cd {where} && env {env} {command}) > {out}.out 2> {out}.err',
            f"rc=$?; echo $rc > {out}.rc; [ $rc -eq 0 ] || exit $rc",
        ]
    path = folder / f"{job}.sh"
    path.write_text("\n".join(lines) + "\n")
    return path


def chromium_path() -> Path:
    """The Chromium the browser tests (and benchmarks/bench_browser.py) drive:
    ``ATTNLAB_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH, else
    Debian's ``/usr/bin/chromium``."""
    env = os.environ.get("ATTNLAB_CHROMIUM")
    if env:
        return Path(env).expanduser()
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else Path("/usr/bin/chromium")


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


def open_page(browser, url, on_request_finished=None, **options):
    """Open ``url`` in a new page (``options`` for ``browser.new_page``: a colour scheme,
    a viewport); return the page, every request it made and every console error.
    ``on_request_finished`` is called with each request that finished."""
    page = browser.new_page(**options)
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    if on_request_finished is not None:
        page.on("requestfinished", on_request_finished)
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


# The chapters and the closing chapter, which Lighthouse scores.
LIGHTHOUSE_PAGES = [
    p for p in book_pages() if re.fullmatch(r"chapters/0\d_\w+\.html", p)
] + ["book/after.html"]


def page_weight(browser, site, html, path):
    """What a first visit to ``path`` costs before the reader does anything: every
    request, in a fresh profile, until the network is idle (:func:`weight_of`)."""
    context = browser.new_context()
    page = context.new_page()
    urls = []
    page.on("requestfinished", lambda request: urls.append(request.url))
    page.goto(f"{site}/{path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    context.close()
    return weight_of(urls, site, html, path)


def weight_of(urls, site, html, path):
    """The number of requests ``urls`` (a visit to ``path`` of ``site``, served from the
    folder ``html``), and their bytes as served (raw) and with gzip (level 6, as a web
    server compresses; files that gzip does not shrink, such as fonts and images, count
    as they are), with the largest files."""
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


# Every image in a page's text and its name for a screen reader (alt text or title).
FIGURE_NAMES = """() => Array.from(document.querySelectorAll("article img"))
    .map(img => [img.getAttribute("src"), img.getAttribute("alt") || img.title || ""])"""


def first_visit(browser, site, html, path) -> dict:
    """A reader's first visit to ``path`` in light mode at a desktop's width, in a fresh
    profile, measured once for the tests that read it (conftest.first_visits): what it
    cost before the reader did anything (``weight``, :func:`weight_of`); then, with its
    widgets rendered, the theme, axe-core's violations, every figure's name
    (``figures``: source and name) and the console's errors."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    urls = []
    page, _, errors = open_page(
        browser,
        f"{site}/{path}",
        color_scheme="light",
        on_request_finished=lambda request: urls.append(request.url),
    )
    page.wait_for_timeout(300)
    weight = weight_of(list(urls), site, html, path)
    show_widgets(page)
    # An image widget's alt text is read from inside its PNG once it has rendered: give
    # the page a few seconds to finish, then look.
    try:
        page.wait_for_function(
            FIGURE_NAMES + ".every(([, name]) => name.split(/\\s+/).length >= 3)",
            timeout=10_000,
        )
    except PlaywrightTimeout:  # what is still missing, the test reports
        pass
    page.wait_for_timeout(300)
    visit = {
        "weight": weight,
        "theme": page.evaluate("document.documentElement.dataset.theme"),
        "violations": axe_violations(page),
        "figures": page.evaluate(FIGURE_NAMES),
        "errors": errors,
    }
    page.close()
    return visit


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


AXE = ROOT / "book" / "vendor" / "node_modules" / "axe-core" / "axe.min.js"
# Runs axe on the whole document; returns each violated rule with where it fails.
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}))"""


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is now, each with where it fails."""
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is missing at {AXE}: run `make vendor` (npm ci from "
            "book/vendor/package-lock.json)"
        )
    # Evaluated by the test harness, which the page's Content-Security-Policy does not
    # govern (a <script> added to the page would be refused by it, as it should be).
    page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(RUN_AXE)


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


def built_notebook(html: Path, page: Path) -> Path:
    """Where the book's build (``html``: its HTML folder) keeps ``page`` as it executed it."""
    return (
        html.parent / "jupyter_execute" / page.relative_to(ROOT).with_suffix(".ipynb")
    )


def nbval_replayed(notebook: Path, executed: Path, folder: Path):
    """Run nbval (lax: the tagged cells' outputs compared) on ``notebook``, answered by
    the outputs ``executed`` recorded instead of by running it (replay_kernel.py)."""
    import replay_kernel

    jupyter = folder / "jupyter"
    replay_kernel.install(jupyter)
    env = {**os.environ, "JUPYTER_PATH": str(jupyter), "ATTNLAB_REPLAY": str(executed)}
    command = ["-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q"] + [
        "--nbval-kernel-name",
        replay_kernel.NAME,
        "--rootdir",
        str(folder),
        str(notebook),
    ]
    return subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sphinx_project(folder: Path, extensions: list[str], pages: dict[str, str]) -> list:
    """A Sphinx project in ``folder`` with the book's own extensions importable (MyST
    pages, colon fences) and ``pages`` (file name -> text); returns the command that
    builds it into ``folder/out`` with warnings as errors."""
    (folder / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        f"extensions = {extensions!r}\n"
        "myst_enable_extensions = ['colon_fence']\n",
        encoding="utf-8",
    )
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q"] + [
        str(folder),
        str(folder / "out"),
    ]


# A toy translation task for the inspection and explorer tests.
TOY_SRC_SENTENCES = [["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "."]]


TOY_TGT_SENTENCES = [
    ["le", "chat", "est", "assis", "sur", "un", "tapis", "chien", "a", "couru", "."]
]


TOY_SRC, TOY_TGT = Vocab(TOY_SRC_SENTENCES), Vocab(TOY_TGT_SENTENCES)


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


# --- small models and tasks, several files' -----------------------------------------


@register
class TinySeq2Seq(nn.Module):
    """A minimal model for exercising the trainer: mean-pooled source, GRU decoder."""

    def __init__(self, src_vocab: int, tgt_vocab: int, hidden: int = 32):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, hidden, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, hidden, padding_idx=0)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, *, src, src_len, tgt_in):
        mask = (torch.arange(src.shape[1])[None] < src_len[:, None]).float()
        context = (self.src_embed(src) * mask[..., None]).sum(1) / src_len[:, None]
        states, _ = self.gru(self.tgt_embed(tgt_in), context[None].contiguous())
        return Seq2SeqOutput(self.out(states))


def tiny_task():
    return synthetic.dates_task(n_train=512, n_val=64, n_test=64, seed=0)


def train_tiny(task, steps=30, seed=0):
    runtime.seed_everything(seed)
    model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
    trainer = Trainer(model, lr=3e-3, device="cpu")
    history = trainer.fit(
        task.loader("train", 64, seed=seed),
        max_steps=steps,
        log_every=5,
        val_batches=task.loader("val", 64),
        eval_every=15,
        progress=False,
    )
    return model, history


def small_gru(src_vocab=20, tgt_vocab=15, **kwargs):
    runtime.seed_everything(0)
    config = dict(embed_size=8, hidden_size=16, num_layers=2, proj_size=8, dropout=0.0)
    config.update(kwargs)
    return rnn.EncoderDecoder(src_vocab, tgt_vocab, **config)


LIBRARY = checkpoints.Path(checkpoints.__file__).parents[1]


def edited_library_copy(tmp_path, module, old, new):
    """A copy of the library with ``old`` replaced by ``new`` in ``module`` (a file name
    without .py, found in whichever subpackage holds it)."""
    folder = tmp_path / "attnlab"
    shutil.copytree(LIBRARY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    [path] = folder.glob(f"*/{module}.py")
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new, 1))
    return folder
