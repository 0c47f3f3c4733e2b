"""Install the book's pinned front-end files and copy the parts the site serves.

Run by ``make vendor``: ``npm ci`` from ``package-lock.json`` (nothing else is
downloaded), then the ipywidgets HTML manager, MathJax 3's components and onnxruntime-web are copied into
``static/vendor/`` for the ``offline_assets`` extension to serve.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
TARGET = HERE / "static" / "vendor"


def main() -> int:
    if shutil.which("npm") is None:
        print("vendor: npm not found; the book will load widgets and MathJax from CDNs", file=sys.stderr)
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
    mathjax = MODULES / "mathjax" / "es5"
    (staging / "mathjax").mkdir()
    # Its startup (with the loader) and the components book/_ext/offline_assets.py loads.
    for name in ("startup.js", "core.js", "input/tex.js", "output/chtml.js"):
        (staging / "mathjax" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(mathjax / name, staging / "mathjax" / name)
    for folder in ("input/tex/extensions", "output/chtml/fonts", "ui", "a11y", "adaptors"):
        shutil.copytree(mathjax / folder, staging / "mathjax" / folder)
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
    for licence in ("mathjax/LICENSE", "@jupyter-widgets/html-manager/LICENSE",
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
