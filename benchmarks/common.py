"""What every benchmark shares: timing side by side, the machine, the results file.

Timing is interleaved: each repetition runs every contender once, in turn, so
that a noisy neighbour slows all of them alike; the median and the spread
(max - min) over repetitions are reported, and ratios are taken between
contenders of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "code"))

from attnlab.core.files import atomic_write_text  # noqa: E402
from attnlab.measure.timing import race, synchronize  # noqa: E402, F401  (the benchmarks' timing)

# What reads a tensor back on the host: on a GPU each waits until the device has done all
# the work queued before it. Operators, as torch.profiler records them ...
READING_OPS = frozenset(
    {
        "aten::item",
        "aten::_local_scalar_dense",
        "aten::is_nonzero",
        "aten::nonzero",
        "aten::masked_select",
        "aten::unique_dim",
        "aten::_unique2",
        "aten::equal",
    }
)
# ... and tensor methods, which on a CPU read without an operator the profiler sees.
READING_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


class HostReads(Counter):
    """Reads counted by :func:`host_reads`, by operator or method; ``profile`` is the
    profiler that recorded them."""

    profile: profile | None = None


@contextlib.contextmanager
def host_reads(activities=(ProfilerActivity.CPU,)) -> Iterator[HostReads]:
    """Count what the code in the block reads back on the host (:data:`READING_OPS`,
    :data:`READING_METHODS`). An optimiser's fused kernel counts as one operator: on a
    CPU its implementation reads each parameter's step count (a CPU tensor) in C++, on
    a GPU it reads them on the device, so what it calls inside is not counted."""
    reads = HostReads()
    originals = {name: getattr(torch.Tensor, name) for name in READING_METHODS}

    def counting(name):
        def method(self, *args, **kwargs):
            reads[f"Tensor.{name}"] += 1
            return originals[name](self, *args, **kwargs)

        return method

    try:
        for name in READING_METHODS:
            setattr(torch.Tensor, name, counting(name))
        with profile(activities=list(activities)) as prof:
            yield reads
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    reads.profile = prof
    reads.update(
        event.name
        for event in prof.events()
        if event.name in READING_OPS and not _inside_fused_kernel(event)
    )


def _inside_fused_kernel(event) -> bool:
    while event.cpu_parent is not None:
        event = event.cpu_parent
        if event.name.startswith("aten::_fused_"):
            return True
    return False


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one repetition: checks what is timed, not the time",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or mps (default: the best present)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repetitions per contender"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the JSON results (default: benchmarks/results/"
        "NAME-DEVICE.json; "
        "--quick writes nothing unless given)",
    )
    return parser.parse_args()


def device_of(args: argparse.Namespace) -> torch.device:
    from attnlab.core.runtime import choose_device

    return choose_device(args.device)


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        # the cores this process may run on (fewer under `taskset`, as Colab's 2)
        "cores_allowed": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            gpu=properties.name,
            gpu_memory_gib=round(properties.total_memory / 2**30, 1),
            multiprocessors=properties.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def write(
    name: str,
    args: argparse.Namespace,
    device: torch.device,
    measurements: list[dict],
    **extra,
) -> Path | None:
    """Write the results of benchmark ``name`` as JSON, one file per device type (so a GPU run
    does not replace the CPU one); return the path (None in --quick mode without --output)."""
    path = args.output or (
        None if args.quick else RESULTS / f"{name}-{device.type}.json"
    )
    if path is None:
        return None
    record = {
        "benchmark": name,
        "quick": args.quick,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device),
        "measurements": measurements,
        **extra,
    }
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def row(
    measurements: list[dict],
    *,
    name: str,
    ours: dict,
    peer: dict,
    peer_name: str,
    target: float,
    **details,
) -> dict:
    """One measurement: our time and the peer's (median, spread), the speed-up, the target."""
    ratio = peer["median"] / ours["median"]
    entry = {
        "name": name,
        "peer": peer_name,
        "ours": ours,
        "theirs": peer,
        "speedup": ratio,
        "target": target,
        "met": ratio >= target,
        **details,
    }
    measurements.append(entry)
    return entry


def print_table(title: str, measurements: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'measurement':<52}{'peer':<26}{'ours ms':>10}{'peer ms':>10}{'speed-up':>10}{'target':>8}"
    )
    for m in measurements:
        flag = "" if m["met"] else "  (missed)"
        print(
            f"{m['name']:<52}{m['peer']:<26}{1000 * m['ours']['median']:>10.2f}"
            f"{1000 * m['theirs']['median']:>10.2f}{m['speedup']:>9.2f}x{m['target']:>7.1f}x{flag}"
        )


def pair(
    contenders: dict[str, Callable[[], torch.Tensor]], params, *, backward: bool
) -> dict[str, Callable[[], None]]:
    """Wrap callables that return an output: forward only (no autograd), or forward and
    backward through a scalar of it (gradients cleared after each call)."""

    def wrap(fn):
        def call():
            if backward:
                fn().square().mean().backward()
                for p in params:
                    p.grad = None
            else:
                with torch.no_grad():
                    fn()

        return call

    return {name: wrap(fn) for name, fn in contenders.items()}


def finish(
    title: str,
    name: str,
    args: argparse.Namespace,
    device: torch.device,
    measurements: list[dict],
    **extra,
) -> None:
    """Print the table of ``measurements`` and write the results file."""
    print_table(title, measurements)
    path = write(name, args, device, measurements, **extra)
    if path:
        print(f"written to {path}")


def load_d2l():
    """d2l's PyTorch module. d2l imports torchvision at the top; where torchvision is absent,
    the test-only stand-in of tests/reference (attributes only) lets the import succeed."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from d2l import torch as d2l

    return d2l


def close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    """Fail loudly if the two implementations disagree: a benchmark of two different
    computations would be meaningless."""
    if a.shape != b.shape or not torch.allclose(a, b, atol=atol, rtol=1e-4):
        difference = (a - b).abs().max().item() if a.shape == b.shape else "shape"
        raise AssertionError(
            f"{what}: the two implementations disagree (max difference {difference})"
        )
