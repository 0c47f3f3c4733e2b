"""How close the Transformer's training step comes to what this machine can do.

Measures, in the same run, the peak float32 matrix-multiply throughput (GFLOP/s,
the best of a few square sizes) and the throughput a Transformer training step
reaches, counting its floating-point operations with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products of the dense
layers and of attention, forward and backward).

    python benchmarks/bench_peak.py [--quick] [--device cpu]
"""

from __future__ import annotations

import common
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnlab.data.batching import random_batch
from attnlab.models.transformer import Transformer
from attnlab.train.training import Trainer


def matmul_peak(device, sizes, repeats, dtype=torch.float32):
    best = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        times = common.race({"matmul": lambda: a @ b}, device=device, repeats=repeats)
        best[n] = {
            **times["matmul"],
            "gflops": 2 * n**3 / times["matmul"]["median"] / 1e9,
        }
    return best


def square_sizes(device, quick: bool) -> list[int]:
    """The matrix sizes whose best multiply is taken as the machine's peak."""
    if quick:
        return [64]
    return [2048, 4096, 8192] if device.type == "cuda" else [512, 1024, 2048]


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    device = common.device_of(args)
    torch.manual_seed(0)
    repeats = args.repeats or (1 if args.quick else 15)
    square = square_sizes(device, args.quick)
    peak = matmul_peak(device, square, repeats)  # float32 (no TF32), as the step
    best = max(p["gflops"] for p in peak.values())
    # bfloat16, the matrix units' format on a GPU: what the same chip does at its fastest.
    peak_bf16 = (
        matmul_peak(device, square, repeats, torch.bfloat16)
        if device.type == "cuda"
        else {}
    )
    best_bf16 = max((p["gflops"] for p in peak_bf16.values()), default=None)
    sizes = (
        [dict(d_model=16, d_ff=32, vocab=30, batch=2, length=5)]
        if args.quick
        else [
            dict(d_model=128, d_ff=512, vocab=5000, batch=128, length=12),
            dict(d_model=512, d_ff=2048, vocab=5000, batch=64, length=32),
        ]
    )
    measurements = []
    for size in sizes:
        V, B, T = size["vocab"], size["batch"], size["length"]
        model = Transformer(
            V,
            V,
            d_model=size["d_model"],
            num_heads=4,
            num_layers=2,
            d_ff=size["d_ff"],
            dropout=0.0,
        ).to(device)
        trainer = Trainer(
            model,
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-4),
            clip=None,
            device=device,
        )
        batch = random_batch(V, V, T, B, device=device)

        def step():
            trainer.step(batch)

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        if flops <= 0:
            raise AssertionError("the FLOP counter saw no matrix products")
        times = common.race({"step": step}, device=device, repeats=repeats)
        achieved = flops / times["step"]["median"] / 1e9
        measurements.append(
            {
                "name": f"Transformer training step, D={size['d_model']}",
                "shapes": dict(
                    B=B, S=T, T=T, D=size["d_model"], d_ff=size["d_ff"], V=V
                ),
                "step": times["step"],
                "gflop_per_step": flops / 1e9,
                "gflops": achieved,
                "fraction_of_peak": achieved / best,
                "fraction_of_bf16_peak": achieved / best_bf16 if best_bf16 else None,
                "target": 0.4,
                "met": achieved / best >= 0.4,
            }
        )
    print(
        f"\nPeak float32 matmul ({device}, {torch.get_num_threads()} threads): "
        + ", ".join(f"n={n}: {p['gflops']:.1f}" for n, p in peak.items())
        + " GFLOP/s"
    )
    if peak_bf16:
        print(
            "Peak bfloat16 matmul: "
            + ", ".join(f"n={n}: {p['gflops']:.1f}" for n, p in peak_bf16.items())
            + " GFLOP/s"
        )
    print(
        f"{'measurement':<40}{'GFLOP/step':>12}{'ms/step':>10}{'GFLOP/s':>10}{'of peak':>10}{'target':>8}"
    )
    for m in measurements:
        print(
            f"{m['name']:<40}{m['gflop_per_step']:>12.2f}{1000 * m['step']['median']:>10.1f}"
            f"{m['gflops']:>10.1f}{m['fraction_of_peak']:>9.0%}{m['target']:>8.0%}"
            f"{'' if m['met'] else '  (missed)'}"
        )
    path = common.write(
        "peak",
        args,
        device,
        measurements,
        matmul={str(n): p for n, p in peak.items()},
        peak_gflops=best,
        matmul_bf16={str(n): p for n, p in peak_bf16.items()},
        peak_bf16_gflops=best_bf16,
    )
    if path:
        print(f"written to {path}")


if __name__ == "__main__":
    main()
