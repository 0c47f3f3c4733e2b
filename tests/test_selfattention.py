"""The small self-attention model, its masks and positions, and the experiment helpers."""

from __future__ import annotations

import pytest
import torch

from attnlab.core import runtime
from attnlab.models.selfattention import EncoderLayer, SelfAttentionTagger
from attnlab.nn.masks import padding_mask


def _tagger(**kwargs):
    runtime.seed_everything(0)
    config = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=32)
    config.update(kwargs)
    return SelfAttentionTagger(20, 20, **config)


def test_shapes_and_weights():
    model = _tagger()
    tokens = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
    logits, weights = model.label(tokens, need_weights=True)
    assert (
        logits.shape == (2, 4, 20)
        and len(weights) == 2
        and weights[0].shape == (2, 2, 4, 4)
    )
    assert weights[1][1, :, :, 2:].eq(0).all()  # padding is never attended to


def test_causal_model_does_not_look_ahead():
    model = _tagger(causal=True).eval()
    tokens = torch.tensor([[5, 6, 7, 8, 9]])
    changed = tokens.clone()
    changed[0, 3:] = torch.tensor([10, 11])
    before, _ = model.label(tokens)
    after, _ = model.label(changed)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-6)
    assert not torch.allclose(before[0, 3:], after[0, 3:])


def test_without_positions_the_model_is_permutation_equivariant():
    for positions, equivariant in (
        ("none", True),
        ("sinusoidal", False),
        ("learned", False),
    ):
        model = _tagger(positions=positions).eval()
        tokens = torch.tensor([[5, 6, 7, 8, 9]])
        order = torch.tensor([4, 2, 0, 1, 3])
        out, _ = model.label(tokens)
        permuted, _ = model.label(tokens[:, order])
        assert torch.allclose(permuted, out[:, order], atol=1e-5) == equivariant


def test_bad_arguments():
    with pytest.raises(ValueError, match="positions"):
        _tagger(positions="rotary")
    with pytest.raises(ValueError, match="reads"):
        _tagger(reads="both")


def test_encoder_layer_matches_d2l(d2l):
    torch.manual_seed(0)
    ours = EncoderLayer(16, 4, 32, dropout=0.0)
    theirs = d2l.TransformerEncoderBlock(16, 32, 4, dropout=0.0, use_bias=True)
    theirs.eval()
    x, valid_lens = torch.randn(2, 5, 16), torch.tensor([5, 3])
    theirs(x, valid_lens)  # materialise its lazy layers
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(theirs.attention, name).weight.copy_(
                getattr(ours.self_attention, name).weight
            )
            getattr(theirs.attention, name).bias.copy_(
                getattr(ours.self_attention, name).bias
            )
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
