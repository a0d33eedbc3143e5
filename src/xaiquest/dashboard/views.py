"""Pictures and tables the page shows, built from session results (numpy arrays and DataFrames, no widgets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib import colormaps

from xaiquest.dashboard.session import Explanation

DISPLAY_SIDE = 192
"""CIFAR images are 32 px: shown six times larger, nearest-neighbour, so pixels stay visible; larger
images are shown at their own size."""
HEATMAP_ALPHA = 0.55


def display_side(image: torch.Tensor) -> int:
    """The shown side: at least ``DISPLAY_SIDE``, never smaller than the image (no pixels dropped)."""
    return max(DISPLAY_SIDE, image.shape[-1])


def enlarged(image: torch.Tensor, side: int | None = None) -> np.ndarray:
    """uint8 ``[3,H,W]`` -> ``[side,side,3]`` uint8 with blocky pixels (default side: ``display_side``)."""
    side = side or display_side(image)
    big = F.interpolate(image[None].float(), size=(side, side), mode="nearest")[0]
    return big.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def overlay(image: torch.Tensor, heatmap: torch.Tensor, side: int | None = None) -> np.ndarray:
    """The map, min-max scaled and coloured (jet), blended over the enlarged image.

    Min-max scaling shows where each map puts its mass; signed maps (Integrated Gradients,
    occlusion) therefore show their most negative pixels as cold, not hidden.
    """
    side = side or display_side(image)
    low, high = heatmap.min(), heatmap.max()
    scaled = (heatmap - low) / (high - low) if high > low else torch.zeros_like(heatmap)
    smooth = F.interpolate(scaled[None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    colours = colormaps["jet"](smooth.clamp(0, 1).numpy())[..., :3] * 255
    blended = (1 - HEATMAP_ALPHA) * enlarged(image, side) + HEATMAP_ALPHA * colours
    return blended.round().clip(0, 255).astype(np.uint8)


def caption(explanation: Explanation) -> str:
    """``method · model: del 0.12 ins 0.56 [TKO 0.33]``; the method first, as narrow tiles cut the end off."""
    tko = "" if explanation.tko is None else f" TKO {explanation.tko:.2f}"
    return (f"{explanation.method} · {explanation.model}: "
            f"del {explanation.deletion_auc:.3f} ins {explanation.insertion_auc:.3f}{tko}")


REPORT_DECIMALS = 4


def rounded(table: pd.DataFrame, decimals: int = REPORT_DECIMALS) -> pd.DataFrame:
    """A CSV table for reading: float columns to ``decimals`` places (a CSV keeps all 16 digits)."""
    floats = table.select_dtypes("float").columns
    return table.assign(**{column: table[column].round(decimals) for column in floats})


def quality_table(explanations: list[Explanation], classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per map: the explained class, deletion/insertion AUC, patch TKO and the explainer's time."""
    return pd.DataFrame([{
        "model": e.model,
        "method": e.method,
        "layer": e.layer or "-",
        "explained class": classes[e.target],
        "deletion AUC ↓": round(e.deletion_auc, 4),
        "insertion AUC ↑": round(e.insertion_auc, 4),
        "patch TKO ↑": "-" if e.tko is None else round(e.tko, 4),
        "seconds": round(e.seconds, 3),
    } for e in explanations])
