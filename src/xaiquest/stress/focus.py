"""Focus shift: how an explanation moves when a probe edits the image.

All measures use ``|map|``: the question is *where* a method looks, whatever the sign. Maps are
``[N,H,W]``; clean and stressed maps explain the same images (and targets) before and after
the probe, and ``changed`` is the probe's ``[N,H,W]`` mask of edited pixels.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from xaiquest.explainers.quality import mass_inside, spearman
from xaiquest.stress.probes import Intensity

FOCUS_COLUMNS = (
    "probe", "intensity", "method", "spearman", "displacement",
    "share_changed_clean", "share_changed_stressed", "changed_area", "images",
)


def rank_correlation(clean: torch.Tensor, stressed: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of ``|clean|`` and ``|stressed|`` per image, ``[N]``; 1 = same pixel ranking."""
    return spearman(clean.abs(), stressed.abs())


def centre_of_mass(maps: torch.Tensor) -> torch.Tensor:
    """``|map|``-weighted mean pixel position ``[N,2]`` as (row, column); NaN for an all-zero map."""
    mass = maps.abs().double()
    total = mass.sum((1, 2))
    rows = torch.arange(maps.shape[1], dtype=torch.float64, device=maps.device)
    cols = torch.arange(maps.shape[2], dtype=torch.float64, device=maps.device)
    row = (mass.sum(2) * rows).sum(1) / total
    col = (mass.sum(1) * cols).sum(1) / total
    return torch.stack([row, col], 1).float()


def com_displacement(clean: torch.Tensor, stressed: torch.Tensor) -> torch.Tensor:
    """Distance in pixels between the two maps' centres of mass, ``[N]``."""
    return (centre_of_mass(stressed) - centre_of_mass(clean)).norm(dim=1)


def share_on_region(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of ``|attribution|`` inside ``masks``, ``[N]`` in [0, 1]; a uniform map scores the region's area."""
    return mass_inside(maps, masks, mode="absolute")


def focus_shift(clean: torch.Tensor, stressed: torch.Tensor, changed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image focus-shift measures ``[N]`` of one method under one probe setting."""
    return {
        "spearman": rank_correlation(clean, stressed),
        "displacement": com_displacement(clean, stressed),
        "share_changed_clean": share_on_region(clean, changed),
        "share_changed_stressed": share_on_region(stressed, changed),
        "changed_area": changed.flatten(1).float().mean(1),
    }


def focus_shift_table(
    clean_maps: Mapping[str, torch.Tensor],
    stressed_maps: Mapping[tuple[str, Intensity], Mapping[str, torch.Tensor]],
    changed: Mapping[tuple[str, Intensity], torch.Tensor],
) -> pd.DataFrame:
    """One row per (probe, intensity, method): the image means of :func:`focus_shift` (NaN images skipped).

    ``clean_maps`` is keyed by method; ``stressed_maps`` and ``changed`` by (probe, intensity).
    ``changed_area`` is the share-on-region a map ignoring the edit would get by chance.
    """
    rows = []
    for (probe, intensity), maps_by_method in stressed_maps.items():
        for method, stressed in maps_by_method.items():
            measures = focus_shift(clean_maps[method], stressed, changed[(probe, intensity)])
            means = {name: values.float().nanmean().item() for name, values in measures.items()}
            rows.append({"probe": probe, "intensity": intensity, "method": method, **means, "images": len(stressed)})
    return pd.DataFrame(rows, columns=list(FOCUS_COLUMNS))
