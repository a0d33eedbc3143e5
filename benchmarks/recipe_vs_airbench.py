"""airbench94's own training code against our trainer, on this CPU in fp32, on the same images.

    pip install -e '.[bench]'                                              # airbench 0.1.8
    python benchmarks/recipe_vs_airbench.py                                 # the full comparison (hours on a CPU)
    python benchmarks/recipe_vs_airbench.py --epochs 1 --train-subset 2048 --test-subset 500   # a smoke run

airbench94 runs through the installed ``airbench`` package (``train94``, ``make_net94``, its
``CifarLoader``); only its CUDA-only parts are replaced while it runs: ``torch.cuda.Event`` and
``torch.cuda.synchronize`` by a CPU clock, ``Module.half``/``.cuda`` by no-ops inside ``make_net94``,
its loader by one that reads to the CPU in fp32. The images are written as its ``train.pt``/``test.pt``
in a temporary folder. Its per-epoch record is captured by wrapping ``evaluate`` and
``print_training_details``; the seconds are its own (training and the whitening fit; evaluation not
counted). Ours is :func:`xaiquest.train.trainer.train_model` with ``--model`` and ``OUR_RECIPE`` (plus
``--set``), its seconds the history's ``elapsed_s`` with no validation split (evaluation not counted).
Both train on the same training images for ``--epochs`` (ours rounds up to whole epochs) and are measured
after every epoch on the same test images, single-view and with airbench's TTA (mirror + 1-px
translations: our ``flip_translate``); "epochs/seconds to" read the TTA accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pandas as pd
import torch
import yaml
from torch import nn

from xaiquest.config import TrainConfig
from xaiquest.data import Split, load_dataset, validation_split
from xaiquest.inference import predict_logits, seed_everything
from xaiquest.layout import ModelFiles
from xaiquest.models import build_model
from xaiquest.train.trainer import train_model

CPU = torch.device("cpu")
TARGETS = (0.90, 0.93, 0.94)
AIRBENCH_TTA_LEVEL = 2
OUR_RECIPE: dict[str, object] = {"tensorboard": False}
"""Our side of the comparison: the standard profile's recipe (``TrainConfig``'s defaults); none of airbench94's
ingredients measured in docs/benchmarks.md ("Recipe ingredients vs airbench94") paid, so none is switched on."""


@dataclass(frozen=True)
class EpochRecord:
    epoch: float
    seconds: float  # cumulative training seconds
    accuracy: float  # single view
    accuracy_tta: float  # mirror + translate


class CpuEvent:
    """``torch.cuda.Event(enable_timing=True)`` on the CPU clock: ``elapsed_time`` in milliseconds."""

    def __init__(self, enable_timing: bool = True) -> None:
        self.recorded = 0.0

    def record(self) -> None:
        self.recorded = time.perf_counter()

    def elapsed_time(self, end: CpuEvent) -> float:
        return (end.recorded - self.recorded) * 1e3


def cpu_loader_class() -> type:
    """airbench's ``CifarLoader`` reading to the CPU, images in fp32 (it keeps them in fp16 on a GPU)."""
    from airbench.utils import CifarLoader

    class CpuCifarLoader(CifarLoader):
        def __init__(self, path: str, train: bool = True, batch_size: int = 500, aug: dict | None = None,
                     drop_last: bool | None = None, shuffle: bool | None = None, altflip: bool = False,
                     gpu: str = "cpu") -> None:
            super().__init__(path, train, batch_size, aug, drop_last, shuffle, altflip, gpu="cpu")
            raw = torch.load(os.path.join(path, "train.pt" if train else "test.pt"))["images"]
            self.images = (raw.float() / 255).permute(0, 3, 1, 2).to(memory_format=torch.channels_last)

    return CpuCifarLoader


def cpu_make_net94() -> nn.Module:
    """``make_net94`` with ``.half()`` and ``.cuda()`` as no-ops: the same net, fp32, on the CPU."""
    from airbench import make_net94

    def unchanged(module: nn.Module, *args: object, **kwargs: object) -> nn.Module:
        return module

    with mock.patch.object(nn.Module, "half", unchanged), mock.patch.object(nn.Module, "cuda", unchanged):
        return make_net94()


