"""The GRU encoder-decoder and greedy decoding."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import decode_stepwise, overfit_one_batch

from attnlab import decoding, rnn, runtime
from attnlab.checkpoints import load_checkpoint, save_checkpoint
from attnlab.vocab import Vocab


def _model(src_vocab=20, tgt_vocab=15, **kwargs):
    runtime.seed_everything(0)
    config = dict(embed_size=8, hidden_size=16, num_layers=2, proj_size=8, dropout=0.0)
    config.update(kwargs)
    return rnn.EncoderDecoder(src_vocab, tgt_vocab, **config)


def test_shapes():
    model = _model()
    src = torch.randint(4, 20, (3, 7))
    src_len = torch.tensor([7, 5, 2])
    memory = model.encode(src, src_len)
    assert memory["context"].shape == (3, 16) and memory["state"].shape == (2, 3, 16)
    assert torch.equal(memory["context"], memory["state"][-1])
    logits = model(src=src, src_len=src_len, tgt_in=torch.randint(4, 15, (3, 5)))
    assert logits.shape == (3, 5, 15)
    step, state, weights = model.decode_step(torch.ones(3, dtype=torch.long), memory, None)
    assert step.shape == (3, 15) and state.shape == (2, 3, 16) and weights is None


def test_padding_does_not_change_the_encoding():
    model = _model()
    sentence = torch.randint(4, 20, (1, 4))
    alone_out, alone_state = model.encoder(sentence, torch.tensor([4]))
    padded = torch.cat([sentence, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    other = torch.randint(4, 20, (1, 10))
    out, state = model.encoder(torch.cat([padded, other]), torch.tensor([4, 10]))
    assert torch.allclose(state[:, :1], alone_state, atol=1e-6)
    assert torch.allclose(out[:1, :4], alone_out, atol=1e-6)
    assert out[0, 4:].abs().max() == 0  # padded positions carry nothing


def test_decoder_step_by_step_equals_teacher_forcing():
    model = _model()
    src, src_len = torch.randint(4, 20, (2, 6)), torch.tensor([6, 3])
    tgt_in = torch.randint(4, 15, (2, 5))
    full = model(src=src, src_len=src_len, tgt_in=tgt_in)
    stepwise, weights, _ = decode_stepwise(model, src, src_len, tgt_in)
    assert torch.allclose(stepwise, full, atol=1e-5) and weights is None


def test_encoder_matches_d2l(d2l):
    """With the same weights, our encoder computes what d2l's Seq2SeqEncoder computes."""
    ours = rnn.GRUEncoder(30, 8, 16, num_layers=2, dropout=0.0)
    theirs = d2l.Seq2SeqEncoder(30, 8, 16, 2, dropout=0.0)
    theirs.embedding.load_state_dict(ours.embedding.state_dict())
    theirs.rnn.rnn.load_state_dict(ours.rnn.state_dict())
    src = torch.randint(1, 30, (4, 9))
    out, state = ours(src, torch.full((4,), 9))
    ref_out, ref_state = theirs(src)                 # d2l is time-major: (S, B, H)
    assert torch.allclose(out, ref_out.transpose(0, 1), atol=1e-6)
    assert torch.allclose(state, ref_state, atol=1e-6)
    # d2l runs through padding; ours stops at each sentence's end, like d2l on the unpadded one.
    short = src[:1, :5]
    _, ref_short = theirs(short)
    _, ours_padded = ours(torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], 1), torch.tensor([5]))
    assert torch.allclose(ours_padded, ref_short, atol=1e-6)


def test_overfits_one_batch():
    losses = overfit_one_batch(lambda src, tgt: _model(src, tgt, embed_size=32, hidden_size=64,
                                                       num_layers=1, proj_size=32),
                               lr=1e-2, steps=300, max_len=6)
    assert losses[-1] < 0.05 < losses[0]


