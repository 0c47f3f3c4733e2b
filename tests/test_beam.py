"""Beam search, shared by every model: a beam of one is greedy decoding, wider beams find
more probable translations."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab import bahdanau, decoding, rnn, runtime


def _models():
    runtime.seed_everything(0)
    gru = rnn.EncoderDecoder(20, 12, embed_size=8, hidden_size=16, proj_size=8, dropout=0.0)
    attention = bahdanau.AttentionEncoderDecoder(20, 12, embed_size=8, hidden_size=16,
                                                 attention_size=8, proj_size=8, dropout=0.0)
    return [gru, attention]


@pytest.mark.parametrize("model", _models(), ids=["gru", "bahdanau"])
def test_beam_of_one_is_greedy(model):
    src = torch.randint(4, 20, (6, 7))
    src_len = torch.tensor([7, 6, 5, 4, 3, 2])
    greedy = decoding.greedy_decode(model, src, src_len, bos_id=1, eos_id=2, max_len=9)
    beam = decoding.beam_search(model, src, src_len, bos_id=1, eos_id=2, max_len=9, beam_size=1)
    for row, n, hyp in zip(greedy.tokens.tolist(), greedy.lengths.tolist(), beam):
        assert hyp == row[:n]


class TwoStepModel(torch.nn.Module):
    """A model whose greedy choice is a trap: the most likely first token leads to a flat
    second step, the runner-up to a confident one (vocabulary: 0-2 reserved, then a, b, c)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def encode(self, src, src_len):
        return {"rows": torch.zeros(src.shape[0])}

    @staticmethod
    def reorder(memory_or_state, index):
        if isinstance(memory_or_state, dict):
            return {key: value[index] for key, value in memory_or_state.items()}
        return memory_or_state[index]

    def decode_step(self, prev, memory, state):
        step = torch.zeros(prev.shape[0], dtype=torch.long) if state is None else state
        probs = torch.full((prev.shape[0], 6), 1e-6)
        for row, (token, t) in enumerate(zip(prev.tolist(), step.tolist())):
            if t == 0:
                probs[row, 3], probs[row, 4] = 0.55, 0.45          # a (trap) or b
            elif t == 1 and token == 3:
                probs[row, 3:6] = 1 / 3                            # after a: unsure
            elif t == 1:
                probs[row, 5] = 0.95                               # after b: sure
            else:
                probs[row, 2] = 1.0                                # then <eos>
        return probs.log(), step + 1, None


def test_wider_beam_finds_the_more_probable_translation():
    model = TwoStepModel()
    src, src_len = torch.zeros(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long)
    greedy = decoding.beam_search(model, src, src_len, bos_id=1, eos_id=2, max_len=5, beam_size=1)
    beam = decoding.beam_search(model, src, src_len, bos_id=1, eos_id=2, max_len=5, beam_size=2,
                                alpha=0.0)
    assert greedy == [[3, 3, 2]]          # a, then one of three, <eos>: 0.55 x 1/3
    assert beam == [[4, 5, 2]]            # b c <eos>: 0.45 x 0.95 is more likely


def test_length_penalty_and_arguments():
    assert decoding.length_penalty(1, 0.0) == 1.0
    assert decoding.length_penalty(7, 1.0) == pytest.approx(2.0)
    assert math.isclose(decoding.length_penalty(10, 0.6), (15 / 6) ** 0.6)
    model = _models()[0]
    with pytest.raises(ValueError, match="beam_size"):
        decoding.beam_search(model, torch.ones(1, 2, dtype=torch.long), torch.tensor([2]),
                             bos_id=1, eos_id=2, max_len=5, beam_size=0)


def test_beam_results_respect_the_maximum_length():
    model = _models()[1]
    src = torch.randint(4, 20, (4, 5))
    out = decoding.beam_search(model, src, torch.tensor([5, 5, 3, 2]), bos_id=1, eos_id=2,
                               max_len=4, beam_size=3)
    assert len(out) == 4 and all(1 <= len(hyp) <= 4 for hyp in out)
