"""Measurements behind the chapters' claims, and the shared experiment settings."""

from __future__ import annotations

import pytest
import torch

from attnlab.core import runtime
from attnlab.data import synthetic
from attnlab.measure import analysis
from attnlab.models import rnn


def _reversal_model_and_batch():
    task = synthetic.reversal_task(
        n_train=8, n_val=2, n_test=8, min_len=3, max_len=9, seed=1
    )
    runtime.seed_everything(0)
    model = rnn.EncoderDecoder(
        len(task.src_vocab),
        len(task.tgt_vocab),
        embed_size=8,
        hidden_size=16,
        proj_size=8,
        dropout=0.0,
    )
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
        logits = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in).logits
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0
        )
        (grad,) = torch.autograd.grad(loss, embedded)
    finally:
        model.encoder.embedding.forward = original
    assert torch.allclose(norms, grad.norm(dim=-1) * batch.src_mask, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # nothing left behind


def test_by_distance_from_end():
    norms = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 6.0, 7.0]])
    assert analysis.by_distance_from_end(norms, torch.tensor([3, 4])).tolist() == [
        5.0,
        4.0,
        3.0,
        4.0,
    ]


def test_time_training_step_reports_each_length():
    model = rnn.EncoderDecoder(
        50, 50, embed_size=8, hidden_size=8, proj_size=8, dropout=0.0
    )
    before = [p.detach().clone() for p in model.parameters()]
    rows = analysis.time_training_step(
        model, src_vocab=50, tgt_vocab=50, lengths=[4, 8], batch_size=4, repeats=2
    )
    assert [r["length"] for r in rows] == [4, 8] and all(r["seconds"] > 0 for r in rows)
    assert any(
        not torch.equal(p, b) for p, b in zip(model.parameters(), before)
    )  # it trained


def test_source_gradient_norms_backward_avoids_cudnn_in_eval_mode():
    """The measurement runs the model in evaluation mode (no dropout) and differentiates
    it; cuDNN's GRU refuses that ("cudnn RNN backward can only be called in training
    mode"), so the backward pass must run with cuDNN off, on any device."""
    model, batch = _reversal_model_and_batch()
    seen = []

    def watch(module, inputs, output):  # returns None: the output is kept
        output.register_hook(
            lambda grad: seen.append((torch.backends.cudnn.enabled, module.training))
        )

    handle = model.encoder.embedding.register_forward_hook(watch)
    try:
        analysis.source_gradient_norms(model, batch)
    finally:
        handle.remove()
    assert seen == [(False, False)]
    assert torch.backends.cudnn.enabled  # restored afterwards


