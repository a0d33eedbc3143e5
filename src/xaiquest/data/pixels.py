"""How many images of a given size fit a pixel budget: memory caps written once for every size, in CIFAR images."""

from __future__ import annotations

import torch

CIFAR_PIXELS = 32 * 32

PIXELS_PER_BATCH = 1000 * CIFAR_PIXELS
"""Most pixels one prediction batch holds: a thousand CIFAR images. At 224 px a batch of 1000 would hold
0.6 GB of input and several GB of first-layer activations; capped, it is 20 images (results do not depend
on the batching)."""


def rows_per_batch(batch_size: int, images: torch.Tensor, pixels: int = PIXELS_PER_BATCH) -> int:
    """``batch_size`` images, fewer when that many would hold more than ``pixels`` (default: ``PIXELS_PER_BATCH``)."""
    return max(1, min(batch_size, pixels // (images.shape[-1] * images.shape[-2])))
