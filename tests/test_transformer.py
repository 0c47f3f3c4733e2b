"""The Transformer: incremental decoding, causality, beam search, and d2l's encoder block."""

from __future__ import annotations

import pytest
import torch

from conftest import decode_stepwise, overfit_one_batch

from attnlab import decoding, runtime
from attnlab.attention import padding_mask
from attnlab.transformer import EncoderLayer, Transformer


def _model(**kwargs):
    runtime.seed_everything(0)
    config = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0, max_len=32)
    config.update(kwargs)
    return Transformer(20, 15, **config).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_incremental_decoding_equals_the_full_forward_pass(norm_first):
    model = _model(norm_first=norm_first)
    src, src_len = torch.randint(4, 20, (3, 6)), torch.tensor([6, 4, 2])
    tgt_in = torch.randint(4, 15, (3, 5))
    full = model(src=src, src_len=src_len, tgt_in=tgt_in)
    logits, cross, state = decode_stepwise(model, src, src_len, tgt_in)
    assert cross.shape == (3, 5, 6) and cross[2, :, 2:].eq(0).all()
    assert torch.allclose(logits, full, atol=1e-5)
    assert state["caches"][0]["k"].shape == (3, 2, 5, 8)   # (B, H, t, d_k): the cache grew


def test_decoder_is_causal():
    model = _model()
    src, src_len = torch.randint(4, 20, (1, 5)), torch.tensor([5])
    encoded = model.encode(src, src_len)
    embedded = model.tgt_embedding(torch.randint(4, 15, (1, 6))).detach().requires_grad_()
    original = model.tgt_embedding.forward
    model.tgt_embedding.forward = lambda ids: embedded
    try:
        logits, _ = model._decode(torch.zeros(1, 6, dtype=torch.long), encoded)
        for t in range(6):
            (grad,) = torch.autograd.grad(logits[0, t].sum(), embedded, retain_graph=True)
            assert grad[0, t + 1:].abs().sum() == 0 and grad[0, : t + 1].abs().sum() > 0
    finally:
        model.tgt_embedding.forward = original


def test_weights_of_every_layer_and_head():
    model = _model()
    src, src_len = torch.randint(4, 20, (2, 6)), torch.tensor([6, 3])
    logits, weights = model(src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (2, 4)),
                            need_weights=True)
    assert logits.shape == (2, 4, 15) and len(weights["encoder"]) == 2
    assert weights["encoder"][0].shape == (2, 2, 6, 6)
    assert weights["decoder"][1]["self"].shape == (2, 2, 4, 4)
    assert weights["decoder"][1]["cross"][1, :, :, 3:].eq(0).all()
    assert weights["decoder"][0]["self"][0].triu(1).eq(0).all()   # nothing above the diagonal


def test_beam_of_one_is_greedy_and_tied_embeddings():
    model = _model(tie_embeddings=True)
    assert model.out.weight is model.tgt_embedding.weight
    src, src_len = torch.randint(4, 20, (4, 6)), torch.tensor([6, 5, 3, 2])
    greedy = decoding.greedy_decode(model, src, src_len, bos_id=1, eos_id=2, max_len=7)
    beam = decoding.beam_search(model, src, src_len, bos_id=1, eos_id=2, max_len=7, beam_size=1)
    for row, n, hyp in zip(greedy.tokens.tolist(), greedy.lengths.tolist(), beam):
        assert hyp == row[:n]
    wide = decoding.beam_search(model, src, src_len, bos_id=1, eos_id=2, max_len=7, beam_size=3)
    assert len(wide) == 4


def test_overfits_one_batch():
    losses = overfit_one_batch(lambda src, tgt: Transformer(src, tgt, d_model=32, num_heads=4,
                                                            num_layers=1, d_ff=64, dropout=0.0,
                                                            max_len=16),
                               lr=3e-3, steps=250)
    assert losses[-1] < 0.05 < losses[0]


def test_encoder_layer_matches_d2l(d2l):
    torch.manual_seed(0)
    ours = EncoderLayer(16, 4, 32, dropout=0.0)
    theirs = d2l.TransformerEncoderBlock(16, 32, 4, dropout=0.0, use_bias=True)
    theirs.eval()
    x, valid_lens = torch.randn(2, 5, 16), torch.tensor([5, 3])
    theirs(x, valid_lens)                               # materialise its lazy layers
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(theirs.attention, name).weight.copy_(getattr(ours.self_attention, name).weight)
            getattr(theirs.attention, name).bias.copy_(getattr(ours.self_attention, name).bias)
        net = ours.feed_forward.net
        theirs.ffn.dense1.weight.copy_(net[0].weight)
        theirs.ffn.dense1.bias.copy_(net[0].bias)
        theirs.ffn.dense2.weight.copy_(net[3].weight)
        theirs.ffn.dense2.bias.copy_(net[3].bias)
        theirs.addnorm1.ln.load_state_dict(ours.residual1.norm.state_dict())
        theirs.addnorm2.ln.load_state_dict(ours.residual2.norm.state_dict())
    ours.eval()
    out, _ = ours(x, padding_mask(valid_lens, 5))
    assert torch.allclose(out, theirs(x, valid_lens), atol=1e-5)
