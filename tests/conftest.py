"""Fixtures shared by several test modules (test modules never import each other)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import class_coloured_split, write_image_folder

from xaiquest.config import load_config
from xaiquest.pipeline import run_pipeline

SMOKE_MODELS = ("fastnet__baseline__s0", "resnet_small__baseline__s0")


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10-shaped image folder: 30 training and 6 test images per class, coloured by class."""
    root = tmp_path_factory.mktemp("tiny_cifar")
    return write_image_folder(root, class_coloured_split(30, seed=0), class_coloured_split(6, seed=1))


@pytest.fixture(scope="session")
def smoke_models() -> tuple[str, ...]:
    """The run ids of ``smoke_run``, in run order."""
    return SMOKE_MODELS


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, tiny_cifar: Path) -> Path:
    """A trained and evaluated two-model run on tiny synthetic data, built once per test session."""
    root = tmp_path_factory.mktemp("dashboard_run")
    config = load_config("smoke", {
        "name": "tiny", "models": ["fastnet", "resnet_small"],
        "data": {"source": str(tiny_cifar), "val_size": 20, "train_subset": None, "test_subset": None,
                 "cache_dir": str(root / "cache")},
        "train": {"epochs": 1, "batch_size": 32, "tensorboard": False},
    })
    run_pipeline(config, root / "runs", ["train", "evaluate", "compare"])
    return root / "runs" / "tiny"
