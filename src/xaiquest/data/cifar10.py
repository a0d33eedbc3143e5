"""Load CIFAR-10 once into uint8 tensors, from whatever copy the user has.

Everything downstream (training, audits) works on whole tensors in memory, so the loader's job
is to turn a pickle release or an image-folder tree into ``[N,3,32,32]`` uint8 tensors, cache
them in one file so later runs start instantly, and fail with one actionable line otherwise.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from xaiquest.errors import DataError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

DATA_ENV_VAR = "XAIQUEST_DATA"
PICKLE_DIR_NAME = "cifar-10-batches-py"
_PICKLE_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_PICKLE_FILES = (*_PICKLE_TRAIN_FILES, "test_batch", "batches.meta")
_IMAGE_SIZE = 32
_DECODE_CHUNK = 4096
_CACHE_VERSION = 1
_HOW_TO_PASS_DATA = (
    f"pass --data PATH or set {DATA_ENV_VAR} to a {PICKLE_DIR_NAME} folder (or its parent), "
    "or to a folder with train/<class>/ and test/<class>/ image folders"
)


@dataclass(frozen=True, eq=False)
class Split:
    """Images and labels of one split, kept as whole tensors for batched GPU-side work."""

    images: torch.Tensor  # uint8 [N,3,H,W]
    labels: torch.Tensor  # int64 [N]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"images must be uint8 [N,3,H,W], got {self.images.dtype} {list(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise DataError(
                f"labels must be int64 [{self.images.shape[0]}], got {self.labels.dtype} {list(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, indices: torch.Tensor | Sequence[int]) -> Split:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Split(self.images[index], self.labels[index])


@dataclass(frozen=True, eq=False)
class Dataset:
    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str  # where the data came from, for logs and reports
    root: Path  # the resolved folder it was read from
    scaled_16bit: int = 0  # 16-bit images scaled down to 8 bits on decoding


@dataclass(frozen=True)
class _Content:
    train: Split
    test: Split
    classes: tuple[str, ...]
    scaled_16bit: int = 0


@dataclass(frozen=True)
class _ImageFolderListing:
    classes: tuple[str, ...]
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]
    signature: str  # changes when any image is added, removed or rewritten


def load_cifar10(
    data: str | Path | None,
    cache_dir: Path,
    download: bool = True,
    *,
    num_classes: int = 10,
) -> Dataset:
    """CIFAR-10 from ``data``, else ``$XAIQUEST_DATA``, else ``cache_dir`` (downloading if allowed)."""
    cache_dir = Path(cache_dir)
    kind, root = _detect_format(_resolve_location(data, cache_dir, download))
    build: Callable[[], _Content]
    if kind == "pickle":
        signature = _pickle_release_signature(root)
        build = partial(_read_pickle_release, root)
        source = f"CIFAR-10 python pickles at {root}"
    else:
        listing = _list_image_folder(root)
        signature = listing.signature
        build = partial(_decode_image_folder, listing)
        source = f"image folders at {root}"
    cache_file = cache_dir / "tensors" / f"{_cache_key(kind, root, signature)}.pt"
    cached = _read_cache(cache_file)
    content = cached if cached is not None else _write_cache(cache_file, build())
    if len(content.classes) != num_classes:
        raise DataError(
            f"{root} has {len(content.classes)} classes but {num_classes} are expected; "
            "fix the class folders or set the expected number of classes"
        )
    if content.scaled_16bit:
        source += f" ({content.scaled_16bit} 16-bit image{'s' if content.scaled_16bit > 1 else ''} scaled to 8 bits)"
    return Dataset(content.train, content.test, content.classes, source, root, content.scaled_16bit)


def validation_split(split: Split, n_val: int, seed: int) -> tuple[Split, Split]:
    """A class-stratified, seed-fixed hold-out ``(rest, val)``, so every run validates on the same images."""
    if not 0 <= n_val < len(split):
        raise DataError(f"validation size must be in [0, {len(split)}), got {n_val}; lower it")
    rest_index, val_index = stratified_indices(split.labels, n_val, seed)
    return split.subset(rest_index), split.subset(val_index)


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rest, chosen)`` sorted index tensors; ``chosen`` holds ``n`` items in class proportions."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=generator)
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]  # random order within each class
    counts = torch.bincount(labels)
    quota = _stratified_quota(counts, n)
    class_start = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[by_class]
    rank_in_class = torch.arange(len(labels)) - class_start[sorted_labels]
    chosen = rank_in_class < quota[sorted_labels]
    return by_class[~chosen].sort().values, by_class[chosen].sort().values


def _stratified_quota(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Per-class sizes proportional to ``counts`` that sum exactly to ``total`` (largest remainder)."""
    exact = counts.double() * total / counts.sum()
    quota = exact.floor().long()
    remainder = total - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:remainder]] += 1
    return quota


# --- where the data is ---------------------------------------------------------------------------