def test_parallel_and_sequential_grows_the_tokens_both_ways(monkeypatch):
    """Both series start from the same shape and reach the same token counts, one by more
    sentences, the other by longer ones; each time is a real measurement of that shape."""
    shapes = []
    real = analysis.time_training_step

    def recording(model, *, lengths, batch_size, **kwargs):
        shapes.extend((batch_size, n) for n in lengths)
        return real(model, lengths=lengths, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(analysis, "time_training_step", recording)
    model = rnn.EncoderDecoder(
        20, 20, embed_size=8, hidden_size=8, proj_size=8, dropout=0.0
    )
    result = analysis.parallel_and_sequential(
        model, vocab=20, batch_size=2, length=3, factors=[1, 2, 4], repeats=1
    )
    assert [(r["batch"], r["length"]) for r in result["batch"]] == [
        (2, 3),
        (4, 3),
        (8, 3),
    ]
    assert [(r["batch"], r["length"]) for r in result["length"]] == [
        (2, 3),
        (2, 6),
        (2, 12),
    ]
    assert (
        [r["tokens"] for r in result["batch"]]
        == [r["tokens"] for r in result["length"]]
        == [6, 12, 24]
    )
    assert sorted(shapes) == sorted([(2, 3), (4, 3), (8, 3), (2, 3), (2, 6), (2, 12)])
    assert all(r["seconds"] > 0 for rows in result.values() for r in rows)
    with pytest.raises(ValueError, match="factors"):
        analysis.parallel_and_sequential(
            model, vocab=20, batch_size=2, length=3, factors=[0]
        )


def test_gradient_norms_are_measured_before_clipping():
    """The norms recorded are those of the raw gradient; clipping changes the update, so
    the two runs part after their first step, which they share exactly."""
    task = synthetic.reversal_task(
        n_train=64, n_val=2, n_test=2, min_len=3, max_len=9, seed=1
    )
    batches = list(task.loader("train", 16))[:4]

    def run(clip):
        runtime.seed_everything(0)
        model = rnn.EncoderDecoder(
            len(task.src_vocab),
            len(task.tgt_vocab),
            embed_size=8,
            hidden_size=16,
            proj_size=8,
            dropout=0.0,
        )
        return analysis.gradient_norms_during_training(
            model, batches, lr=0.05, clip=clip
        )

    free, clipped = run(None), run(1e-3)
    assert len(free["norms"]) == len(free["losses"]) == 4
    assert free["norms"][0] == clipped["norms"][0] > 1e-3  # the same first gradient
    assert free["losses"][0] == clipped["losses"][0]
    assert free["losses"][1:] != clipped["losses"][1:]  # then different updates


def test_recurrent_jacobian_norms_follow_the_spectral_radius():
    for radius in (0.8, 1.0, 1.2):
        linear = analysis.recurrent_jacobian_norms(radius, steps=30, nonlinear=False)
        assert linear == pytest.approx([radius**k for k in range(31)], rel=1e-9)
        squashed = analysis.recurrent_jacobian_norms(radius, steps=30)
        assert squashed[0] == pytest.approx(1.0)
        # tanh's derivative is at most 1: it can only shrink what reaches back
        assert all(s <= lin * (1 + 1e-9) for s, lin in zip(squashed, linear))
    # small inputs keep tanh near its linear part: a radius above 1 explodes there too
    assert analysis.recurrent_jacobian_norms(2.0, steps=30, input_scale=0.01)[-1] > 100
    assert analysis.recurrent_jacobian_norms(0.8, steps=30)[-1] < 1e-3
    with pytest.raises(ValueError, match="positive spectral radius"):
        analysis.recurrent_jacobian_norms(0.0, steps=3)


def test_updates_around_a_spike_under_sgd_clipping_and_adam():
    task = synthetic.reversal_task(
        n_train=200, n_val=10, n_test=10, min_len=5, max_len=10, seed=0
    )
    batch = next(iter(task.loader("train", 32, seed=0)))

    def model():
        torch.manual_seed(0)
        return rnn.EncoderDecoder(
            len(task.src_vocab),
            len(task.tgt_vocab),
            embed_size=8,
            hidden_size=16,
            proj_size=8,
            dropout=0.0,
        )

    sgd = model()
    sizes = analysis.updates_around_a_spike(
        sgd,
        batch,
        torch.optim.SGD(sgd.parameters(), lr=1e-4),
        spike=1000.0,
        before=3,
        after=2,
    )
    assert len(sizes) == 6
    assert sizes[3] / sizes[2] == pytest.approx(1000.0, rel=0.05), (
        "SGD takes the spike whole"
    )
    clipped = model()
    sizes = analysis.updates_around_a_spike(
        clipped,
        batch,
        torch.optim.SGD(clipped.parameters(), lr=0.1),
        spike=1000.0,
        before=3,
        after=2,
        clip=1.0,
    )
    assert sizes[3] <= 0.1 * 1.0 + 1e-6, (
        "clipped at norm 1: the update is at most lr x 1"
    )
    adam = model()
    sizes = analysis.updates_around_a_spike(
        adam,
        batch,
        torch.optim.Adam(adam.parameters(), lr=1e-3),
        spike=1000.0,
        before=20,
        after=20,
    )
    assert sizes[20] < 5 * sizes[19], (
        "Adam divides by its estimate of the gradient's size"
    )
    assert sizes[-1] < 0.5 * sizes[19], (
        "whose spike then shrinks the updates that follow"
    )
    with pytest.raises(ValueError, match="spike must be positive"):
        analysis.updates_around_a_spike(
            adam, batch, torch.optim.Adam(adam.parameters()), spike=0.0
        )
