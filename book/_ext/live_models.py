"""Publish the chapters' exported models with the site, for live translation in the
reader's browser.

The chapters write each trained fra-eng model, exported for the browser, under
``attnlab.web.export.browser_dir()`` as they execute. When the HTML build finishes, this
extension copies every export whose files match its manifest's hashes into
``_static/models/<name>/`` and lists what it published in ``_static/models/index.json``
(name, kind, profile, held-out BLEU); an export that does not match its hashes is left
out, with a warning. Nothing is loaded
by a page until its reader asks for a live translation.

It also writes ``_static/live/runtime.json``: the SHA-256 of each file of the
WebAssembly runtime the site serves (onnxruntime-web's loader module, its WebAssembly
glue module, and the WebAssembly, also hashed decompressed), which the page checks
before it runs any of them (``translate.mjs``).

The boxes themselves are ``<div class="attnlab-live" data-models="...">`` elements in
a chapter; the pages that have one load ``_static/live/live.mjs`` (``book/live/``), a
small module that draws the text box and imports the rest on the first request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

LIVE = Path(__file__).resolve().parents[1] / "live"
MARKER = 'class="attnlab-live"'
# The runtime's files by role, written into runtime.json: translate.mjs reads their
# names from there.
RUNTIME = {
    "loader": "ort.wasm.min.mjs",
    "glue": "ort-wasm-simd-threaded.mjs",
    "wasm": "ort-wasm-simd-threaded.wasm.gz",
}
RUNTIME_FORMAT = 2


def runtime_hashes(folder: Path) -> dict:
    """What ``runtime.json`` holds for the runtime files in ``folder``
    (``_static/vendor/onnxruntime-web``): each file's SHA-256, and for the gzip-compressed
    WebAssembly also that of its content, which is what the page can check when a host
    has already decompressed it."""
    files = {}
    for name in RUNTIME.values():
        data = (Path(folder) / name).read_bytes()
        files[name] = {"sha256": hashlib.sha256(data).hexdigest()}
        if name.endswith(".gz"):
            files[name]["content_sha256"] = hashlib.sha256(
                gzip.decompress(data)
            ).hexdigest()
    return {"format": RUNTIME_FORMAT, "roles": dict(RUNTIME), "files": files}


def _add_module(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    # Only the pages with a live box load its script.
    if MARKER in (context.get("body") or ""):
        app.add_js_file("live/live.mjs", type="module")


def _publish(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from attnlab.web import export

    scripts = Path(app.outdir) / "_static" / "live"
    shutil.rmtree(scripts, ignore_errors=True)
    scripts.mkdir(parents=True)
    for script in LIVE.glob("*.mjs"):
        shutil.copy2(script, scripts / script.name)
    runtime = Path(app.outdir) / "_static" / "vendor" / "onnxruntime-web"
    if all((runtime / name).is_file() for name in RUNTIME.values()):
        (scripts / "runtime.json").write_text(
            json.dumps(runtime_hashes(runtime), indent=1)
        )
    else:
        logger.warning(
            "live_models: %s is not in the site (run `make vendor`); live "
            "translation will not work",
            runtime,
        )
    source = export.browser_dir()
    target = Path(app.outdir) / "_static" / "models"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    published = []
    for folder in sorted(
        p for p in source.glob("*") if (p / "manifest.json").is_file()
    ):
        try:
            manifest = export.load_manifest(folder)
        except ValueError as error:
            logger.warning("live_models: %s left out: %s", folder.name, error)
            continue
        # Only the files the manifest was checked to name, and the manifest itself.
        (target / folder.name).mkdir()
        for file in (*export.FILES, "manifest.json"):
            shutil.copy2(folder / file, target / folder.name / file)
        published.append(
            {key: manifest[key] for key in ("name", "kind", "profile", "test_bleu")}
        )
    (target / "index.json").write_text(json.dumps({"models": published}, indent=1))
    logger.info("live_models: %d model(s) published in %s", len(published), target)


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _add_module)
    app.connect("build-finished", _publish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
