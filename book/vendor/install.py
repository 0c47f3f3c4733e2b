"""Install the book's pinned front-end files and copy the parts the site serves.

Run by ``make vendor``: ``npm ci`` from ``package-lock.json`` (nothing else is
downloaded), then the ipywidgets HTML manager, KaTeX's style sheet and fonts and onnxruntime-web are
copied into ``static/vendor/`` for the ``offline_assets`` extension to serve. KaTeX's
script is not served: equations are typeset when the book is built, by Node.js running
``node_modules/katex``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
TARGET = HERE / "static" / "vendor"


def main() -> int:
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            # A site built for publishing must not depend on CDNs: fail instead.
            print("vendor: npm not found, and CI is set: install Node.js and npm (the "
                  "published site serves these files itself)", file=sys.stderr)
            return 1
        print("vendor: npm not found; the book will load widgets and KaTeX from CDNs", file=sys.stderr)
        return 0
    # node_modules is installed again whenever the lock's content differs from the
    # lock it was installed from (an mtime misses a lock that `npm install` rewrote).
    lock = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    stamp = MODULES / ".attnlab-lock.sha256"
    if not stamp.exists() or stamp.read_text(encoding="utf-8").strip() != lock:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE, check=True)
        stamp.write_text(lock + "\n", encoding="utf-8")
    staging = TARGET.with_name("vendor.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    manager = MODULES / "@jupyter-widgets" / "html-manager" / "dist"
    (staging / "html-manager").mkdir(parents=True)
    for path in manager.iterdir():
        # embed.js and the icon fonts it loads beside itself; not source maps or the AMD build.
        if path.name == "embed.js" or path.suffix in {".woff2", ".woff", ".ttf", ".eot", ".svg"}:
            shutil.copy2(path, staging / "html-manager" / path.name)
    katex = MODULES / "katex" / "dist"
    (staging / "katex").mkdir()
    # The style sheet the typeset equations need and the fonts it names (a browser
    # fetches only the WOFF2 files of the faces a page uses).
    shutil.copy2(katex / "katex.min.css", staging / "katex" / "katex.min.css")
    shutil.copytree(katex / "fonts", staging / "katex" / "fonts")
    # onnxruntime-web, for live translation: its WebAssembly-only build (an ES module) and
    # the single-threaded use of its SIMD WebAssembly (pages on a static host are not
    # cross-origin isolated, so they get no threads). Loaded only when a reader asks.
    ort = MODULES / "onnxruntime-web" / "dist"
    (staging / "onnxruntime-web").mkdir()
    for name in ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs"):
        shutil.copy2(ort / name, staging / "onnxruntime-web" / name)
    # The WebAssembly (14 MB) is served gzip-compressed (3.7 MB), whatever the host does;
    # book/live/translate.mjs decompresses it. mtime=0: the same bytes on every install.
    wasm = (ort / "ort-wasm-simd-threaded.wasm").read_bytes()
    (staging / "onnxruntime-web" / "ort-wasm-simd-threaded.wasm.gz").write_bytes(
        gzip.compress(wasm, compresslevel=9, mtime=0))
    for licence in ("katex/LICENSE", "@jupyter-widgets/html-manager/LICENSE",
                    "onnxruntime-web/LICENSE"):
        source = MODULES / licence
        if source.exists():
            shutil.copy2(source, staging / f"{licence.split('/')[-2]}-LICENSE")
    shutil.rmtree(TARGET, ignore_errors=True)
    staging.rename(TARGET)
    print(f"vendor: offline assets in {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
