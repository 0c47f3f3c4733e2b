"""The measurements every model goes through in chapters 5 and 6."""

from __future__ import annotations

import pytest
import torch

from attnlab import compare, experiments, rnn, runtime, synthetic
from attnlab.bahdanau import AttentionEncoderDecoder
from attnlab.batching import Batch
from attnlab.transformer import Transformer


@pytest.fixture(scope="module")
def data():
    return synthetic.reversal_task(n_train=100, n_val=10, n_test=30, min_len=3, max_len=8, seed=0)


def _models(data):
    runtime.seed_everything(0)
    src, tgt = len(data.src_vocab), len(data.tgt_vocab)
    return {"gru": rnn.EncoderDecoder(src, tgt, embed_size=8, hidden_size=16, proj_size=8),
            "bahdanau": AttentionEncoderDecoder(src, tgt, embed_size=8, hidden_size=16,
                                                attention_size=8, proj_size=8),
            "transformer": Transformer(src, tgt, d_model=16, num_heads=2, num_layers=1, d_ff=32)}


def test_compare_translation_measures_every_model_alike(data):
    models = {name: (m, {"parameters": 123, "seconds": 4.5}) for name, m in _models(data).items()}
    table = compare.compare_translation(models, data, beam_size=3)
    assert list(table) == ["gru", "bahdanau", "transformer"]
    for name, row in table.items():
        assert row["parameters"] == 123 and row["train_seconds"] == 4.5 and row["device"] == "cpu"
        assert row["test_bleu"] == experiments.evaluate_translation(models[name][0], data)["bleu"]
        assert 0 <= row["test_bleu_beam3"] <= 100
        assert row["sentences_per_second"] > 0 and row["sentences_per_second_beam3"] > 0
        assert len(row["hypotheses"]) == len(data.references("test")[0])
        assert [r["bucket"] for r in row["bleu_by_length"]]


def _batch(length: int, batch_size: int = 4, vocab: int = 12) -> Batch:
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(4, vocab, (batch_size, length), generator=generator)
    tgt = torch.randint(4, vocab, (batch_size, length + 1), generator=generator)
    return Batch(src=src, src_len=torch.full((batch_size,), length), tgt_in=tgt[:, :-1],
                 tgt_out=tgt[:, 1:], tgt_len=torch.full((batch_size,), length))


def test_training_memory_counts_what_backward_keeps(data):
    for name, model in _models(data).items():
        short, long = (compare.training_memory(model, _batch(n)) for n in (8, 32))
        params = sum(p.numel() for p in model.parameters())
        assert short["state"] == long["state"] == 4 * 4 * params, name
        # Activations grow with the sequence: at least 3x for 4x the length, at most 16x
        # (self-attention's maps are quadratic in the length).
        assert 3 * short["activations"] < long["activations"] < 16 * short["activations"], name
        assert all(p.grad is None for p in model.parameters())      # nothing left behind
