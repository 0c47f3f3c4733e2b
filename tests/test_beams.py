"""One sentence's beam search step by step (attnlab.infer.beams): what the website's beam
view shows, checked against beam_search's choice and against the model's own
probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnlab.core import runtime
from attnlab.data.batching import pad
from attnlab.data.vocab import RESERVED, Vocab
from attnlab.infer import decoding
from attnlab.infer.beams import beam_translate
from attnlab.infer.forcing import force_prefix
from attnlab.models import bahdanau, rnn
from attnlab.models.transformer import Transformer

SRC = Vocab(tokens=[*RESERVED, *(f"w{i}" for i in range(16))])
# Two words: a model untrained on them still ends many hypotheses with <eos>.
TGT = Vocab(tokens=[*RESERVED, "oui", "non"])
SENTENCES = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10", "w11 w12 zebra", "w3 w3 w3 w3"]


def _models():
    runtime.seed_everything(3)
    sizes = len(SRC), len(TGT)
    return {
        "gru": rnn.EncoderDecoder(
            *sizes, embed_size=8, hidden_size=16, proj_size=8, dropout=0.0
        ),
        "bahdanau": bahdanau.AttentionEncoderDecoder(
            *sizes,
            embed_size=8,
            hidden_size=16,
            attention_size=8,
            proj_size=8,
            dropout=0.0,
        ),
        "transformer": Transformer(
            *sizes, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.0
        ),
    }


def _ending(model):
    """``model`` with its output layer favouring <eos> a little, so that an untrained
    model ends some hypotheses early and others late."""
    (out,) = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.out_features == len(TGT)
    ]
    with torch.no_grad():
        out.bias[TGT.eos_id] += 0.3
    return model.eval()


MODELS = {name: _ending(model) for name, model in _models().items()}


def _log_probability(model, sentence, ids) -> float:
    """The model's log-probability of ``ids`` after ``sentence``, teacher-forced."""
    src = SRC.encode(sentence.split()) + [SRC.eos_id]
    with torch.no_grad():
        out = model.eval()(
            src=torch.tensor([src]),
            src_len=torch.tensor([len(src)]),
            tgt_in=torch.tensor([[TGT.bos_id, *ids[:-1]]]),
        )
    log_probs = torch.log_softmax(out.logits[0].double(), dim=-1)
    return float(log_probs[torch.arange(len(ids)), torch.tensor(ids)].sum())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_step_is_what_the_model_gives_and_the_choice_is_beam_searchs(name):
    model, ended = MODELS[name], 0
    for sentence in SENTENCES:
        for beam_size in (1, 2, 3, 5):
            for alpha in (0.0, 0.6, 1.0):
                for max_len in (3, 12):
                    result = beam_translate(
                        model,
                        sentence,
                        SRC,
                        TGT,
                        beam_size=beam_size,
                        alpha=alpha,
                        max_len=max_len,
                    )
                    (chosen,) = decoding.translate_tokens(
                        model,
                        [sentence.split()],
                        SRC,
                        TGT,
                        max_len=max_len,
                        beam_size=beam_size,
                        alpha=alpha,
                    )
                    if beam_size > 1:  # translate_tokens' beam of one is greedy
                        assert result.tokens == chosen
                    beam = [()]
                    for t, step in enumerate(result.steps):
                        assert 0 < len(step) <= 2 * beam_size
                        assert [h.logp for h in step] == sorted(
                            (h.logp for h in step), reverse=True
                        )
                        going = [h for h in step if h.place is not None]
                        assert [h.place for h in going] == list(range(len(going)))
                        assert len(going) <= beam_size
                        for h in step:
                            assert len(h.ids) == t + 1
                            assert h.ids[:-1] == beam[h.parent]
                            assert h.ended == (h.ids[-1] == TGT.eos_id)
                            assert not (h.ended and h.place is not None)
                            assert h.logp == pytest.approx(
                                _log_probability(model, sentence, h.ids), abs=1e-5
                            )
                            penalty = decoding.length_penalty(t + 1, alpha)
                            assert h.score == pytest.approx(h.logp / penalty)
                        beam = [h.ids for h in going]
                    finished = [h for s in result.steps for h in s if h.ended]
                    assert len(finished) <= beam_size
                    if finished:
                        ended += 1
                        assert result.best.ended
                        assert result.best.score == max(h.score for h in finished)
                    else:
                        assert len(result.steps) == max_len and not result.best.ended
                    assert result.tokens == TGT.decode(list(result.best.ids))
    assert 20 < ended < 5 * 4 * 3 * 2  # both ways of ending are exercised


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_beam_of_one_is_greedy_translation(name):
    for sentence in SENTENCES:
        greedy = decoding.translate(MODELS[name], sentence, SRC, TGT, max_len=12)
        beam = beam_translate(MODELS[name], sentence, SRC, TGT, beam_size=1, max_len=12)
        assert beam.tokens == greedy.tokens and beam.text == greedy.text
        assert beam.source == greedy.source and beam.unknown == greedy.unknown
        assert math.exp(beam.best.logp) == pytest.approx(
            math.prod(greedy.probs), rel=1e-4
        )


