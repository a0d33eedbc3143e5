"""Tiny synthetic CIFAR-10 look-alikes written in the real on-disk formats (tests stay offline)."""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import torch
from PIL import Image

from xaiquest.data import CIFAR10_CLASSES, Split


def class_coloured_split(per_class: int, seed: int, num_classes: int = 10) -> Split:
    """Noisy images whose mean colour and a bright square's position depend on the class: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    hues = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(1234)) * 200
    images = hues[labels] + torch.randn(len(labels), 3, 32, 32, generator=generator) * 20
    for label in range(num_classes):
        row, col = divmod(label, 4)
        images[labels == label, :, 4 + 7 * row : 10 + 7 * row, 4 + 7 * col : 10 + 7 * col] = 255
    return Split(images.clamp(0, 255).to(torch.uint8), labels)


def _dump_batch(file: Path, split: Split) -> None:
    batch = {"data": split.images.reshape(len(split), -1).numpy(), "labels": split.labels.tolist()}
    file.write_bytes(pickle.dumps(batch))


def write_pickle_release(folder: Path, train: Split, test: Split) -> Path:
    """The official python release layout: five train batches, a test batch and the label names."""
    folder.mkdir(parents=True)
    for number, chunk in enumerate(torch.arange(len(train)).chunk(5), start=1):
        _dump_batch(folder / f"data_batch_{number}", train.subset(chunk))
    _dump_batch(folder / "test_batch", test)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}))
    return folder


def write_image_folder(root: Path, train: Split, test: Split, suffix: str = ".png") -> Path:
    for split_name, split in (("train", train), ("test", test)):
        for index, (image, label) in enumerate(zip(split.images, split.labels.tolist())):
            file = root / split_name / CIFAR10_CLASSES[label] / f"{index:04d}{suffix}"
            file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(file, quality=95)
    return root




def write_png16(file: Path, pixels: torch.Tensor) -> Path:
    """A 16-bit PNG (grey ``[H,W]`` or RGB ``[3,H,W]`` uint16 values) written by hand: PIL cannot write 16-bit RGB."""
    grey = pixels.ndim == 2
    rows = (pixels if grey else pixels.permute(1, 2, 0)).to(torch.int32).numpy().astype(">u2")
    height, width = rows.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter byte 0 (none) per scanline

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 0 if grey else 2, 0, 0, 0)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return file