def _resolve_location(data: str | Path | None, cache_dir: Path, download: bool) -> Path:
    """The folder to read: explicit argument, then environment variable, then the download cache."""
    env_value = os.environ.get(DATA_ENV_VAR)
    if data is not None or env_value:
        given, origin = (data, "data path") if data is not None else (env_value, DATA_ENV_VAR)
        path = Path(given).expanduser().resolve()
        if not path.exists():
            raise DataError(f"{origin} {path} does not exist; {_HOW_TO_PASS_DATA}")
        return path
    default = (cache_dir / PICKLE_DIR_NAME).resolve()
    if default.is_dir():
        return default
    if not download:
        raise DataError(f"no CIFAR-10 at {default} ({DATA_ENV_VAR} unset, download off); {_HOW_TO_PASS_DATA}")
    _download(cache_dir, default)
    return default


def _download(cache_dir: Path, expected: Path) -> None:
    try:
        torchvision.datasets.CIFAR10(root=cache_dir, download=True)
    except Exception as exc:  # network, disk and checksum failures all mean "no data here"
        reason = " ".join(str(exc).split())
        raise DataError(
            f"no CIFAR-10 at {expected} and downloading it failed ({reason}); {_HOW_TO_PASS_DATA}"
        ) from exc


def _detect_format(path: Path) -> tuple[str, Path]:
    """``("pickle" | "imagefolder", folder)`` for a release folder, its parent, or an image tree."""
    if (path / PICKLE_DIR_NAME).is_dir():
        return "pickle", path / PICKLE_DIR_NAME
    if path.name == PICKLE_DIR_NAME or any((path / name).exists() for name in _PICKLE_FILES):
        return "pickle", path
    if (path / "train").is_dir() or (path / "test").is_dir():
        return "imagefolder", path
    raise DataError(f"{path} holds no CIFAR-10 data; {_HOW_TO_PASS_DATA}")


# --- the python pickle release -------------------------------------------------------------------


def _pickle_release_signature(folder: Path) -> str:
    """The release's cache signature; fails first, naming any missing file."""
    files = [folder / name for name in _PICKLE_FILES]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}; re-extract cifar-10-python.tar.gz there or pass another --data PATH"
        )
    return _signature([file.stat() for file in files])


def _read_pickle_release(folder: Path) -> _Content:
    train_parts = [_read_pickle_batch(folder / name) for name in _PICKLE_TRAIN_FILES]
    train = Split(torch.cat([p.images for p in train_parts]), torch.cat([p.labels for p in train_parts]))
    test = _read_pickle_batch(folder / "test_batch")
    classes = tuple(_unpickle(folder / "batches.meta")["label_names"])
    return _Content(train, test, classes)


def _read_pickle_batch(file: Path) -> Split:
    batch = _unpickle(file)
    try:
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, _IMAGE_SIZE, _IMAGE_SIZE)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{file} is not a CIFAR-10 batch ({exc}); replace it with the official file") from exc
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels))


def _unpickle(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return pickle.load(handle, encoding="latin1")  # the official release was pickled by Python 2
    except Exception as exc:  # unpickling garbage can raise almost any exception type
        raise DataError(f"cannot read {file} ({exc}); replace it with the official file") from exc


# --- image folders --------------------------------------------------------------------------------


def _list_image_folder(root: Path) -> _ImageFolderListing:
    train_classes, train_files, train_labels, train_stats = _list_image_split(root / "train")
    test_classes, test_files, test_labels, test_stats = _list_image_split(root / "test")
    if train_classes != test_classes:
        raise DataError(
            f"{root}/train has classes {list(train_classes)} but {root}/test has {list(test_classes)}; "
            "both need the same class folders"
        )
    signature = _signature(train_stats + test_stats)
    return _ImageFolderListing(train_classes, train_files, train_labels, test_files, test_labels, signature)


def _list_image_split(folder: Path) -> tuple[tuple[str, ...], list[str], list[int], list[os.stat_result]]:
    """Sorted class folders and their image files (and stats), so labels are reproducible across machines."""
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}; an image-folder dataset needs train/<class>/ and test/<class>/")
    classes = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and entry.name[0] != "."))
    if not classes:
        raise DataError(f"no class folders in {folder}; an image-folder dataset needs {folder}/<class>/ images")
    files: list[str] = []
    labels: list[int] = []
    stats: list[os.stat_result] = []
    for label, name in enumerate(classes):
        entries = sorted(
            (
                entry
                for entry in os.scandir(folder / name)
                if entry.is_file() and entry.name[0] != "." and entry.name.lower().endswith(IMG_EXTENSIONS)
            ),
            key=lambda entry: entry.name,
        )
        if not entries:
            raise DataError(f"no images in {folder / name}; add images or remove the folder")
        files += [entry.path for entry in entries]
        labels += [label] * len(entries)
        stats += [entry.stat() for entry in entries]
    return classes, files, labels, stats


