"""Scoring functions, scaled dot-product attention, multi-head attention, positions and masks."""

from __future__ import annotations

import pytest
import torch

from attnlab.nn import masks
from attnlab.nn.multihead import MultiHeadAttention
from attnlab.nn.positions import SinusoidalPositionalEncoding


def _copy_into_torch(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention):
    with torch.no_grad():
        theirs.in_proj_weight.copy_(
            torch.cat([ours.W_q.weight, ours.W_k.weight, ours.W_v.weight])
        )
        theirs.in_proj_bias.copy_(
            torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias])
        )
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
    mask = masks.padding_mask(lengths, 7)
    out, weights = ours(
        query=query, key=memory, value=memory, mask=mask, need_weights=True
    )
    # PyTorch's key_padding_mask has the other polarity: True = ignore.
    ref, ref_weights = theirs(
        query, memory, memory, key_padding_mask=~mask[:, 0], average_attn_weights=False
    )
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(
        weights, ref_weights, atol=1e-6
    )
    assert weights.shape == (3, 4, 5, 7) and weights[2, :, :, 1:].eq(0).all()
    causal = masks.causal_mask(5)
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
    theirs(query, memory, memory, valid_lens)  # materialise its lazy layers
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(theirs, name).weight.copy_(getattr(ours, name).weight)
    reference = theirs(query, memory, memory, valid_lens)
    out, _ = ours(
        query=query, key=memory, value=memory, mask=masks.padding_mask(valid_lens, 6)
    )
    assert torch.allclose(out, reference, atol=1e-5)


def test_causal_self_attention_never_looks_ahead():
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 6, 8, requires_grad=True)
    out, _ = layer(query=x, key=x, value=x, mask=masks.causal_mask(6))
    for t in range(6):
        (grad,) = torch.autograd.grad(out[0, t].sum(), x, retain_graph=True)
        assert grad[0, t + 1 :].abs().sum() == 0  # nothing after t reaches output t
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


@pytest.mark.parametrize("fused", [True, False])
def test_with_dropout_the_output_is_made_from_the_weights_returned(fused):
    # Training with dropout: the weights handed back are the ones that weighed the
    # values (after dropout, as torch.nn.MultiheadAttention returns them), and the
    # values are weighed once.
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 4, dropout=0.5, fused=fused).train()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    out, weights = layer(query=x, key=memory, value=memory, need_weights=True)
    values = layer.split_heads(layer.W_v(memory))  # (B, h, S, d_k)
    heads = (weights @ values).transpose(1, 2).reshape(2, 5, 16)
    assert torch.allclose(out, layer.W_o(heads), atol=1e-6)
    dropped = weights.eq(0).float().mean().item()
    assert 0.3 < dropped < 0.7  # dropout did act on them
    kept = weights[weights > 0]
    assert kept.min() >= 0 and weights.sum(-1).max() > 1  # rescaled by 1 / (1 - p)


def test_causal_self_attention_uses_the_kernel_flag_and_equals_the_mask(monkeypatch):
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 4, dropout=0.1).train()
    x = torch.randn(3, 6, 16)
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    outputs = []
    for kwargs in (dict(causal=True), dict(mask=masks.causal_mask(6))):
        torch.manual_seed(1)  # the same dropout
        out, _, _ = layer.self_attend(x, **kwargs)
        outputs.append(out)
    assert calls[0]["is_causal"] and calls[0]["attn_mask"] is None
    assert not calls[1]["is_causal"] and calls[1]["attn_mask"] is not None
    assert torch.equal(*outputs)
    # The explicit path (weights asked for) builds the causal mask itself.
    layer.eval()
    out, weights, _ = layer.self_attend(x, causal=True, need_weights=True)
    assert weights[..., ~masks.causal_mask(6)].eq(0).all()
    assert torch.allclose(out, layer.self_attend(x, causal=True)[0], atol=1e-6)


def test_causal_attention_refuses_a_mask_or_other_positions():
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="takes no mask"):
        layer.self_attend(x, causal=True, mask=masks.causal_mask(4))
    q = layer.split_heads(x)
    with pytest.raises(ValueError, match="T=4, S=3"):
        layer.attend(q, q[:, :, :3], q[:, :, :3], causal=True)
