"""The small self-attention model, its masks and positions, and the experiment helpers."""

from __future__ import annotations

import pytest
import torch

from attnlab import experiments, runtime, synthetic
from attnlab.selfattention import SelfAttentionTagger
from attnlab.training import Trainer, inverse_sqrt_schedule, warmup_linear_schedule


def _tagger(**kwargs):
    runtime.seed_everything(0)
    config = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=32)
    config.update(kwargs)
    return SelfAttentionTagger(20, 20, **config)


def test_shapes_and_weights():
    model = _tagger()
    tokens = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
    logits, weights = model.encode(tokens, need_weights=True)
    assert logits.shape == (2, 4, 20) and len(weights) == 2 and weights[0].shape == (2, 2, 4, 4)
    assert weights[1][1, :, :, 2:].eq(0).all()  # padding is never attended to


def test_causal_model_does_not_look_ahead():
    model = _tagger(causal=True).eval()
    tokens = torch.tensor([[5, 6, 7, 8, 9]])
    changed = tokens.clone()
    changed[0, 3:] = torch.tensor([10, 11])
    before, _ = model.encode(tokens)
    after, _ = model.encode(changed)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-6)
    assert not torch.allclose(before[0, 3:], after[0, 3:])


def test_without_positions_the_model_is_permutation_equivariant():
    for positions, equivariant in (("none", True), ("sinusoidal", False), ("learned", False)):
        model = _tagger(positions=positions).eval()
        tokens = torch.tensor([[5, 6, 7, 8, 9]])
        order = torch.tensor([4, 2, 0, 1, 3])
        out, _ = model.encode(tokens)
        permuted, _ = model.encode(tokens[:, order])
        assert torch.allclose(permuted, out[:, order], atol=1e-5) == equivariant


def test_bad_arguments():
    with pytest.raises(ValueError, match="positions"):
        _tagger(positions="rotary")
    with pytest.raises(ValueError, match="reads"):
        _tagger(reads="both")
    with pytest.raises(ValueError, match="warmup"):
        warmup_linear_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                               warmup=10, total=10)


def _rates(make_schedule, steps: int) -> list[float]:
    """The learning rate a schedule gives at each of ``steps`` steps (base rate 1)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = make_schedule(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_warmup_linear_schedule():
    rates = _rates(lambda opt: warmup_linear_schedule(opt, warmup=4, total=12), 12)
    assert rates[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert rates[5:] == pytest.approx([7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


class MirrorOracle(torch.nn.Module):
    """Labels every position with the letter at its mirror position: always right."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *, src, src_len, tgt_in):
        logits = torch.zeros(*src.shape, self.vocab_size)
        for b, n in enumerate(src_len.tolist()):
            target = src[b, : n - 1].flip(0).tolist() + [2]       # reversed letters, then <eos>
            for i, token in enumerate(target):
                logits[b, i, token] = 1.0
        return logits


def test_tagging_accuracy():
    data = synthetic.reversal_task(n_train=10, n_val=10, n_test=30, min_len=3, max_len=9, seed=0)
    assert experiments.tagging_accuracy(MirrorOracle(len(data.tgt_vocab)), data) == {
        "exact_match": 1.0, "token_accuracy": 1.0}
    untrained = SelfAttentionTagger(len(data.src_vocab), len(data.tgt_vocab), d_model=16,
                                    num_heads=2, num_layers=1, d_ff=32, max_len=16)
    scores = experiments.tagging_accuracy(untrained, data)
    assert 0 <= scores["exact_match"] <= scores["token_accuracy"] < 1


def test_language_model_loss_matches_the_trainer():
    data = synthetic.reversal_task(n_train=64, n_val=32, n_test=8, min_len=3, max_len=9, seed=0)
    model = SelfAttentionTagger(len(data.tgt_vocab), len(data.tgt_vocab), d_model=16, num_heads=2,
                                num_layers=1, d_ff=32, causal=True, reads="tgt_in", max_len=16)
    honest = experiments.language_model_loss(model, data, causal=True)
    assert honest == pytest.approx(Trainer(model, device="cpu").evaluate(data.loader("val", 16)),
                                   rel=1e-5)
    assert experiments.language_model_loss(model, data, causal=False) != pytest.approx(honest)


def test_inverse_sqrt_schedule_peaks_at_the_end_of_warmup():
    rates = _rates(lambda opt: inverse_sqrt_schedule(opt, warmup=4, d_model=16), 16)
    peak = 16 ** -0.5 * 4 ** -0.5                     # at step 4: d^-0.5 * warmup^-0.5
    assert rates[3] == pytest.approx(peak) and max(rates) == pytest.approx(peak)
    assert rates[:4] == pytest.approx([peak * s / 4 for s in (1, 2, 3, 4)])
    assert rates[15] == pytest.approx(16 ** -0.5 * 16 ** -0.5)
    with pytest.raises(ValueError):
        inverse_sqrt_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                              warmup=0, d_model=16)
