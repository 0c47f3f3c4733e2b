"""Additive attention and the Bahdanau model."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.nn import attention, masks
from attnlab.nn.attention import (
    AdditiveAttention,
    ScaledDotScore,
    ScoredAttention,
    masked_softmax,
)


def test_masked_softmax_sums_to_one_and_zeroes_padding():
    scores = torch.randn(3, 4, 6)
    mask = torch.tensor(
        [[True] * 6, [True, True, False, False, False, False], [True] + [False] * 5]
    )
    weights = masked_softmax(scores, mask[:, None, :])
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4))
    assert weights[1, :, 2:].eq(0).all() and weights[2, :, 1:].eq(0).all()
    assert torch.allclose(weights[2, :, 0], torch.ones(4))
    # Temperature flattens (> 1) or sharpens (< 1) without moving the argmax.
    flat, sharp = (
        masked_softmax(scores, None, temperature=5.0),
        masked_softmax(scores, None, temperature=0.2),
    )
    assert flat.max(-1).values.lt(sharp.max(-1).values).all()
    assert torch.equal(flat.argmax(-1), sharp.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        masked_softmax(scores, None, temperature=0)


def test_additive_attention_by_hand():
    """A case small enough to check on paper: W's are identities, v sums the features."""
    attention = AdditiveAttention(2, 2, 2)
    with torch.no_grad():
        attention.W_q.weight.copy_(torch.eye(2))
        attention.W_k.weight.copy_(torch.eye(2))
        attention.v.weight.copy_(torch.ones(1, 2))
    query = torch.tensor([[[0.0, 0.0]]])
    keys = torch.tensor([[[10.0, 10.0], [-10.0, -10.0], [0.0, 0.0]]])
    values = torch.tensor([[[1.0], [2.0], [3.0]]])
    context, weights = attention(
        query=query, key=keys, value=values, mask=torch.tensor([[[True, True, False]]])
    )  # (B, 1, S)
    # Scores are 2 tanh(10) ~ 2 and 2 tanh(-10) ~ -2; the third key is masked.
    expected = torch.softmax(
        torch.tensor(
            [2 * torch.tanh(torch.tensor(10.0)), 2 * torch.tanh(torch.tensor(-10.0))]
        ),
        0,
    )
    assert torch.allclose(weights[0, 0, :2], expected) and weights[0, 0, 2] == 0
    assert torch.allclose(context[0, 0], expected[0] * 1.0 + expected[1] * 2.0)


@pytest.mark.parametrize(
    "attention", [AdditiveAttention(4, 4, 3), ScoredAttention(ScaledDotScore())]
)
def test_a_mask_means_the_same_in_every_attention(attention):
    """(T, S), (B, 1, S) and (B, T, S) as in multi-head attention; a (B, S) padding mask is
    refused with a message that says what to give instead."""
    query, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    padding = masks.padding_mask(torch.tensor([5, 2]), 5)  # (B, 1, S)
    _, by_sentence = attention(query=query, key=keys, value=keys, mask=padding)
    _, expanded = attention(
        query=query, key=keys, value=keys, mask=padding.expand(2, 3, 5)
    )
    assert torch.equal(by_sentence, expanded) and by_sentence[1, :, 2:].eq(0).all()
    _, causal = attention(
        query=query, key=keys[:, :3], value=keys[:, :3], mask=masks.causal_mask(3)
    )
    assert causal.triu(1).eq(0).all()
    with pytest.raises(ValueError, match=r"give a padding mask as \(B, 1, S\)"):
        attention(query=query, key=keys, value=keys, mask=padding[:, 0])


def test_cached_key_projection_equals_the_naive_path():
    torch.manual_seed(0)
    attention = AdditiveAttention(5, 7, 4)
    keys, values = torch.randn(2, 6, 7), torch.randn(2, 6, 3)
    mask = masks.padding_mask(torch.tensor([6, 3]), 6)  # (B, 1, S)
    projected = attention.project_keys(keys)
    for _ in range(3):  # several decoding steps reuse the same projections
        query = torch.randn(2, 1, 5)
        naive = attention(query=query, key=keys, value=values, mask=mask)
        cached = attention(
            query=query, key=keys, value=values, mask=mask, projected_keys=projected
        )
        assert torch.allclose(naive[0], cached[0]) and torch.allclose(
            naive[1], cached[1]
        )


