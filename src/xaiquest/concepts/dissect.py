"""Dissection-lite (after Bau et al. 2017): which units of a depth detect which offline concept masks.

Each unit's feature map is upsampled (bilinear) to the image size and thresholded at its own top
0.5 % quantile over all probe images and pixels; its IoU with a concept's masks is
sum(unit AND mask) / sum(unit OR mask) over the whole image set. A unit detects a concept when
the IoU exceeds 0.04 (Bau et al.'s cut-off). All units and concepts of a depth are scored in one
matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
import torch.nn.functional as F

from xaiquest.errors import ConfigError


UPSAMPLED_VALUES_PER_CHUNK = 2**27
"""Upsampled map values per chunk of units (512 MB as float32): at CIFAR's size every depth fits in one chunk."""


def unit_masks(activations: torch.Tensor, size: tuple[int, int], quantile: float) -> torch.Tensor:
    """Bool ``[U, N*H*W]``: where each unit's upsampled map is in its top ``quantile`` share."""
    if activations.ndim != 4:
        raise ConfigError(f"dissection needs spatial feature maps [N,C,h,w]; got shape {tuple(activations.shape)}")
    maps = F.interpolate(activations.float(), size=size, mode="bilinear", align_corners=False)
    per_unit = maps.transpose(0, 1).flatten(1)
    k = max(1, round(quantile * per_unit.shape[1]))
    thresholds = per_unit.topk(k, dim=1).values[:, -1:]
    return (per_unit >= thresholds) & (thresholds > per_unit.amin(1, keepdim=True))  # a constant unit detects nothing


def unit_concept_iou(units: torch.Tensor, concepts: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """IoU of every unit ``[U, P]`` with every concept mask (bool ``[N,H,W]``, flattened to ``P``): ``[U x concepts]``."""
    names = list(concepts)
    masks = torch.stack([concepts[name].flatten() for name in names]).float()
    unit_float = units.float()
    intersection = unit_float @ masks.T
    union = unit_float.sum(1, keepdim=True) + masks.sum(1)[None] - intersection
    return pd.DataFrame((intersection / union.clamp_min(1)).numpy(), columns=names).rename_axis("unit")


def dissect(activations: Mapping[str, torch.Tensor], concepts: Mapping[str, torch.Tensor], quantile: float,
            threshold: float) -> pd.DataFrame:
    """Long table per depth, unit and concept: IoU and whether the unit detects the concept."""
    size = tuple(next(iter(concepts.values())).shape[-2:])
    frames = []
    for depth, maps in activations.items():
        iou = depth_iou(maps, concepts, size, quantile)
        long = iou.reset_index().melt(id_vars="unit", var_name="concept", value_name="iou")
        frames.append(long.assign(depth=depth, detector=long["iou"] > threshold))
    return pd.concat(frames, ignore_index=True)[["depth", "unit", "concept", "iou", "detector"]]


def depth_iou(maps: torch.Tensor, concepts: Mapping[str, torch.Tensor], size: tuple[int, int],
              quantile: float) -> pd.DataFrame:
    """``[U x concepts]`` IoU of one depth, a chunk of units at a time: upsampled to 224 px, the maps of all
    512 units of a deep layer over 64 images would take 6.6 GB at once. Units are scored independently,
    so chunking changes no number."""
    pixels = maps.shape[0] * size[0] * size[1]
    step = max(1, UPSAMPLED_VALUES_PER_CHUNK // pixels)
    parts = [unit_concept_iou(unit_masks(maps[:, first : first + step], size, quantile), concepts)
             for first in range(0, maps.shape[1], step)]
    return pd.concat(parts, ignore_index=True).rename_axis("unit")


def detector_fractions(table: pd.DataFrame) -> pd.DataFrame:
    """Per depth and concept: units, detector units and their share."""
    grouped = table.groupby(["depth", "concept"], sort=False)
    return grouped.agg(units=("unit", "nunique"), detectors=("detector", "sum")).reset_index().assign(
        fraction=lambda t: t["detectors"] / t["units"])


def top_units(table: pd.DataFrame, per_concept: int = 3) -> pd.DataFrame:
    """The ``per_concept`` highest-IoU units of every concept (over all depths)."""
    ranked = table.sort_values("iou", ascending=False, kind="stable")
    return ranked.groupby("concept", sort=False).head(per_concept).reset_index(drop=True)


def top_images(activations: torch.Tensor, unit: int, count: int) -> torch.Tensor:
    """Indices of the ``count`` images where ``unit``'s feature map peaks highest."""
    peaks = activations[:, unit].flatten(1).max(1).values
    return peaks.topk(min(count, len(peaks))).indices
