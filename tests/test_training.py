"""Training, checkpoints, the model cache, metrics, results and the runtime helpers."""

from __future__ import annotations

import pytest
import torch
from helpers import TinySeq2Seq, tiny_task, train_tiny
from torch import nn

from attnlab.core import runtime
from attnlab.train.training import (
    Trainer,
    inverse_sqrt_schedule,
    masked_cross_entropy,
    warmup_linear_schedule,
)


def test_masked_cross_entropy_ignores_padding():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    expected = torch.stack(
        [
            nn.functional.cross_entropy(logits[b, t], targets[b, t])
            for b, t in [(0, 0), (0, 1), (1, 0)]
        ]
    ).mean()
    assert torch.allclose(masked_cross_entropy(logits, targets), expected)
    changed = logits.clone()
    changed[0, 2] += 100.0  # a padded position: the loss must not move
    assert torch.allclose(masked_cross_entropy(changed, targets), expected)
    with pytest.raises(ValueError, match="do not match"):
        masked_cross_entropy(logits, targets[:, :2])


def test_training_lowers_the_loss_and_logs():
    _, history = train_tiny(tiny_task(), steps=60)
    assert history.steps == list(range(5, 61, 5))
    assert history.val_steps == [15, 30, 45, 60]
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert history.tokens > 0 and history.seconds > 0


def test_same_seed_same_losses():
    task = tiny_task()
    _, first = train_tiny(task, seed=5)
    _, second = train_tiny(task, seed=5)
    _, other = train_tiny(task, seed=6)
    assert first.train_loss == second.train_loss and first.val_loss == second.val_loss
    assert first.train_loss != other.train_loss


def test_gradient_clipping_bounds_the_update():
    task = tiny_task()
    model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    Trainer(model, optimizer=optimizer, clip=0.01, device="cpu").train_step(
        next(iter(task.loader("train", 64)))
    )
    step = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]
    )
    assert step.norm() <= 0.01 + 1e-5
    with pytest.raises(ValueError, match="either lr"):
        Trainer(model, lr=0.1, optimizer=optimizer, device="cpu")


# --- metrics -----------------------------------------------------------------------------


# --- results and runtime ---------------------------------------------------------------------


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
    # Without warm-up: a linear decay from the first step.
    rates = _rates(lambda opt: warmup_linear_schedule(opt, warmup=0, total=4), 4)
    assert rates == pytest.approx([1.0, 3 / 4, 2 / 4, 1 / 4])
    # Without decay: the peak is held after the warm-up.
    rates = _rates(
        lambda opt: warmup_linear_schedule(opt, warmup=4, total=12, decay=False), 12
    )
    assert rates == pytest.approx([0.25, 0.5, 0.75] + [1.0] * 9)
    # Held, then a decay over the last 4 steps (warm-up, stable, decay).
    rates = _rates(
        lambda opt: warmup_linear_schedule(opt, warmup=4, total=12, decay_steps=4), 12
    )
    assert rates == pytest.approx(
        [0.25, 0.5, 0.75] + [1.0] * 5 + [1.0, 3 / 4, 2 / 4, 1 / 4]
    )
    with pytest.raises(ValueError, match="decay_steps"):
        warmup_linear_schedule(
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
            warmup=4,
            total=12,
            decay_steps=9,
        )
    for warmup in (10, -1):
        with pytest.raises(ValueError, match="warmup"):
            warmup_linear_schedule(
                torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                warmup=warmup,
                total=10,
            )


def test_inverse_sqrt_schedule_peaks_at_the_end_of_warmup():
    rates = _rates(lambda opt: inverse_sqrt_schedule(opt, warmup=4, d_model=16), 16)
    peak = 16**-0.5 * 4**-0.5  # at step 4: d^-0.5 * warmup^-0.5
    assert rates[3] == pytest.approx(peak) and max(rates) == pytest.approx(peak)
    assert rates[:4] == pytest.approx([peak * s / 4 for s in (1, 2, 3, 4)])
    assert rates[15] == pytest.approx(16**-0.5 * 16**-0.5)
    with pytest.raises(ValueError):
        inverse_sqrt_schedule(
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
            warmup=0,
            d_model=16,
        )


