"""benchmarks/recipe_vs_airbench.py: airbench94's own code runs on the CPU stand-ins, and the table prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from synthetic import class_coloured_split, write_image_folder

pytest.importorskip("airbench")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_vs_airbench.py"


def _benchmark():
    """The script as a module (registered first: its dataclass resolves its annotations through sys.modules)."""
    spec = importlib.util.spec_from_file_location("recipe_vs_airbench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


@pytest.mark.audit  # two short trainings of airbench94-sized nets: 15 s to over a minute on 2 shared CPU cores
def test_one_epoch_of_both_trainers_prints_the_table(tmp_path, capsys):
    benchmark = _benchmark()
    data = write_image_folder(tmp_path / "data", class_coloured_split(110, seed=0), class_coloured_split(10, seed=1))
    real = torch.cuda.Event, torch.cuda.synchronize, nn.Module.half, nn.Module.cuda
    benchmark.main(["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--threads", "2"])
    assert (torch.cuda.Event, torch.cuda.synchronize, nn.Module.half, nn.Module.cuda) == real, "the stand-ins are undone"
    printed = capsys.readouterr().out
    assert "train 1100 / test 100 images" in printed
    for trainer in ("airbench94", "ours (fastnet_wide)", "ours / airbench94"):
        assert f"| {trainer}" in printed
    assert all(f"s to {target}%" in printed for target in (90, 93, 94))


def test_airbench_records_its_epochs_with_cpu_seconds_and_both_accuracies(tmp_path):
    benchmark = _benchmark()
    train, test = class_coloured_split(103, seed=0), class_coloured_split(4, seed=1)  # one batch of 1024
    records = benchmark.run_airbench(train, test, [str(c) for c in range(10)], 0.5, tmp_path)
    (record,) = records
    assert record.epoch == 0.5 and record.seconds > 0
    assert 0 <= record.accuracy <= 1 and 0 <= record.accuracy_tta <= 1
    assert (tmp_path / "cifar10" / "train.pt").exists()


def test_the_summary_reads_the_first_epoch_at_each_target_and_the_ratio():
    benchmark = _benchmark()
    Record = benchmark.EpochRecord
    theirs = [Record(1, 10.0, 0.9, 0.91), Record(2, 20.0, 0.93, 0.935), Record(3, 30.0, 0.94, 0.945)]
    ours = [Record(1, 12.0, 0.9, 0.92), Record(2, 24.0, 0.92, 0.931), Record(3, 36.0, 0.93, 0.939)]
    table = benchmark.summary_table({"airbench94": theirs, "ours": ours}).set_index("trainer")
    assert table.loc["airbench94", "s to 93%"] == 20.0 and table.loc["ours", "s to 93%"] == 24.0
    assert table.loc["ours / airbench94", "s to 93%"] == 1.2 and table.loc["ours / airbench94", "epochs to 90%"] == 1
    assert pd.isna(table.loc["ours / airbench94", "final acc (TTA)"]), "accuracies are not divided"
    assert pd.isna(table.loc["ours", "s to 94%"]) and pd.isna(table.loc["ours / airbench94", "s to 94%"])
