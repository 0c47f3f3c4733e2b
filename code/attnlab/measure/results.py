"""Each chapter's headline numbers, kept as JSON so later chapters and benchmarks can
read them.

One file a chapter in ``<build dir>/results/`` (see
:func:`attnlab.core.runtime.build_dir`).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

import torch

from attnlab import __version__
from attnlab.core.files import atomic_write_text
from attnlab.core.runtime import build_dir, get_profile


def results_dir() -> Path:
    return build_dir() / "results"


def _plain(value):
    """Make tensors, NumPy scalars and paths JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(
        f"cannot record a {type(value).__name__} as a result; convert it first"
    )


def record_results(chapter: str, results: dict) -> Path:
    """Write ``results`` for ``chapter`` (e.g. ``"02_encoder_decoder"``), with the
    profile, time, versions and machine added; replaces the chapter's earlier record."""
    if not chapter or "/" in chapter or chapter.startswith("."):
        raise ValueError(f"chapter name {chapter!r} must be a plain file name")
    record = {
        "chapter": chapter,
        "profile": get_profile().name,
        "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "attnlab": __version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "results": results,
    }
    path = results_dir() / f"{chapter}.json"
    atomic_write_text(path, json.dumps(record, indent=2, default=_plain) + "\n")
    return path


def load_results(chapter: str) -> dict:
    """The record :func:`record_results` wrote for ``chapter``."""
    path = results_dir() / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(
            "no results recorded for chapter "
            f"{chapter!r} in {path.parent}; run that "
            "chapter first"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def available_results() -> list[str]:
    """The chapters that have recorded results, in name order."""
    folder = results_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
