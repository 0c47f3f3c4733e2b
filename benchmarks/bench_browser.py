"""What live translation on the website costs a reader: bytes and time, in Chromium.

On a built site (``_build/html`` by default) served from this machine, headless
Chromium opens the chapter pages that have a live box, each in a fresh browser
profile (empty cache), and measures:

* the page weight before the reader asks: every byte the page loaded (document,
  scripts, styles, fonts, images), as served;
* the bytes fetched on first use, by part: onnxruntime-web (its module and its
  gzip-compressed WebAssembly), the model (graph, gzip-compressed, and
  vocabularies) and the course's live scripts; the page weight after is the sum;
* the time from pressing Enter to the translation on the page: the first time
  (everything loads) and then the median of ``--repeats`` presses, for a
  ten-word sentence; on chapter 6's page, which translates with the three models
  in turn, each model's share is the time between its result and the one before;
* on the pages with a beam view (chapters 5 and 6), each model's beam search of
  the same sentence at beam 5: the first search, then the median of ``--repeats``
  searches again (each asked for by a new length penalty α), with its steps.

Bytes are the bodies as served (``encodedBodySize``): the files are compressed by
the build where that pays, so a host that compresses nothing sends exactly these.

Then every page of the book, each in a fresh profile, before the reader does anything:
the requests, the bytes raw and with gzip (as a web server compresses text; fonts and
images count as they are), and Lighthouse's report on the page served with gzip, with
its mobile settings (a phone's screen, "slow 4G": 150 ms round trip, 1.6 Mbit/s down,
750 kbit/s up, simulated, and a CPU 4x slower): the performance, accessibility and
best-practices scores, and when the first and the largest content were painted (FCP,
LCP).

With ``--models FOLDER`` (a build's ``attnlab.web.export.browser_dir()``, e.g. a full
build's ``_build/browser``), the live box is measured with those models on the site's
own pages (a copy of the site, its ``_static/models`` replaced as the build publishes
them): the full profile's trained models without building every page in it. The record
says which profile the pages and the models come from.

    python benchmarks/bench_browser.py [--site _build/html] [--quick] [--only pages]
        [--models _build/browser]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import shutil
import statistics
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import common
import torch

sys.path.insert(0, str(common.ROOT / "tests"))
from helpers import CHROMIUM_FLAGS, book_pages, chromium_path, lighthouse, page_weight  # noqa: E402 -- as the tests

# Ten words, written for this benchmark (not from the corpus).
SENTENCE = "I think we should leave before it starts to rain."
PAGES = {
    "03_bahdanau_attention": ["bahdanau-fra-eng"],
    "05_transformer": ["transformer-fra-eng"],
    "06_comparison": ["gru-fra-eng", "bahdanau-fra-eng", "transformer-fra-eng"],
}

# Presses Enter (the form's implicit submission) ``presses`` times and records, for each,
# when each model's result appeared and when the box was ready again (ms after the press).
PRESS = """async ([sentence, presses]) => {
    const box = document.querySelector(".attnlab-live");
    const input = box.querySelector("input[type=text]");
    const form = box.querySelector("form");
    const button = box.querySelector("button");
    const results = box.querySelector(".attnlab-live-results");
    const status = box.querySelector(".attnlab-live-status");
    const runs = [];
    for (let i = 0; i < presses; i += 1) {
        input.value = sentence;
        const appeared = [];
        let start = 0;
        const done = new Promise((resolve) => {
            new MutationObserver((changes, observer) => {
                for (const change of changes) {
                    if (change.target === results) {
                        for (const node of change.addedNodes) {
                            appeared.push([node.dataset.model, performance.now() - start]);
                        }
                    }
                    if (change.target === button && !button.disabled) {
                        observer.disconnect();
                        resolve(performance.now() - start);
                    }
                }
            }).observe(box, { subtree: true, childList: true, attributes: true,
                              attributeFilter: ["disabled"] });
        });
        start = performance.now();
        form.requestSubmit();
        const total = await done;
        if (status.textContent) throw new Error(status.textContent);
        runs.push({ appeared, total });
    }
    return runs;
}"""

# Opens the beam view of every result that has one (beam of 5, the view's default) and
# times the first search, then ``presses`` searches again, each asked for by changing α
# (0.6 and 0.8 in turn), from the change to the view redrawn; with each model's steps.
BEAM = """async ([presses]) => {
    const out = {};
    for (const result of document.querySelectorAll(".attnlab-live-result")) {
        const details = result.querySelector(".attnlab-live-beam");
        if (!details) continue;
        const alpha = details.querySelector("select[aria-label='length penalty α']");
        const status = details.querySelector(".attnlab-live-beam-status");
        const timed = (ask) => new Promise((resolve, reject) => {
            const start = performance.now();
            new MutationObserver((changes, observer) => {
                if (status.textContent.startsWith("Beam search failed")) reject(new Error(status.textContent));
                if (status.textContent === "") {
                    observer.disconnect();
                    resolve(performance.now() - start);
                }
            }).observe(status, { childList: true, characterData: true, subtree: true });
            ask();
        });
        const first = await timed(() => { details.open = true; });
        const runs = [];
        for (let i = 0; i < presses; i += 1) {
            runs.push(await timed(() => {
                alpha.value = i % 2 ? "0.6" : "0.8";
                alpha.dispatchEvent(new Event("change"));
            }));
        }
        const steps = details.querySelectorAll(".attnlab-live-beam-steps > li").length;
        out[result.dataset.model] = { first, runs, steps };
    }
    return out;
}"""

# Every byte the page has loaded so far, by URL (the document and its resources),
# with when each request started (ms since the page opened).
LOADED = """() => {
    const entries = [...performance.getEntriesByType("navigation"),
                     ...performance.getEntriesByType("resource")];
    return entries.map((e) => [e.name, e.encodedBodySize, e.startTime]);
}"""

# Waits until the page has settled: its fonts loaded (the equations come typeset in the
# page; their fonts may come after the load event, later on a slower machine); returns the
# page's clock then, which divides what the page loaded from first use.
SETTLED = """async () => {
    await document.fonts.ready;
    return performance.now();
}"""


def part(url: str) -> str:
    if "/_static/models/" in url:
        return "model"
    if "/onnxruntime-web/" in url:
        return "runtime"
    if "/_static/live/" in url:
        return "live scripts"
    return "page"


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


COMPRESSED = {".woff2", ".woff", ".png", ".jpg", ".gz", ".wasm", ".ico"}


def serve_gzip(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``folder`` as a web host does: text compressed with gzip on the fly."""

    class Gzip(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_head(self):
            path = Path(self.translate_path(self.path))
            path = path / "index.html" if path.is_dir() else path
            if (
                not path.is_file()
                or path.suffix in COMPRESSED
                or "gzip" not in self.headers.get("Accept-Encoding", "")
            ):
                return super().send_head()
            body = gzip.compress(path.read_bytes(), 6)
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Gzip, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# What a page may transfer before the reader does anything (tests/test_site.py asserts it).
BUDGET_WITH_WIDGETS, BUDGET_WITHOUT = 1.0e6, 0.5e6
QUICK_PAGES = ["book/intro.html", "chapters/03_bahdanau_attention.html"]


def measure_pages(browser, site: Path, paths: list[str]) -> list[dict]:
    plain, plain_base = serve(site)
    zipped, zipped_base = serve_gzip(site)
    rows = []
    try:
        for path in paths:
            weight = page_weight(browser, plain_base, site, path)
            report = lighthouse(f"{zipped_base}/{path}")
            widgets = "widget-view+json" in (site / path).read_text(encoding="utf-8")
            rows.append(
                {
                    "page": path,
                    **weight,
                    **report,
                    "widgets": widgets,
                    "budget": BUDGET_WITH_WIDGETS if widgets else BUDGET_WITHOUT,
                    "largest": [list(f) for f in weight["largest"]],
                }
            )
            scores = report["scores"]
            print(
                f"{path:<44} {weight['requests']:3d} requests {weight['raw'] / 1e6:5.2f} MB "
                f"raw {weight['gzip'] / 1e6:5.2f} MB gzip; Lighthouse: performance "
                f"{scores['performance']}, accessibility {scores['accessibility']}, best "
                f"practices {scores['best-practices']}, FCP {report['fcp_ms'] / 1000:.1f} s, "
                f"LCP {report['lcp_ms'] / 1000:.1f} s",
                flush=True,
            )
            for category, audits in report["failed"].items():
                if audits:
                    print(f"    {category} below 0.9: {', '.join(audits)}")
    finally:
        plain.shutdown()
        zipped.shutdown()
    return rows


def measure_page(browser, url: str, models: list[str], presses: int) -> dict:
    context = browser.new_context()  # a fresh profile: nothing cached
    context.add_init_script("performance.setResourceTimingBufferSize(10000)")
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate(SETTLED)
    page.wait_for_load_state("networkidle")
    pressed = page.evaluate(SETTLED)
    runs = page.evaluate(PRESS, [SENTENCE, 1 + presses])
    loaded = page.evaluate(LOADED)
    # A request the page started before the first press is the page's, however late.
    before = {u: b for u, b, start in loaded if start < pressed}
    new = {u: b for u, b, start in loaded if start >= pressed and u not in before}
    fetched: dict[str, int] = {}
    for u, b in new.items():
        fetched[part(u)] = fetched.get(part(u), 0) + b
    texts = page.locator(".attnlab-live-text").all_inner_texts()
    beams = page.evaluate(BEAM, [presses])
    context.close()
    first, rest = runs[0], runs[1:]

    def shares(run):  # each model's time: since the previous result
        times = dict(run["appeared"])
        marks = [0.0] + [times[m] for m in models]
        return {m: marks[i + 1] - marks[i] for i, m in enumerate(models)}

    return {
        "page_bytes_before": sum(before.values()),
        "page_bytes_after": sum(before.values()) + sum(new.values()),
        "first_use_bytes": fetched,
        # Named without the ?sha256= the page asks for them with.
        "first_use_files": {
            u.split("/_static/", 1)[-1].split("?", 1)[0]: b for u, b in new.items()
        },
        "first_press_ms": first["total"],
        "press_ms": {
            "median": statistics.median(r["total"] for r in rest),
            "min": min(r["total"] for r in rest),
            "max": max(r["total"] for r in rest),
            "runs": len(rest),
        },
        "model_ms": {m: statistics.median(shares(r)[m] for r in rest) for m in models},
        "first_model_ms": shares(first),
        "translations": texts[: len(models)],
        # Beam of 5 in the beam view, where the page has one: its first search, then
        # the median of searching again (a new α), and the steps it took.
        "beam_ms": {
            m: {
                "first": b["first"],
                "median": statistics.median(b["runs"]),
                "min": min(b["runs"]),
                "max": max(b["runs"]),
                "runs": len(b["runs"]),
                "beam_size": 5,
                "steps": b["steps"],
            }
            for m, b in beams.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--site",
        type=Path,
        default=common.ROOT / "_build" / "html",
        help="a built book (default: _build/html)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="two presses per page and two "
        "pages measured, no file written unless --output is given",
    )
    parser.add_argument(
        "--only",
        choices=["live", "pages"],
        default=None,
        help="measure only live translation (results/browser-*.json) or only "
        "the pages (results/pages-*.json); default both",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="presses timed after the first (default 20)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="live translation's results"
    )
    parser.add_argument(
        "--pages-output", type=Path, default=None, help="the pages' results"
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="measure the live box with the models exported in this folder (a "
        "build's _build/browser) on the site's pages",
    )
    args = parser.parse_args()
    index = args.site / "_static" / "models" / "index.json"
    if not index.is_file():
        raise SystemExit(
            f"{args.site}: no published models ({index} is missing): build the "
            "book first (make book), or pass --site"
        )
    pages_profile = sorted(
        {m["profile"] for m in json.loads(index.read_text())["models"]}
    )
    with tempfile.TemporaryDirectory() as folder:
        if args.models is not None:
            if args.only != "live":
                raise SystemExit("--models measures the live box only: add --only live")
            args.site = with_models(args.site, args.models, Path(folder) / "site")
            index = args.site / "_static" / "models" / "index.json"
        return measure(args, index, pages_profile)


def with_models(site: Path, models: Path, copy: Path) -> Path:
    """A copy of ``site`` whose ``_static/models`` holds the exports in ``models``,
    published as the build publishes them (book/_ext/live_models.py): only exports whose
    files match their manifest's hashes, each listed in ``index.json``."""
    from attnlab.web import export

    shutil.copytree(site, copy)
    target = copy / "_static" / "models"
    shutil.rmtree(target)
    target.mkdir()
    published = []
    for source in sorted(
        p for p in models.glob("*") if (p / "manifest.json").is_file()
    ):
        try:
            manifest = export.load_manifest(source)  # its files must match
        except export.ExportError as error:
            raise SystemExit(f"--models: {error}") from None
        (target / source.name).mkdir()
        for file in (*export.FILES, "manifest.json"):
            shutil.copy2(source / file, target / source.name / file)
        published.append(
            {key: manifest[key] for key in ("name", "kind", "profile", "test_bleu")}
        )
    if not published:
        raise SystemExit(f"{models}: no exported model (no */manifest.json)")
    (target / "index.json").write_text(json.dumps({"models": published}, indent=1))
    return copy


def measure(args, index: Path, pages_profile: list[str]) -> int:
    published = {m["name"]: m for m in json.loads(index.read_text())["models"]}
    presses = args.repeats or (2 if args.quick else 20)
    chromium = chromium_path()
    if not chromium.exists():
        raise SystemExit(f"no Chromium at {chromium}: set ATTNLAB_CHROMIUM")
    from playwright.sync_api import sync_playwright

    server, base = serve(args.site)
    measurements, pages = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_FLAGS
            )
            version = browser.version
            for stem, models in PAGES.items() if args.only != "pages" else ():
                missing = [m for m in models if m not in published]
                if missing:
                    raise SystemExit(f"{args.site}: {', '.join(missing)} not published")
                result = measure_page(
                    browser, f"{base}/chapters/{stem}.html", models, presses
                )
                result.update(
                    chapter=stem,
                    models=models,
                    profile=sorted({published[m]["profile"] for m in models}),
                )
                measurements.append(result)
                print(
                    f"{stem:<24} page {result['page_bytes_before'] / 1e6:5.2f} MB -> "
                    f"{result['page_bytes_after'] / 1e6:5.2f} MB; first press "
                    f"{result['first_press_ms']:7.0f} ms; then median "
                    f"{result['press_ms']['median']:6.1f} ms "
                    + " ".join(
                        f"{m.split('-')[0]} {t:.1f}"
                        for m, t in result["model_ms"].items()
                    )
                    + "".join(
                        f"; beam of 5, {m.split('-')[0]}: {b['median']:.1f} ms "
                        f"({b['steps']} steps)"
                        for m, b in result["beam_ms"].items()
                    ),
                    flush=True,
                )
            if args.only != "live":
                pages = measure_pages(
                    browser, args.site, QUICK_PAGES if args.quick else book_pages()
                )
            browser.close()
    finally:
        server.shutdown()
    profile = sorted({m["profile"] for m in published.values()})
    if measurements:
        path = common.write(
            "browser",
            args,
            torch.device("cpu"),
            measurements,
            sentence=SENTENCE,
            chromium=version,
            pages_profile=pages_profile,
        )
        if path:
            print(f"written to {path}")
    if pages:
        args.output = args.pages_output
        path = common.write(
            "pages",
            args,
            torch.device("cpu"),
            pages,
            chromium=version,
            site_profile=profile,
            lighthouse=pages[0]["lighthouse"],
        )
        if path:
            print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
