"""Refuse a site that would break for its readers: the workflow runs this on
``_build/html`` before it publishes, and the tests run it on the smoke build.

    python book/check_site.py SITE

It prints one line a problem and exits 1 unless

- every page of ``_toc.yml`` was built, no cell of it failed (no traceback in it), and
  it carries its Content-Security-Policy;
- ``_static/models/index.json`` lists the three fra-eng models, and each one's folder
  holds exactly the files its manifest names, matching their hashes
  (:func:`attnlab.web.export.load_manifest`);
- every vendored file (``make vendor``: ``book/vendor/static/vendor``) is in
  ``SITE/_static/vendor``, byte for byte, and ``_static/live/runtime.json`` holds the
  hashes of the WebAssembly runtime served (which the page checks before running it);
- no page, style sheet or module loads anything from another host.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "book" / "vendor" / "static" / "vendor"
MODELS = ("gru-fra-eng", "bahdanau-fra-eng", "transformer-fra-eng")

# What a page loads (not what it links to): these attributes of these tags.
LOADS = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
    "track": "src",
    "object": "data",
}
LOADING_LINKS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "prefetch",
    "icon",
    "manifest",
    "apple-touch-icon",
}
ELSEWHERE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)""")
JS_IMPORT = re.compile(
    r"""(?:\bimport\s*\(\s*|\bfrom\s+|^\s*import\s+)['"]([^'"]+)['"]""", re.M
)


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.tracebacks = 0
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag in LOADS and attributes.get(LOADS[tag]):
            self.urls.append(attributes[LOADS[tag]])
        if tag in {"img", "source"} and attributes.get("srcset"):
            self.urls += [
                part.split()[0]
                for part in attributes["srcset"].split(",")
                if part.strip()
            ]
        if tag == "link" and LOADING_LINKS & set(
            attributes.get("rel", "").lower().split()
        ):
            self.urls.append(attributes.get("href", ""))
        if "style" in attributes:
            self.urls += CSS_URL.findall(attributes["style"])
        if "traceback" in attributes.get("class", "").split():
            self.tracebacks += 1
        self._style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._style:
            self.urls += CSS_URL.findall(data) + CSS_IMPORT.findall(data)

    def handle_endtag(self, tag: str) -> None:
        self._style = False


def _pages() -> list[str]:
    from sphinx_external_toc.parsing import parse_toc_yaml

    return list(parse_toc_yaml(ROOT / "_toc.yml"))


def check_pages(site: Path) -> list[str]:
    problems = []
    for page in _pages():
        path = site / f"{page}.html"
        if not path.is_file():
            problems.append(f"{page}: not built ({path.relative_to(site)} is missing)")
            continue
        text = path.read_text(encoding="utf-8")
        parser = _Loads()
        parser.feed(text)
        if 'http-equiv="Content-Security-Policy"' not in text:
            problems.append(
                f"{page}: no Content-Security-Policy (book/_ext/content_policy.py)"
            )
        if parser.tracebacks:
            problems.append(
                f"{page}: {parser.tracebacks} cell(s) failed (a traceback in the page)"
            )
    return problems


def check_models(site: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "code"))
    from attnlab.web import export

    folder = site / "_static" / "models"
    try:
        listed = json.loads((folder / "index.json").read_text(encoding="utf-8"))[
            "models"
        ]
        names = [entry["name"] for entry in listed]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"_static/models/index.json: missing or not a list of models ({exc})"]
    problems = []
    if sorted(names) != sorted(MODELS):
        problems.append(
            f"_static/models/index.json lists {names}, not the three "
            f"models {list(MODELS)}"
        )
    for name in names:
        try:
            export.load_manifest(folder / name)
        except ValueError as error:
            problems.append(f"_static/models/{name}: {error}")
            continue
        extra = sorted(
            {p.name for p in (folder / name).iterdir()}
            - {*export.FILES, "manifest.json"}
        )
        if extra:
            problems.append(f"_static/models/{name}: files no manifest names: {extra}")
    return problems


def check_vendored(site: Path, vendored: Path = VENDORED) -> list[str]:
    if not vendored.is_dir():
        return [f"{vendored} is empty: run `make vendor` before building"]
    problems = []
    served = site / "_static" / "vendor"
    for path in sorted(p for p in vendored.rglob("*") if p.is_file()):
        relative = path.relative_to(vendored)
        copy = served / relative
        if not copy.is_file():
            problems.append(f"_static/vendor/{relative}: missing")
        elif not filecmp.cmp(path, copy, shallow=False):
            problems.append(f"_static/vendor/{relative}: differs from {path}")
    return problems


def check_runtime(site: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from live_models import runtime_hashes

    written = site / "_static" / "live" / "runtime.json"
    try:
        recorded = json.loads(written.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"_static/live/runtime.json: missing or unreadable ({exc})"]
    try:
        served = runtime_hashes(site / "_static" / "vendor" / "onnxruntime-web")
    except OSError as exc:
        return [f"_static/vendor/onnxruntime-web: {exc}"]
    if recorded != served:
        return [
            "_static/live/runtime.json does not hold the hashes of the runtime served "
            "in _static/vendor/onnxruntime-web"
        ]
    return []


def check_hosts(site: Path) -> list[str]:
    problems = []
    for path in sorted(site.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(site)
        if path.suffix == ".html":
            parser = _Loads()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            urls = parser.urls
        elif path.suffix == ".css":
            text = path.read_text(encoding="utf-8", errors="replace")
            urls = CSS_URL.findall(text) + CSS_IMPORT.findall(text)
        elif path.suffix in {".js", ".mjs"}:
            urls = JS_IMPORT.findall(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        for url in urls:
            if ELSEWHERE.match(url.strip()):
                problems.append(f"{name}: loads {url} from another host")
    return problems


def check(site: Path) -> list[str]:
    site = Path(site)
    if not (site / "index.html").is_file():
        return [f"{site} is not a built site (no index.html)"]
    return (
        check_pages(site)
        + check_models(site)
        + check_vendored(site)
        + check_runtime(site)
        + check_hosts(site)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site, e.g. _build/html")
    problems = check(parser.parse_args(argv).site)
    for problem in problems:
        print(f"check_site: {problem}", file=sys.stderr)
    if problems:
        print(
            f"check_site: {len(problems)} problem(s); the site is not published",
            file=sys.stderr,
        )
        return 1
    print(
        "check_site: every page built, three models verified, vendored files "
        "present, nothing from another host"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
