"""The shared building blocks: embedding initialisation, feed-forward network, residual."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.layers import FeedForward, Residual, init_embedding


def test_embeddings_start_at_unit_scale_after_the_sqrt_d_scaling():
    torch.manual_seed(0)
    embedding = init_embedding(nn.Embedding(5000, 64, padding_idx=0))
    assert embedding.weight[0].eq(0).all()                          # padding stays zero
    scaled = embedding.weight[1:] * 64 ** 0.5
    assert scaled.std().item() == pytest.approx(1.0, abs=0.02)


def test_feed_forward_treats_every_position_alike():
    torch.manual_seed(0)
    ffn = FeedForward(8, 32).eval()
    x = torch.randn(2, 5, 8)
    for t in range(5):
        assert torch.allclose(ffn(x)[:, t], ffn(x[:, t]), atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_residual_adds_the_sublayer_and_normalises_where_it_should(norm_first):
    torch.manual_seed(0)
    residual = Residual(8, dropout=0.0, norm_first=norm_first)
    x = 3 * torch.randn(2, 4, 8) + 1
    double = lambda y: (2 * y, "extra")                             # noqa: E731
    out, extra = residual(x, double)
    assert extra == "extra"                                         # passed on untouched
    norm = residual.norm
    expected = x + 2 * norm(x) if norm_first else norm(x + 2 * x)
    assert torch.allclose(out, expected, atol=1e-5)
    if not norm_first:                                              # post-norm: unit scale
        assert torch.allclose(out.mean(-1), torch.zeros(2, 4), atol=1e-5)
