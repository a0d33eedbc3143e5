"""Any image dataset: class trees split by fraction, any class count and size, mode conversions,
CIFAR-100, and normalisation from the training split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xaiquest.config import load_config
from xaiquest.data import CIFAR10_NORMALISATION, channel_statistics, load_dataset, normalised_by, to_float
from xaiquest.errors import DataError
from xaiquest.runs import prepare_data


def _write_tree(root: Path, classes: list[str], per_class: int, size: int, mode: str = "RGB", seed: int = 0) -> Path:
    """``root/<class>/NNN.png``: each class a different flat colour plus noise."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = np.clip(rng.normal(40 * label + 30, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / name / f"{index:03d}.png")
    return root


def test_one_class_tree_is_split_by_a_seeded_stratified_fraction(tmp_path):
    root = _write_tree(tmp_path / "tree", ["cow", "pig", "hen"], per_class=10, size=20)
    first = load_dataset(root, tmp_path / "cache", test_fraction=0.3, split_seed=1)
    again = load_dataset(root, tmp_path / "cache", test_fraction=0.3, split_seed=1)
    other = load_dataset(root, tmp_path / "cache", test_fraction=0.3, split_seed=2)
    assert first.classes == ("cow", "hen", "pig") and first.image_size == 20
    assert torch.bincount(first.test.labels).tolist() == [3, 3, 3]
    assert torch.bincount(first.train.labels).tolist() == [7, 7, 7]
    assert torch.equal(first.test.images, again.test.images)
    assert not torch.equal(first.test.images, other.test.images)
    assert "0.3" in first.source


def test_grayscale_palette_and_rgba_become_rgb_and_are_counted(tmp_path):
    root = tmp_path / "modes"
    _write_tree(root / "train", ["a", "b"], per_class=2, size=16, mode="L")
    _write_tree(root / "test", ["a", "b"], per_class=1, size=16, mode="P")
    Image.new("RGBA", (16, 16), (10, 20, 30, 128)).save(root / "train" / "a" / "rgba.png")
    dataset = load_dataset(root, tmp_path / "cache")
    assert dataset.conversions == {"grayscale->RGB": 4, "palette->RGB": 2, "RGBA->RGB": 1}
    gray = dataset.train.images[dataset.train.labels == 1][0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    rgba = dataset.train.images[2]  # a/rgba.png sorts after a/000.png, a/001.png
    assert rgba[:, 0, 0].tolist() == [10, 20, 30]


def test_mixed_sizes_need_image_size_then_are_resized_and_centre_cropped(tmp_path):
    root = _write_tree(tmp_path / "mixed" / "train", ["x", "y"], per_class=2, size=24)
    _write_tree(tmp_path / "mixed" / "test", ["x", "y"], per_class=1, size=24)
    wide = np.zeros((24, 48, 3), np.uint8)
    wide[:, 12:36] = 200  # the centre square is bright, the sides black
    Image.fromarray(wide).save(root / "y" / "wide.png")
    with pytest.raises(DataError, match="data.image_size"):
        load_dataset(tmp_path / "mixed", tmp_path / "cache")
    dataset = load_dataset(tmp_path / "mixed", tmp_path / "cache", image_size=12)
    assert dataset.train.images.shape[1:] == (3, 12, 12) and dataset.train.images.dtype == torch.uint8
    assert dataset.conversions == {"resized": 7}
    centre_crop = dataset.train.images[-1]  # y/wide.png: the centre crop holds only the bright square
    assert bool((centre_crop[:, :, 1:-1] == 200).all())  # edges blend with the black sides (antialiasing)
    assert torch.equal(centre_crop[:, :, 0], centre_crop[:, :, -1])  # symmetric: the crop is centred


def _write_cifar100(folder: Path, n_train: int, n_test: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": [i % 100 for i in range(n)],
                 "coarse_labels": [i % 20 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [f"fine{i:02d}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": names[:20]}))
    return folder


def test_cifar100_python_release_is_recognised_with_its_fine_labels(tmp_path):
    _write_cifar100(tmp_path / "cifar-100-python", 200, 100)
    dataset = load_dataset(tmp_path, tmp_path / "cache")  # the folder holding the release
    assert len(dataset.classes) == 100 and dataset.classes[7] == "fine07"
    assert len(dataset.train) == 200 and int(dataset.test.labels.max()) == 99
    assert dataset.source.startswith("CIFAR-100")


def test_normalisation_comes_from_the_training_split_and_is_used_for_conversion(tmp_path):
    root = _write_tree(tmp_path / "tree", ["dark", "light"], per_class=12, size=16)
    config = load_config("smoke", {"data": {"source": str(root), "val_size": 4, "train_subset": None,
                                            "test_subset": None}})
    data = prepare_data(config)
    expected = channel_statistics(data.train.images)
    assert data.normalisation == expected != CIFAR10_NORMALISATION
    pixels = data.train.images.double() / 255
    assert data.normalisation.mean[0] == pytest.approx(pixels[:, 0].mean().item(), abs=1e-4)
    with normalised_by(data.normalisation):
        converted = to_float(data.train.images)
    assert converted.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert converted.std().item() == pytest.approx(1.0, abs=2e-2)


def test_stated_mean_and_std_replace_the_training_statistics(tmp_path):
    root = _write_tree(tmp_path / "tree", ["dark", "light"], per_class=6, size=16)
    config = load_config("smoke", {"data": {"source": str(root), "val_size": 2, "train_subset": None,
                                            "test_subset": None, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}})
    assert prepare_data(config).normalisation.std == (0.25, 0.25, 0.25)
