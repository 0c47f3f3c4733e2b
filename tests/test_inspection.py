"""Reading a model's attention: every layer, head and kind of a Transformer's translation."""

from __future__ import annotations

import pytest
import torch
from helpers import TOY_SRC as SRC
from helpers import TOY_TGT as TGT

from attnlab.infer import decoding
from attnlab.infer.inspection import KINDS, layer_attention


@pytest.fixture
def model(toy_transformer):
    return toy_transformer


def test_layer_attention_reads_every_layer_of_the_translation(model):
    attention = layer_attention(model, "The cat sat on a zebra.", SRC, TGT, max_len=6)
    source = ["the", "cat", "sat", "on", "a", "zebra", ".", "<eos>"]
    assert attention.source == source
    result = decoding.translate(
        model, "The cat sat on a zebra.", SRC, TGT, max_len=6, top_k=0
    )
    assert attention.target[: len(result.tokens)] == result.tokens
    T, S = len(attention.target), len(source)
    assert attention.inputs == ["<bos>", *attention.target[:-1]]
    for kind, shape in zip(KINDS, [(2, S, S), (2, T, T), (2, T, S)]):
        assert len(attention.weights[kind]) == 3
        for w in attention.weights[kind]:
            assert w.shape == shape
            assert torch.allclose(w.sum(-1), torch.ones(shape[:2]), atol=1e-5)
    assert all(w.triu(1).eq(0).all() for w in attention.weights[KINDS[1]])  # causal
    # The teacher-forced pass sees what greedy decoding saw: the last layer's cross-attention
    # (mean of heads) equals the weights the step-by-step decoder reported.
    assert torch.allclose(
        attention.weights[KINDS[2]][-1].mean(0)[: len(result.attention)],
        result.attention,
        atol=1e-5,
    )
    rows, cols = attention.labels(KINDS[1])
    assert rows == attention.target and cols == attention.inputs
    with pytest.raises(ValueError, match="unknown kind"):
        attention.labels("sideways attention")
