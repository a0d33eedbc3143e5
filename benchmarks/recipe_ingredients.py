"""Test accuracy of one training recipe at a fixed epoch budget, to measure one ingredient at a time.

    python benchmarks/recipe_ingredients.py --epochs 3                          # the default recipe
    python benchmarks/recipe_ingredients.py --epochs 3 --set lookahead=true     # + one ingredient

Trains ``--model`` on the quick profile's split of real CIFAR-10 (45k train images: 5k held out as
in every run) with ``TrainConfig`` defaults plus the ``--set`` overrides, then prints the test
accuracy without TTA and under ``--tta``. Only the accuracy is comparable between runs on a shared
machine; the seconds are printed for orientation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from xaiquest.config import TrainConfig
from xaiquest.data import load_dataset, validation_split
from xaiquest.inference import predict_logits, seed_everything
from xaiquest.layout import ModelFiles
from xaiquest.models import build_model
from xaiquest.train.trainer import train_model

CPU = torch.device("cpu")


def overrides(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs with YAML values (``true``, ``64``, ``0.2``)."""
    return {key: yaml.safe_load(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/datasets/cifar10-jpeg")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/xaiquest"))
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.add_argument("--tta", nargs="+", default=["flip", "flip_translate"], help="test-time augmentations measured too")
    parser.add_argument("--shuffle-train", action="store_true",
                        help="train in a seeded random order: the whitening stem is fitted to the first 5000 "
                        "training images, which an image folder orders class by class")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data, args.cache_dir, download=False)
    train, _ = validation_split(dataset.train, 5000, 0)
    if args.shuffle_train:
        train = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed)))
    cfg = TrainConfig(epochs=args.epochs, tensorboard=False, **overrides(args.set))
    seed_everything(args.seed)
    model = build_model(args.model, len(dataset.classes))
    with tempfile.TemporaryDirectory() as folder:
        outcome = train_model(model, train, train.subset([]), cfg, seed=args.seed, device=CPU,
                              files=ModelFiles(Path(folder)), fingerprint="ingredients", num_classes=len(dataset.classes))
    started = time.perf_counter()
    accuracy = {tta: (predict_logits(model, dataset.test.images, CPU, tta=tta).argmax(1) == dataset.test.labels)
                .float().mean().item() for tta in ("none", *args.tta)}
    augmented = ", ".join(f"tta {tta} {accuracy[tta]:.2%}" for tta in args.tta)
    print(f"{args.model} {args.epochs} epochs {' '.join(args.set) or '(defaults)'}{' shuffled' * args.shuffle_train}: "
          f"test {accuracy['none']:.2%} ({augmented}); train {outcome.train_time_s:.0f} s, "
          f"eval {time.perf_counter() - started:.0f} s (shared machine)")


if __name__ == "__main__":
    main()
