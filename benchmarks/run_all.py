"""Run every benchmark (``make bench``) and print one summary of the targets.

    python benchmarks/run_all.py [--quick] [--skip chapters]

Each script writes its own JSON file to benchmarks/results/; this one reads
them back and prints which targets were met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import common

SCRIPTS = ["d2l", "torch", "decoding", "peak", "steps", "distributed", "chapters"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=SCRIPTS)
    args = parser.parse_args()
    failed = []
    for name in SCRIPTS:
        if name in args.skip:
            continue
        command = [sys.executable, str(common.ROOT / "benchmarks" / f"bench_{name}.py")]
        print(f"\n=== bench_{name}.py ===", flush=True)
        if subprocess.run(
            command + (["--quick"] if args.quick else []), cwd=common.ROOT
        ).returncode:
            failed.append(name)
    if args.quick:
        return 1 if failed else 0
    print("\n=== Targets ===")
    for name in SCRIPTS:
        paths = sorted(common.RESULTS.glob(f"{name}-*.json"))
        if name in args.skip or not paths:
            continue
        path = max(paths, key=lambda p: p.stat().st_mtime)  # the run just made
        record = json.loads(path.read_text(encoding="utf-8"))
        for m in record["measurements"]:
            if "target" not in m:
                continue
            value = m.get("speedup", m.get("fraction_of_peak"))
            unit = "x" if "speedup" in m else " of peak"
            print(
                f"{'met   ' if m['met'] else 'MISSED'} {m['name']:<55} {value:6.2f}{unit} "
                f"(target {m['target']:g})"
            )
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
