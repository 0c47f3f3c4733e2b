"""One of the course's models trained from the command line, on one process or several,
with a stated number of tokens a step: the same script either way.

    python -m attnlab.recipes.scale --model transformer --out model.pt
    torchrun --nproc-per-node 2 -m attnlab.recipes.scale --model transformer \\
        --tokens-per-step 4096 --accumulate 2 --resume point.pt --out model.pt

``torchrun`` starts one copy of the script a process (on a GPU machine, one a GPU);
:func:`attnlab.train.distributed.start` joins them, and the one
:class:`~attnlab.train.training.Trainer` wraps the model in ``DistributedDataParallel``.
A step takes ``--accumulate`` batches, each cut by the length-bucketed sampler to at
most ``tokens_per_step / accumulate`` positions padded (the whole batch's, shared out
between the processes), so the step is the same size on any number of processes: more
processes take less time a step, not bigger steps. ``--precision`` picks the forward
pass's number format (bf16, or fp16 with a gradient scaler). With ``--resume``, rank 0
writes a resume point every ``--save-every`` steps, and a run started again with the
same command goes on from it, on every rank, to the weights an uninterrupted run ends
with. Rank 0 writes the trained model (``--out``), with its vocabularies and history.

The data, model sizes and recipe are the chapters' (:mod:`attnlab.recipes.experiments`,
in the profile ``ATTNLAB_PROFILE`` names).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from attnlab.core.runtime import Profile, choose_device, get_profile, seed_everything
from attnlab.data.batching import Batch
from attnlab.data.dataset import Seq2SeqData
from attnlab.recipes import experiments
from attnlab.train import distributed
from attnlab.train.checkpoints import save_checkpoint
from attnlab.train.training import PRECISIONS, History, Trainer, adam

MODELS = {
    "gru": experiments.gru_model,
    "bahdanau": experiments.bahdanau_model,
    "transformer": experiments.transformer_model,
}
TASKS = {"fra-eng": experiments.fra_eng_data, "reversal": experiments.reversal_data}


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(
        prog="python -m attnlab.recipes.scale",
        description=(
            "Train one of the course's models, on one process or, under torchrun, "
            "several, with a stated number of tokens a step."
        ),
    )
    options.add_argument("--model", choices=sorted(MODELS), default="transformer")
    options.add_argument("--task", choices=sorted(TASKS), default="fra-eng")
    options.add_argument(
        "--steps", type=int, default=None, help="default: the task's budget"
    )
    options.add_argument(
        "--tokens-per-step",
        type=int,
        default=None,
        help="positions padded a step, all processes and batches together "
        "(default: the budget's, if it has one, else batches of its number of "
        "sentences)",
    )
    options.add_argument(
        "--accumulate", type=int, default=1, help="batches a step (default 1)"
    )
    options.add_argument(
        "--precision", choices=sorted(PRECISIONS), default="fp32", help="default fp32"
    )
    options.add_argument(
        "--device", default=None, help="cpu, cuda, mps (default: the best there is)"
    )
    options.add_argument("--seed", type=int, default=0)
    options.add_argument(
        "--resume", type=Path, default=None, help="the resume point's file"
    )
    options.add_argument(
        "--save-every",
        type=int,
        default=None,
        help="steps between resume points (default: the budget's eval_every)",
    )
    options.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop, as a session that dies would, after the resume point at this step",
    )
    options.add_argument(
        "--out", type=Path, default=None, help="where rank 0 writes the model"
    )
    return options


def settings(args: argparse.Namespace, profile: Profile) -> experiments.Budget:
    """The task's budget with the command's changes; refuses a command that cannot
    train."""
    plan = experiments.budget(
        "reversal" if args.task == "reversal" else "fra-eng", profile
    )
    if args.steps is not None:
        if args.steps < 1:
            raise SystemExit(f"--steps must be positive, got {args.steps}")
        plan = replace(
            plan,
            steps=args.steps,
            warmup=min(plan.warmup, args.steps // 4),
            cooldown=min(plan.cooldown, args.steps // 4),
            log_every=min(plan.log_every, args.steps),
            eval_every=min(plan.eval_every, args.steps),
        )
    if args.accumulate < 1:
        raise SystemExit(f"--accumulate must be positive, got {args.accumulate}")
    if args.tokens_per_step is not None and args.tokens_per_step < args.accumulate:
        raise SystemExit(
            f"--tokens-per-step {args.tokens_per_step} cannot be cut into "
            f"{args.accumulate} batches (--accumulate)"
        )
    if args.stop_after is not None and args.resume is None:
        raise SystemExit("--stop-after needs --resume: where to go on from")
    return plan


def max_tokens(args: argparse.Namespace, plan: experiments.Budget) -> int | None:
    """Positions padded a batch: the step's (the command's, else the budget's), shared
    by its batches."""
    tokens = args.tokens_per_step or plan.max_tokens
    return None if tokens is None else tokens // args.accumulate


class StopAfter:
    """``batches``, ending the run (:class:`Stopped`) instead of its ``left``-th
    batch: what a session that dies looks like to the script; the resumed run replays
    its batches through ``batch_sampler``, as it does a DataLoader's."""

    def __init__(self, batches: Iterable[Batch], left: int | None):
        self.batches, self.left = batches, left
        self.batch_sampler = getattr(batches, "batch_sampler", None)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.batches:
            if self.left == 0:
                raise Stopped
            if self.left is not None:
                self.left -= 1
            yield batch


