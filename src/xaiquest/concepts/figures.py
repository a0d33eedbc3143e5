"""Figures of the concepts stage: Geirhos-style shape-vs-texture plot, TCAV bars, detector fractions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def shape_bias_figure(summary: pd.DataFrame) -> Figure:
    """One row per model: its shape bias on a texture (0) ... shape (1) axis, as in Geirhos et al. (2019), Fig. 4."""
    rows = summary.reset_index(drop=True)
    fig = Figure(figsize=(6.5, 0.38 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.scatter(rows["shape_bias"], y, s=60, color="#2f5d9e", zorder=3)
    for i, (bias, shape, texture) in enumerate(zip(rows["shape_bias"], rows["shape_decisions"], rows["texture_decisions"])):
        ax.annotate(f"{bias:.2f} ({100 * shape:.0f}% shape, {100 * texture:.0f}% texture)", (bias, i),
                    textcoords="offset points", xytext=(8, -3), fontsize=7)
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_yticks(y, rows["run"])
    ax.invert_yaxis()
    ax.set_xlabel("shape bias = shape / (shape + texture) decisions on cue-conflict images")
    ax.set_title("Texture (0) vs shape (1) bias", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def tcav_figure(tcav: pd.DataFrame) -> Figure:
    """Per run and depth: mean TCAV score of each concept over classes; hatched bars had no significant class."""
    grouped = tcav.groupby(["run", "depth", "concept"], sort=False).agg(
        tcav=("tcav", "mean"), significant=("significant", "any")).reset_index()
    runs = list(dict.fromkeys(grouped["run"]))
    fig = Figure(figsize=(10, 2.4 * len(runs) + 0.6), layout="constrained")
    axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
    for ax, run in zip(axes, runs):
        rows = grouped[grouped["run"] == run]
        depths, concepts = list(dict.fromkeys(rows["depth"])), list(dict.fromkeys(rows["concept"]))
        width = 0.8 / len(depths)
        for d, depth in enumerate(depths):
            part = rows[rows["depth"] == depth].set_index("concept").reindex(concepts)
            bars = ax.bar(np.arange(len(concepts)) + d * width, part["tcav"], width, label=depth)
            for bar, significant in zip(bars, part["significant"].fillna(False)):
                if not significant:
                    bar.set_hatch("//")
                    bar.set_alpha(0.45)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(concepts)) + 0.4 - width / 2, concepts, rotation=30, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("TCAV score", fontsize=8)
        ax.set_title(f"{run} (hatched: not significant for any class after correction)", fontsize=8)
        ax.legend(fontsize=6, ncol=len(depths))
    return fig


def detector_figure(detectors: pd.DataFrame) -> Figure:
    """Per run: share of units detecting each concept (IoU above the threshold), one line per depth."""
    runs = list(dict.fromkeys(detectors["run"]))
    fig = Figure(figsize=(10, 2.2 * len(runs) + 0.6), layout="constrained")
    axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
    for ax, run in zip(axes, runs):
        rows = detectors[detectors["run"] == run]
        table = rows.pivot(index="concept", columns="depth", values="fraction").reindex(list(dict.fromkeys(rows["concept"])))
        table = table[list(dict.fromkeys(rows["depth"]))]
        table.plot.bar(ax=ax, width=0.8, legend=True, fontsize=7)
        ax.set_ylabel("detector share", fontsize=8)
        ax.set_xlabel("")
        ax.set_title(run, fontsize=8)
        ax.legend(fontsize=6, ncol=len(table.columns))
    return fig