def test_matches_d2l_additive_attention(d2l):
    torch.manual_seed(0)
    ours = AdditiveAttention(5, 7, 8)
    theirs = d2l.AdditiveAttention(num_hiddens=8, dropout=0.0)
    queries, keys, values = (
        torch.randn(2, 3, 5),
        torch.randn(2, 6, 7),
        torch.randn(2, 6, 4),
    )
    valid_lens = torch.tensor([6, 4])
    theirs.eval()
    theirs(queries, keys, values, valid_lens)  # materialise its lazy layers
    with torch.no_grad():
        theirs.W_q.weight.copy_(ours.W_q.weight)
        theirs.W_k.weight.copy_(ours.W_k.weight)
        theirs.w_v.weight.copy_(ours.v.weight)
    reference = theirs(queries, keys, values, valid_lens)
    context, weights = ours(
        query=queries, key=keys, value=values, mask=masks.padding_mask(valid_lens, 6)
    )
    assert torch.allclose(context, reference, atol=1e-6)
    assert torch.allclose(weights, theirs.attention_weights, atol=1e-6)


@pytest.mark.parametrize(
    "score",
    [
        attention.DotScore(),
        attention.ScaledDotScore(),
        attention.GeneralScore(6, 6),
        attention.AdditiveScore(6, 6, 5),
    ],
    ids=lambda s: type(s).__name__,
)
def test_every_score_behind_one_interface(score):
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 3, 6), torch.randn(2, 5, 6), torch.randn(2, 5, 4)
    assert score(query, key).shape == (2, 3, 5)
    mask = masks.padding_mask(torch.tensor([5, 2]), 5)
    context, weights = attention.ScoredAttention(score)(
        query=query, key=key, value=value, mask=mask
    )
    assert context.shape == (2, 3, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert weights[1, :, 2:].eq(0).all()


def test_scores_by_hand():
    query, key = (
        torch.tensor([[[1.0, 2.0, 0.0, 0.0]]]),
        torch.tensor([[[3.0, 1.0, 0.0, 4.0]]]),
    )
    assert attention.DotScore()(query, key).item() == 5.0
    assert attention.ScaledDotScore()(query, key).item() == 2.5  # 5 / sqrt(4)
    general = attention.GeneralScore(4, 4)
    with torch.no_grad():
        general.W.weight.copy_(2 * torch.eye(4))
    assert general(query, key).item() == 10.0


def test_explicit_and_fused_paths_agree():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 3)
    for mask in (
        None,
        masks.padding_mask(torch.tensor([7, 3]), 7)[:, None],
        torch.ones(5, 7, dtype=torch.bool).tril(),
    ):
        explicit, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        fused = attention.fused_attention(q, k, v, mask)
        assert torch.allclose(explicit, fused, atol=1e-5)
    manual = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), -1) @ v
    assert torch.allclose(
        attention.scaled_dot_product_attention(q, k, v)[0], manual, atol=1e-6
    )


def test_the_two_ways_of_writing_each_attention_are_one_computation():
    """Chapter 3's ``AdditiveAttention`` and chapter 4's ``ScoredAttention`` with an
    ``AdditiveScore`` of the same weights; ``scaled_dot_product_attention`` and
    ``ScoredAttention(ScaledDotScore())``: the same contexts and weights."""
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 3, 6), torch.randn(2, 5, 8), torch.randn(2, 5, 4)
    mask = masks.padding_mask(torch.tensor([5, 2]), 5)
    additive = AdditiveAttention(6, 8, 7)
    scored = ScoredAttention(attention.AdditiveScore(6, 8, 7))
    scored.score.attention.load_state_dict(additive.state_dict())
    for a, b in zip(
        additive(query=query, key=key, value=value, mask=mask),
        scored(query=query, key=key, value=value, mask=mask),
    ):
        assert torch.equal(a, b)
    key = torch.randn(2, 5, 6)
    for a, b in zip(
        attention.scaled_dot_product_attention(query, key, value, mask),
        ScoredAttention(ScaledDotScore())(query=query, key=key, value=value, mask=mask),
    ):
        assert torch.allclose(a, b, atol=1e-6)