class Stopped(Exception):
    """The run stopped where ``--stop-after`` asked."""


def train(
    args: argparse.Namespace, profile: Profile | None = None
) -> tuple[nn.Module, Seq2SeqData, History] | None:
    """Train as the command says, on this process's share of every batch; returns the
    model, the data and the history (``None`` where ``--stop-after`` stopped it)."""
    profile = profile or get_profile()
    plan = settings(args, profile)
    device = torch.device(args.device) if args.device else choose_device()
    ranks = distributed.start(device)
    seed_everything(args.seed)
    data = TASKS[args.task](profile)
    model = MODELS[args.model](data)
    optimizer = adam(model.parameters(), lr=plan.lr, betas=plan.betas)
    trainer = Trainer(
        model,
        optimizer=optimizer,
        scheduler=experiments.make_schedule(optimizer, plan),
        label_smoothing=plan.label_smoothing,
        device=device,
        precision=args.precision,
        ranks=ranks,
    )
    loader = data.loader(
        "train",
        # with the command's token budget, no more sentences than positions
        plan.batch_size if args.tokens_per_step is None else max_tokens(args, plan),
        seed=args.seed,
        rank=ranks.rank,
        world_size=ranks.world_size,
        max_tokens=max_tokens(args, plan),
    )
    left = None if args.stop_after is None else args.stop_after * args.accumulate
    try:
        history = trainer.fit(
            StopAfter(loader, left),
            max_steps=plan.steps,
            val_batches=data.loader("val", 256),
            eval_every=plan.eval_every,
            log_every=plan.log_every,
            desc=f"{args.model} on {args.task}",
            resume_path=args.resume,
            save_every=args.stop_after or args.save_every,
            accumulate=args.accumulate,
        )
    except Stopped:
        return None
    return trainer.module, data, history


def main(argv: Sequence[str] | None = None, profile: Profile | None = None) -> int:
    args = parser().parse_args(argv)
    ranks, finished = distributed.from_environment(), False
    try:
        trained = train(args, profile)
        if trained is not None and args.out is not None and ranks.is_main:
            model, data, history = trained
            save_checkpoint(
                args.out,
                model,
                vocabs={"src": data.src_vocab, "tgt": data.tgt_vocab},
                meta={
                    "history": history.to_dict(),
                    "task": args.task,
                    "tokens_per_step": args.tokens_per_step,
                    "accumulate": args.accumulate,
                    "precision": args.precision,
                    "world_size": ranks.world_size,
                },
            )
        finished = True
    finally:
        distributed.stop(wait=finished)
    return 0


if __name__ == "__main__":
    sys.exit(main())
