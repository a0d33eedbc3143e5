"""The whole audit (every stage and the report) on datasets that are not CIFAR-10: 5 classes of
64x64 colour images in train/ + test/ folders, and 10 classes of 28x28 grayscale images in one
class tree. Each report must name only its own dataset's classes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.data import CIFAR10_CLASSES
from xaiquest.layout import RunLayout

pytestmark = pytest.mark.slow
STAGE_UNITS = ("train", "evaluate", "calibrate", "explain", "stress")


def _draw(label: int, size: int, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """A class-coloured noisy background with a bright square whose place depends on the class."""
    hue = np.array([(97 * label) % 256, (53 * label + 80) % 256, (151 * label + 40) % 256], dtype=float)
    pixels = hue + rng.normal(0, 25, (size, size, 3))
    side = size // 4
    row, col = divmod(label, 4)
    top, left = (row * size) // 3, (col * size) // 4
    pixels[top : top + side, left : left + side] = 255
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write(folder: Path, classes: list[str], per_class: int, size: int, mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(_draw(label, size, rng, len(classes))).convert(mode).save(folder / name / f"{index:03d}.png")


def _config(tmp_path: Path, name: str, **data: object) -> Path:
    config = {
        "name": name, "profile": "smoke", "threads": 2, "models": ["fastnet"],
        "variants": {"baseline": {}, "patch": {"patch": {"target_class": 0, "size": 3}}},
        "data": {"val_size": 10, "train_subset": None, "test_subset": None, "cache_dir": str(tmp_path / "cache"), **data},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.1, "tensorboard": False},
        "robustness": {"corruptions": ["gaussian_noise", "fog", "zoom_blur", "pixelate"], "severities": [1, 5],
                       "test_images": 20},
        "explain": {"methods": ["gradcam", "integrated_gradients", "fusioncam"], "variants": ["baseline"]},
        "stress": {"test_images": 20, "focus_images": 2, "layerwise_images": 8},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _audit(tmp_path: Path, name: str, data_root: Path, classes: list[str], **data: object) -> dict:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(_config(tmp_path, name, **data)), "--data", str(data_root),
                                      "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    root = runs / name
    manifest = json.loads(RunLayout(root).manifest.read_text())
    units = set(manifest["units"])
    for stage in STAGE_UNITS:
        assert any(unit.startswith(f"{stage}/fastnet__baseline") for unit in units), stage
    assert "robustness" in units
    assert manifest["dataset"]["classes"] == classes
    html = re.sub(r"data:[^\"')]+", "", (root / "report.html").read_text())  # embedded images are base64 noise
    report = (root / "report.md").read_text() + html
    leaked = [name for name in CIFAR10_CLASSES if re.search(rf"\b{name}\b", report, re.IGNORECASE)]
    assert not leaked, f"CIFAR-10 class names in a report on other data: {leaked}"
    per_class = RunLayout(root).model("fastnet__baseline__s0").eval.per_class.read_text()
    assert all(name in per_class for name in classes)
    return manifest


def test_five_class_64_px_colour_folders_run_every_stage(tmp_path):
    classes = ["ant", "bee", "cow", "eel", "fox"]
    _write(tmp_path / "colour" / "train", classes, per_class=16, size=64, mode="RGB", seed=0)
    _write(tmp_path / "colour" / "test", classes, per_class=6, size=64, mode="RGB", seed=1)
    manifest = _audit(tmp_path, "colour", tmp_path / "colour", classes)
    assert manifest["dataset"]["image_size"] == 64 and manifest["dataset"]["converted"] == {}


def test_ten_class_28_px_grayscale_tree_runs_every_stage(tmp_path):
    classes = [f"digit_{chr(ord('a') + i)}" for i in range(10)]
    _write(tmp_path / "gray", classes, per_class=12, size=28, mode="L", seed=2)
    manifest = _audit(tmp_path, "gray", tmp_path / "gray", classes, test_fraction=0.25)
    assert manifest["dataset"]["image_size"] == 28
    assert manifest["dataset"]["converted"] == {"grayscale->RGB": 120}
    assert manifest["dataset"]["images"]["test"] == 30
