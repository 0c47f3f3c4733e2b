"""What a training step of each fra-eng model waits on, on this machine's device.

For the three models of chapters 2, 3 and 5 at the chapters' size, on real batches
of the corpus (full profile), in the same run:

* steps per second of ``Trainer.train_step``, which reads every step's loss (the
  host waits for the device after each step), against ``Trainer.step``, which
  does not (the trainer reads the losses every ``log_every`` steps);
* one profiled stretch of steps (``torch.profiler``): the host's time per step, the
  reads back on the host per step (``common.host_reads``: ``.item()``, ``.tolist()``,
  ``nonzero``, ...; on a GPU each makes the host wait for the device; the course's
  steps make none) and, on a GPU, the device's synchronisation calls, the device's
  busy time per step (the kernels' total) and the kernels launched per step. When the
  device is busy for a small fraction of a step, the step is bound by launching
  kernels, not by arithmetic.

    python benchmarks/bench_steps.py [--quick] [--device cuda]
"""

from __future__ import annotations

import time

import common
import torch
from torch.profiler import ProfilerActivity

from attnlab.core.runtime import get_profile
from attnlab.recipes import experiments
from attnlab.train.training import Trainer

MODELS = {
    "gru": experiments.gru_model,
    "bahdanau": experiments.bahdanau_model,
    "transformer": experiments.transformer_model,
}
WAITS = (
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "cudaMemcpy",
)


def batches(data, batch_size: int, count: int) -> list:
    out, loader = [], data.loader("train", batch_size, seed=0)
    while len(out) < count:
        out += list(loader)
    return out[:count]


def steps_per_second(
    trainer: Trainer, stream: list, *, wait_each: bool, device: torch.device
) -> float:
    common.synchronize(device)
    start = time.perf_counter()
    last = None
    for batch in stream:
        last = trainer.train_step(batch) if wait_each else trainer.step(batch).loss
    float(last)  # the last step has finished
    return len(stream) / (time.perf_counter() - start)


def profiled(trainer: Trainer, stream: list, device: torch.device) -> dict:
    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if device.type == "cuda" else []
    )
    common.synchronize(device)
    with common.host_reads(activities) as reads:
        start = time.perf_counter()
        for batch in stream:
            trainer.step(batch)
        common.synchronize(device)  # the steps have finished (not a read)
        wall = time.perf_counter() - start
    prof, n = reads.profile, len(stream)
    waits = {
        e.key: e.count / n for e in prof.key_averages() if e.key in WAITS and e.count
    }
    result = {
        "steps": n,
        "wall_ms_per_step": 1000 * wall / n,
        "host_reads_per_step": {name: count / n for name, count in reads.items()},
        "host_waits_per_step": waits,
    }
    if device.type == "cuda":
        kernels = [
            e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
        ]
        busy = sum(e.device_time_total for e in kernels) / 1000  # ms
        result.update(
            kernels_per_step=len(kernels) / n,
            device_busy_ms_per_step=busy / n,
            device_busy_fraction=busy / (1000 * wall),
        )
    return result


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    device = common.device_of(args)
    profile_ = get_profile("smoke" if args.quick else "full")
    data = experiments.fra_eng_data(profile_)
    plan = experiments.budget("fra-eng", profile_)
    count = 6 if args.quick else (args.repeats or 100)
    stream = batches(data, plan.batch_size, count)
    measurements = []
    for name, build in MODELS.items():
        torch.manual_seed(0)
        trainer = Trainer(build(data), lr=plan.lr, device=device)
        for batch in stream[:5]:  # warm-up
            trainer.train_step(batch)
        waiting = steps_per_second(trainer, stream, wait_each=True, device=device)
        queued = steps_per_second(trainer, stream, wait_each=False, device=device)
        waiting_again = steps_per_second(trainer, stream, wait_each=True, device=device)
        entry = {
            "name": name,
            "batch_size": plan.batch_size,
            "steps_per_second_waiting_each_step": [waiting, waiting_again],
            "steps_per_second_queued": queued,
            "profile": profiled(trainer, stream[: min(20, count)], device),
        }
        measurements.append(entry)
        p = entry["profile"]
        print(
            f"{name:<12} wait each step {waiting:7.1f}/{waiting_again:7.1f} steps/s, "
            f"queued {queued:7.1f} steps/s; {p['wall_ms_per_step']:.2f} ms/step, "
            f"{sum(p['host_reads_per_step'].values()):.0f} host reads/step"
            + (
                f", device busy {p['device_busy_fraction']:.0%}, "
                f"{p['kernels_per_step']:.0f} kernels/step"
                if "kernels_per_step" in p
                else ""
            ),
            flush=True,
        )
    path = common.write("steps", args, device, measurements)
    if path:
        print(f"written to {path}")


if __name__ == "__main__":
    main()