def _decode_image_folder(listing: _ImageFolderListing) -> _Content:
    train_images, train_scaled = _decode_images(listing.train_files)
    test_images, test_scaled = _decode_images(listing.test_files)
    train = Split(train_images, torch.tensor(listing.train_labels, dtype=torch.int64))
    test = Split(test_images, torch.tensor(listing.test_labels, dtype=torch.int64))
    return _Content(train, test, listing.classes, train_scaled + test_scaled)


def _decode_images(files: list[str]) -> tuple[torch.Tensor, int]:
    """Decode image files into one uint8 ``[N,3,32,32]`` tensor (JPEGs in batches for speed), plus how many
    were 16-bit and scaled down."""
    images = torch.empty(len(files), 3, _IMAGE_SIZE, _IMAGE_SIZE, dtype=torch.uint8)
    scaled = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io is deprecated, still fastest here
        for start in range(0, len(files), _DECODE_CHUNK):
            chunk = files[start : start + _DECODE_CHUNK]
            decoded = _decode_chunk(chunk)
            _check_sizes(chunk, decoded)
            scaled += sum(image.dtype == torch.uint16 for image in decoded)
            torch.stack([_to_8bit(image) for image in decoded], out=images[start : start + len(chunk)])
    return images, scaled


def _to_8bit(image: torch.Tensor) -> torch.Tensor:
    """16-bit PNGs decode as uint16; v / 257 rounded maps 0..65535 onto 0..255 and undoes an 8-bit image saved
    as 16 bits (k * 257) exactly."""
    if image.dtype != torch.uint16:
        return image
    return ((image.to(torch.int32) + 128) // 257).to(torch.uint8)


def _check_sizes(files: list[str], images: list[torch.Tensor]) -> None:
    expected = (3, _IMAGE_SIZE, _IMAGE_SIZE)
    wrong = next((i for i, image in enumerate(images) if image.shape != expected), None)
    if wrong is not None:
        height, width = images[wrong].shape[1:]
        raise DataError(
            f"{files[wrong]} is {width}x{height} pixels, CIFAR-10 images must be "
            f"{_IMAGE_SIZE}x{_IMAGE_SIZE}; resize it or remove it"
        )


def _decode_chunk(files: list[str]) -> list[torch.Tensor]:
    """Batched JPEG decode when every file is a JPEG; otherwise (or if it fails) one file at a time."""
    raw = [read_file(file) for file in files]
    if all(file.lower().endswith((".jpg", ".jpeg")) for file in files):
        try:
            return decode_jpeg(raw, mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # a bad or mislabelled file: find it below
    return [_decode_one(file, data) for file, data in zip(files, raw)]


def _decode_one(file: str, data: torch.Tensor) -> torch.Tensor:
    """torchvision for JPEG/PNG/WebP/GIF, PIL for the rest (BMP, TIFF, ...), always as RGB."""
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError:
        pass
    try:
        with Image.open(file) as image:
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot decode image {file}; the file is corrupt or not an image, replace or delete it") from exc


# --- tensor cache ---------------------------------------------------------------------------------


def _signature(stats: list[os.stat_result]) -> str:
    """Changes whenever files are added, removed, resized or touched, without reading them."""
    return f"{len(stats)}|{sum(s.st_size for s in stats)}|{max(s.st_mtime_ns for s in stats)}"


def _cache_key(kind: str, root: Path, signature: str) -> str:
    return hashlib.sha256(f"v{_CACHE_VERSION}|{kind}|{root}|{signature}".encode()).hexdigest()[:24]


def _read_cache(file: Path) -> _Content | None:
    """The cached tensors, or None when absent or unreadable (it is then rebuilt)."""
    if not file.is_file():
        return None
    try:
        payload = torch.load(file, weights_only=True, mmap=True)  # pages in lazily: instant start
        train = Split(payload["train_images"], payload["train_labels"])
        test = Split(payload["test_images"], payload["test_labels"])
        # caches written before 16-bit images could be decoded hold none
        return _Content(train, test, tuple(payload["classes"]), int(payload.get("scaled_16bit", 0)))
    except Exception:  # truncated, corrupt or old-format file: any failure means "rebuild"
        return None


def _write_cache(file: Path, content: _Content) -> _Content:
    """Write atomically (temp file + rename) so a killed run never leaves a half-written cache."""
    payload = {
        "train_images": content.train.images,
        "train_labels": content.train.labels,
        "test_images": content.test.images,
        "test_labels": content.test.labels,
        "classes": list(content.classes),
        "scaled_16bit": content.scaled_16bit,
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=file.parent, prefix=file.stem, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(payload, temp_name)
            os.replace(temp_name, file)
        finally:
            Path(temp_name).unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write the data cache {file} ({exc}); use a writable cache directory") from exc
    return content