def _fixed_model(script: list[int], vocab_size: int = 6):
    """A stand-in model whose greedy output follows ``script`` per row (for decoding tests)."""

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def encode(self, src, src_len):
            return {"batch": src.shape[0]}

        def decode_step(self, prev, memory, state):
            t = 0 if state is None else state
            logits = torch.full((memory["batch"], vocab_size), -10.0)
            for row in range(memory["batch"]):
                logits[row, script[row][min(t, len(script[row]) - 1)]] = 10.0
            return logits, t + 1, None

    return Scripted()


def test_greedy_stops_each_sentence_at_its_own_eos():
    eos = 2
    model = _fixed_model([[4, eos, 5, 5], [4, 5, 4, 5, eos], [5, 5, 5, 5, 5, 5, 5, 5]])
    out = decoding.greedy_decode(model, torch.zeros(3, 1, dtype=torch.long), torch.ones(3),
                                 bos_id=1, eos_id=eos, max_len=6, top_k=2)
    assert out.tokens.tolist() == [[4, 2, 0, 0, 0, 0], [4, 5, 4, 5, 2, 0], [5, 5, 5, 5, 5, 5]]
    assert out.lengths.tolist() == [2, 5, 6]
    assert out.probs[0, 2:].eq(0).all() and out.probs[1, :5].gt(0.99).all()
    assert out.top_ids.shape == (3, 6, 2) and out.top_ids[0, 0, 0] == 4
    # The loop ends as soon as every sentence has ended.
    short = decoding.greedy_decode(model, torch.zeros(2, 1, dtype=torch.long), torch.ones(2),
                                   bos_id=1, eos_id=eos, max_len=10)
    assert short.tokens.shape == (2, 5)
    with pytest.raises(ValueError, match="max_len"):
        decoding.greedy_decode(model, torch.zeros(1, 1, dtype=torch.long), torch.ones(1),
                               bos_id=1, eos_id=eos, max_len=0)


def _vocabs():
    src = Vocab([["i", "am", "cold", "."]])
    tgt = Vocab([["j'ai", "froid", "."]])
    return src, tgt


def test_translate_bad_input():
    src, tgt = _vocabs()
    model = _model(len(src), len(tgt))
    with pytest.raises(ValueError, match="empty sentence"):
        decoding.translate(model, "   ", src, tgt)
    with pytest.raises(TypeError, match="string"):
        decoding.translate(model, ["i", "am"], src, tgt)
    result = decoding.translate(model, "I am freezing!", src, tgt, max_len=4, top_k=3)
    assert result.unknown == ["freezing", "!"] and not result.truncated
    assert len(result.tokens) <= 4 and len(result.candidates) == len(result.probs)
    assert all(len(step) == 3 for step in result.candidates)
    with pytest.warns(UserWarning, match="only its first 5"):
        long = decoding.translate(model, "i am cold . " * 10, src, tgt, max_src_len=5)
    assert long.truncated and long.source == ["i", "am", "cold", ".", "i"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoding.translate(model, "i am cold .", src, tgt)


def test_translate_tokens_keeps_input_order():
    src, tgt = _vocabs()
    model = _fixed_model([[4, 2]] * 3)
    sources = [["i", "am", "cold", "."], ["i"], ["cold", "."]]
    assert decoding.translate_tokens(model, sources, src, tgt, batch_size=2) == [[tgt.itos[4]]] * 3


def test_checkpoint_rebuilds_the_model(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_checkpoint(path).model
    assert isinstance(loaded, rnn.EncoderDecoder) and loaded.config == model.config


def test_encoder_without_padding_skips_packing_with_the_same_result():
    torch.manual_seed(0)
    encoder = rnn.GRUEncoder(30, 8, 16, num_layers=2).eval()
    full = torch.randint(4, 30, (2, 6))
    out, state = encoder(full, torch.tensor([6, 6]))            # no padding: the direct path
    longer = torch.randint(4, 30, (1, 9))
    padded = torch.cat([torch.cat([full, torch.zeros(2, 3, dtype=torch.long)], 1), longer])
    packed_out, packed_state = encoder(padded, torch.tensor([6, 6, 9]))   # the packed path
    assert torch.allclose(out, packed_out[:2, :6], atol=1e-6)
    assert torch.allclose(state, packed_state[:, :2], atol=1e-6)
