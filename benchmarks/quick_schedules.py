"""Test accuracy of short training schedules: the evidence behind the quick profile's epochs and batch size.

    python benchmarks/quick_schedules.py --data ../shared/datasets/cifar10-jpeg                  # the whole grid
    python benchmarks/quick_schedules.py --data ../shared/datasets/cifar10-jpeg --only vgg_small  # one model

Each row is a whole ``xaiquest run`` of one baseline model (the quick profile's data split, seed and
augmentation, flip TTA) with every analysis stage off, in a temporary runs folder; it prints the test
accuracy and seconds per epoch (comparable only between rows run on a quiet machine; each run's own
progress goes to stderr). The quick profile needs every baseline at >= 75 % in as few fastnet-epoch
equivalents as possible (issue 14), so the grid varies epochs, batch size and peak LR.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

GRID = [  # model, epochs, batch size, peak lr
    ("fastnet", 2, 512, 0.4), ("fastnet", 3, 512, 0.4), ("fastnet", 2, 256, 0.2), ("fastnet", 2, 128, 0.1),
    ("resnet_small", 3, 512, 0.2), ("resnet_small", 3, 256, 0.1), ("resnet_small", 3, 128, 0.05),
    ("resnet_small", 3, 128, 0.1), ("resnet_small", 3, 128, 0.2), ("resnet_small", 4, 128, 0.05),
    ("vgg_small", 4, 512, 0.2), ("vgg_small", 5, 512, 0.2), ("vgg_small", 3, 256, 0.1), ("vgg_small", 3, 128, 0.05),
    ("vgg_small", 2, 128, 0.05),
]
OFF = {stage: {"enabled": False} for stage in ("robustness", "explain", "stress", "concepts")}


def run_row(model: str, epochs: int, batch_size: int, lr: float, data: str, runs: Path) -> dict[str, str]:
    """One baseline trained and evaluated by the CLI; its row of ``tables/comparison.csv``."""
    name = f"{model}_e{epochs}_b{batch_size}_lr{lr}"
    config = {"name": name, "profile": "quick", "models": [{"name": model, "train": {"epochs": epochs, "lr": lr}}],
              "variants": {"baseline": {}}, "train": {"batch_size": batch_size}, **OFF}
    path = runs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cli = str(Path(sys.executable).with_name("xaiquest"))  # the CLI of this environment
    subprocess.run([cli, "run", str(path), "--data", data, "--runs-dir", str(runs)], check=True, stdout=subprocess.DEVNULL)
    with open(runs / name / "tables" / "comparison.csv", encoding="utf-8") as table:
        return next(csv.DictReader(table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10 folder (train/ test/ image folders or the python batches)")
    parser.add_argument("--only", nargs="*", default=None, help="models to run (default: the whole grid)")
    args = parser.parse_args()
    print("| model | epochs | batch | peak lr | test accuracy (flip TTA) | s per epoch |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model, epochs, batch_size, lr in GRID:
            if args.only and model not in args.only:
                continue
            row = run_row(model, epochs, batch_size, lr, args.data, Path(folder))
            seconds = float(row["train_time_s"]) / epochs
            print(f"| {model} | {epochs} | {batch_size} | {lr} | {float(row['accuracy_mean']):.2%} | {seconds:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
