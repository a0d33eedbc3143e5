"""Figures of the explanation stage: image x method grids, cross-model grids, agreement heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from xaiquest.figures.heatmaps import CELL, heat


def explanation_grid(images: torch.Tensor, maps: Mapping[str, torch.Tensor], row_titles: Sequence[str], title: str) -> Figure:
    """Rows = images, columns = the image then each method's heatmap over a faded copy of it."""
    methods = list(maps)
    rows, cols = len(images), len(methods) + 1
    fig = Figure(figsize=(CELL * cols, CELL * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, image in enumerate(images):
        picture = image.permute(1, 2, 0).numpy()
        axes[r, 0].imshow(picture)
        axes[r, 0].set_ylabel(row_titles[r], fontsize=6, rotation=0, ha="right", va="center")
        for c, method in enumerate(methods, start=1):
            axes[r, c].imshow(picture, alpha=0.35)
            axes[r, c].imshow(heat(maps[method][r]), cmap="jet", alpha=0.65, vmin=0, vmax=1)
    for c, name in enumerate(["image", *methods]):
        axes[0, c].set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def agreement_figure(iou: pd.DataFrame, rank: pd.DataFrame, title: str) -> Figure:
    """Method x method top-k IoU and Spearman side by side, values printed as large as the cells allow."""
    fig = Figure(figsize=(12, 5.4))
    cell_font = min(10.0, 110 / max(len(iou), 1))  # as large as a cell allows: 16 methods -> ~7 pt, not 5
    for ax, (name, table) in zip(fig.subplots(1, 2), (("top-k IoU", iou), ("Spearman", rank))):
        image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0 if name == "top-k IoU" else -1, vmax=1)
        ax.set_xticks(range(len(table)), table.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(table)), table.index, fontsize=7)
        for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=cell_font,
                    color="white" if value < 0.5 else "black")
        ax.set_title(name)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def quality_figure(table: pd.DataFrame, metrics: Sequence[tuple[str, str]]) -> Figure:
    """One bar panel per quality metric: methods on x, one bar per model."""
    fig = Figure(figsize=(13, 2.6 * len(metrics)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    methods = list(dict.fromkeys(table["method"]))
    runs = list(dict.fromkeys(table["run"]))
    width = 0.8 / len(runs)
    for ax, (column, label) in zip(axes, metrics):
        for i, run in enumerate(runs):
            values = table[table["run"] == run].set_index("method").reindex(methods)[column]
            ax.bar(np.arange(len(methods)) + i * width, values.to_numpy(dtype=float), width, label=run)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xticks(np.arange(len(methods)) + 0.4 - width / 2, methods, rotation=30, fontsize=7, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, ncols=min(len(runs), 4))
    fig.tight_layout()
    return fig
