"""A chapter's setup cell and show_source."""

from __future__ import annotations

import random
import re

import torch

from attnlab.nn.layers import FeedForward
from attnlab.view import notebook


def test_setup_seeds_and_says_which_profile_ran(monkeypatch):
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    monkeypatch.setenv("ATTNLAB_DEVICE", "cpu")
    run = notebook.setup(seed=3)
    first = (torch.rand(2), random.random())
    run = notebook.setup(seed=3)
    assert torch.equal(torch.rand(2), first[0]) and random.random() == first[1]
    assert run.profile.is_smoke and run.device.type == "cpu" and run.seed == 3
    assert (
        "Smoke run" in run._repr_html_()
        and "not</em> the course's results" in run._repr_html_()
    )
    monkeypatch.setenv("ATTNLAB_PROFILE", "full")
    banner = notebook.setup(seed=0)._repr_html_()
    text = re.sub(r"<[^>]+>", "", banner)
    assert "Profile full · device cpu · seed 0" in text
    # Its own colours, text and code alike, readable on its light background in a
    # dark page too.
    assert "color:#1a1a1a" in banner and banner.count("<code style='color:") == 2


def test_show_source_shows_the_library_code():
    code = notebook.show_source(FeedForward)
    assert "class FeedForward(nn.Module):" in code.data and code._repr_html_()