def test_the_source_is_read_as_translate_reads_it():
    model = MODELS["transformer"]
    with pytest.warns(UserWarning, match="only its first 5"):
        result = beam_translate(model, "w1 zebra w2 w3 w4 w5", SRC, TGT, max_src_len=5)
    assert result.truncated and result.source == ["w1", "zebra", "w2", "w3", "w4"]
    assert result.unknown == ["zebra"]
    with pytest.raises(ValueError, match="empty"):
        beam_translate(model, "   ", SRC, TGT)
    with pytest.raises(ValueError, match="beam_size"):
        beam_translate(model, "w1", SRC, TGT, beam_size=0)


def test_steps_are_the_same_however_often_the_search_checks_it_is_done():
    """On an accelerator beam_search reads whether it is done every few steps and may
    idle after; the steps read from its trace are those of a search that stops at once."""
    from attnlab.infer.beams import _steps

    model = MODELS["transformer"]
    src = SRC.encode("w1 w2 w3".split()) + [SRC.eos_id]
    traces = {}
    for stop_every in (1, 5):
        traces[stop_every] = []
        decoding.beam_search(
            model,
            torch.tensor([src]),
            torch.tensor([len(src)]),
            bos_id=TGT.bos_id,
            eos_id=TGT.eos_id,
            max_len=12,
            beam_size=2,
            stop_every=stop_every,
            trace=traces[stop_every],
        )
    assert len(traces[5]) > len(traces[1])  # it idled
    assert _steps(traces[5], TGT) == _steps(traces[1], TGT)


PREFIXES = ["oui", "non oui", "non non non"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_forced_prefix_starts_every_hypothesis_and_counts_in_its_score(name):
    model, compared = MODELS[name], 0
    for sentence in SENTENCES:
        for prefix in PREFIXES:
            forced = TGT.encode(prefix.split())
            greedy = force_prefix(model, sentence, prefix, SRC, TGT, max_len=8)
            for beam_size, alpha in ((1, 0.6), (3, 0.0), (5, 1.0)):
                result = beam_translate(
                    model,
                    sentence,
                    SRC,
                    TGT,
                    beam_size=beam_size,
                    alpha=alpha,
                    max_len=8,
                    prefix=prefix,
                )
                assert result.forced == prefix.split() and not result.forced_unknown
                for t, step in enumerate(result.steps):
                    if t < len(forced):  # one candidate: the forced word
                        (only,) = step
                        assert list(only.ids) == forced[: t + 1] and only.place == 0
                    for h in step:
                        assert list(h.ids[: len(forced)]) == forced[: len(h.ids)]
                        assert h.logp == pytest.approx(
                            _log_probability(model, sentence, h.ids), abs=1e-5
                        )
                assert result.tokens[: len(forced)] == prefix.split()
                np.testing.assert_allclose(
                    result.forced_probs, greedy.forced_probs, rtol=1e-4
                )
                if beam_size == 1:  # a beam of one from a prefix is forced greedy
                    assert result.tokens == greedy.tokens
                compared += 1
    assert compared == len(SENTENCES) * len(PREFIXES) * 3


def test_a_batch_forced_row_by_row_is_each_sentence_forced_alone():
    model = MODELS["bahdanau"]
    prefixes = [["oui", "non"], ["non", "non"], ["oui", "oui"], ["non", "oui"]]
    sentences = SENTENCES[: len(prefixes)]
    ids = [SRC.encode(s.split()) + [SRC.eos_id] for s in sentences]
    for beam_size in (1, 4):
        rows = decoding.beam_search(
            model,
            pad(ids, SRC.pad_id),
            torch.tensor([len(i) for i in ids]),
            bos_id=TGT.bos_id,
            eos_id=TGT.eos_id,
            max_len=9,
            beam_size=beam_size,
            prefix=torch.tensor([TGT.encode(p) for p in prefixes]),
        )
        for sentence, prefix, row in zip(sentences, prefixes, rows):
            alone = beam_translate(
                model,
                sentence,
                SRC,
                TGT,
                beam_size=beam_size,
                max_len=9,
                prefix=" ".join(prefix),
            )
            assert tuple(row) == alone.best.ids


def test_a_prefix_that_cannot_be_forced_is_refused():
    model = MODELS["gru"]
    src, src_len = torch.tensor([[4, 5, SRC.eos_id]]), torch.tensor([3])
    special = dict(bos_id=TGT.bos_id, eos_id=TGT.eos_id, max_len=4)
    oui = TGT.encode(["oui"])[0]
    for decode in (decoding.greedy_decode, decoding.beam_search):
        with pytest.raises(ValueError, match=r"\(B, P\) = \(1, P\) ids, got \(3,\)"):
            decode(model, src, src_len, **special, prefix=torch.tensor([oui] * 3))
        with pytest.raises(ValueError, match="has 4 tokens; at most 3 can be forced"):
            decode(model, src, src_len, **special, prefix=torch.tensor([[oui] * 4]))
        with pytest.raises(ValueError, match="cannot hold <eos>"):
            decode(model, src, src_len, **special, prefix=torch.tensor([[TGT.eos_id]]))
    with pytest.raises(ValueError, match="the forced prefix is empty"):
        beam_translate(model, "w1", SRC, TGT, prefix=" ")
    with pytest.raises(ValueError, match="at most 4 can be forced"):
        beam_translate(model, "w1", SRC, TGT, prefix="oui " * 5, max_len=5)
    unknown = beam_translate(model, "w1", SRC, TGT, prefix="oui zorglub", max_len=5)
    assert unknown.forced == ["oui", "<unk>"] and unknown.forced_unknown == ["zorglub"]
