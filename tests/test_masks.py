"""Masks: one polarity (True = may attend) and one meaning for each shape."""

from __future__ import annotations

import torch

from attnlab.nn import masks
from attnlab.nn.masks import length_mask


def test_masks_have_one_polarity():
    assert masks.causal_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    assert masks.padding_mask(torch.tensor([1, 3]), 3).tolist() == [
        [[True, False, False]],
        [[True, True, True]],
    ]


def test_length_mask():
    assert length_mask(torch.tensor([0, 2]), 3).tolist() == [
        [False] * 3,
        [True, True, False],
    ]
