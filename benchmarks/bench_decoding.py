"""Incremental decoding with the key/value cache against recomputing the whole prefix.

A Transformer generates one token at a time. With the cache (what attnlab's
``decode_step`` does), each step runs the decoder on the new token only; without
it, each step runs the decoder on the whole prefix again. Both are fed the same
tokens (so the work does not depend on what the model would choose), checked to
give the same logits, and timed for 10, 50 and 100 output tokens, batched.

    python benchmarks/bench_decoding.py [--quick] [--device cpu]
"""

from __future__ import annotations

import common
import torch

from attnlab.models.transformer import Transformer


@torch.no_grad()
def with_cache(model, src, src_len, tokens):
    memory, state, steps = model.encode(src, src_len), None, []
    for t in range(tokens.shape[1]):
        step = model.decode_step(tokens[:, t], memory, state)
        state = step.state
        steps.append(step.logits)
    return torch.stack(steps, 1)


@torch.no_grad()
def recomputing(model, src, src_len, tokens):
    memory, steps = model.encode(src, src_len), []
    for t in range(tokens.shape[1]):
        logits, _, _ = model.decode(
            tokens[:, : t + 1], memory
        )  # the whole prefix, again
        steps.append(logits[:, -1])
    return torch.stack(steps, 1)


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    device = common.device_of(args)
    torch.manual_seed(0)
    B, S, V, D = (2, 6, 30, 16) if args.quick else (64, 20, 5000, 128)
    lengths = [3, 6] if args.quick else [10, 50, 100]
    repeats = args.repeats or (1 if args.quick else 7)
    model = (
        Transformer(
            V,
            V,
            d_model=D,
            num_heads=4 if D % 4 == 0 else 2,
            num_layers=2,
            d_ff=4 * D,
            dropout=0.0,
        )
        .to(device)
        .eval()
    )
    src = torch.randint(4, V, (B, S), device=device)
    src_len = torch.full((B,), S, device=device)
    measurements: list[dict] = []
    for n in lengths:
        tokens = torch.randint(4, V, (B, n), device=device)
        common.close(
            with_cache(model, src, src_len, tokens),
            recomputing(model, src, src_len, tokens),
            f"decoding {n} tokens",
            atol=1e-4,
        )
        times = common.race(
            {
                "cache": lambda: with_cache(model, src, src_len, tokens),
                "recompute": lambda: recomputing(model, src, src_len, tokens),
            },
            device=device,
            repeats=repeats,
            warmup=1,
        )
        common.row(
            measurements,
            name=f"decode {n} tokens (batch {B})",
            ours=times["cache"],
            peer=times["recompute"],
            peer_name="recompute the prefix",
            target=3.0 if n == 50 else 1.0,
            shapes=dict(B=B, S=S, D=D, V=V, tokens=n),
        )
    common.finish(
        f"key/value cache vs recomputing ({device}, {repeats} runs each)",
        "decoding",
        args,
        device,
        measurements,
    )


if __name__ == "__main__":
    main()
