"""Bahdanau attention: the model's shapes, weights, padding and step-by-step decoding."""

from __future__ import annotations

import pytest
import torch
from helpers import overfit_one_batch

from attnlab.core import runtime
from attnlab.infer import decoding
from attnlab.models import bahdanau


def _model(src_vocab=20, tgt_vocab=15, **kwargs):
    runtime.seed_everything(0)
    config = dict(
        embed_size=8, hidden_size=16, attention_size=8, proj_size=8, dropout=0.0
    )
    config.update(kwargs)
    return bahdanau.AttentionEncoderDecoder(src_vocab, tgt_vocab, **config)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_model_shapes_weights_and_padding(bidirectional):
    model = _model(bidirectional=bidirectional)
    src = torch.randint(4, 20, (3, 7))
    src_len = torch.tensor([7, 4, 2])
    out = model(src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (3, 5)))
    logits, alpha = out.logits, out.attention
    assert logits.shape == (3, 5, 15) and alpha.shape == (3, 5, 7)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert alpha[1, :, 4:].eq(0).all() and alpha[2, :, 2:].eq(0).all()
    # A sentence's translation scores do not depend on the padding around it.
    tgt = torch.randint(4, 15, (1, 5))
    alone = model(src=src[2:, :2], src_len=src_len[2:], tgt_in=tgt).logits
    padded = model(src=src[2:], src_len=src_len[2:], tgt_in=tgt).logits
    assert torch.allclose(alone, padded, atol=1e-5)
    assert not hasattr(
        model.decoder, "attention_weights"
    )  # returned, never kept on self


def test_greedy_decoding_returns_attention():
    model = _model()
    out = decoding.greedy_decode(
        model,
        torch.randint(4, 20, (2, 6)),
        torch.tensor([6, 3]),
        bos_id=1,
        eos_id=2,
        max_len=4,
    )
    assert out.attention.shape == (2, out.tokens.shape[1], 6)
    assert out.attention[1, :, 3:].eq(0).all()


def test_overfits_one_batch():
    losses = overfit_one_batch(
        lambda src, tgt: _model(
            src, tgt, embed_size=32, hidden_size=64, attention_size=32, proj_size=32
        ),
        lr=1e-2,
        steps=200,
    )
    assert losses[-1] < 0.05 < losses[0]
