"""Seconds to hash each zoo model's saved weights: what checking a finished unit's ``model.pt`` costs.

    python benchmarks/artifact_hash.py                      # every zoo model, 5 repeats each
    python benchmarks/artifact_hash.py --models fastnet resnet18 --repeats 2

Every skip decision and every later read of a model hashes its ``model.pt`` once per process
(``RunStore`` memoises on the file's identity), so this is the per-model overhead the integrity
checks add to a rerun.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from xaiquest.models import build_model, describe_models
from xaiquest.store import atomic_torch_save, file_digest


def hash_seconds(name: str, folder: Path, repeats: int) -> tuple[int, float]:
    """``(bytes, median seconds)`` to hash ``name``'s freshly initialised weights as the train stage saves them."""
    path = folder / f"{name}.pt"
    atomic_torch_save(path, build_model(name, 10).state_dict())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        file_digest(path)
        times.append(time.perf_counter() - started)
    return path.stat().st_size, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[name for name, _, _ in describe_models()])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'model':<16} {'MB':>8} {'hash s':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            size, seconds = hash_seconds(name, Path(folder), args.repeats)
            print(f"{name:<16} {size / 2**20:>8.1f} {seconds:>8.3f}")


if __name__ == "__main__":
    main()
