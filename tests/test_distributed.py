"""Training on several processes (attnlab.train.distributed): torchrun with the gloo
backend on this CPU, as on Colab's one GPU or several, with the same script; gradient
accumulation and mixed precision in the one Trainer.step."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT

from attnlab.core import runtime
from attnlab.data import synthetic
from attnlab.data.batching import BucketBatchSampler, PairDataset
from attnlab.models.transformer import Transformer
from attnlab.train import distributed, resume
from attnlab.train.training import Trainer

SCRIPT = ROOT / "tests" / "distributed_run.py"


@pytest.mark.parametrize("max_tokens", [None, 96])
def test_the_ranks_share_every_batch_between_them(max_tokens):
    """Every process cuts the same batches (by count, or by a token budget, which is
    the whole batch's) and takes its share of each."""
    lengths = [(7 * i) % 13 + 1 for i in range(194)]  # 12 batches of 16, one of 2
    budget = {"max_tokens": max_tokens}
    alone = list(BucketBatchSampler(lengths, 16, seed=3, **budget))
    shares = [
        list(BucketBatchSampler(lengths, 16, seed=3, rank=r, world_size=3, **budget))
        for r in range(3)
    ]
    kept = [b for b in alone if len(b) >= 3]
    if max_tokens is None:
        assert len(kept) == len(alone) - 1  # the batch of 2 cannot go to 3 processes
    else:
        assert len(alone) > 13 and len(kept) >= len(alone) - 1
    assert all(len(share) == len(kept) for share in shares)
    for batch, parts in zip(kept, zip(*shares)):
        assert sorted(i for part in parts for i in part) == sorted(batch)
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    with pytest.raises(ValueError, match="rank < world_size"):
        BucketBatchSampler(lengths, 16, rank=2, world_size=2)
    with pytest.raises(ValueError, match="a batch of 2 cannot be shared by 3"):
        BucketBatchSampler(lengths, 2, world_size=3)


def test_the_ranks_come_from_torchrun_s_environment():
    assert distributed.from_environment({}) == distributed.ONE
    ranks = distributed.from_environment(
        {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    )
    assert (ranks.rank, ranks.world_size, ranks.active, ranks.is_main) == (
        1,
        2,
        True,
        False,
    )
    with pytest.raises(ValueError, match="start the script with torchrun"):
        distributed.from_environment({"WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="got rank 2 of 2"):
        distributed.from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def _reversal_model_and_batches():
    runtime.seed_everything(0)
    task = synthetic.reversal_task(
        n_train=64, n_val=8, n_test=8, min_len=3, max_len=12, seed=0
    )
    data = PairDataset(task.train[:24], task.src_vocab, task.tgt_vocab)
    items = [data[i] for i in range(24)]
    model = Transformer(
        len(task.src_vocab),
        len(task.tgt_vocab),
        d_model=16,
        num_heads=2,
        num_layers=1,
        d_ff=32,
        dropout=0.0,
    )
    return model, data, items


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.5)


def test_accumulated_batches_step_as_the_one_batch_they_make():
    """Three batches of 8 accumulated give the step one batch of their 24 sentences gives
    (each token's loss divided by the step's tokens, not by its own batch's).

    Under SGD, whose update is the gradient: Adam divides each gradient by its own
    size, and some are zero in exact arithmetic (the keys' bias: adding one number to
    every score of a query changes no attention weight), so their rounding, which
    depends on the batch's shape, would become a whole step of either sign."""
    model, data, items = _reversal_model_and_batches()
    assert len({sum(len(t) for _, t in items[i : i + 8]) for i in (0, 8, 16)}) > 1
    twin = copy.deepcopy(model)
    whole = Trainer(model, optimizer=_sgd(model), device="cpu", label_smoothing=0.1)
    parts = Trainer(twin, optimizer=_sgd(twin), device="cpu", label_smoothing=0.1)
    for _ in range(3):
        one = whole.step(data.collate(items))
        three = parts.step([data.collate(items[i : i + 8]) for i in (0, 8, 16)])
        torch.testing.assert_close(three.loss, one.loss, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(three.grad_norm, one.grad_norm, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="at least one batch"):
        whole.step([])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_its_scaler_resumes(precision, tmp_path):
    model, data, items = _reversal_model_and_batches()
    trainer = Trainer(model, lr=3e-3, device="cpu", precision=precision)
    batches = [data.collate(items[i : i + 8]) for i in (0, 8, 16)]
    history = trainer.fit(
        batches, max_steps=45, log_every=15, progress=False, resume_path=tmp_path / "r"
    )
    assert history.train_loss[-1] < 0.9 * history.train_loss[0]
    point = resume.load(tmp_path / "r")
    assert (point.scaler is not None) == (precision == "fp16")
    if precision == "fp16":  # a float32 trainer cannot take a float16 run's point
        other = Trainer(_reversal_model_and_batches()[0], device="cpu")
        with pytest.raises(resume.ResumeError, match="scaling gradients"):
            other.fit(batches, max_steps=45, progress=False, resume_path=tmp_path / "r")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        Trainer(model, device="cpu", precision="fp8")


def _run(tmp_path, name, processes, *options):
    out = tmp_path / name
    launcher = (
        [sys.executable, str(SCRIPT)]
        if processes == 1
        else [
            str(os.path.join(os.path.dirname(sys.executable), "torchrun")),
            "--standalone",
            f"--nproc-per-node={processes}",
            str(SCRIPT),
        ]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, str(out), *options],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _weights(path):
    return torch.load(path, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, budget",
    [("gru", []), ("bahdanau", []), ("transformer", ["--max-tokens", "96"])],
)
def test_every_model_trains_on_two_processes_as_on_one(model, budget, tmp_path):
    """The recurrent models too (their packed, padded batches split between the
    processes), and batches cut to a token budget: 2 processes under torchrun end with
    one process's weights after 6 steps of SGD, within 1e-6."""
    options = ["--optimizer", "sgd", "--model", model, *budget]
    one = _weights(_run(tmp_path, "one", 1, *options))
    two = _weights(_run(tmp_path, "two", 2, *options))
    assert two["history"]["tokens"] == one["history"]["tokens"]
    for name, value in one["weights"].items():
        torch.testing.assert_close(two["weights"][name], value, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_two_processes_train_as_one_with_their_batches_together(tmp_path):
    """Under torchrun with gloo, 2 processes sharing each batch of 16 end with the
    weights one process gets from the same batches of 16 (within 1e-6 after 6 steps of
    SGD: see the accumulation test for why not Adam), the same on both ranks; with
    Adam, the same losses; and a run of 2 processes stopped after its resume point at
    step 3 and started again ends bit for bit as the run that never stopped."""
    one = _weights(_run(tmp_path, "one-sgd", 1, "--optimizer", "sgd"))
    two = _weights(_run(tmp_path, "two-sgd", 2, "--optimizer", "sgd"))
    for name, value in one["weights"].items():
        torch.testing.assert_close(two["weights"][name], value, rtol=0, atol=1e-6)
    ranks = [_weights(tmp_path / f"two-sgd.rank{r}") for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    one, two = _weights(_run(tmp_path, "one", 1)), _weights(_run(tmp_path, "two", 2))
    assert two["history"]["steps"] == list(range(1, 7))
    assert two["history"]["tokens"] == one["history"]["tokens"]
    for mine, theirs in zip(two["history"]["train_loss"], one["history"]["train_loss"]):
        assert mine == pytest.approx(theirs, abs=1e-5)
    point = str(tmp_path / "point")
    _run(tmp_path, "stopped", 2, "--resume", point, "--stop-after", "3")
    assert not (tmp_path / "stopped").exists()
    saved = resume.load(point)
    assert (saved.step, saved.world_size, len(saved.rng)) == (3, 2, 2)
    resumed = _weights(_run(tmp_path, "resumed", 2, "--resume", point))
    assert all(
        torch.equal(resumed["weights"][k], two["weights"][k]) for k in one["weights"]
    )
    assert resumed["history"] == {
        **two["history"],
        "seconds": resumed["history"]["seconds"],
        "val_seconds": resumed["history"]["val_seconds"],
    }
