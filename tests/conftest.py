"""Shared fixtures: the real corpus, the built book and the browser, and an isolated
build/cache folder for every test; and the markers each test gets from the fixtures it
uses. Helpers that are not fixtures are in helpers.py."""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import (
    CHROMIUM_FLAGS,
    DATA_DIR,
    LIGHTHOUSE_PAGES,
    ROOT,
    TOY_SRC,
    TOY_TGT,
    chromium_path,
    copy_checkout,
    first_visit,
    job_script,
    job_steps,
    lighthouse,
)

# What a test needs, read from the fixtures it uses (and its own marks): the corpus
# (fra-eng.zip), a Jupyter kernel (the book's build executes every chapter), Chromium. A
# test that needs a kernel or a browser is slow too: `make test-fast` (-m "not slow")
# never starts a 20-minute build, and `-m "not browser"` runs without Chromium.
NEEDS = {
    "fra_eng_dir": {"corpus"},
    "fra_eng_pairs": {"corpus"},
    "built_book": {"corpus", "kernel"},
    "colab_run": {"corpus", "kernel"},
    "served": {"corpus", "kernel"},
    "site": {"corpus", "kernel"},
    "lighthouse_audits": {"corpus", "kernel", "browser"},
    "browser_benchmark": {"corpus", "kernel", "browser"},
    "browser": {"browser"},
    "first_visits": {"corpus", "kernel", "browser"},
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
    # The tests that read the built book run after the others, so that those run while
    # the book builds (book_build); the ones marked `last` (they wait for work started in
    # the background) after all; otherwise in their files' order.
    items.sort(key=_when)


def _reads_the_book(item) -> bool:
    return "built_book" in getattr(item, "fixturenames", ())


def _when(item) -> int:
    if item.get_closest_marker("last"):
        return 2
    return 1 if _reads_the_book(item) else 0


class BookBuild:
    """The whole book built in the smoke profile by the workflow's own build job: its
    ``run`` steps (the model cache's key, ``make book``, the site's check) run as a runner
    runs them (helpers.job_script) in ``out``, a copy of this checkout, so the book the
    tests read is the one the workflow builds and checks before it publishes. They run in
    a process of their own, started before the first test, so that the tests that do not
    need the book run meanwhile. While it runs, it and this process take one thread each
    (two processes with two threads each on two cores wait on each other's threads, far
    more than twice as long); :meth:`result` waits for it and gives this process its
    threads back. The workflow's own ``env`` (where GitHub keeps the corpus and Chrome) is
    this session's."""

    JOB = "build"

    def __init__(self, out: Path, data_dir: Path):
        import torch

        self.out, self.threads = copy_checkout(out), torch.get_num_threads()
        self.runner = out / ".workflow"
        self.runner.mkdir()
        self.steps = job_steps(self.JOB)
        script = job_script(self.JOB, self.runner)
        env = {
            **os.environ,
            "ATTNLAB_PROFILE": "smoke",
            "ATTNLAB_DATA_DIR": str(data_dir),
            "ATTNLAB_BUILD_DIR": str(out / "attnlab"),
            "OMP_NUM_THREADS": "1",
            "GITHUB_OUTPUT": str(self.runner / "github_output"),
            "GITHUB_WORKSPACE": str(out),
        }
        self.start = time.perf_counter()
        self.process = subprocess.Popen(
            ["bash", str(script)],
            cwd=out,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # each step's output goes to its own files
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # stop() ends its kernels with it
        )
        self._sharing(True)
        self._done: subprocess.CompletedProcess | None = None

    def step(self, command: str) -> subprocess.CompletedProcess:
        """How the job's step whose script holds ``command`` went (once :meth:`result`
        has waited for the job): its output, and its exit status, -1 if the job stopped
        before it."""
        found = [n for n, s in enumerate(self.steps) if command in s["run"]]
        if len(found) != 1:
            pytest.fail(
                f"the workflow's {self.JOB} job has {len(found)} steps running "
                f"{command!r}, not one"
            )
        (n,) = found
        status = self.runner / f"step-{n}.rc"
        return subprocess.CompletedProcess(
            self.steps[n]["run"],
            int(status.read_text()) if status.is_file() else -1,
            *(
                path.read_text() if path.is_file() else ""
                for path in (
                    self.runner / f"step-{n}.out",
                    self.runner / f"step-{n}.err",
                )
            ),
        )

    def _sharing(self, on: bool) -> None:
        """One thread for this process and what it starts while the build runs."""
        import torch

        torch.set_num_threads(1 if on else self.threads)
        if on:
            self._omp = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"
        elif self._omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = self._omp

    def result(self, timeout: float = 1800) -> subprocess.CompletedProcess:
        """The job's ``make book`` step, once the job is done."""
        if self._done is None:
            try:
                self.process.wait(timeout=timeout)
            finally:
                self._sharing(False)
            print(f"book (smoke) built in {time.perf_counter() - self.start:.1f} s")
            self._done = self.step("make book")
        return self._done

    def stop(self) -> None:
        if self._done is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self._sharing(False)


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


@pytest.fixture(scope="session", autouse=True)
def book_build(request, tmp_path_factory):
    """The smoke build of the book, started before the first test where a selected test
    reads it (and the corpus is there: otherwise built_book says what is missing)."""
    wanted = any(_reads_the_book(item) for item in request.session.items)
    if not wanted or not (DATA_DIR / "fra-eng.zip").is_file():
        yield None
        return
    build = BookBuild(tmp_path_factory.mktemp("book"), DATA_DIR)
    yield build
    build.stop()


@pytest.fixture(scope="session")
def built_book(book_build, fra_eng_dir, request):
    """The whole book built in the smoke profile into a fresh folder, as CI builds it
    (started in the background by book_build): the site's folder and how the build
    went. Once it is built, the Colab-stack sessions start beside the browser tests
    (colab_run), where a selected test waits for them."""
    assert book_build is not None, "the book's build was not started"
    result = book_build.result()
    if any("colab_run" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("colab_run")
    return book_build.out / "_build" / "html", result


class Job:
    """One piece of :class:`Beside`'s work: :meth:`result` waits for it and gives what it
    returned, or raises what it raised."""

    def __init__(self, name: str, work):
        self.name, self.work = name, work
        self.start: float | None = None  # perf_counter() when it began
        self.seconds: float | None = None
        self.outcome = None
        self.done = threading.Event()

    def run(self) -> None:
        """Do the work here and now, keeping what it returned or raised."""
        self.start = time.perf_counter()
        try:
            self.outcome = self.work()
        except BaseException as error:  # re-raised in the test that waits for it
            self.outcome = error
        self.seconds = time.perf_counter() - self.start
        self.done.set()

    def result(self, timeout: float = 3600):
        if not self.done.wait(timeout):
            pytest.fail(f"{self.name} did not finish in {timeout:.0f} s")
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class Beside:
    """Work done in one thread beside the browser tests, one job after another, from the
    moment the book is built: the Colab-stack sessions and the Lighthouse audits, each a
    process of its own, on the core the browser tests leave free. The tests that check
    them are marked ``last`` and wait for their jobs. Meanwhile this process computes on
    one thread."""

    def __init__(self):
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.jobs: list[Job] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def submit(self, name: str, work) -> Job:
        job = Job(name, work)
        self.jobs.append(job)
        self._queue.put(job)
        return job

    def _work(self) -> None:
        while True:
            self._queue.get().run()

    def close(self) -> None:
        import torch

        torch.set_num_threads(self.threads)


BESIDE: list[Beside] = []  # the session's, for the summary at the end
FOREGROUND: list[Job] = []  # work a fixture did itself, for the same summary


@pytest.fixture(scope="session")
def beside():
    work = Beside()
    BESIDE.append(work)
    yield work
    work.close()


def pytest_terminal_summary(terminalreporter):
    for work in BESIDE:
        times = ", ".join(
            f"{job.name} {job.seconds:.0f} s"
            for job in work.jobs
            if job.seconds is not None
        )
        terminalreporter.write_line(f"done beside the browser tests: {times}")
    for job in FOREGROUND:
        terminalreporter.write_line(f"{job.name}: {job.seconds:.0f} s")


@pytest.fixture(scope="session")
def colab_run(beside, tmp_path_factory, fra_eng_dir) -> Job:
    """test_colab_stack.py's sessions on Colab's packages, beside the other tests
    (started by built_book, or here when no test reads the book)."""
    from test_colab_stack import colab_sessions

    folder = tmp_path_factory.mktemp("colab")
    return beside.submit("Colab sessions", lambda: colab_sessions(folder, fra_eng_dir))


@pytest.fixture(scope="session")
def served(built_book):
    """The built book served over HTTP on a free port: its address."""
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    handler = functools.partial(QuietHandler, directory=str(html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def site(served, request):
    """The served book's address; serving it starts the work that selected tests wait
    for beside the browser tests (lighthouse_audits) and runs the browser benchmark
    (browser_benchmark) first."""
    for name in ("lighthouse_audits", "browser_benchmark"):
        if any(name in item.fixturenames for item in request.session.items):
            request.getfixturevalue(name)
    return served


@pytest.fixture(scope="session")
def lighthouse_audits(beside, served) -> dict[str, Job]:
    """Lighthouse's accessibility and best-practices audits of each page of
    ``LIGHTHOUSE_PAGES``, beside the other tests, by page."""
    return {
        path: beside.submit(
            f"Lighthouse {path}",
            functools.partial(
                lighthouse,
                f"{served}/{path}",
                categories=("accessibility", "best-practices"),
            ),
        )
        for path in LIGHTHOUSE_PAGES
    }


@pytest.fixture(scope="session")
def browser_benchmark(built_book, tmp_path_factory) -> Job:
    """benchmarks/bench_browser.py --quick on the built site, run here as the browser
    tests begin (beside them, it made the work beside them the longer part): the
    finished process and the two files it wrote."""
    html, _ = built_book
    folder = tmp_path_factory.mktemp("browser-benchmark")
    output, pages_output = folder / "browser.json", folder / "pages.json"

    def run():
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bench_browser.py"),
                "--site",
                str(html),
                "--quick",
                "--output",
                str(output),
                "--pages-output",
                str(pages_output),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        return done, output, pages_output

    job = Job("browser benchmark (quick)", run)
    job.run()
    FOREGROUND.append(job)
    return job


class FirstVisits(dict):
    """Each page's first visit (helpers.first_visit), made when a test first asks for
    it and then shared: the byte budget, the figures' names and axe-core in light mode
    read the same visit, as one reader's."""

    def __init__(self, browser, site: str, html: Path):
        super().__init__()
        self.browser, self.site, self.html = browser, site, html

    def __missing__(self, path: str) -> dict:
        self[path] = first_visit(self.browser, self.site, self.html, path)
        return self[path]


@pytest.fixture(scope="session")
def first_visits(site, browser, built_book) -> FirstVisits:
    return FirstVisits(browser, site, built_book[0])


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