def test_token_loss_weighs_every_token_alike():
    """Two batches of 1 and 3 target tokens: the loss per token, not the mean of two means."""
    from attnlab.data.batching import Batch
    from attnlab.train.training import token_loss

    def batch(targets):
        tgt = torch.tensor([targets])
        length = torch.tensor([sum(t != 0 for t in targets)])
        return Batch(src=tgt, src_len=length, tgt_in=tgt, tgt_out=tgt, tgt_len=length)

    batches = [batch([3, 0, 0]), batch([1, 2, 4])]
    scores = torch.randn(1, 3, 5, generator=torch.Generator().manual_seed(0))
    per_token = [
        -torch.log_softmax(scores[0, t], -1)[b.tgt_out[0, t]]
        for b in batches
        for t in range(3)
        if b.tgt_out[0, t] != 0
    ]
    loss = token_loss(lambda b: scores, batches, device="cpu")
    assert loss == pytest.approx(float(torch.stack(per_token).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="no target tokens"):
        token_loss(lambda b: scores, [batch([0, 0, 0])], device="cpu")


def test_step_queues_and_fit_reads_the_losses_only_when_it_logs(monkeypatch):
    """``step`` hands back the loss as a tensor, detached; ``fit`` reads the device's
    running sum (one wait) only at the steps it logs, and the logged means are those
    of the individual steps."""
    task = tiny_task()
    runtime.seed_everything(0)
    trainer = Trainer(
        TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab)), lr=3e-3, device="cpu"
    )
    batch = next(iter(task.loader("train", 16)))
    result = trainer.step(batch)
    for value in (result.loss, result.grad_norm):
        assert isinstance(value, torch.Tensor) and value.ndim == 0
        assert not value.requires_grad

    reads, item = [], torch.Tensor.item

    def counted(tensor):
        reads.append(tensor)
        return item(tensor)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    returned, step = [], Trainer.step

    def recorded(self, b):
        result = step(self, b)
        returned.append(result.loss)
        return result

    monkeypatch.setattr(Trainer, "step", recorded)
    history = trainer.fit(
        task.loader("train", 16), max_steps=20, log_every=5, progress=False
    )
    assert not any(r is loss for r in reads for loss in returned)  # no wait per step
    assert sum(r.dtype == torch.float64 for r in reads) == 4  # one per log
    losses = [item(loss) for loss in returned]
    assert history.train_loss == pytest.approx(
        [sum(losses[i : i + 5]) / 5 for i in range(0, 20, 5)], rel=1e-12
    )


def test_fit_stops_on_a_loss_that_is_not_finite():
    task = tiny_task()
    trainer = Trainer(
        TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab)), lr=3e-3, device="cpu"
    )
    with torch.no_grad():
        trainer.model.out.bias.fill_(float("nan"))
    with pytest.raises(
        FloatingPointError, match=r"steps up to 5\b.*lower the learning"
    ):
        trainer.fit(task.loader("train", 16), max_steps=20, log_every=5, progress=False)
    with pytest.raises(FloatingPointError, match="became nan"):
        trainer.train_step(next(iter(task.loader("train", 16))))


def test_callbacks_are_not_training_time_and_evaluations_are_clocked():
    import time

    task = tiny_task()
    runtime.seed_everything(0)
    model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
    calls = []

    def slow(history):  # a callback that takes far longer than the training itself
        calls.append(history.steps[-1])
        time.sleep(0.25)

    history = Trainer(model, lr=3e-3, device="cpu").fit(
        task.loader("train", 64, seed=0),
        max_steps=30,
        log_every=5,
        callbacks=[slow],
        val_batches=task.loader("val", 64),
        eval_every=15,
        progress=False,
    )
    assert calls == [5, 10, 15, 20, 25, 30]
    assert history.seconds < 0.25 * len(calls), (
        "the callbacks' 1.5 s are not training time"
    )
    assert len(history.val_seconds) == len(history.val_steps) == 2
    assert 0 < history.val_seconds[0] < history.val_seconds[1] <= history.seconds


def test_the_step_reports_the_gradient_norm_before_clipping_and_scales_on_request():
    task = tiny_task()
    batch = next(iter(task.loader("train", 16)))
    norms = {}
    for clip, scale in [(None, 1.0), (0.01, 1.0), (None, 10.0)]:
        runtime.seed_everything(0)
        model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
        before = [p.detach().clone() for p in model.parameters()]
        result = Trainer(
            model,
            optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
            clip=clip,
            device="cpu",
        ).step(batch, gradient_scale=scale)
        norms[clip, scale] = float(result.grad_norm)
        # SGD at lr 1 moves each parameter by its (clipped, scaled) gradient
        moved = torch.cat(
            [(b - p.detach()).flatten() for b, p in zip(before, model.parameters())]
        ).norm()
        assert float(moved) == pytest.approx(
            min(norms[clip, scale], clip or 1e9), rel=1e-4
        )
    assert norms[0.01, 1.0] == norms[None, 1.0] > 0.01  # reported before clipping
    assert norms[None, 10.0] == pytest.approx(10 * norms[None, 1.0], rel=1e-5)
