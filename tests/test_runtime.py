"""Profiles and the choice of device."""

from __future__ import annotations

import pytest
import torch

from attnlab.core import runtime


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
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert runtime.choose_device().type == expected
    monkeypatch.setenv("ATTNLAB_DEVICE", "cpu")
    assert runtime.choose_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(runtime.SettingError, match="CUDA is not available"):
            runtime.choose_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "GPU0", "cuda:x"])
def test_an_unknown_device_says_which_to_use(monkeypatch, name):
    monkeypatch.setenv("ATTNLAB_DEVICE", name)
    with pytest.raises(
        runtime.SettingError, match=f"unknown device '{name}'.*use cpu, cuda"
    ):
        runtime.choose_device()


def test_an_unwritable_build_folder_stops_a_model_from_being_cached(
    tmp_path, monkeypatch
):
    from helpers import TinySeq2Seq

    from attnlab.train import checkpoints

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / "a-file" / "build"))
    trained = []
    with pytest.raises(
        runtime.SettingError, match="cannot write in .*ATTNLAB_BUILD_DIR"
    ):
        checkpoints.train_or_load(
            "tiny",
            {},
            build=lambda: TinySeq2Seq(5, 5),
            train=lambda model, resume: trained.append(1) or {},
        )
    assert trained == [], "the folder is checked before any training is spent"
