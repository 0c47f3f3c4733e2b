"""Timing on any device: synchronised around each call, contenders interleaved."""

from __future__ import annotations

import time

import pytest
import torch

from attnlab.measure import timing


def test_timed_returns_the_result_and_the_time_it_took():
    result, seconds = timing.timed(lambda: time.sleep(0.02) or 42, device="cpu")
    assert result == 42 and 0.02 <= seconds < 1.0


def test_a_race_interleaves_the_contenders_and_orders_them_by_their_cost():
    calls = []

    def contender(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)

        return run

    times = timing.race(
        {"slow": contender("slow", 0.02), "fast": contender("fast", 0.0)},
        device="cpu",
        repeats=3,
        warmup=1,
    )
    assert calls == ["slow"] + ["fast"] + ["slow", "fast"] * 3  # warm-up, then turns
    assert times["slow"]["runs"] == times["fast"]["runs"] == 3
    assert times["slow"]["median"] >= 0.02 > times["fast"]["median"]
    assert times["slow"]["spread"] >= 0


def test_every_timed_call_is_synchronised_on_its_device(monkeypatch):
    waited = []
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: waited.append(device)
    )
    timing.race({"a": lambda: None}, device="cuda", repeats=2, warmup=0)
    assert len(waited) == 4  # before and after each call
    timing.race({"a": lambda: None}, device="cpu", repeats=2, warmup=0)
    assert len(waited) == 4  # nothing to wait for on a CPU


def test_a_race_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats must be positive"):
        timing.race({"a": lambda: None}, device="cpu", repeats=0)
