"""The GRU encoder-decoder and greedy decoding."""

from __future__ import annotations

import pytest
import torch
from helpers import overfit_one_batch, small_gru
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.models import rnn


def test_shapes():
    model = small_gru()
    src = torch.randint(4, 20, (3, 7))
    src_len = torch.tensor([7, 5, 2])
    memory = model.encode(src, src_len)
    assert memory.context.shape == (3, 16) and memory.state.shape == (2, 3, 16)
    assert torch.equal(memory.context, memory.state[-1])
    out = model(src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (3, 5)))
    assert out.logits.shape == (3, 5, 15) and out.attention is None
    step = model.decode_step(torch.ones(3, dtype=torch.long), memory, None)
    assert step.logits.shape == (3, 15) and step.state.hidden.shape == (2, 3, 16)
    assert step.attention is None
    # Beam search's row selection follows the batch axis of each field: 1 for the GRU's state.
    picked = memory.select(torch.tensor([2, 2, 0]))
    assert torch.equal(picked.state, memory.state[:, [2, 2, 0]])
    assert torch.equal(picked.context, memory.context[[2, 2, 0]])


def test_padding_does_not_change_the_encoding():
    model = small_gru()
    sentence = torch.randint(4, 20, (1, 4))
    alone_out, alone_state = model.encoder(sentence, torch.tensor([4]))
    padded = torch.cat([sentence, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    other = torch.randint(4, 20, (1, 10))
    out, state = model.encoder(torch.cat([padded, other]), torch.tensor([4, 10]))
    assert torch.allclose(state[:, :1], alone_state, atol=1e-6)
    assert torch.allclose(out[:1, :4], alone_out, atol=1e-6)
    assert out[0, 4:].abs().max() == 0  # padded positions carry nothing


def test_encoder_matches_d2l(d2l):
    """With the same weights, our encoder computes what d2l's Seq2SeqEncoder computes."""
    ours = rnn.GRUEncoder(30, 8, 16, num_layers=2, dropout=0.0)
    theirs = d2l.Seq2SeqEncoder(30, 8, 16, 2, dropout=0.0)
    theirs.embedding.load_state_dict(ours.embedding.state_dict())
    theirs.rnn.rnn.load_state_dict(ours.gru_state_dict())
    src = torch.randint(1, 30, (4, 9))
    out, state = ours(src, torch.full((4,), 9))
    ref_out, ref_state = theirs(src)  # d2l is time-major: (S, B, H)
    assert torch.allclose(out, ref_out.transpose(0, 1), atol=1e-6)
    assert torch.allclose(state, ref_state, atol=1e-6)
    # d2l runs through padding; ours stops at each sentence's end, like d2l on the unpadded one.
    short = src[:1, :5]
    _, ref_short = theirs(short)
    _, ours_padded = ours(
        torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], 1), torch.tensor([5])
    )
    assert torch.allclose(ours_padded, ref_short, atol=1e-6)


def test_overfits_one_batch():
    losses = overfit_one_batch(
        lambda src, tgt: small_gru(
            src, tgt, embed_size=32, hidden_size=64, num_layers=1, proj_size=32
        ),
        lr=1e-2,
        steps=300,
        max_len=6,
    )
    assert losses[-1] < 0.05 < losses[0]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_equals_a_packed_gru(bidirectional):
    """Reading the padded batch with each sentence reversed within its length computes
    what PyTorch's packed nn.GRU computes, padding and all, in both directions."""
    torch.manual_seed(0)
    encoder = rnn.GRUEncoder(
        30, 8, 16, num_layers=2, bidirectional=bidirectional
    ).eval()
    reference = nn.GRU(8, 16, 2, batch_first=True, bidirectional=bidirectional)
    reference.load_state_dict(encoder.gru_state_dict())
    src_len = torch.tensor([6, 1, 9, 3])
    src = torch.randint(4, 30, (4, 9)) * (torch.arange(9) < src_len[:, None])
    out, state = encoder(src, src_len)
    packed = pack_padded_sequence(
        encoder.embedding(src), src_len, batch_first=True, enforce_sorted=False
    )
    ref_packed, ref_state = reference(packed)
    ref_out, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=9)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(state, ref_state, atol=1e-6)
