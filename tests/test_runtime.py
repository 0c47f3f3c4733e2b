"""Profiles and the choice of device."""

from __future__ import annotations

import pytest
import torch

from attnlab import runtime


def test_profiles(monkeypatch):
    assert runtime.get_profile().name == "full"
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    profile = runtime.get_profile()
    assert profile.is_smoke and profile.pick(smoke=1, full=2) == 1
    monkeypatch.setenv("ATTNLAB_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        runtime.get_profile()


def test_device_choice(monkeypatch):
    assert runtime.choose_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert runtime.choose_device().type == expected
    monkeypatch.setenv("ATTNLAB_DEVICE", "cpu")
    assert runtime.choose_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            runtime.choose_device("cuda")
