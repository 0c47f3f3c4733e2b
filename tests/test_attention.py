"""Additive attention and the Bahdanau model."""

from __future__ import annotations

import pytest
import torch

from conftest import decode_stepwise, overfit_one_batch

from attnlab import bahdanau, decoding, runtime
from attnlab.attention import AdditiveAttention, masked_softmax


def test_masked_softmax_sums_to_one_and_zeroes_padding():
    scores = torch.randn(3, 4, 6)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False], [True] + [False] * 5])
    weights = masked_softmax(scores, mask[:, None, :])
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4))
    assert weights[1, :, 2:].eq(0).all() and weights[2, :, 1:].eq(0).all()
    assert torch.allclose(weights[2, :, 0], torch.ones(4))
    # Temperature flattens (> 1) or sharpens (< 1) without moving the argmax.
    flat, sharp = masked_softmax(scores, None, temperature=5.0), masked_softmax(scores, None, temperature=0.2)
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
    context, weights = attention(query=query, key=keys, value=values,
                                 mask=torch.tensor([[True, True, False]]))
    # Scores are 2 tanh(10) ~ 2 and 2 tanh(-10) ~ -2; the third key is masked.
    expected = torch.softmax(torch.tensor([2 * torch.tanh(torch.tensor(10.0)),
                                           2 * torch.tanh(torch.tensor(-10.0))]), 0)
    assert torch.allclose(weights[0, 0, :2], expected) and weights[0, 0, 2] == 0
    assert torch.allclose(context[0, 0], expected[0] * 1.0 + expected[1] * 2.0)


def test_cached_key_projection_equals_the_naive_path():
    torch.manual_seed(0)
    attention = AdditiveAttention(5, 7, 4)
    keys, values = torch.randn(2, 6, 7), torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    projected = attention.project_keys(keys)
    for _ in range(3):  # several decoding steps reuse the same projections
        query = torch.randn(2, 1, 5)
        naive = attention(query=query, key=keys, value=values, mask=mask)
        cached = attention(query=query, key=keys, value=values, mask=mask, projected_keys=projected)
        assert torch.allclose(naive[0], cached[0]) and torch.allclose(naive[1], cached[1])


def test_matches_d2l_additive_attention(d2l):
    torch.manual_seed(0)
    ours = AdditiveAttention(5, 7, 8)
    theirs = d2l.AdditiveAttention(num_hiddens=8, dropout=0.0)
    queries, keys, values = torch.randn(2, 3, 5), torch.randn(2, 6, 7), torch.randn(2, 6, 4)
    valid_lens = torch.tensor([6, 4])
    theirs.eval()
    theirs(queries, keys, values, valid_lens)            # materialise its lazy layers
    with torch.no_grad():
        theirs.W_q.weight.copy_(ours.W_q.weight)
        theirs.W_k.weight.copy_(ours.W_k.weight)
        theirs.w_v.weight.copy_(ours.v.weight)
    reference = theirs(queries, keys, values, valid_lens)
    mask = torch.arange(6)[None, :] < valid_lens[:, None]
    context, weights = ours(query=queries, key=keys, value=values, mask=mask)
    assert torch.allclose(context, reference, atol=1e-6)
    assert torch.allclose(weights, theirs.attention_weights, atol=1e-6)


def _model(src_vocab=20, tgt_vocab=15, **kwargs):
    runtime.seed_everything(0)
    config = dict(embed_size=8, hidden_size=16, attention_size=8, proj_size=8, dropout=0.0)
    config.update(kwargs)
    return bahdanau.AttentionEncoderDecoder(src_vocab, tgt_vocab, **config)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_model_shapes_weights_and_padding(bidirectional):
    model = _model(bidirectional=bidirectional)
    src = torch.randint(4, 20, (3, 7))
    src_len = torch.tensor([7, 4, 2])
    logits, alpha = model(src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (3, 5)))
    assert logits.shape == (3, 5, 15) and alpha.shape == (3, 5, 7)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert alpha[1, :, 4:].eq(0).all() and alpha[2, :, 2:].eq(0).all()
    # A sentence's translation scores do not depend on the padding around it.
    tgt = torch.randint(4, 15, (1, 5))
    alone, _ = model(src=src[2:, :2], src_len=src_len[2:], tgt_in=tgt)
    padded, _ = model(src=src[2:], src_len=src_len[2:], tgt_in=tgt)
    assert torch.allclose(alone, padded, atol=1e-5)
    assert not hasattr(model.decoder, "attention_weights")  # returned, never kept on self


def test_step_by_step_equals_teacher_forcing():
    model = _model()
    src, src_len = torch.randint(4, 20, (2, 6)), torch.tensor([6, 3])
    tgt_in = torch.randint(4, 15, (2, 5))
    full_logits, full_alpha = model(src=src, src_len=src_len, tgt_in=tgt_in)
    logits, alphas, _ = decode_stepwise(model, src, src_len, tgt_in)
    assert torch.allclose(logits, full_logits, atol=1e-5)
    assert torch.allclose(alphas, full_alpha, atol=1e-6)


def test_greedy_decoding_returns_attention():
    model = _model()
    out = decoding.greedy_decode(model, torch.randint(4, 20, (2, 6)), torch.tensor([6, 3]),
                                 bos_id=1, eos_id=2, max_len=4)
    assert out.attention.shape == (2, out.tokens.shape[1], 6)
    assert out.attention[1, :, 3:].eq(0).all()


def test_overfits_one_batch():
    losses = overfit_one_batch(lambda src, tgt: _model(src, tgt, embed_size=32, hidden_size=64,
                                                       attention_size=32, proj_size=32),
                               lr=1e-2, steps=200)
    assert losses[-1] < 0.05 < losses[0]
