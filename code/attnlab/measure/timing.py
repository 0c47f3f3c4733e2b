"""Timing on any device: the device is synchronised before and after each timed call,
so a GPU's queued work is counted where it is done, not where it was launched.

One helper for every measurement of the course: the benchmarks' races, the chapters'
step times by length, decoding speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def synchronize(device: torch.device | str) -> None:
    """Wait until ``device`` has finished what was queued on it (nothing to wait for on
    a CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], T], *, device: torch.device | str) -> tuple[T, float]:
    """Call ``fn`` once: its result and the seconds it took on ``device``."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def race(
    contenders: dict[str, Callable[[], object]],
    *,
    device: torch.device | str,
    repeats: int,
    warmup: int = 2,
) -> dict[str, dict]:
    """Time each callable ``repeats`` times, interleaved (so that a machine slowing down
    slows every contender alike), after ``warmup`` untimed calls each. Returns
    ``{name: {"median": s, "spread": s, "runs": n}}``; the spread is max - min."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn, device=device)[1])
    return {
        name: {
            "median": statistics.median(ts),
            "spread": max(ts) - min(ts),
            "runs": len(ts),
        }
        for name, ts in times.items()
    }
