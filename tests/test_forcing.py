"""Forcing the first words of a translation (attnlab.infer.forcing): the forced words
are read as teacher forcing reads them, and the rest is greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_beams import SENTENCES, SRC, TGT, _models

from attnlab.infer import decoding
from attnlab.infer.forcing import force_prefix


def _writing(model):
    """``model`` with <pad>, <bos> and <unk> all but impossible as outputs: what it
    writes is words (and <eos>), as a trained model's output is."""
    (out,) = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.out_features == len(TGT)
    ]
    with torch.no_grad():
        out.bias[[TGT.pad_id, TGT.bos_id, TGT.unk_id]] -= 10.0
    return model.eval()


MODELS = {name: _writing(model) for name, model in _models().items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forcing_greedy_s_own_words_gives_greedy_s_translation(name):
    model, compared = MODELS[name], 0
    for sentence in SENTENCES:
        greedy = decoding.translate(model, sentence, SRC, TGT, max_len=12)
        for n in range(1, min(len(greedy.tokens), 4) + 1):
            forced = force_prefix(
                model, sentence, " ".join(greedy.tokens[:n]), SRC, TGT, max_len=12
            )
            assert forced.tokens == greedy.tokens and forced.text == greedy.text
            np.testing.assert_allclose(forced.forced_probs, greedy.probs[:n], atol=1e-6)
            np.testing.assert_allclose(forced.probs, greedy.probs[n:], atol=1e-6)
            if greedy.attention is not None:
                torch.testing.assert_close(forced.attention, greedy.attention)
            compared += 1
    assert compared >= 5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_forced_words_get_the_teacher_forced_probabilities(name):
    model = MODELS[name]
    for sentence in SENTENCES:
        forced = force_prefix(model, sentence, "non non oui", SRC, TGT, max_len=12)
        assert forced.tokens[:3] == ["non", "non", "oui"]
        src = SRC.encode(sentence.split()) + [SRC.eos_id]
        ended = len(forced.forced_probs + forced.probs) > len(forced.ids)
        ids = forced.ids + [TGT.eos_id] * ended
        with torch.no_grad():
            out = model(
                src=torch.tensor([src]),
                src_len=torch.tensor([len(src)]),
                tgt_in=torch.tensor([[TGT.bos_id, *ids[:-1]]]),
            )
        taught = torch.softmax(out.logits[0], dim=-1)[torch.arange(len(ids)), ids]
        np.testing.assert_allclose(
            forced.forced_probs + forced.probs, taught.numpy(), atol=1e-5
        )


def test_bad_prefixes_say_what_is_wrong():
    model = MODELS["transformer"]
    forced = force_prefix(model, "w1 w2", "oui zorglub", SRC, TGT)
    assert forced.forced == ["oui", "<unk>"] and forced.forced_unknown == ["zorglub"]
    with pytest.raises(ValueError, match="the forced prefix is empty"):
        force_prefix(model, "w1", "  ", SRC, TGT)
    with pytest.raises(ValueError, match="has 5 words; at most 4 can be forced"):
        force_prefix(model, "w1", "oui " * 5, SRC, TGT, max_len=5)
    with pytest.raises(ValueError, match="cannot hold <eos>"):
        force_prefix(model, "w1", "oui <eos> non", SRC, TGT)
    with pytest.raises(ValueError, match="empty sentence"):
        force_prefix(model, "", "oui", SRC, TGT)
