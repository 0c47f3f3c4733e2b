"""Positional encodings: the sinusoidal one against d2l's, the learned one."""

from __future__ import annotations

import pytest
import torch

from attnlab.nn.multihead import MultiHeadAttention
from attnlab.nn.positions import LearnedPositionalEncoding, SinusoidalPositionalEncoding


def test_sinusoidal_encoding_matches_d2l(d2l):
    ours = SinusoidalPositionalEncoding(32, max_len=100)
    theirs = d2l.PositionalEncoding(32, dropout=0.0, max_len=100)
    theirs.eval()
    x = torch.randn(2, 60, 32)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert torch.allclose(ours(x[:, 10:], offset=10), theirs(x)[:, 10:], atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        ours(torch.randn(1, 101, 32))


def test_learned_encoding_and_bad_arguments():
    learned = LearnedPositionalEncoding(8, max_len=10)
    x = torch.zeros(2, 4, 8)
    assert torch.equal(learned(x)[0], learned.embedding.weight[:4])
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    layer = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="padding mask as"):
        layer(
            query=torch.randn(2, 3, 8),
            key=torch.randn(2, 4, 8),
            value=torch.randn(2, 4, 8),
            mask=torch.ones(2, 4, dtype=torch.bool),
        )
    with pytest.raises(TypeError, match="boolean"):
        layer(
            query=torch.randn(1, 3, 8),
            key=torch.randn(1, 3, 8),
            value=torch.randn(1, 3, 8),
            mask=torch.ones(3, 3),
        )
