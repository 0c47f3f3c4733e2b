"""The Transformer: incremental decoding, causality, beam search, and d2l's encoder block."""

from __future__ import annotations

import pytest
import torch
from helpers import decode_stepwise, overfit_one_batch

from attnlab.core import runtime
from attnlab.infer import decoding
from attnlab.models.transformer import Transformer


def _model(**kwargs):
    runtime.seed_everything(0)
    config = dict(
        d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0, max_len=32
    )
    config.update(kwargs)
    return Transformer(20, 15, **config).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_incremental_decoding_equals_the_full_forward_pass(norm_first):
    model = _model(norm_first=norm_first)
    src, src_len = torch.randint(4, 20, (3, 6)), torch.tensor([6, 4, 2])
    tgt_in = torch.randint(4, 15, (3, 5))
    full = model(src=src, src_len=src_len, tgt_in=tgt_in, need_weights=True)
    logits, cross, state = decode_stepwise(model, src, src_len, tgt_in)
    assert cross.shape == (3, 5, 6) and cross[2, :, 2:].eq(0).all()
    assert torch.allclose(logits, full.logits, atol=1e-5)
    assert torch.allclose(cross, full.attention, atol=1e-6)
    assert state.step == 5 and state.layers[0].key.shape == (
        3,
        2,
        5,
        8,
    )  # (B, h, t, d_k)
    # Beam search follows hypotheses by selecting rows of the memory and of every cache.
    picked = state.select(torch.tensor([1, 1]))
    assert torch.equal(picked.layers[1].value, state.layers[1].value[[1, 1]])


def test_weights_of_every_layer_and_head():
    model = _model()
    src, src_len = torch.randint(4, 20, (2, 6)), torch.tensor([6, 3])
    out = model(
        src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (2, 4)), need_weights=True
    )
    layers = out.layers
    assert out.logits.shape == (2, 4, 15) and len(layers.encoder) == 2
    assert layers.encoder[0].shape == (2, 2, 6, 6)
    assert layers.decoder_self[1].shape == (2, 2, 4, 4)
    assert layers.cross[1][1, :, :, 3:].eq(0).all()
    assert layers.decoder_self[0][0].triu(1).eq(0).all()  # nothing above the diagonal
    assert torch.equal(out.attention, layers.cross[-1].mean(1))
    assert (
        model(
            src=src, src_len=src_len, tgt_in=torch.ones(2, 4, dtype=torch.long)
        ).layers
        is None
    )


def test_beam_of_one_is_greedy_and_tied_embeddings():
    model = _model(tie_embeddings=True)
    assert model.out.weight is model.tgt_embedding.weight
    src, src_len = torch.randint(4, 20, (4, 6)), torch.tensor([6, 5, 3, 2])
    greedy = decoding.greedy_decode(model, src, src_len, bos_id=1, eos_id=2, max_len=7)
    beam = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=7, beam_size=1
    )
    for row, n, hyp in zip(greedy.tokens.tolist(), greedy.lengths.tolist(), beam):
        assert hyp == row[:n]
    wide = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=7, beam_size=3
    )
    assert len(wide) == 4


def test_overfits_one_batch():
    losses = overfit_one_batch(
        lambda src, tgt: Transformer(
            src,
            tgt,
            d_model=32,
            num_heads=4,
            num_layers=1,
            d_ff=64,
            dropout=0.0,
            max_len=16,
        ),
        lr=3e-3,
        steps=250,
    )
    assert losses[-1] < 0.05 < losses[0]


def test_right_padding_of_the_target_needs_no_mask():
    """The decoder's self-attention has only the causal mask: with the target padded on
    the right, the real words' logits are those of the unpadded target."""
    torch.manual_seed(0)
    model = Transformer(
        11, 13, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0
    ).eval()
    src, src_len = torch.randint(4, 11, (1, 5)), torch.tensor([5])
    tgt = torch.randint(4, 13, (1, 4))
    padded = torch.cat([tgt, torch.zeros(1, 3, dtype=torch.long)], dim=1)  # <pad> = 0
    alone = model(src=src, src_len=src_len, tgt_in=tgt).logits
    with_padding = model(src=src, src_len=src_len, tgt_in=padded).logits[:, :4]
    assert torch.allclose(alone, with_padding, atol=1e-5)
