"""Does an explanation find a region we know the model uses (the planted-patch probe's mask)?

Masks are ``[N,H,W]`` bool, True on the ground-truth region; an image with an empty mask has no
answer, so the fractional scores are NaN and the pointing game counts it as a miss.
"""

from __future__ import annotations

import pandas as pd
import torch

from xaiquest.explainers.quality.agreement import pixel_ranks


def top_k_overlap(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Top-K overlap (TKO): with K = mask pixels of the image, the share of its K highest pixels inside the mask.

    K adapts per image, so a perfect map scores 1 whatever the region's size.
    """
    check_masks(maps, masks)
    inside = masks.flatten(1)
    k = inside.sum(1, keepdim=True)
    hits = ((pixel_ranks(maps) < k) & inside).sum(1)
    return hits / k.squeeze(1)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Whether the map's maximum lies inside the mask, ``[N]`` bool; with tied maxima, any one inside is a hit."""
    check_masks(maps, masks)
    flat = maps.flatten(1)
    is_max = flat == flat.amax(1, keepdim=True)
    return (is_max & masks.flatten(1)).any(1)


def mass_inside(maps: torch.Tensor, masks: torch.Tensor, mode: str = "positive") -> torch.Tensor:
    """Share of attribution mass inside the mask, ``[N]`` in [0, 1].

    ``mode="positive"`` counts evidence *for* the class only (negative pixels are ignored);
    ``"absolute"`` counts any strong pixel. NaN for a map with no such mass.
    """
    check_masks(maps, masks)
    if mode not in ("positive", "absolute"):
        raise ValueError(f"mode must be 'positive' or 'absolute', got {mode!r}")
    flat = maps.flatten(1)
    mass = flat.clamp_min(0) if mode == "positive" else flat.abs()
    return (mass * masks.flatten(1)).sum(1) / mass.sum(1)


def win_rates(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Share of contests each method wins; a contest is one image (of one seed, if a ``seed`` column exists).

    Methods tied for the best score share the win equally, so the win rates of methods that
    entered every contest sum to 1. Rows with a NaN score do not enter. Columns: method, wins,
    contests, win_rate (sorted best first).
    """
    missing = {"image", "method", "score"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lacks columns {sorted(missing)}")
    contest = ["seed", "image"] if "seed" in scores.columns else ["image"]
    entries = scores.dropna(subset=["score"])
    best = entries.groupby(contest)["score"].transform("max" if higher_is_better else "min")
    won = entries["score"] == best
    share = won / won.groupby([entries[c] for c in contest]).transform("sum")
    table = share.groupby(entries["method"]).agg(wins="sum", contests="size").reset_index()
    table["win_rate"] = table["wins"] / table["contests"]
    return table.sort_values("win_rate", ascending=False, ignore_index=True)


def check_masks(maps: torch.Tensor, masks: torch.Tensor) -> None:
    if maps.ndim != 3 or masks.shape != maps.shape or masks.dtype != torch.bool:
        raise ValueError(
            f"expected maps [N,H,W] and bool masks of the same shape, got {tuple(maps.shape)} "
            f"and {masks.dtype} {tuple(masks.shape)}"
        )
