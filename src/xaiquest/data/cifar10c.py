"""The released CIFAR-10-C ``.npy`` files, as uint8 tensors shaped like the engine's output.

Each ``<corruption>.npy`` holds ``[5 * n, 32, 32, 3]`` uint8 images: severities 1..5 one after the
other, each the same ``n`` test images (10,000 in the release); ``labels.npy`` holds their ``5 * n``
labels. The release lists the test images in the original CIFAR-10 test order, which the project's
test split need not follow (an image folder lists them class by class), so a subset is chosen from
the files' own ``labels.npy``, never by the project's test positions. Checks name the file, the
shape found and the one expected, so a wrong folder or a truncated download fails with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from xaiquest.data.cifar10 import stratified_indices
from xaiquest.data.corruptions import CORRUPTIONS, SEVERITIES
from xaiquest.errors import DataError

LABELS_FILE = "labels.npy"
_IMAGE_SHAPE = (32, 32, 3)
_HOW_TO_FIX = "pass the folder of the official CIFAR-10-C .npy files with --cifar10c PATH"


def _open(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"CIFAR-10-C file {path} is missing; {_HOW_TO_FIX}")
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as error:
        raise DataError(f"CIFAR-10-C file {path} is not a readable .npy array ({error}); {_HOW_TO_FIX}") from None


def load_cifar10c_labels(path: Path) -> torch.Tensor:
    """The ``n`` int64 labels shared by every corruption and severity of the release: ``labels.npy``
    holds them once per severity, so its length gives ``n``."""
    labels_path = Path(path) / LABELS_FILE
    labels = _open(labels_path)
    if labels.ndim != 1 or len(labels) == 0 or len(labels) % len(SEVERITIES):
        raise DataError(
            f"CIFAR-10-C file {labels_path} has shape {labels.shape}; expected (5 * n,) labels "
            f"(n test images per severity); {_HOW_TO_FIX}"
        )
    blocks = torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(len(SEVERITIES), -1))
    if not bool((blocks == blocks[0]).all()):
        raise DataError(f"CIFAR-10-C file {labels_path} lists different labels for different severities; {_HOW_TO_FIX}")
    return blocks[0].clone()


def load_cifar10c(path: Path, names: Sequence[str], n: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{name: uint8 [5, m, 3, 32, 32]}`` (severity, image, CHW) for each corruption in ``names``,
    plus ``"labels"``: the int64 ``[m]`` labels shared by every corruption and severity.

    ``m`` is every image of the release, or, with ``n`` smaller, a stratified subset of ``n``
    drawn with ``seed`` from the files' own labels (only those rows are read from disk)."""
    folder = Path(path)
    for name in names:
        CORRUPTIONS.get(name)  # unknown names fail before any file is read
    labels = load_cifar10c_labels(folder)
    total = len(labels)
    rows = torch.arange(total) if n is None or n >= total else stratified_indices(labels, n, seed)[1]
    expected = (len(SEVERITIES) * total, *_IMAGE_SHAPE)
    loaded: dict[str, torch.Tensor] = {}
    for name in names:
        file = folder / f"{name}.npy"
        images = _open(file)
        if images.shape != expected or images.dtype != np.uint8:
            raise DataError(
                f"CIFAR-10-C file {file} has shape {images.shape} {images.dtype}; expected {expected} uint8 "
                f"(5 severities x {total} images, as labels.npy); {_HOW_TO_FIX}"
            )
        blocks = images.reshape(len(SEVERITIES), total, *_IMAGE_SHAPE)[:, rows.numpy()]
        loaded[name] = torch.from_numpy(np.ascontiguousarray(blocks.transpose(0, 1, 4, 2, 3)))
    loaded["labels"] = labels[rows]
    return loaded
