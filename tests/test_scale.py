"""The course's training command (attnlab.recipes.scale): one process in this one, or
several under torchrun, with a stated number of tokens a step, a resume point and the
trained model written by rank 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from attnlab.core.runtime import get_profile
from attnlab.recipes import scale
from attnlab.train.checkpoints import load_checkpoint

SMOKE = get_profile("smoke")
# The reversal task's Transformer (no dropout on symbols), 6 steps of 2 batches of at
# most 256 positions padded each.
COMMAND = ["--task", "reversal", "--steps", "6", "--tokens-per-step", "512"]
COMMAND += ["--accumulate", "2", "--device", "cpu"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--steps", "0"], "--steps must be positive"),
        (["--accumulate", "0"], "--accumulate must be positive"),
        (["--tokens-per-step", "3", "--accumulate", "4"], "cannot be cut into 4"),
        (["--stop-after", "2"], "--stop-after needs --resume"),
    ],
)
def test_the_command_refuses_what_cannot_train(options, message):
    with pytest.raises(SystemExit, match=message):
        scale.main(["--task", "reversal", *options], profile=SMOKE)


def test_a_stopped_run_started_again_ends_as_one_that_never_stopped(tmp_path):
    """--stop-after ends the run as a session that dies would, after its resume point at
    step 3, with no model written; the same command again goes on from the point and
    writes the weights of a run that never stopped, bit for bit; every step took at most
    the stated tokens."""
    whole, point, resumed = tmp_path / "whole.pt", tmp_path / "point", tmp_path / "r.pt"
    scale.main([*COMMAND, "--out", str(whole)], profile=SMOKE)
    again = [*COMMAND, "--resume", str(point), "--out", str(resumed)]
    scale.main([*again, "--stop-after", "3"], profile=SMOKE)
    assert point.is_file() and not resumed.exists()
    scale.main(again, profile=SMOKE)
    one, other = load_checkpoint(whole), load_checkpoint(resumed)
    for (name, a), b in zip(
        one.model.state_dict().items(), other.model.state_dict().values()
    ):
        assert torch.equal(a, b), name
    history = one.meta["history"]
    assert history["steps"][-1] == 6
    assert history["tokens"] <= 6 * 512
    assert one.meta["tokens_per_step"] == 512 and one.meta["world_size"] == 1


@pytest.mark.slow
def test_torchrun_runs_the_same_command_on_two_processes(tmp_path):
    """``torchrun --nproc-per-node 2 -m attnlab.recipes.scale`` with the command above:
    rank 0 alone writes the model, trained on the steps one process takes (the same
    target tokens, the same losses within float error)."""
    scale.main([*COMMAND, "--out", str(tmp_path / "one.pt")], profile=SMOKE)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node=2", "-m", "attnlab.recipes.scale"]
        + [*COMMAND, "--out", str(tmp_path / "two.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ATTNLAB_PROFILE": "smoke", "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one, two = (load_checkpoint(tmp_path / f"{n}.pt").meta for n in ("one", "two"))
    assert two["world_size"] == 2
    assert two["history"]["tokens"] == one["history"]["tokens"]
    assert two["history"]["train_loss"] == pytest.approx(
        one["history"]["train_loss"], abs=1e-4
    )
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["one.pt", "two.pt"]