def write_airbench_data(folder: Path, train: Split, test: Split, classes: Sequence[str]) -> Path:
    """``train.pt``/``test.pt`` as airbench's loader reads them: uint8 NHWC images, labels, class names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.pt", train), ("test.pt", test)):
        torch.save({"images": split.images.permute(0, 2, 3, 1).contiguous(), "labels": split.labels,
                    "classes": list(classes)}, folder / name)
    return folder


def run_airbench(train: Split, test: Split, classes: Sequence[str], epochs: float, workdir: Path) -> list[EpochRecord]:
    """airbench94's ``train94`` on CPU stand-ins; after each epoch its test accuracy, plain and with its TTA."""
    import airbench.lib_airbench94 as lib94
    import airbench.utils as utils

    write_airbench_data(workdir / "cifar10", train, test, classes)  # train() reads its test set from ./cifar10
    loader_class = cpu_loader_class()
    accuracies: list[tuple[float, float]] = []
    records: list[EpochRecord] = []
    real_evaluate, real_print = utils.evaluate, utils.print_training_details

    def evaluate_both(model: nn.Module, loader: object, tta_level: int = 0) -> float:
        plain = real_evaluate(model, loader, tta_level=tta_level)
        if tta_level == 0:  # the per-epoch call, outside airbench's timed region
            accuracies.append((plain, real_evaluate(model, loader, tta_level=AIRBENCH_TTA_LEVEL)))
        return plain

    def record(variables: dict, is_final_entry: bool) -> None:
        real_print(variables, is_final_entry)
        if isinstance(variables.get("epoch"), int):
            plain, tta = accuracies[-1]
            records.append(EpochRecord(variables["epoch"] + 1, variables["total_time_seconds"], plain, tta))

    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.chdir(workdir))
        stack.enter_context(mock.patch.object(torch.cuda, "Event", CpuEvent))
        stack.enter_context(mock.patch.object(torch.cuda, "synchronize", lambda *args, **kwargs: None))
        stack.enter_context(mock.patch.object(utils, "CifarLoader", loader_class))
        stack.enter_context(mock.patch.object(utils, "evaluate", evaluate_both))
        stack.enter_context(mock.patch.object(utils, "print_training_details", record))
        loader = loader_class("cifar10", train=True, batch_size=lib94.hyp["opt"]["batch_size"], aug=lib94.hyp["aug"],
                              altflip=True)
        lib94.train94(loader, epochs=epochs, make_net=cpu_make_net94, verbose=True)
    return _last_epoch_fractional(records, epochs)


def _last_epoch_fractional(records: list[EpochRecord], epochs: float) -> list[EpochRecord]:
    """airbench stops mid-epoch at ``epochs`` (9.9): its last record is labelled with that fraction."""
    if records and records[-1].epoch > epochs:
        last = records[-1]
        records[-1] = EpochRecord(epochs, last.seconds, last.accuracy, last.accuracy_tta)
    return records


def run_ours(train: Split, test: Split, num_classes: int, epochs: float, model_name: str, recipe: dict[str, object],
             seed: int) -> list[EpochRecord]:
    """Our trainer with ``recipe`` for ``ceil(epochs)`` epochs; after each, the test accuracy, plain and TTA."""
    cfg = TrainConfig(epochs=math.ceil(epochs), **recipe)
    seed_everything(seed)
    model = build_model(model_name, num_classes)
    accuracies: list[tuple[float, float]] = []

    def measure(epoch: int) -> None:
        accuracies.append(tuple(_accuracy(model, test, tta) for tta in ("none", "flip_translate")))

    with tempfile.TemporaryDirectory() as folder:
        outcome = train_model(model, train, train.subset([]), cfg, seed=seed, device=CPU, files=ModelFiles(Path(folder)),
                              fingerprint="recipe_vs_airbench", num_classes=num_classes, label=f"ours ({model_name})",
                              after_epoch=measure)
    return [EpochRecord(int(row.epoch), float(row.elapsed_s), plain, tta)
            for row, (plain, tta) in zip(outcome.history.itertuples(), accuracies)]


