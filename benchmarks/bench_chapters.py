"""How long each chapter takes to execute, top to bottom, in each profile.

Executes the chapters in book order in a private build folder: a first pass
from an empty model cache ("cold": each chapter trains its models, later
chapters reuse earlier ones, as when the book is built from scratch), then a
second pass with every model cached ("warm"). The full profile from cold takes
about half an hour on two CPU cores. For each cold run it also records the
models the chapter trained (name, steps, seconds, steps per second, device), read
from the model cache; the book writes the chapters' budget notes from these records
when it is built (``book/_ext/budgets.py``).

With ``--all-pages`` it executes every page of the book that runs code, in the order
of ``_toc.yml``: the chapters with their further pages, worked solutions and the lab
(the cold pass is then what ``make book`` does from a fresh clone). A page that is not
a chapter's is recorded under its path in ``chapters/`` (``solutions/02_encoder_decoder``).

    python benchmarks/bench_chapters.py [--quick] [--profiles smoke full] [--all-pages]
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import common
import nbformat
import yaml
from nbclient import NotebookClient

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in a kernel's traceback
# In book order: each chapter, then its further pages (chapters/sections/NN_*), which
# reuse the chapter's models.
CHAPTERS = [
    page
    for chapter in sorted((common.ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    for page in [
        chapter,
        *sorted(
            (common.ROOT / "chapters" / "sections").glob(f"{chapter.name[:2]}_*.ipynb")
        ),
    ]
]


def book_pages() -> list[Path]:
    """Every notebook under chapters/, in the order of the book's table of contents."""
    toc = yaml.safe_load((common.ROOT / "_toc.yml").read_text(encoding="utf-8"))

    def files(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from files(entry.get("sections", []))

    found = (
        common.ROOT / f"{name}.ipynb"
        for part in toc["parts"]
        for name in files(part["chapters"])
        if name.startswith("chapters/")
    )
    return [path for path in found if path.is_file()]


def page_name(path: Path) -> str:
    """A chapter's (or its further page's) file name; another page's path in chapters/."""
    relative = path.relative_to(common.ROOT / "chapters").with_suffix("")
    return relative.name if relative.parent.name in ("", "sections") else str(relative)


def execute(path: Path, env: dict[str, str], keep: Path | None = None) -> float:
    """Seconds to execute the notebook at ``path`` in a fresh kernel with ``env`` set; the
    executed notebook is written to ``keep`` if given."""
    notebook = nbformat.read(path, as_version=4)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        NotebookClient(
            notebook,
            timeout=3600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        return time.perf_counter() - start
    finally:
        if keep is not None:  # also when it failed: what it printed
            keep.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, keep)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def trained_models(models: Path, before: set[Path]) -> list[dict]:
    """The models that appeared in the cache folder ``models`` since ``before``, as the
    training metadata their checkpoints keep (in the order they were written)."""
    import torch

    new = (
        sorted(
            (
                p
                for p in models.glob("*.pt")
                if p not in before and not p.name.endswith(".resume.pt")
            ),
            key=lambda p: p.stat().st_mtime,
        )
        if models.is_dir()
        else []
    )
    found = []
    for path in new:
        meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
        steps = meta["history"]["steps"][-1]
        found.append(
            {
                "name": path.name.rsplit("-", 1)[0],
                "steps": steps,
                "seconds": meta["seconds"],
                "steps_per_second": steps / meta["seconds"],
                "device": meta["device"],
                "parameters": meta.get("parameters"),
            }
        )
    return found


def headline(build: Path, chapter: str) -> dict:
    """The results ``chapter`` recorded in the build folder ``build``: its numbers, words
    and small tables of numbers (lists, such as curves, are left out)."""
    path = build / "results" / f"{chapter}.json"
    if not path.is_file():
        return {}
    record = json.loads(path.read_text(encoding="utf-8"))

    def small(value) -> bool:
        if isinstance(value, (int, float, str, bool)) or value is None:
            return True
        return isinstance(value, dict) and all(
            isinstance(v, (int, float, str, bool)) or v is None for v in value.values()
        )

    return {key: value for key, value in record["results"].items() if small(value)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="chapter 1 only, smoke profile, one pass"
    )
    parser.add_argument(
        "--profiles", nargs="+", default=["smoke", "full"], choices=["smoke", "full"]
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=None,
        help="keep each profile's models and results in BUILD_DIR/PROFILE "
        "(default: a temporary folder, deleted afterwards)",
    )
    parser.add_argument(
        "--passes",
        nargs="+",
        default=["cold", "warm"],
        choices=["cold", "warm"],
        help="cold: from an empty model cache; warm: again, every model cached",
    )
    parser.add_argument(
        "--chapters",
        nargs="+",
        default=None,
        metavar="NN",
        help="only these chapters, by number (e.g. 02 05)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="record a chapter that fails and go on with the next",
    )
    parser.add_argument(
        "--all-pages",
        action="store_true",
        help="also the worked solutions and the lab, in book order",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    device = common.device_of(args)
    pages = book_pages() if args.all_pages else CHAPTERS
    chapters = (
        pages[:1]
        if args.quick
        else [
            path
            for path in pages
            if args.chapters is None or path.name[:2] in args.chapters
        ]
    )
    profiles = ["smoke"] if args.quick else args.profiles
    passes = ["cold"] if args.quick else args.passes
    measurements = []
    for profile in profiles:
        with tempfile.TemporaryDirectory(prefix=f"attnlab-bench-{profile}-") as build:
            if args.build_dir is not None:
                build = str(args.build_dir / profile)
                if Path(build).exists() and any(Path(build).iterdir()):
                    raise SystemExit(
                        f"{build} is not empty: the first pass must start cold"
                    )
            env = {"ATTNLAB_PROFILE": profile, "ATTNLAB_BUILD_DIR": build}
            for cache in passes:
                for path in chapters:
                    name = page_name(path)
                    keep = (
                        args.build_dir / profile / "executed" / f"{name}-{cache}.ipynb"
                        if args.build_dir is not None
                        else None
                    )
                    models = Path(build) / "models"
                    before = set(models.glob("*.pt")) if models.is_dir() else set()
                    started = time.perf_counter()
                    try:
                        seconds, error = execute(path, env, keep), None
                    except Exception as failure:  # noqa: BLE001 -- recorded, then re-raised
                        if not args.keep_going:
                            raise
                        seconds = time.perf_counter() - started
                        error = ANSI.sub(
                            "", "".join(traceback.format_exception_only(failure))
                        )
                        error = [line for line in error.splitlines() if line.strip()][
                            -1
                        ]
                    measurement = {
                        "chapter": name,
                        "profile": profile,
                        "cache": cache,
                        "seconds": seconds,
                        "trained": trained_models(models, before),
                        "results": headline(Path(build), name)
                        if "/" not in name
                        else {},
                    }
                    if error is not None:
                        measurement["error"] = error
                    measurements.append(measurement)
                    print(
                        f"{name:<38} {profile:<6} {cache:<5} {seconds:8.1f} s"
                        + ("  FAILED" if error else ""),
                        flush=True,
                    )
                    written = common.write(
                        "chapters", args, device, measurements
                    )  # after each
    if written:
        print(f"written to {written}")


if __name__ == "__main__":
    sys.exit(main())
