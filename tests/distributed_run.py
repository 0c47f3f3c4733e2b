"""Trains a small model (``--model``: the Transformer, the GRU encoder-decoder or
Bahdanau's) on the reversal task for tests/test_distributed.py, as one process or under
``torchrun``: the same script either way, as a reader's would be. Its batches are not
bucketed by length, so that the processes' shares of a batch hold different numbers of
tokens; with ``--max-tokens``, they are bucketed and cut to that token budget.

Rank 0 writes the weights and the history to OUT; every rank writes its own weights to
OUT.rank<r> (they must agree). With --stop-after N, the run stops (on every rank) when
it asks for its (N + 1)-th batch, as a session that dies would, after a resume point at
step N; run again, it goes on from there.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from attnlab.core import runtime
from attnlab.data import synthetic
from attnlab.data.batching import make_loader
from attnlab.models.bahdanau import AttentionEncoderDecoder
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.transformer import Transformer
from attnlab.recipes.scale import StopAfter, Stopped
from attnlab.train import distributed
from attnlab.train.training import Trainer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--batch", type=int, default=16, help="sentences a step, all ranks"
    )
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument(
        "--model", choices=["transformer", "gru", "bahdanau"], default="transformer"
    )
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ranks = distributed.start("cpu")
    runtime.seed_everything(0)
    task = synthetic.reversal_task(
        n_train=256, n_val=32, n_test=32, min_len=3, max_len=12, seed=0
    )
    # No dropout: the same sentences on 1 or 2 processes give the same gradient.
    vocabs = len(task.src_vocab), len(task.tgt_vocab)
    model = {
        "transformer": lambda: Transformer(
            *vocabs, d_model=32, num_heads=2, num_layers=2, d_ff=64, dropout=0.0
        ),
        "gru": lambda: EncoderDecoder(
            *vocabs, embed_size=16, hidden_size=32, proj_size=16, dropout=0.0
        ),
        "bahdanau": lambda: AttentionEncoderDecoder(
            *vocabs,
            embed_size=16,
            hidden_size=32,
            attention_size=16,
            proj_size=16,
            dropout=0.0,
        ),
    }[args.model]()
    sgd = (
        torch.optim.SGD(model.parameters(), lr=0.5) if args.optimizer == "sgd" else None
    )
    trainer = Trainer(
        model,
        lr=None if sgd else 3e-3,
        optimizer=sgd,
        device="cpu",
        label_smoothing=0.1,
        precision=args.precision,
        ranks=ranks,
    )
    loader = make_loader(
        task.dataset("train"),
        args.batch // args.accumulate,
        bucket=args.max_tokens is not None,
        rank=ranks.rank,
        world_size=ranks.world_size,
        max_tokens=args.max_tokens,
    )
    try:
        history = trainer.fit(
            StopAfter(
                loader,
                None if args.stop_after is None else args.stop_after * args.accumulate,
            ),
            max_steps=args.steps,
            log_every=1,
            accumulate=args.accumulate,
            progress=False,
            resume_path=args.resume,
            save_every=args.stop_after,
        )
    except Stopped:
        distributed.stop()
        return 0
    weights = {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}
    torch.save(weights, f"{args.out}.rank{ranks.rank}")
    if ranks.is_main:
        torch.save({"weights": weights, "history": history.to_dict()}, args.out)
    distributed.stop()
    print(json.dumps({"rank": ranks.rank, "loss": history.train_loss[-1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
