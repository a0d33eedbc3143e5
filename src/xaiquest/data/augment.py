"""Batch-level augmentation and normalisation on tensors, on whichever device the batch lives.

Per-image PIL transforms would make small CIFAR models data-loader bound; a whole batch is
augmented with a handful of tensor ops instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
_STATS_CHUNK = 1024


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and standard deviation, in [0, 1] units, that model inputs are normalised by."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10_NORMALISATION = Normalisation(CIFAR10_MEAN, CIFAR10_STD)
_active = [CIFAR10_NORMALISATION]
"""One process audits one dataset at a time, so the statistics are process-wide (a plain list, not a
context variable: the dashboard converts images in worker threads, which context variables miss)."""


def active_normalisation() -> Normalisation:
    """The statistics every uint8 -> float conversion uses now (CIFAR-10's unless a dataset set its own)."""
    return _active[-1]


@contextmanager
def normalised_by(normalisation: Normalisation) -> Iterator[Normalisation]:
    """Convert images with ``normalisation`` inside the block (a run, an explained image), then restore."""
    _active.append(normalisation)
    try:
        yield normalisation
    finally:
        _active.remove(normalisation)


def channel_statistics(images: torch.Tensor) -> Normalisation:
    """Per-channel mean and std of uint8 ``[N,3,H,W]`` images, accumulated in float64 one chunk at a
    time so a 224-px split is never held as floats."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].to(torch.float64).div_(255)
        total += chunk.sum((0, 2, 3))
        squares += chunk.square().sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt().clamp_min(1e-3)  # a constant channel stays finite
    return Normalisation(_rounded(mean), _rounded(std))


def _rounded(values: torch.Tensor) -> tuple[float, float, float]:
    """Four decimals, as published statistics are given: manifests and fingerprints stay readable."""
    a, b, c = (round(float(v), 4) for v in values)
    return a, b, c


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,3,H,W]`` -> float32 normalised by the active channel statistics (device and layout kept)."""
    stats = active_normalisation()
    mean = torch.tensor(stats.mean, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(stats.std, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def alternating_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """airbench's alternating flip as a bool mask ``[n]``: a seeded half of the images is mirrored in even
    epochs and the other half in odd ones, so every image is seen both ways every two epochs (a coin
    toss per epoch repeats one view of an image three or more epochs in a row now and then)."""
    first = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
    return first ^ bool(epoch % 2)


def random_crop_flip(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None, flip: bool | torch.Tensor = True
) -> torch.Tensor:
    """Random ``pad``-pixel translation plus horizontal flip (p=0.5 if ``flip``; exactly the images a bool
    ``flip`` mask ``[N]`` marks), independently per image.

    Borders are zero-padded (black for uint8, the mean colour for normalised floats), as in the
    usual CIFAR recipe. Random draws come from ``generator`` (on its own device), so a seeded
    generator gives the same batch on CPU and CUDA.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, _, height, width = images.shape
    draw_device = generator.device if generator is not None else images.device
    shift_y, shift_x = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator, device=draw_device)
    # the draw happens even without flipping (or with a given mask), so all settings consume the same random stream
    coin = torch.rand(n, 1, generator=generator, device=draw_device)
    flip = flip.view(n, 1) if isinstance(flip, torch.Tensor) else coin < (0.5 if flip else 0.0)
    rows = shift_y.to(images.device) + torch.arange(height, device=images.device)  # [N,H]
    cols = torch.arange(width, device=images.device).expand(n, width)
    cols = torch.where(flip.to(images.device), cols.flip(1), cols) + shift_x.to(images.device)  # [N,W]
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    out = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out
