"""Batch-level augmentation and normalisation on tensors, on whichever device the batch lives.

Per-image PIL transforms would make small CIFAR models data-loader bound; a whole batch is
augmented with a handful of tensor ops instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,3,H,W]`` -> float32 normalised by the CIFAR-10 channel statistics (device and layout kept)."""
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop_flip(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None, flip: bool = True
) -> torch.Tensor:
    """Random ``pad``-pixel translation plus horizontal flip (p=0.5 if ``flip``), independently per image.

    Borders are zero-padded (black for uint8, the mean colour for normalised floats), as in the
    usual CIFAR recipe. Random draws come from ``generator`` (on its own device), so a seeded
    generator gives the same batch on CPU and CUDA.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, _, height, width = images.shape
    draw_device = generator.device if generator is not None else images.device
    shift_y, shift_x = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator, device=draw_device)
    # the draw happens even without flipping, so both settings consume the same random stream
    flip = torch.rand(n, 1, generator=generator, device=draw_device) < (0.5 if flip else 0.0)
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
