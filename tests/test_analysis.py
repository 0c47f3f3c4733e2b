"""Measurements behind the chapters' claims, and the shared experiment settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from attnlab import analysis, experiments, metrics, rnn, runtime, synthetic


def test_length_buckets():
    lengths = [1, 3, 4, 5, 6, 10, 11]
    buckets = metrics.length_buckets(lengths, [3, 5, 10])
    assert buckets == [("1-3", [0, 1]), ("4-5", [2, 3]), ("6-10", [4, 5])]
    assert metrics.length_buckets([5, 7], [5, 10], start=5) == [("5", [0]), ("6-10", [1])]


def test_scores_by_length_are_scores_of_the_subsets():
    hyps = ["a b c d", "je suis là", "x y", "le chat dort ici"]
    refs = [["a b c d"], ["je suis ici"], ["x z"], ["le chat dort ici"]]
    rows = metrics.bleu_by_length(hyps, refs, [2, 2, 9, 9], [5, 10])
    assert [r["bucket"] for r in rows] == ["1-5", "6-10"]
    assert rows[0]["bleu"] == pytest.approx(metrics.bleu(hyps[:2], refs[:2]))
    assert rows[1]["sentences"] == 2
    rows = metrics.exact_match_by_length([["a"], ["b"], ["c"]], [["a"], ["x"], ["c"]], [1, 1, 7], [5, 10])
    assert [(r["bucket"], r["exact_match"]) for r in rows] == [("1-5", 0.5), ("6-10", 1.0)]


def _reversal_model_and_batch():
    task = synthetic.reversal_task(n_train=8, n_val=2, n_test=8, min_len=3, max_len=9, seed=1)
    runtime.seed_everything(0)
    model = rnn.EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), embed_size=8,
                               hidden_size=16, proj_size=8, dropout=0.0)
    return model, next(iter(task.loader("test", 8)))


def test_source_gradient_norms_match_autograd_and_ignore_padding():
    model, batch = _reversal_model_and_batch()
    norms = analysis.source_gradient_norms(model, batch)
    assert norms.shape == batch.src.shape
    assert norms[~batch.src_mask].eq(0).all() and norms[batch.src_mask].gt(0).all()
    # The same quantity by hand, through a differentiable copy of the embeddings.
    embedded = model.encoder.embedding(batch.src).detach().requires_grad_()
    original = model.encoder.embedding.forward
    model.encoder.embedding.forward = lambda ids: embedded
    try:
        logits = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(),
                                                 ignore_index=0)
        (grad,) = torch.autograd.grad(loss, embedded)
    finally:
        model.encoder.embedding.forward = original
    assert torch.allclose(norms, grad.norm(dim=-1) * batch.src_mask, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # nothing left behind


def test_by_distance_from_end():
    norms = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 6.0, 7.0]])
    assert analysis.by_distance_from_end(norms, torch.tensor([3, 4])).tolist() == [5.0, 4.0, 3.0, 4.0]


def test_time_training_step_reports_each_length():
    model = rnn.EncoderDecoder(50, 50, embed_size=8, hidden_size=8, proj_size=8, dropout=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    rows = analysis.time_training_step(model, src_vocab=50, tgt_vocab=50, lengths=[4, 8],
                                       batch_size=4, repeats=2)
    assert [r["length"] for r in rows] == [4, 8] and all(r["seconds"] > 0 for r in rows)
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))  # it trained


def test_budgets_and_settings():
    smoke, full = runtime.Profile("smoke"), runtime.Profile("full")
    assert experiments.budget("fra-eng", smoke).steps < experiments.budget("fra-eng", full).steps
    assert experiments.fra_eng_settings(full)["n_train"] == 20_000
    with pytest.raises(ValueError, match="unknown task"):
        experiments.budget("chess", full)
    # The Transformer gets chapters 2-3's steps and batch, with its own optimiser settings.
    for profile in (smoke, full):
        shared, own = (experiments.budget(t, profile) for t in ("fra-eng", "fra-eng-transformer"))
        assert (own.steps, own.batch_size) == (shared.steps, shared.batch_size)
        assert own.label_smoothing == 0.1 and own.betas == (0.9, 0.98) and own.warmup > 0
        assert own.lr == shared.lr


def test_budget_cache_keys_only_grow_with_settings_that_are_used():
    plain = experiments.Budget(steps=10, batch_size=8, lr=1e-3, log_every=5, eval_every=10)
    assert plain.spec() == {"steps": 10, "batch_size": 8, "lr": 1e-3, "log_every": 5,
                            "eval_every": 10, "warmup": 0}
    smoothed = dataclasses.replace(plain, label_smoothing=0.1)
    assert smoothed.spec() == {**plain.spec(), "label_smoothing": 0.1}


@pytest.mark.parametrize("settings, expected", [
    (dict(), [1.0, 1.0, 1.0, 1.0]),
    (dict(decay=True), [1.0, 0.75, 0.5, 0.25]),
    (dict(warmup=2), [0.5, 1.0, 1.0, 0.5]),
])
def test_make_schedule(settings, expected):
    plan = experiments.Budget(steps=4, batch_size=8, lr=1.0, log_every=1, eval_every=4, **settings)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = experiments.make_schedule(optimizer, plan)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    assert rates == pytest.approx(expected)


def test_train_model_caches_the_experiment():
    profile = runtime.Profile("smoke")
    data = synthetic.reversal_task(n_train=200, n_val=20, n_test=40, min_len=3, max_len=8, seed=0)
    plan = experiments.Budget(steps=12, batch_size=32, lr=3e-3, log_every=4, eval_every=12)

    def build():
        return rnn.EncoderDecoder(len(data.src_vocab), len(data.tgt_vocab), embed_size=8,
                                  hidden_size=16, proj_size=8, dropout=0.0)

    model, meta = experiments.train_model("tiny-rev", build, data, plan, profile=profile, device="cpu")
    again, meta2 = experiments.train_model("tiny-rev", build, data, plan, profile=profile, device="cpu")
    assert not meta["from_cache"] and meta2["from_cache"]
    assert meta2["history"]["train_loss"] == meta["history"]["train_loss"]
    assert meta["history"]["val_steps"] == [12]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    scores = experiments.evaluate_reversal(model, data)
    assert 0.0 <= scores["exact_match"] <= 1.0 and scores["by_length"][0]["bucket"] == "3-5"
