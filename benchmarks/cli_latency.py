"""Seconds until the CLI answers: ``--help``, ``list profiles`` and the first line of a config error.

    python benchmarks/cli_latency.py --data ../shared/datasets/cifar10-jpeg            # 3 repeats each
    python benchmarks/cli_latency.py --data ../shared/datasets/cifar10-jpeg --repeats 5

Each command runs in a fresh interpreter (as a user runs it), so import time is included. The
config-error cases are the mistakes that used to pass validation and fail after training
(``explain.layer: stage9``, corruption ``fog2``, ``robustness.baseline: resnet99``, patch
``target_class: 12``); the clock stops when the process exits with its one error line. The data
cache is warmed first, so the numbers measure the CLI, not the first decode of the images.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MISTAKES = {
    "explain.layer": "explain: {layer: stage9}",
    "corruption": "robustness: {corruptions: [fog2]}",
    "baseline": "robustness: {baseline: resnet99}",
    "patch class": "variants: {baseline: {}, patched: {patch: {target_class: 12}}}",
}
CLI = [sys.executable, "-c", "from xaiquest.cli import app; app()"]


def seconds(args: list[str], expected_exit: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(CLI + args, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != expected_exit:
        raise SystemExit(f"{args} exited {done.returncode}, expected {expected_exit}:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10 location, as for xaiquest --data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = str(Path(folder) / "runs")
        configs = {}
        for name, line in MISTAKES.items():
            configs[name] = Path(folder) / f"{name.replace(' ', '_')}.yaml"
            configs[name].write_text(f"name: bad\nprofile: quick\n{line}\n")
        seconds(["train", str(configs["explain.layer"]), "--data", args.data, "--runs-dir", runs], 2)  # warm the cache
        cases = {"--help": (["--help"], 0), "list profiles": (["list", "profiles"], 0)}
        cases |= {f"config error: {name}": (["train", str(file), "--data", args.data, "--runs-dir", runs], 2)
                  for name, file in configs.items()}
        for label, (command, exit_code) in cases.items():
            times = [seconds(command, exit_code) for _ in range(args.repeats)]
            print(f"{label:32s} median {statistics.median(times):5.2f} s  (min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
