"""Evaluating models on held-out data: tagging accuracy and a language model's loss."""

from __future__ import annotations

import pytest
import torch

from attnlab.data import synthetic
from attnlab.measure import evaluation
from attnlab.models.contract import Seq2SeqOutput
from attnlab.models.selfattention import SelfAttentionTagger
from attnlab.train.training import Trainer


class MirrorOracle(torch.nn.Module):
    """Labels every position with the letter at its mirror position: always right."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *, src, src_len, tgt_in):
        logits = torch.zeros(*src.shape, self.vocab_size)
        for b, n in enumerate(src_len.tolist()):
            target = src[b, : n - 1].flip(0).tolist() + [
                2
            ]  # reversed letters, then <eos>
            for i, token in enumerate(target):
                logits[b, i, token] = 1.0
        return Seq2SeqOutput(logits)


def test_tagging_accuracy():
    data = synthetic.reversal_task(
        n_train=10, n_val=10, n_test=30, min_len=3, max_len=9, seed=0
    )
    assert evaluation.tagging_accuracy(MirrorOracle(len(data.tgt_vocab)), data) == {
        "exact_match": 1.0,
        "token_accuracy": 1.0,
    }
    untrained = SelfAttentionTagger(
        len(data.src_vocab),
        len(data.tgt_vocab),
        d_model=16,
        num_heads=2,
        num_layers=1,
        d_ff=32,
        max_len=16,
    )
    scores = evaluation.tagging_accuracy(untrained, data)
    assert 0 <= scores["exact_match"] <= scores["token_accuracy"] < 1


def test_language_model_loss_matches_the_trainer():
    data = synthetic.reversal_task(
        n_train=64, n_val=32, n_test=8, min_len=3, max_len=9, seed=0
    )
    model = SelfAttentionTagger(
        len(data.tgt_vocab),
        len(data.tgt_vocab),
        d_model=16,
        num_heads=2,
        num_layers=1,
        d_ff=32,
        causal=True,
        reads="tgt_in",
        max_len=16,
    )
    honest = evaluation.language_model_loss(model, data, causal=True)
    assert honest == pytest.approx(
        Trainer(model, device="cpu").evaluate(data.loader("val", 16)), rel=1e-5
    )
    assert evaluation.language_model_loss(model, data, causal=False) != pytest.approx(
        honest
    )
