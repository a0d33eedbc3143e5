"""Drawing saliency maps, shared by the explanation and stress figures."""

from __future__ import annotations

import numpy as np
import torch

CELL = 1.25  # inches per grid cell


def heat(map_: torch.Tensor) -> np.ndarray:
    """|map| scaled to [0, 1] per image, so signed and unsigned methods are shown alike."""
    values = map_.abs().float()
    return (values / values.max().clamp_min(1e-12)).numpy()