def _accuracy(model: nn.Module, test: Split, tta: str) -> float:
    return (predict_logits(model, test.images, CPU, tta=tta).argmax(1) == test.labels).float().mean().item()


def first_reaching(records: Sequence[EpochRecord], target: float) -> EpochRecord | None:
    return next((r for r in records if r.accuracy_tta >= target), None)


def summary_table(curves: dict[str, list[EpochRecord]]) -> pd.DataFrame:
    """Per trainer: epochs and seconds to each target (TTA accuracy), the final accuracy; then ours / airbench94."""
    rows = []
    for name, records in curves.items():
        row: dict[str, object] = {"trainer": name}
        for target in TARGETS:
            reached = first_reaching(records, target)
            row[f"epochs to {target:.0%}"] = reached.epoch if reached else None
            row[f"s to {target:.0%}"] = round(reached.seconds, 1) if reached else None
        row["final acc (TTA)"] = round(records[-1].accuracy_tta, 4)
        row["train s"] = round(records[-1].seconds, 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    ours, theirs = table.iloc[1], table.iloc[0]
    ratio: dict[str, object] = {"trainer": "ours / airbench94"}
    for column in [c for c in table.columns if c.startswith(("epochs to", "s to", "train s"))]:
        both = pd.notna(ours[column]) and pd.notna(theirs[column]) and theirs[column]
        ratio[column] = round(float(ours[column]) / float(theirs[column]), 2) if both else None
    return pd.concat([table, pd.DataFrame([ratio])], ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    """A table with its gaps (a target not reached, a column not divided) left blank rather than ``nan``."""
    return table.astype(object).where(table.notna(), "").to_markdown(index=False)


def epochs_table(curves: dict[str, list[EpochRecord]]) -> pd.DataFrame:
    return pd.DataFrame([{"trainer": name, "epoch": r.epoch, "train s": round(r.seconds, 1), "test acc": round(r.accuracy, 4),
                          "test acc (TTA)": round(r.accuracy_tta, 4)} for name, records in curves.items() for r in records])


def load_splits(data: str, cache_dir: Path, train_subset: int | None, test_subset: int | None) -> tuple[Split, Split, tuple[str, ...]]:
    """The whole training set (airbench trains on all 50k) and test set, or stratified subsets of them. The
    training images are put in a seeded random order, as in CIFAR-10's own release: both trainers fit their
    whitening layer to the first 5000, which an image folder orders class by class."""
    dataset = load_dataset(data, cache_dir, download=False)
    train, test = dataset.train, dataset.test
    if train_subset is not None and train_subset < len(train):
        _, train = validation_split(train, train_subset, 0)
    if test_subset is not None and test_subset < len(test):
        _, test = validation_split(test, test_subset, 0)
    return train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))), test, dataset.classes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/datasets/cifar10-jpeg")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/xaiquest"))
    parser.add_argument("--epochs", type=float, default=9.9, help="airbench94's budget; ours rounds up")
    parser.add_argument("--train-subset", type=int, help="stratified training images (default: all)")
    parser.add_argument("--test-subset", type=int, help="stratified test images (default: all)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--model", default="fastnet_wide", help="ours; fastnet_wide has airbench94's widths")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides of OUR_RECIPE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test, classes = load_splits(args.data, args.cache_dir, args.train_subset, args.test_subset)
    recipe = OUR_RECIPE | {key: yaml.safe_load(value) for key, value in (pair.split("=", 1) for pair in args.set)}
    with tempfile.TemporaryDirectory() as workdir:
        torch.manual_seed(args.seed)
        curves = {"airbench94": run_airbench(train, test, classes, args.epochs, Path(workdir))}
        curves[f"ours ({args.model})"] = run_ours(train, test, len(classes), args.epochs, args.model, recipe, args.seed)
    print(f"train {len(train)} / test {len(test)} images, {args.threads} threads, torch {torch.__version__}, "
          f"our recipe: {recipe}")
    print(markdown(epochs_table(curves)))
    print()
    print(markdown(summary_table(curves)))


if __name__ == "__main__":
    main()
