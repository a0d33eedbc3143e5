"""Load an image dataset once into uint8 tensors: CIFAR-10/100 releases or any image-folder tree.

Everything downstream (training, audits) works on uint8 tensors in memory (converted to float one
batch at a time), so the loader's job is to turn a pickle release or an image-folder tree into
``[N,3,S,S]`` uint8 tensors (RGB, one size ``S``), cache them in one file so later runs start
instantly, and fail with one actionable line otherwise. Class names come from the data.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from xaiquest.errors import ConfigError, DataError

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
DEFAULT_TEST_FRACTION = 0.2
"""Share of each class held out as test images when a dataset is one ``<class>/*`` tree."""
SCALED_16BIT = "16-bit->8-bit"
"""The conversions key counting 16-bit images scaled down to 8 bits."""


@dataclass(frozen=True)
class _PickleLayout:
    """Where one python pickle release keeps its batches, labels and class names."""

    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    labels_key: str
    names_key: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)


_PICKLE_LAYOUTS = (
    _PickleLayout("CIFAR-10", PICKLE_DIR_NAME, tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta",
                  "labels", "label_names"),
    _PickleLayout("CIFAR-100", "cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names"),
)
_PICKLE_SIZE = 32
_DECODE_CHUNK = 4096
_CACHE_VERSION = 3  # 3: 16-bit PNGs scaled, not clipped
_HOW_TO_PASS_DATA = (
    f"pass --data PATH or set {DATA_ENV_VAR} to a {PICKLE_DIR_NAME} or cifar-100-python folder (or its parent), "
    "or to an image folder: train/<class>/ + test/<class>/, or <class>/ folders split by data.test_fraction"
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
    conversions: dict[str, int] = field(default_factory=dict)  # e.g. {"grayscale->RGB": 12, "resized": 40}

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    @property
    def scaled_16bit(self) -> int:
        """How many 16-bit images were scaled down to 8 bits on decoding."""
        return self.conversions.get(SCALED_16BIT, 0)


@dataclass(frozen=True)
class _Content:
    train: Split
    test: Split  # empty for a single <class>/* tree: split after loading, by data.test_fraction
    classes: tuple[str, ...]
    conversions: dict[str, int]


@dataclass(frozen=True)
class _ImageFolderListing:
    classes: tuple[str, ...]
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]
    signature: str  # changes when any image is added, removed or rewritten


def load_dataset(
    data: str | Path | None,
    cache_dir: Path,
    download: bool = True,
    *,
    image_size: int | None = None,
    test_fraction: float | None = None,
    split_seed: int = 0,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """Images from ``data``, else ``$XAIQUEST_DATA``, else CIFAR-10 in ``cache_dir`` (downloading if allowed).

    ``image_size`` resizes (shorter side) and centre-crops every image to that square size; without
    it all images must share one square size. A single ``<class>/*`` tree is split into train and
    test by ``test_fraction`` of each class (default 0.2), stratified and seeded by ``split_seed``.
    ``classes`` keeps only those classes, re-indexed in that order (the full data stays cached once).
    """
    cache_dir = Path(cache_dir)
    kind, root, layout = _detect_format(_resolve_location(data, cache_dir, download))
    build: Callable[[], _Content]
    if layout is not None:
        signature = _pickle_release_signature(root, layout)
        build = partial(_read_pickle_release, root, layout, image_size)
        source = f"{layout.title} python pickles at {root}"
    else:
        listing = _list_image_folder(root) if kind == "imagefolder" else _list_class_tree(root)
        signature = listing.signature
        build = partial(_decode_image_folder, listing, image_size)
        source = f"image folders at {root}"
    cache_file = cache_dir / "tensors" / f"{_cache_key(kind, root, signature, image_size)}.pt"
    cached = _read_cache(cache_file)
    content = cached if cached is not None else _write_cache(cache_file, build())
    if len(content.classes) < 2:
        raise DataError(
            f"{root} has {len(content.classes)} class ({', '.join(content.classes)}); a classifier audit needs "
            "at least 2 class folders"
        )
    train, test, kept = content.train, content.test, content.classes
    if classes is not None:
        train, test, kept = select_classes(train, kept, classes), select_classes(test, kept, classes), tuple(classes)
        source += f" ({len(kept)} of {len(content.classes)} classes: {', '.join(kept)})"
    if kind == "classtree":
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        train, test = _split_by_fraction(train, fraction, split_seed, root)
        source += f" (one tree, {fraction:g} of each class held out as test, seed {split_seed})"
    scaled = content.conversions.get(SCALED_16BIT, 0)
    if scaled:
        source += f" ({scaled} 16-bit image{'s' if scaled > 1 else ''} scaled to 8 bits)"
    return Dataset(train=train, test=test, classes=kept, source=source, root=root, conversions=content.conversions)


def select_classes(split: Split, classes: tuple[str, ...], wanted: Sequence[str]) -> Split:
    """The images of the ``wanted`` classes only, labelled by their position in ``wanted`` (e.g. five
    CIFAR-10 classes as a 5-class task, for a transfer experiment)."""
    unknown = [name for name in wanted if name not in classes]
    if unknown:
        raise ConfigError(f"config field 'data.classes': unknown class {unknown[0]!r}; the data's classes are "
                          f"{', '.join(classes)}")
    relabel = torch.full((len(classes),), -1, dtype=torch.long)
    relabel[[classes.index(name) for name in wanted]] = torch.arange(len(wanted))
    labels = relabel[split.labels]
    kept = labels >= 0
    return Split(split.images[kept], labels[kept])


def _split_by_fraction(split: Split, fraction: float, seed: int, root: Path) -> tuple[Split, Split]:
    """``(train, test)`` with ``fraction`` of the images of each class in test (at least one each)."""
    if not 0 < fraction < 1:
        raise DataError(f"data.test_fraction must be in (0, 1), got {fraction}; set e.g. 0.2")
    counts = torch.bincount(split.labels)
    if int(counts.min()) < 2:
        raise DataError(f"a class folder of {root} has fewer than 2 images; a train/test split needs at least 2 per class")
    n_test = max(len(counts), round(fraction * len(split)))
    rest, chosen = stratified_indices(split.labels, min(n_test, len(split) - len(counts)), seed)
    return split.subset(rest), split.subset(chosen)


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


def peek_class_count(data: str | Path | None, cache_dir: Path) -> int | None:
    """The dataset's class count from its folder names or its metadata file, reading no image: what the
    config check needs before the data loads. None when there is nothing to look at yet (a download)."""
    try:
        kind, root, layout = _detect_format(_resolve_location(data, Path(cache_dir), download=False))
    except DataError:
        return None  # load_dataset will say what is wrong
    if layout is not None:
        meta = root / layout.meta_file
        return len(_unpickle(meta)[layout.names_key]) if meta.is_file() else None
    folder = root / "train" if kind == "imagefolder" else root
    if not folder.is_dir():
        return None
    return sum(1 for entry in os.scandir(folder) if entry.is_dir() and entry.name[0] != ".")


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
    import torchvision  # torchvision costs over a second to import; only loading and downloading need it

    try:
        torchvision.datasets.CIFAR10(root=cache_dir, download=True)
    except Exception as exc:  # network, disk and checksum failures all mean "no data here"
        reason = " ".join(str(exc).split())
        raise DataError(
            f"no CIFAR-10 at {expected} and downloading it failed ({reason}); {_HOW_TO_PASS_DATA}"
        ) from exc


def _detect_format(path: Path) -> tuple[str, Path, _PickleLayout | None]:
    """``(kind, folder, pickle layout)``: a pickle release (or its parent), a train/test image tree,
    or one ``<class>/*`` tree (kinds ``pickle``, ``imagefolder``, ``classtree``)."""
    for layout in _PICKLE_LAYOUTS:
        if (path / layout.folder).is_dir():
            return "pickle", path / layout.folder, layout
        if path.name == layout.folder or any((path / name).is_file() for name in layout.files[-2:]):
            return "pickle", path, layout
    if (path / "train").is_dir() or (path / "test").is_dir():
        return "imagefolder", path, None
    if path.is_dir() and any(entry.is_dir() and entry.name[0] != "." for entry in os.scandir(path)):
        return "classtree", path, None
    raise DataError(f"{path} holds no image dataset; {_HOW_TO_PASS_DATA}")


# --- the python pickle releases (CIFAR-10, CIFAR-100) --------------------------------------------


def _pickle_release_signature(folder: Path, layout: _PickleLayout) -> str:
    """The release's cache signature; fails first, naming any missing file."""
    files = [folder / name for name in layout.files]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}; re-extract the release's python tarball there or pass another --data PATH"
        )
    return _signature([file.stat() for file in files])


def _read_pickle_release(folder: Path, layout: _PickleLayout, image_size: int | None) -> _Content:
    train_parts = [_read_pickle_batch(folder / name, layout.labels_key) for name in layout.train_files]
    train = Split(torch.cat([p.images for p in train_parts]), torch.cat([p.labels for p in train_parts]))
    test = _read_pickle_batch(folder / layout.test_file, layout.labels_key)
    classes = tuple(_unpickle(folder / layout.meta_file)[layout.names_key])
    conversions: dict[str, int] = {}
    if image_size is not None and image_size != _PICKLE_SIZE:
        train = Split(fit_to_size(train.images, image_size), train.labels)
        test = Split(fit_to_size(test.images, image_size), test.labels)
        conversions["resized"] = len(train) + len(test)
    return _Content(train, test, classes, conversions)


def _read_pickle_batch(file: Path, labels_key: str) -> Split:
    batch = _unpickle(file)
    try:
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, _PICKLE_SIZE, _PICKLE_SIZE)
        labels = np.asarray(batch[labels_key], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{file} is not a CIFAR batch ({exc}); replace it with the official file") from exc
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


def _list_class_tree(root: Path) -> _ImageFolderListing:
    """One ``<class>/*`` tree: every image is listed as training data, the test split is drawn later."""
    classes, files, labels, stats = _list_image_split(root)
    return _ImageFolderListing(classes, files, labels, [], [], _signature(stats))


def _list_image_split(folder: Path) -> tuple[tuple[str, ...], list[str], list[int], list[os.stat_result]]:
    """Sorted class folders and their image files (and stats), so labels are reproducible across machines."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

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


def _decode_image_folder(listing: _ImageFolderListing, image_size: int | None) -> _Content:
    files = listing.train_files + listing.test_files
    images, conversions = _decode_images(files, image_size)
    n_train = len(listing.train_files)
    train = Split(images[:n_train], torch.tensor(listing.train_labels, dtype=torch.int64))
    test = Split(images[n_train:], torch.tensor(listing.test_labels, dtype=torch.int64))
    return _Content(train, test, listing.classes, conversions)


def _decode_images(files: list[str], image_size: int | None) -> tuple[torch.Tensor, dict[str, int]]:
    """Decode image files into one uint8 ``[N,3,S,S]`` tensor (JPEGs in batches for speed), and
    count the images converted to RGB (by source mode), scaled from 16 to 8 bits or resized on the way."""
    conversions: dict[str, int] = {}
    size = image_size
    images: torch.Tensor | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io is deprecated, still fastest here
        for start in range(0, len(files), _DECODE_CHUNK):
            chunk = files[start : start + _DECODE_CHUNK]
            decoded = []
            for file, (image, mode) in zip(chunk, _decode_chunk(chunk)):
                if mode != "RGB":
                    conversions[f"{mode}->RGB"] = conversions.get(f"{mode}->RGB", 0) + 1
                if image.dtype == torch.uint16:
                    conversions[SCALED_16BIT] = conversions.get(SCALED_16BIT, 0) + 1
                    image = _to_8bit(image)
                if size is None:
                    size = _native_size(file, image)
                if tuple(image.shape[1:]) != (size, size):
                    if image_size is None:
                        _raise_mixed_sizes(files[0], size, file, image)
                    image = fit_to_size(image[None], size)[0]
                    conversions["resized"] = conversions.get("resized", 0) + 1
                decoded.append(image)
            if images is None:
                images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
            torch.stack(decoded, out=images[start : start + len(chunk)])
    assert images is not None  # listings never come empty
    return images, conversions


def _to_8bit(image: torch.Tensor) -> torch.Tensor:
    """16-bit PNGs decode as uint16; v / 257 rounded maps 0..65535 onto 0..255 and undoes an 8-bit image saved
    as 16 bits (k * 257) exactly."""
    return ((image.to(torch.int32) + 128) // 257).to(torch.uint8)


def _native_size(file: str, image: torch.Tensor) -> int:
    height, width = image.shape[1:]
    if height != width:
        raise DataError(
            f"{file} is {width}x{height} pixels (not square); set data.image_size (e.g. {min(height, width)}) "
            "to resize and centre-crop every image to one square size"
        )
    return int(height)


def _raise_mixed_sizes(first: str, size: int, file: str, image: torch.Tensor) -> None:
    height, width = image.shape[1:]
    raise DataError(
        f"images differ in size ({first} is {size}x{size}, {file} is {width}x{height}); set data.image_size "
        "to resize and centre-crop every image to one square size"
    )


def fit_to_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[N,3,H,W]`` -> ``[N,3,size,size]``: the shorter side resized to ``size`` (antialiased
    bilinear), then the centre cropped, the usual evaluation transform of ImageNet classifiers."""
    from torchvision.transforms.v2 import functional as tvf

    resized = tvf.resize(images, [size], interpolation=tvf.InterpolationMode.BILINEAR, antialias=True)
    return tvf.center_crop(resized, [size, size])


_CHANNEL_MODES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}


def _decode_chunk(files: list[str]) -> list[tuple[torch.Tensor, str]]:
    """``(RGB uint8 image, source mode)`` per file: one batched JPEG decode when every file is a JPEG;
    otherwise (or if it fails) one file at a time."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    raw = [read_file(file) for file in files]
    if all(file.lower().endswith((".jpg", ".jpeg")) for file in files):
        try:
            return [_as_rgb(image) for image in decode_jpeg(raw, mode=ImageReadMode.UNCHANGED)]
        except RuntimeError:
            pass  # a bad or mislabelled file: find it below
    return [_decode_one(file, data) for file, data in zip(files, raw)]


def _as_rgb(image: torch.Tensor) -> tuple[torch.Tensor, str]:
    """A decoded ``[C,H,W]`` image as RGB (alpha dropped, gray repeated) with its source mode."""
    mode = _CHANNEL_MODES.get(image.shape[0], f"{image.shape[0]}-channel")
    if image.shape[0] in (1, 2):
        return image[:1].expand(3, -1, -1).contiguous(), mode
    return image[:3].contiguous(), mode


def _decode_one(file: str, data: torch.Tensor) -> tuple[torch.Tensor, str]:
    """PIL for every format (it names palette and CMYK modes torchvision would expand silently), except
    16-bit PNGs: PIL clips 16-bit grey at 255, so torchvision decodes them as uint16 (scaled down later)."""
    if _is_16bit_png(data):
        from torchvision.io import ImageReadMode, decode_png

        try:
            return _as_rgb(decode_png(data, mode=ImageReadMode.UNCHANGED))
        except RuntimeError as exc:
            raise DataError(f"cannot decode image {file}; the file is corrupt, replace or delete it") from exc
    try:
        with Image.open(file) as image:
            mode = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "PA": "palette",
                    "RGBA": "RGBA", "RGB": "RGB", "1": "grayscale"}.get(image.mode, image.mode)
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1), mode
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot decode image {file}; the file is corrupt or not an image, replace or delete it") from exc


def _is_16bit_png(data: torch.Tensor) -> bool:
    """The PNG signature and a bit depth of 16 in the IHDR chunk (byte 24 of every PNG)."""
    return len(data) > 24 and bytes(data[:8].tolist()) == b"\x89PNG\r\n\x1a\n" and int(data[24]) == 16


# --- tensor cache ---------------------------------------------------------------------------------


def _signature(stats: list[os.stat_result]) -> str:
    """Changes whenever files are added, removed, resized or touched, without reading them."""
    return f"{len(stats)}|{sum(s.st_size for s in stats)}|{max(s.st_mtime_ns for s in stats)}"


def _cache_key(kind: str, root: Path, signature: str, image_size: int | None) -> str:
    key = f"v{_CACHE_VERSION}|{kind}|{root}|{signature}|{image_size}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _read_cache(file: Path) -> _Content | None:
    """The cached tensors, or None when absent or unreadable (it is then rebuilt)."""
    if not file.is_file():
        return None
    try:
        payload = torch.load(file, weights_only=True, mmap=True)  # pages in lazily: instant start
        train = Split(payload["train_images"], payload["train_labels"])
        test = Split(payload["test_images"], payload["test_labels"])
        return _Content(train, test, tuple(payload["classes"]), dict(payload["conversions"]))
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
        "conversions": content.conversions,
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
