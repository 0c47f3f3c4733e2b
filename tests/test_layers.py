"""The shared building blocks: embedding initialisation, feed-forward network, residual."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.nn.layers import Dropout, FeedForward, Residual, init_embedding


def test_embeddings_start_at_unit_scale_after_the_sqrt_d_scaling():
    torch.manual_seed(0)
    embedding = init_embedding(nn.Embedding(5000, 64, padding_idx=0))
    assert embedding.weight[0].eq(0).all()  # padding stays zero
    scaled = embedding.weight[1:] * 64**0.5
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
    out = residual(x, 2 * residual.sublayer_input(x))  # the sublayer doubles its input
    norm = residual.norm
    expected = x + 2 * norm(x) if norm_first else norm(x + 2 * x)
    assert torch.allclose(out, expected, atol=1e-5)
    if not norm_first:  # post-norm: unit scale
        assert torch.allclose(out.mean(-1), torch.zeros(2, 4), atol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_drops_at_its_rate_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.rand(64, 50, 100) + 0.5
    dropout = Dropout(p)
    torch.manual_seed(1)
    y = dropout(x)
    kept = y != 0
    n = x.numel()
    # the kept share is 1 - p within 4 standard deviations of a binomial
    assert abs(kept.float().mean().item() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5
    assert torch.allclose(y[kept], x[kept] / (1 - p), rtol=1e-4)  # the scale
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.01)
    # every one of the 4 x 16 bits drawn at a time counts: no position is spared
    by_position = kept.flatten()[: n // 4 * 4].view(-1, 4).float().mean(dim=0)
    assert torch.allclose(by_position, torch.full((4,), 1 - p), atol=0.01)
    # the same seed, the same mask; gradients flow through the kept elements only
    torch.manual_seed(1)
    leaf = x.clone().requires_grad_()
    again = dropout(leaf)
    assert torch.equal(again, y)
    again.sum().backward()
    assert torch.equal(leaf.grad != 0, kept)


def test_dropout_is_nn_dropout_outside_training_and_at_the_extremes():
    x = torch.randn(8, 16)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert Dropout(1.0)(x).eq(0).all()
    assert isinstance(Dropout(0.1), nn.Dropout)  # found where nn.Dropout is looked for
    meta = torch.empty(4, 4, device="meta")  # not a CPU: PyTorch's own dropout
    assert Dropout(0.5)(meta).device.type == "meta"
