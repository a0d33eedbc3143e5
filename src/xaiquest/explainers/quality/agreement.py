"""Do two explanation methods point at the same pixels? Top-k IoU and Spearman rank correlation.

Both compare maps as given (signed): pass ``maps.abs()`` for methods whose sign carries no
meaning. The pixel ranking here is shared with the faithfulness and localisation metrics, so
every metric breaks ties the same way.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import pandas as pd
import torch


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel, 0 = highest attribution, ``[N,H,W]`` -> ``[N,H*W]``.

    Ties keep raster order (stable sort), so a metric never depends on sort-implementation luck.
    """
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def top_fraction(maps: torch.Tensor, k_frac: float) -> torch.Tensor:
    """The ``round(k_frac * H*W)`` (at least 1) highest pixels of each map, as ``[N,H*W]`` bool."""
    if not 0 < k_frac <= 1:
        raise ValueError(f"k_frac must be in (0, 1], got {k_frac}")
    k = max(1, round(k_frac * maps[0].numel()))
    return pixel_ranks(maps) < k


def topk_iou(maps_a: torch.Tensor, maps_b: torch.Tensor, k_frac: float = 0.1) -> torch.Tensor:
    """Intersection over union of the two maps' top-``k_frac`` pixel sets, ``[N]`` in [0, 1]."""
    check_pair(maps_a, maps_b)
    top_a, top_b = top_fraction(maps_a, k_frac), top_fraction(maps_b, k_frac)
    return (top_a & top_b).sum(1) / (top_a | top_b).sum(1)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 1 with tied values sharing their mean rank (as ``scipy.stats.rankdata``).

    A tied group occupies sorted positions ``[left, right)``, found by binary search of each value
    in its sorted row, so its mean 1-based rank is ``(left + right + 1) / 2`` - no loop over groups.
    """
    values = values.contiguous()
    ordered = values.sort(dim=1).values
    left = torch.searchsorted(ordered, values, side="left")
    right = torch.searchsorted(ordered, values, side="right")
    return (left + right + 1).double() / 2


def spearman(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image, ``[N]``; NaN where a map is constant (no ranking)."""
    check_pair(maps_a, maps_b)
    ranks_a = average_ranks(maps_a.flatten(1))
    ranks_b = average_ranks(maps_b.flatten(1))
    ranks_a = ranks_a - ranks_a.mean(1, keepdim=True)
    ranks_b = ranks_b - ranks_b.mean(1, keepdim=True)
    correlation = (ranks_a * ranks_b).sum(1) / (ranks_a.norm(dim=1) * ranks_b.norm(dim=1))
    return correlation.to(maps_a.dtype if maps_a.is_floating_point() else torch.float32)


def agreement_matrix(
    maps_by_method: dict[str, torch.Tensor], k_frac: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Method x method mean top-k IoU and mean Spearman over images (NaN images skipped)."""
    names = list(maps_by_method)
    iou = pd.DataFrame(1.0, index=names, columns=names)
    rank = pd.DataFrame(1.0, index=names, columns=names)
    for first, second in combinations_with_replacement(names, 2):
        maps_a, maps_b = maps_by_method[first], maps_by_method[second]
        iou.loc[first, second] = iou.loc[second, first] = topk_iou(maps_a, maps_b, k_frac).nanmean().item()
        rank.loc[first, second] = rank.loc[second, first] = spearman(maps_a, maps_b).nanmean().item()
    return iou, rank


def check_pair(maps_a: torch.Tensor, maps_b: torch.Tensor) -> None:
    if maps_a.ndim != 3 or maps_a.shape != maps_b.shape:
        raise ValueError(f"expected two [N,H,W] maps of one shape, got {tuple(maps_a.shape)} and {tuple(maps_b.shape)}")
