"""Data loading (pickle release, image folders, cache, errors), validation hold-out and augmentation."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from xaiquest.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATA_ENV_VAR,
    Split,
    alternating_flips,
    load_dataset,
    random_crop_flip,
    to_float,
    validation_split,
)
from xaiquest.data import cifar10
from xaiquest.errors import DataError

from synthetic import write_image_folder, write_pickle_release

REAL_JPEG_DATASET = Path("/work/shared/datasets/cifar10-jpeg")


# --- synthetic data writers ----------------------------------------------------------------------


def _smooth_split(per_class: int, seed: int) -> Split:
    """Smooth images (JPEG-friendly), grouped by class like an image-folder listing."""
    low_res = torch.rand(10 * per_class, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    images = (F.interpolate(low_res, size=32, mode="bilinear") * 255).round().to(torch.uint8)
    return Split(images, torch.arange(10).repeat_interleave(per_class))


@pytest.fixture
def splits() -> tuple[Split, Split]:
    return _smooth_split(2, seed=0), _smooth_split(1, seed=1)


def assert_same_split(actual: Split, expected: Split) -> None:
    assert actual.images.dtype == torch.uint8 and actual.labels.dtype == torch.int64
    assert torch.equal(actual.images, expected.images)
    assert torch.equal(actual.labels, expected.labels)


# --- loading ---------------------------------------------------------------------------------------


def test_pickle_release_its_parent_and_png_folders_load_identically(tmp_path, splits):
    train, test = splits
    release = write_pickle_release(tmp_path / "release" / "cifar-10-batches-py", train, test)
    png_root = write_image_folder(tmp_path / "png", train, test)
    for data in (release, release.parent, str(png_root)):
        dataset = load_dataset(data, cache_dir=tmp_path / "cache")
        assert_same_split(dataset.train, train)
        assert_same_split(dataset.test, test)
        assert dataset.classes == CIFAR10_CLASSES
        assert str(Path(data).name) in dataset.source


def test_jpeg_folder_decodes_close_to_the_originals(tmp_path, splits):
    train, test = splits
    dataset = load_dataset(write_image_folder(tmp_path / "jpg", train, test, ".jpg"), cache_dir=tmp_path / "cache")
    assert dataset.train.images.shape == (20, 3, 32, 32) and dataset.train.images.dtype == torch.uint8
    assert torch.equal(dataset.test.labels, test.labels)
    assert (dataset.train.images.float() - train.images.float()).abs().mean() < 6


def test_grayscale_and_rgba_images_become_rgb(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    Image.new("L", (32, 32), 200).save(root / "train" / "cat" / "gray.png")
    Image.new("RGBA", (32, 32), (10, 20, 30, 40)).save(root / "train" / "cat" / "rgba.png")
    train = load_dataset(root, cache_dir=tmp_path / "cache").train
    assert len(train) == 22 and train.images.shape[1:] == (3, 32, 32)
    assert (train.images == 200).all(dim=(1, 2, 3)).any()


def test_argument_beats_env_var_and_env_var_is_used_without_argument(tmp_path, splits, monkeypatch):
    release = write_pickle_release(tmp_path / "cifar-10-batches-py", *splits)
    monkeypatch.setenv(DATA_ENV_VAR, str(release))
    assert_same_split(load_dataset(None, cache_dir=tmp_path / "cache").train, splits[0])
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "nowhere"))
    assert_same_split(load_dataset(release, cache_dir=tmp_path / "cache").train, splits[0])


def test_download_goes_through_torchvision_into_the_cache_dir(tmp_path, splits, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)

    def fake_cifar10(root: Path, download: bool) -> None:
        write_pickle_release(Path(root) / "cifar-10-batches-py", *splits)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    assert_same_split(load_dataset(None, cache_dir=tmp_path).test, splits[1])


# --- cache -----------------------------------------------------------------------------------------


def _fail(*args, **kwargs):
    raise AssertionError("decoded again instead of using the cache")


def test_second_load_uses_the_tensor_cache(tmp_path, splits, monkeypatch):
    root = write_image_folder(tmp_path / "png", *splits)
    first = load_dataset(root, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(cifar10, "_decode_images", _fail)
    second = load_dataset(root, cache_dir=tmp_path / "cache")
    assert_same_split(second.train, first.train)
    assert_same_split(second.test, first.test)
    assert second.classes == first.classes
    assert len(list((tmp_path / "cache" / "tensors").iterdir())) == 1  # no temp files left behind


def test_corrupt_cache_is_rebuilt(tmp_path, splits):
    release = write_pickle_release(tmp_path / "cifar-10-batches-py", *splits)
    load_dataset(release, cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache" / "tensors").iterdir()
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    assert_same_split(load_dataset(release, cache_dir=tmp_path / "cache").train, splits[0])
    assert torch.load(cache_file, weights_only=True)["train_images"].shape == (20, 3, 32, 32)


def test_cache_follows_changes_to_the_folder(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    load_dataset(root, cache_dir=tmp_path / "cache")
    shutil.copy(root / "train" / "cat" / "0006.png", root / "train" / "cat" / "extra.png")
    assert len(load_dataset(root, cache_dir=tmp_path / "cache").train) == 21


# --- errors ----------------------------------------------------------------------------------------


def _data_error(data, tmp_path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        load_dataset(data, cache_dir=tmp_path / "cache", **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_any_number_of_classes_loads_with_the_folder_names(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    for split_name in ("train", "test"):
        shutil.rmtree(root / split_name / "truck")
    dataset = load_dataset(root, cache_dir=tmp_path / "cache")
    assert dataset.classes == CIFAR10_CLASSES[:-1] and int(dataset.train.labels.max()) == 8


def test_one_class_is_refused_naming_the_folder(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    for split_name in ("train", "test"):
        for name in CIFAR10_CLASSES[1:]:
            shutil.rmtree(root / split_name / name)
    message = _data_error(root, tmp_path)
    assert "1 class" in message and "at least 2" in message and str(root) in message


def test_corrupt_image_is_named(tmp_path, splits):
    root = write_image_folder(tmp_path / "jpg", *splits, suffix=".jpg")  # exercises the batched JPEG path
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    assert "broken.jpg" in _data_error(root, tmp_path)


def test_wrong_image_size_is_named_with_its_size(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    Image.new("RGB", (64, 48)).save(root / "test" / "dog" / "big.png")
    message = _data_error(root, tmp_path)
    assert "big.png" in message and "64x48" in message and "data.image_size" in message


def test_missing_test_folder_is_named(tmp_path, splits):
    root = write_image_folder(tmp_path / "png", *splits)
    shutil.rmtree(root / "test")
    assert str(root / "test") in _data_error(root, tmp_path)


def test_missing_batch_file_is_named(tmp_path, splits):
    release = write_pickle_release(tmp_path / "cifar-10-batches-py", *splits)
    (release / "data_batch_3").unlink()
    assert "data_batch_3" in _data_error(release, tmp_path)


def test_nothing_found_offline_says_where_it_looked_and_how_to_pass_data(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    message = _data_error(None, tmp_path, download=False)
    assert str(tmp_path / "cache" / "cifar-10-batches-py") in message
    assert "--data" in message and DATA_ENV_VAR in message


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)

    def offline(root: Path, download: bool) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    message = _data_error(None, tmp_path)
    assert "network unreachable" in message and "--data" in message


def test_missing_path_is_a_data_error(tmp_path):
    assert "--data" in _data_error(tmp_path / "nowhere", tmp_path)


# --- validation hold-out ---------------------------------------------------------------------------


def _indexed_split(class_sizes: list[int]) -> Split:
    """Image ``i`` is filled with value ``i`` so a subset reveals which rows it took."""
    total = sum(class_sizes)
    images = torch.arange(total, dtype=torch.uint8).view(-1, 1, 1, 1).expand(total, 3, 2, 2).clone()
    return Split(images, torch.arange(len(class_sizes)).repeat_interleave(torch.tensor(class_sizes)))


def _rows(split: Split) -> set[int]:
    return set(split.images[:, 0, 0, 0].tolist())


def test_validation_split_is_stratified_disjoint_and_seeded():
    split = _indexed_split([40, 30, 20, 5, 5])
    torch.manual_seed(1)
    rest, val = validation_split(split, n_val=20, seed=7)
    torch.manual_seed(2)
    rest_again, val_again = validation_split(split, n_val=20, seed=7)
    assert torch.bincount(val.labels).tolist() == [8, 6, 4, 1, 1]
    assert _rows(rest).isdisjoint(_rows(val)) and len(_rows(rest) | _rows(val)) == len(split)
    assert torch.equal(val.images, val_again.images) and torch.equal(rest.labels, rest_again.labels)
    assert _rows(validation_split(split, n_val=20, seed=8)[1]) != _rows(val)


def test_validation_split_edges():
    split = _indexed_split([3, 3])
    rest, val = validation_split(split, n_val=0, seed=0)
    assert len(val) == 0 and val.images.shape[1:] == (3, 2, 2) and len(rest) == 6
    with pytest.raises(DataError):
        validation_split(split, n_val=6, seed=0)


# --- augmentation ----------------------------------------------------------------------------------


def _random_images(n: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_crop_flip_keeps_shape_and_is_seeded(dtype):
    images = _random_images().to(dtype)
    out = random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.dtype == dtype
    assert torch.equal(out, random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(out, random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(4)))


def test_random_crop_flip_without_padding_only_flips():
    images = _random_images(32)
    out = random_crop_flip(images, pad=0, generator=torch.Generator().manual_seed(0))
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_alternating_flips_mirror_each_image_in_exactly_one_of_two_consecutive_epochs():
    masks = [alternating_flips(1000, seed=5, epoch=epoch) for epoch in range(4)]
    assert torch.equal(masks[0], ~masks[1]) and torch.equal(masks[0], masks[2]) and torch.equal(masks[1], masks[3])
    assert 400 < int(masks[0].sum()) < 600
    assert not torch.equal(masks[0], alternating_flips(1000, seed=6, epoch=0))


def test_a_flip_mask_mirrors_exactly_the_marked_images_and_keeps_the_translation_draw():
    images, mask = _random_images(16), torch.arange(16) % 3 == 0
    marked = random_crop_flip(images, pad=0, generator=torch.Generator().manual_seed(0), flip=mask)
    mirrored = (marked == images.flip(-1)).flatten(1).all(1)
    assert torch.equal(mirrored, mask)
    shifted = random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(1), flip=torch.zeros(16, dtype=torch.bool))
    assert torch.equal(shifted, random_crop_flip(images, pad=2, generator=torch.Generator().manual_seed(1), flip=False))


def test_random_crop_flip_outputs_are_zero_padded_windows():
    pad, images = 2, _random_images(8)
    padded = F.pad(images, (pad,) * 4)
    out = random_crop_flip(images, pad=pad, generator=torch.Generator().manual_seed(1))
    for image, result in zip(padded, out):
        windows = [image[:, y : y + 8, x : x + 8] for y in range(2 * pad + 1) for x in range(2 * pad + 1)]
        assert any(torch.equal(result, w) or torch.equal(result, w.flip(-1)) for w in windows)


def test_to_float_normalises_with_cifar_statistics_and_keeps_layout():
    images = torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 255.0)]).to(torch.uint8)
    out = to_float(images.contiguous(memory_format=torch.channels_last))
    mean, std = torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out[0, :, 0, 0], -mean / std)
    torch.testing.assert_close(out[1, :, 0, 0], (1 - mean) / std)


# --- the real dataset (opt-in) -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not REAL_JPEG_DATASET.is_dir(), reason="real CIFAR-10 JPEG folder not present")
def test_real_jpeg_dataset_loads_and_caches(tmp_path):
    first = load_dataset(REAL_JPEG_DATASET, cache_dir=tmp_path)
    started = time.perf_counter()
    second = load_dataset(REAL_JPEG_DATASET, cache_dir=tmp_path)
    assert time.perf_counter() - started < 2
    assert (len(first.train), len(first.test)) == (50000, 10000)
    assert first.classes == CIFAR10_CLASSES
    assert torch.equal(first.test.images, second.test.images)
    assert np.array_equal(torch.bincount(first.train.labels).numpy(), np.full(10, 5000))
