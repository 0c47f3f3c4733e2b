"""Greedy decoding, beam search and translating a sentence, for every model: a beam of one is
greedy decoding, wider beams find more probable translations."""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import small_gru

from attnlab.core import runtime
from attnlab.data.vocab import Vocab
from attnlab.infer import decoding
from attnlab.models import bahdanau, rnn
from attnlab.models.contract import Step
from attnlab.nn.batched import Batched


def _models():
    runtime.seed_everything(0)
    gru = rnn.EncoderDecoder(
        20, 12, embed_size=8, hidden_size=16, proj_size=8, dropout=0.0
    )
    attention = bahdanau.AttentionEncoderDecoder(
        20, 12, embed_size=8, hidden_size=16, attention_size=8, proj_size=8, dropout=0.0
    )
    return [gru, attention]


@pytest.mark.parametrize("model", _models(), ids=["gru", "bahdanau"])
def test_beam_of_one_is_greedy(model):
    src = torch.randint(4, 20, (6, 7))
    src_len = torch.tensor([7, 6, 5, 4, 3, 2])
    greedy = decoding.greedy_decode(model, src, src_len, bos_id=1, eos_id=2, max_len=9)
    beam = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=9, beam_size=1
    )
    for row, n, hyp in zip(greedy.tokens.tolist(), greedy.lengths.tolist(), beam):
        assert hyp == row[:n]


