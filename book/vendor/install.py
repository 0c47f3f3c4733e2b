"""Install the book's pinned front-end files and copy the parts the site serves.

Run by ``make vendor``: ``npm ci`` from ``package-lock.json`` (nothing else is
downloaded), then the ipywidgets HTML manager, MathJax 3 and onnxruntime-web are copied into
``static/vendor/`` for the ``offline_assets`` extension to serve.
"""

from __future__ import annotations

import gzip
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
    stamp = MODULES / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (HERE / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE, check=True)
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
    shutil.copy2(mathjax / "tex-chtml.js", staging / "mathjax" / "tex-chtml.js")
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
