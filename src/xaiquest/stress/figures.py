"""Figures of the stress stage: before/after heatmaps, the planted patch, probe response curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from xaiquest.figures.heatmaps import CELL, heat


def overlay(ax: Axes, image: torch.Tensor, map_: torch.Tensor | None = None) -> None:
    """The image alone, or faded under the map's normalised |heat|."""
    picture = image.permute(1, 2, 0).cpu().numpy()
    ax.imshow(picture, alpha=1.0 if map_ is None else 0.35)
    if map_ is not None:
        ax.imshow(heat(map_.cpu()), cmap="jet", alpha=0.65, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def before_after_figure(
    images_clean: torch.Tensor,
    images_stressed: torch.Tensor,
    maps_clean: Mapping[str, torch.Tensor],
    maps_stressed: Mapping[str, torch.Tensor],
    titles: Sequence[str],
    suptitle: str = "",
) -> Figure:
    """Rows = images; columns = clean image and its maps, then the stressed image and its maps."""
    methods = list(maps_clean)
    rows, half = len(images_clean), len(methods) + 1
    fig = Figure(figsize=(CELL * 2 * half, CELL * rows + 0.6))
    axes = fig.subplots(rows, 2 * half, squeeze=False)
    for r in range(rows):
        for offset, images, maps in ((0, images_clean, maps_clean), (half, images_stressed, maps_stressed)):
            overlay(axes[r, offset], images[r])
            for c, method in enumerate(methods, start=offset + 1):
                overlay(axes[r, c], images[r], maps[method][r])
        axes[r, 0].set_ylabel(titles[r], fontsize=6, rotation=0, ha="right", va="center")
    for c, name in enumerate(["clean", *methods, "stressed", *methods]):
        axes[0, c].set_title(name, fontsize=7)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def patch_figure(
    image: torch.Tensor, maps: Mapping[str, torch.Tensor], title: str, mask: torch.Tensor | None = None
) -> Figure:
    """One patched image and each method's map for it; ``mask`` (the patch, ``[H,W]``) is outlined in white."""
    fig = Figure(figsize=(CELL * (len(maps) + 1), CELL + 0.6))
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    overlay(axes[0], image)
    axes[0].set_title("image", fontsize=7)
    for ax, (method, map_) in zip(axes[1:], maps.items()):
        overlay(ax, image, map_)
        ax.set_title(method, fontsize=7)
    if mask is not None:
        for ax in axes:
            ax.contour(mask.cpu().numpy().astype(float), levels=[0.5], colors="white", linewidths=0.8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def contrast_figure(images: torch.Tensor, reliant: Mapping[str, torch.Tensor], control: Mapping[str, torch.Tensor],
                    masks: torch.Tensor, title: str) -> Figure:
    """Rows = methods; for each image, its map on the reliant model beside its map on the control twin,
    the patch outlined: a map that looks the same on both follows the patch's salience, not its use."""
    methods, count = list(reliant), len(images)
    fig = Figure(figsize=(CELL * 2 * count + 0.8, CELL * len(methods) + 0.8))
    axes = fig.subplots(len(methods), 2 * count, squeeze=False)
    for row, method in enumerate(methods):
        for index in range(count):
            for offset, maps in ((0, reliant), (1, control)):
                ax = axes[row, 2 * index + offset]
                overlay(ax, images[index], maps[method][index])
                ax.contour(masks[index].cpu().numpy().astype(float), levels=[0.5], colors="white", linewidths=0.6)
        axes[row, 0].set_ylabel(method, fontsize=6, rotation=0, ha="right", va="center")
    for index in range(count):
        axes[0, 2 * index].set_title(f"image {index + 1}: reliant", fontsize=6)
        axes[0, 2 * index + 1].set_title("control", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def probe_curve_figure(table: pd.DataFrame, x: str, y: str, hue: str, title: str = "") -> Figure:
    """``y`` against the probe intensity ``x``, one line per ``hue`` value (mean over other columns).

    Non-numeric intensities (channel orders, fills) are placed at evenly spaced positions in
    first-seen order.
    """
    means = table.groupby([hue, x], sort=False)[y].mean().reset_index()
    levels = list(dict.fromkeys(table[x]))
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in levels)
    position = {v: (float(v) if numeric else i) for i, v in enumerate(levels)}
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for name, rows in means.groupby(hue, sort=False):
        xs = rows[x].map(position)
        order = np.argsort(xs.to_numpy())
        ax.plot(xs.to_numpy()[order], rows[y].to_numpy()[order], marker="o", label=str(name))
    if not numeric:
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
