"""Switching a Transformer's heads off (attnlab.infer.heads), in PyTorch and in the
browser export: a head switched off is a head whose columns of W_o are zero."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import TOY_SRC, TOY_TGT
from test_export import _small

from attnlab.infer import decoding, heads
from attnlab.web import export

SENTENCES = ["The cat sat on a mat.", "dog ran", "a cat , a dog , a mat !"]
OFF_SETS = [
    [("encoder", 0, 1)],
    [("decoder_self", 1, 0), ("cross", 0, 1)],
    [("cross", 0, 0), ("cross", 0, 1), ("cross", 1, 0), ("cross", 1, 1)],
]


def _transformer():
    return _small("transformer")  # two layers of two heads


def _batch():
    src = torch.tensor([[4, 5, 6, 7, 2], [8, 9, 2, 0, 0]])
    return dict(
        src=src,
        src_len=torch.tensor([5, 3]),
        tgt_in=torch.tensor([[1, 4, 5, 6], [1, 6, 6, 4]]),
        need_weights=True,
    )


def _zeroed(model, off):
    """A copy of ``model`` with the W_o columns of the heads ``off`` set to zero."""
    other = copy.deepcopy(model)
    modules = heads.attention_modules(other)
    with torch.no_grad():
        for kind, layer, head in off:
            attention = modules[kind][layer]
            d_k = attention.d_k
            attention.W_o.weight[:, head * d_k : (head + 1) * d_k] = 0.0
    return other


def test_with_every_head_on_the_model_computes_what_it_computes_without_a_mask():
    model = _transformer()
    plain = model(**_batch())
    with heads.heads_off(model, heads.all_on(model)):
        masked = model(**_batch())
    assert torch.equal(plain.logits, masked.logits)
    for name in ("encoder", "decoder_self", "cross"):
        for a, b in zip(getattr(plain.layers, name), getattr(masked.layers, name)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("off", OFF_SETS)
def test_a_head_switched_off_is_a_head_whose_output_columns_are_zero(off):
    model = _transformer()
    expected = _zeroed(model, off)(**_batch())
    with heads.heads_off(model, heads.mask_of(model, off)):
        got = model(**_batch())
        greedy = decoding.translate(model, SENTENCES[0], TOY_SRC, TOY_TGT, max_len=8)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-6, rtol=0)
    assert not torch.allclose(got.logits, model(**_batch()).logits, atol=1e-4)
    # step by step (the decoder's key/value cache) as teacher-forced
    again = decoding.translate(
        _zeroed(model, off), SENTENCES[0], TOY_SRC, TOY_TGT, max_len=8
    )
    assert greedy.tokens == again.tokens
    np.testing.assert_allclose(greedy.probs, again.probs, atol=1e-6)
    # and the model is itself again after the block
    assert torch.equal(model(**_batch()).logits, _transformer()(**_batch()).logits)


def test_a_mask_that_does_not_fit_is_refused():
    model = _transformer()
    with pytest.raises(ValueError, match=r"the head mask is \(3, 2, 3\), this model"):
        with heads.heads_off(model, torch.ones(3, 2, 3)):
            pass
    with pytest.raises(ValueError, match="no kind of attention 'self'"):
        heads.mask_of(model, [("self", 0, 0)])
    from helpers import small_gru

    with pytest.raises(TypeError, match="in a Transformer, not a EncoderDecoder"):
        heads.all_on(small_gru())


def test_the_exported_graph_switches_heads_off_as_pytorch_does(tmp_path):
    model = _transformer()
    manifest_path = export.export_for_browser(
        model, TOY_SRC, TOY_TGT, tmp_path, name="toy", profile="smoke", max_len=12
    )
    session, manifest, *vocabs = export.load_session(manifest_path.parent)
    assert manifest["head_mask"] == [3, 2, 2]
    for off in OFF_SETS:
        mask = heads.mask_of(model, off)
        for sentence in SENTENCES:
            ours = export.onnx_translate(
                session, manifest, *vocabs, sentence, head_mask=mask.numpy()
            )
            with heads.heads_off(model, mask):
                theirs = decoding.translate(
                    model, sentence, TOY_SRC, TOY_TGT, max_len=12
                )
            assert ours.tokens == theirs.tokens, (off, sentence)
            np.testing.assert_allclose(ours.probs, theirs.probs, atol=1e-4)
            np.testing.assert_allclose(
                ours.attention.numpy(), theirs.attention.numpy(), atol=1e-4
            )
