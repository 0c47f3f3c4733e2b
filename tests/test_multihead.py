"""Scoring functions, scaled dot-product attention, multi-head attention, positions and masks."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab import attention
from attnlab.multihead import (LearnedPositionalEncoding, MultiHeadAttention,
                               SinusoidalPositionalEncoding)


@pytest.mark.parametrize("score", [
    attention.DotScore(), attention.ScaledDotScore(), attention.GeneralScore(6, 6),
    attention.AdditiveScore(6, 6, 5)], ids=lambda s: type(s).__name__)
def test_every_score_behind_one_interface(score):
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 3, 6), torch.randn(2, 5, 6), torch.randn(2, 5, 4)
    assert score(query, key).shape == (2, 3, 5)
    mask = attention.padding_mask(torch.tensor([5, 2]), 5)
    context, weights = attention.ScoredAttention(score)(query=query, key=key, value=value, mask=mask)
    assert context.shape == (2, 3, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert weights[1, :, 2:].eq(0).all()


def test_scores_by_hand():
    query, key = torch.tensor([[[1.0, 2.0, 0.0, 0.0]]]), torch.tensor([[[3.0, 1.0, 0.0, 4.0]]])
    assert attention.DotScore()(query, key).item() == 5.0
    assert attention.ScaledDotScore()(query, key).item() == 2.5      # 5 / sqrt(4)
    general = attention.GeneralScore(4, 4)
    with torch.no_grad():
        general.W.weight.copy_(2 * torch.eye(4))
    assert general(query, key).item() == 10.0


def test_explicit_and_fused_paths_agree():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 3)
    for mask in (None, attention.padding_mask(torch.tensor([7, 3]), 7)[:, None],
                 torch.ones(5, 7, dtype=torch.bool).tril()):
        explicit, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        fused = attention.fused_attention(q, k, v, mask)
        assert torch.allclose(explicit, fused, atol=1e-5)
    manual = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), -1) @ v
    assert torch.allclose(attention.scaled_dot_product_attention(q, k, v)[0], manual, atol=1e-6)


def test_masks_have_one_polarity():
    assert attention.causal_mask(3).tolist() == [[True, False, False], [True, True, False],
                                                 [True, True, True]]
    assert attention.padding_mask(torch.tensor([1, 3]), 3).tolist() == [
        [[True, False, False]], [[True, True, True]]]


def _copy_into_torch(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention):
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.W_q.weight, ours.W_k.weight, ours.W_v.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias]))
        theirs.out_proj.weight.copy_(ours.W_o.weight)
        theirs.out_proj.bias.copy_(ours.W_o.bias)


@pytest.mark.parametrize("fused", [True, False])
def test_matches_torch_multihead_attention(fused):
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4, fused=fused)
    theirs = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    _copy_into_torch(ours, theirs)
    query, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    lengths = torch.tensor([7, 4, 1])
    mask = attention.padding_mask(lengths, 7)
    out, weights = ours(query=query, key=memory, value=memory, mask=mask, need_weights=True)
    # PyTorch's key_padding_mask has the other polarity: True = ignore.
    ref, ref_weights = theirs(query, memory, memory, key_padding_mask=~mask[:, 0],
                              average_attn_weights=False)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(weights, ref_weights, atol=1e-6)
    assert weights.shape == (3, 4, 5, 7) and weights[2, :, :, 1:].eq(0).all()
    causal = attention.causal_mask(5)
    out, _ = ours(query=query, key=query, value=query, mask=causal)
    ref, _ = theirs(query, query, query, attn_mask=~causal)
    assert torch.allclose(out, ref, atol=1e-5)


def test_matches_d2l_multihead_attention(d2l):
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4, bias=False)
    theirs = d2l.MultiHeadAttention(16, 4, dropout=0.0, bias=False)
    query, memory = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    valid_lens = torch.tensor([6, 3])
    theirs.eval()
    theirs(query, memory, memory, valid_lens)          # materialise its lazy layers
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(theirs, name).weight.copy_(getattr(ours, name).weight)
    reference = theirs(query, memory, memory, valid_lens)
    out, _ = ours(query=query, key=memory, value=memory, mask=attention.padding_mask(valid_lens, 6))
    assert torch.allclose(out, reference, atol=1e-5)


def test_causal_self_attention_never_looks_ahead():
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 6, 8, requires_grad=True)
    out, _ = layer(query=x, key=x, value=x, mask=attention.causal_mask(6))
    for t in range(6):
        (grad,) = torch.autograd.grad(out[0, t].sum(), x, retain_graph=True)
        assert grad[0, t + 1:].abs().sum() == 0    # nothing after t reaches output t
        assert grad[0, : t + 1].abs().sum() > 0


def test_self_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 5, 8)
    order = torch.tensor([3, 0, 4, 1, 2])
    out, _ = layer(query=x, key=x, value=x)
    permuted, _ = layer(query=x[:, order], key=x[:, order], value=x[:, order])
    assert torch.allclose(permuted, out[:, order], atol=1e-6)
    # With positions added, the same permutation changes the result.
    encode = SinusoidalPositionalEncoding(8)
    y = encode(x)
    with_positions, _ = layer(query=y, key=y, value=y)
    y_perm = encode(x[:, order])
    permuted_positions, _ = layer(query=y_perm, key=y_perm, value=y_perm)
    assert not torch.allclose(permuted_positions, with_positions[:, order], atol=1e-3)


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
        layer(query=torch.randn(2, 3, 8), key=torch.randn(2, 4, 8), value=torch.randn(2, 4, 8),
              mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        layer(query=torch.randn(1, 3, 8), key=torch.randn(1, 3, 8), value=torch.randn(1, 3, 8),
              mask=torch.ones(3, 3))