class TwoStepModel(torch.nn.Module):
    """A model whose greedy choice is a trap: the most likely first token leads to a flat
    second step, the runner-up to a confident one (vocabulary: 0-2 reserved, then a, b, c)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    @dataclass
    class Steps(Batched):
        t: torch.Tensor  # (B,) steps taken

    def encode(self, src, src_len):
        return self.Steps(torch.zeros(src.shape[0], dtype=torch.long))

    def decode_step(self, prev, memory, state):
        step = (memory if state is None else state).t
        probs = torch.full((prev.shape[0], 6), 1e-6)
        for row, (token, t) in enumerate(zip(prev.tolist(), step.tolist())):
            if t == 0:
                probs[row, 3], probs[row, 4] = 0.55, 0.45  # a (trap) or b
            elif t == 1 and token == 3:
                probs[row, 3:6] = 1 / 3  # after a: unsure
            elif t == 1:
                probs[row, 5] = 0.95  # after b: sure
            else:
                probs[row, 2] = 1.0  # then <eos>
        return Step(probs.log(), self.Steps(step + 1))


def test_wider_beam_finds_the_more_probable_translation():
    model = TwoStepModel()
    src, src_len = torch.zeros(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long)
    greedy = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=5, beam_size=1
    )
    beam = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=5, beam_size=2, alpha=0.0
    )
    assert greedy == [[3, 3, 2]]  # a, then one of three, <eos>: 0.55 x 1/3
    assert beam == [[4, 5, 2]]  # b c <eos>: 0.45 x 0.95 is more likely


def test_length_penalty_and_arguments():
    assert decoding.length_penalty(1, 0.0) == 1.0
    assert decoding.length_penalty(7, 1.0) == pytest.approx(2.0)
    assert math.isclose(decoding.length_penalty(10, 0.6), (15 / 6) ** 0.6)
    model = _models()[0]
    with pytest.raises(ValueError, match="beam_size"):
        decoding.beam_search(
            model,
            torch.ones(1, 2, dtype=torch.long),
            torch.tensor([2]),
            bos_id=1,
            eos_id=2,
            max_len=5,
            beam_size=0,
        )


def test_beam_results_respect_the_maximum_length():
    model = _models()[1]
    src = torch.randint(4, 20, (4, 5))
    out = decoding.beam_search(
        model,
        src,
        torch.tensor([5, 5, 3, 2]),
        bos_id=1,
        eos_id=2,
        max_len=4,
        beam_size=3,
    )
    assert len(out) == 4 and all(1 <= len(hyp) <= 4 for hyp in out)


@dataclass
class Rows(Batched):
    batch: int
    t: int


def _fixed_model(script: list[int], vocab_size: int = 6):
    """A stand-in model whose greedy output follows ``script`` per row (for decoding tests)."""

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def encode(self, src, src_len):
            return Rows(src.shape[0], 0)

        def decode_step(self, prev, memory, state):
            t = 0 if state is None else state.t
            logits = torch.full((memory.batch, vocab_size), -10.0)
            for row in range(memory.batch):
                logits[row, script[row][min(t, len(script[row]) - 1)]] = 10.0
            return Step(logits, Rows(memory.batch, t + 1))

    return Scripted()


def test_greedy_stops_each_sentence_at_its_own_eos():
    eos = 2
    model = _fixed_model([[4, eos, 5, 5], [4, 5, 4, 5, eos], [5, 5, 5, 5, 5, 5, 5, 5]])
    out = decoding.greedy_decode(
        model,
        torch.zeros(3, 1, dtype=torch.long),
        torch.ones(3),
        bos_id=1,
        eos_id=eos,
        max_len=6,
        top_k=2,
    )
    assert out.tokens.tolist() == [
        [4, 2, 0, 0, 0, 0],
        [4, 5, 4, 5, 2, 0],
        [5, 5, 5, 5, 5, 5],
    ]
    assert out.lengths.tolist() == [2, 5, 6]
    assert out.probs[0, 2:].eq(0).all() and out.probs[1, :5].gt(0.99).all()
    assert out.top_ids.shape == (3, 6, 2) and out.top_ids[0, 0, 0] == 4
    # The loop ends as soon as every sentence has ended.
    short = decoding.greedy_decode(
        model,
        torch.zeros(2, 1, dtype=torch.long),
        torch.ones(2),
        bos_id=1,
        eos_id=eos,
        max_len=10,
    )
    assert short.tokens.shape == (2, 5)
    with pytest.raises(ValueError, match="max_len"):
        decoding.greedy_decode(
            model,
            torch.zeros(1, 1, dtype=torch.long),
            torch.ones(1),
            bos_id=1,
            eos_id=eos,
            max_len=0,
        )


def _vocabs():
    src = Vocab([["i", "am", "cold", "."]])
    tgt = Vocab([["j'ai", "froid", "."]])
    return src, tgt


def test_translate_bad_input():
    src, tgt = _vocabs()
    model = small_gru(len(src), len(tgt))
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
    assert (
        decoding.translate_tokens(model, sources, src, tgt, batch_size=2)
        == [[tgt.itos[4]]] * 3
    )


def _small_models():
    """Untrained models over a target vocabulary of 6 (so that <eos>, id 2, comes often
    and beams end at different steps)."""
    from attnlab.models.transformer import Transformer

    runtime.seed_everything(3)
    return {
        "gru": rnn.EncoderDecoder(20, 6, embed_size=8, hidden_size=16, proj_size=8),
        "bahdanau": bahdanau.AttentionEncoderDecoder(
            20, 6, embed_size=8, hidden_size=16, attention_size=8, proj_size=8
        ),
        "transformer": Transformer(
            20, 6, d_model=16, num_heads=2, num_layers=1, d_ff=32
        ),
    }


@pytest.mark.parametrize("name", ["gru", "bahdanau", "transformer"])
def test_beam_search_chooses_what_the_host_side_reference_chooses(name):
    """The bookkeeping done in tensors picks, token for token, what the first beam
    search (one candidate at a time, in Python lists: tests/reference/host_beam.py)
    picked: over beam widths 1-6, three length penalties, short and long limits
    (sentences that end and sentences cut off), and a stop read every step or
    rarely."""
    spec = importlib.util.spec_from_file_location(
        "host_beam", Path(__file__).parent / "reference" / "host_beam.py"
    )
    reference_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference_module)
    host_beam_search = reference_module.host_beam_search
    model = _small_models()[name].eval()
    generator = torch.Generator().manual_seed(0)
    compared = ended = 0
    for case in range(12):
        src_len = torch.randint(1, 8, (5,), generator=generator)
        src = torch.randint(4, 20, (5, 8), generator=generator)
        src = src * (torch.arange(8) < src_len[:, None])
        for beam_size in (1, 2, 3, 6):
            for alpha in (0.0, 0.6, 1.0):
                max_len = 3 if case % 3 == 0 else 12
                options = dict(
                    bos_id=1,
                    eos_id=2,
                    max_len=max_len,
                    beam_size=beam_size,
                    alpha=alpha,
                )
                reference = host_beam_search(model, src, src_len, **options)
                for stop_every in (1, 5):
                    ours = decoding.beam_search(
                        model, src, src_len, stop_every=stop_every, **options
                    )
                    assert ours == reference, (case, beam_size, alpha, stop_every)
                compared += len(reference)
                ended += sum(r[-1] == 2 for r in reference)
    assert compared == 12 * 4 * 3 * 5 and 100 < ended < compared - 100


def test_greedy_gives_the_same_whenever_it_checks_for_the_end():
    model = _small_models()["transformer"].eval()
    src, src_len = torch.randint(4, 20, (6, 5)), torch.tensor([5, 4, 3, 2, 1, 5])
    options = dict(bos_id=1, eos_id=2, max_len=12, top_k=3)
    every = decoding.greedy_decode(model, src, src_len, stop_every=1, **options)
    rarely = decoding.greedy_decode(model, src, src_len, stop_every=5, **options)
    for field in ("tokens", "lengths", "probs", "top_ids", "top_probs", "attention"):
        assert torch.equal(getattr(every, field), getattr(rarely, field)), field
    assert every.tokens.shape[1] == int(every.lengths.max())
