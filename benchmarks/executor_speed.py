"""Wall time of one audit per executor backend, the speed-up over inline, and each backend's overhead per unit.

    python benchmarks/executor_speed.py --data ../shared/datasets/cifar10-jpeg                    # smoke, all backends
    python benchmarks/executor_speed.py --data ../shared/datasets/cifar10-jpeg --profile quick --backends inline local \
        --threads 0 --logs /tmp/logs

Each backend runs the same profile from scratch into its own run directory, as a user runs it (a
fresh ``xaiquest run`` process; the data cache is warmed first). ``overhead/unit`` is the mean time a
unit spent outside its worker's own work: dispatch, pickling, result transfer, and for a worker's
first unit the worker's start (the mean carries those starts, the median is the steady cost; from the
manifest's ``executor`` record). ``same tables`` checks every run table against the inline run's, wall-time
columns aside. Run it on a quiet machine: the backends are timed one after another.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CLI = [sys.executable, "-c", "from xaiquest.cli import app; app()"]
TIMING = r"time|seconds|_s$"
NOT_COMPARED = {"setup.csv", "stage_timings.csv", "findings.csv"}


def run(data: str, runs: Path, backend: str, workers: int, config: Path, log: Path | None) -> float:
    command = [*CLI, "run", str(config), "--data", data, "--runs-dir", str(runs)]
    if backend != "inline":
        command += ["--executor", backend, "--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{backend}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def fastnet_epoch(log: Path | None) -> str:
    """The median fastnet epoch of an inline run's log (its per-epoch lines): the reference step that
    makes the wall times comparable between machines."""
    if log is None:
        return "-"
    seconds = sorted(float(line.split("(")[1].split(" s;")[0]) for line in log.read_text().splitlines()
                     if line.startswith("train: fastnet__") and " epoch " in line)
    return f"{seconds[len(seconds) // 2]:.1f} s" if seconds else "-"


def table_differences(run: Path, reference: Path) -> list[str]:
    """Every run table that differs from the reference run's (wall-time columns aside), each with its
    largest absolute difference in a numeric column: empty when the two runs agree exactly."""
    differing = []
    for path in sorted((reference / "tables").glob("*.csv")):
        if path.name in NOT_COMPARED:
            continue
        expected, actual = (pd.read_csv(root / "tables" / path.name) for root in (reference, run))
        expected, actual = (frame.drop(columns=frame.filter(regex=TIMING).columns) for frame in (expected, actual))
        if expected.equals(actual):
            continue
        numeric = expected.select_dtypes("number").columns.intersection(actual.columns)
        gap = ((expected[numeric] - actual[numeric]).abs().max().max()
               if expected.shape == actual.shape and len(numeric) else float("nan"))
        differing.append(f"{path.stem} (max |difference| {gap:.3g})")
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10 location, as for xaiquest --data")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--backends", nargs="+", default=["inline", "local", "ray", "submitit"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--logs", type=Path, default=None, help="folder for each run's output (the epoch lines)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories in this (empty) folder")
    parser.add_argument("--threads", type=int, default=1, help="threads per unit on every backend, inline included "
                        "(equal thread counts give equal numbers); 0 = each backend's default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) if args.keep is None else args.keep
        lines = ["name: bench", f"profile: {args.profile}"] + ([f"threads: {args.threads}"] if args.threads else [])
        config = root / "bench.yaml"
        config.write_text("\n".join(lines + ["executor: {slurm: {local: true}}"]) + "\n")
        warm = (f"from xaiquest.config import load_config; from xaiquest.runs import prepare_data; "
                f"prepare_data(load_config({str(config)!r}, {{'data': {{'source': {args.data!r}}}}}))")
        subprocess.run([sys.executable, "-c", warm], check=True)  # the data cache, so no backend pays the first decode
        print(f"profile {args.profile}, {args.workers} workers, threads per unit {args.threads or 'default'}")
        print(f"{'backend':10s} {'wall':>9s} {'vs inline':>10s} {'units':>6s} {'overhead/unit mean (median)':>20s}  same tables")
        walls: dict[str, float] = {}
        for backend in args.backends:
            runs = root / backend
            log = None if args.logs is None else args.logs / f"{args.profile}_{backend}.log"
            walls[backend] = run(args.data, runs, backend, args.workers, config, log)
            manifest = json.loads((runs / "bench" / "manifest.json").read_text())
            executor = manifest.get("executor", {}) if backend != "inline" else {}
            ratio = f"{walls['inline'] / walls[backend]:.2f}x" if "inline" in walls else "-"
            overhead, median = executor.get("overhead_s"), executor.get("overhead_median_s")
            differing = (table_differences(runs / "bench", root / "inline" / "bench")
                         if "inline" in walls and backend != "inline" else None)
            same = None if differing is None else not differing
            print(f"{backend:10s} {walls[backend]:8.1f}s {ratio:>10s} {executor.get('done', '-')!s:>6s} "
                  f"{'-' if overhead is None else f'{overhead * 1000:.0f} ({median * 1000:.0f}) ms':>20s}  "
                  f"{'-' if same is None else same}")
            if backend == "inline":
                print(f"  (inline: median fastnet epoch {fastnet_epoch(log)}, the reference step)")
            if differing:
                print(f"  differs from inline: {', '.join(differing)}")
    if args.keep is not None:
        print(f"runs kept in {args.keep}")


if __name__ == "__main__":
    main()
