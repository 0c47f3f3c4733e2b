"""What data-parallel training buys on this machine: the Transformer on 1 and 2 processes.

Chapter 5's Transformer at the chapter's size, on real batches of the corpus (full
profile: batches of 128 sentence pairs, length-bucketed), trained by ``Trainer`` under
``torchrun``: one process with every core, then 2 processes (``gloo`` on a CPU) with
half the cores each, which together take the same batches (each its share). On a GPU,
one process in float32 and in bfloat16 (``Trainer(precision="bf16")``), and as many
processes as there are GPUs. For each: target tokens per second, milliseconds per step
(median and spread over stretches of steps), and the fraction of the machine's peak
float32 matmul the step reaches, its floating-point operations counted with
``torch.utils.flop_counter.FlopCounterMode`` and the peak measured in the same run
(``bench_peak.matmul_peak``). The first configuration is the peer of the others.

    python benchmarks/bench_distributed.py [--quick] [--device cuda]

Each configuration is a ``torchrun`` of this script with ``--worker``; rank 0 writes
what it measured to the file ``--worker`` names.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_peak
import common
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnlab.core.runtime import get_profile, seed_everything
from attnlab.recipes import experiments
from attnlab.train import distributed
from attnlab.train.training import Trainer


def worker(args: argparse.Namespace) -> None:
    """One process of a configuration: train, time stretches of steps, count FLOPs."""
    ranks = distributed.start(args.device)
    profile_ = get_profile("smoke" if args.quick else "full")
    seed_everything(0)
    data = experiments.fra_eng_data(profile_)
    plan = experiments.budget("fra-eng", profile_)
    trainer = Trainer(
        experiments.transformer_model(data),
        lr=plan.lr,
        device=args.device,
        precision=args.precision,
        ranks=ranks,
    )
    loader = data.loader(
        "train", plan.batch_size, seed=0, rank=ranks.rank, world_size=ranks.world_size
    )
    stream = iter(_forever(loader))
    for _ in range(args.warmup):
        trainer.step(next(stream))
    with FlopCounterMode(display=False) as counter:
        trainer.step(next(stream))
    flops = distributed.all_sum(
        torch.tensor(float(counter.get_total_flops()), dtype=torch.float64), ranks
    )
    stretches, tokens = [], torch.zeros((), dtype=torch.float64)
    for _ in range(args.stretches):
        batches = [next(stream) for _ in range(args.steps)]
        distributed.barrier(ranks)
        common.synchronize(trainer.device)
        start = time.perf_counter()
        for batch in batches:
            loss = trainer.step(batch).loss
        float(loss)  # the last step has finished
        distributed.barrier(ranks)
        stretches.append((time.perf_counter() - start) / args.steps)
        tokens += sum(int(batch.tgt_len.sum()) for batch in batches)
    tokens = distributed.all_sum(tokens, ranks)
    if ranks.is_main:
        record = {
            "processes": ranks.world_size,
            "threads_per_process": torch.get_num_threads(),
            "precision": args.precision,
            "batch_size": plan.batch_size,
            "seconds_per_step": stretches,
            "steps_per_stretch": args.steps,
            "target_tokens": int(tokens),
            "flop_per_step": float(flops),
        }
        common.atomic_write_text(Path(args.worker), json.dumps(record) + "\n")
    distributed.stop()


def _forever(loader):
    while True:
        yield from loader


def configurations(device: torch.device) -> list[dict]:
    """What to launch: (processes, threads each, precision), the peer first."""
    cores = torch.get_num_threads()
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        chosen = [
            dict(processes=1, precision="fp32"),
            dict(processes=1, precision="bf16"),
        ]
        if gpus > 1:
            chosen.append(dict(processes=gpus, precision="bf16"))
        return [dict(threads=cores, **c) for c in chosen]
    return [
        dict(processes=1, threads=cores, precision="fp32"),
        dict(processes=2, threads=max(1, cores // 2), precision="fp32"),
    ]


def launch(config: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Run one configuration under ``torchrun`` and read what its rank 0 measured."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "worker.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={config['processes']}",
            str(Path(__file__).resolve()),
            "--worker",
            str(out),
            "--device",
            device.type,
            "--precision",
            config["precision"],
            "--steps",
            str(args.steps),
            "--stretches",
            str(args.stretches),
            "--warmup",
            str(args.warmup),
        ] + (["--quick"] if args.quick else [])
        env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"])}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=1800
        )
        if result.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"torchrun of {config} failed (exit {result.returncode}):\n"
                + result.stdout[-2000:]
                + result.stderr[-4000:]
            )
        return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--steps", type=int, default=None, help="steps a stretch")
    parser.add_argument(
        "--stretches", type=int, default=None, help="timed stretches of steps"
    )
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    device = common.device_of(args)
    args.steps = args.steps or (2 if args.quick else 10)
    args.stretches = args.stretches or (1 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    torch.manual_seed(0)
    sizes = bench_peak.square_sizes(device, args.quick)
    peak = max(
        p["gflops"]
        for p in bench_peak.matmul_peak(device, sizes, 1 if args.quick else 15).values()
    )
    measurements = []
    for config in configurations(device):
        record = launch(config, args, device)
        times = record["seconds_per_step"]
        step = {
            "median": statistics.median(times),
            "spread": max(times) - min(times),
            "runs": len(times),
        }
        steps = len(times) * record["steps_per_stretch"]
        gflops = record["flop_per_step"] / step["median"] / 1e9
        name = (
            f"{record['processes']} process{'es' if record['processes'] > 1 else ''}"
            f" × {record['threads_per_process']} thread"
            f"{'s' if record['threads_per_process'] > 1 else ''}, {record['precision']}"
        )
        entry = {
            "name": name,
            **record,
            "step": step,
            "target_tokens_per_second": record["target_tokens"]
            / (sum(times) * record["steps_per_stretch"]),
            "target_tokens_per_step": record["target_tokens"] / steps,
            "gflops": gflops,
            "fraction_of_peak": gflops / peak,
        }
        if measurements:
            peer = measurements[0]
            entry.update(
                peer=peer["name"],
                ours=step,
                theirs=peer["step"],
                speedup=peer["step"]["median"] / step["median"],
            )
        measurements.append(entry)
        print(
            f"{name:<34}{1000 * step['median']:8.1f} ms/step (±{1000 * step['spread']:.1f})"
            f"{entry['target_tokens_per_second']:10.0f} target tokens/s"
            f"{gflops:8.1f} GFLOP/s{entry['fraction_of_peak']:6.0%} of peak"
            + (f"{entry['speedup']:7.2f}x" if "speedup" in entry else ""),
            flush=True,
        )
    print(f"peak float32 matmul: {peak:.1f} GFLOP/s")
    path = common.write("distributed", args, device, measurements, peak_gflops=peak)
    if path:
        print(f"written to {path}")


if __name__ == "__main__":
    main()
