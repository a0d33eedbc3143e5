"""Calibration figures: reliability diagrams, before/after temperature scaling, overlays.

Like the Stage-1 figures these are bare ``Figure`` objects (Agg rendering, no pyplot state);
save them with :func:`xaiquest.figures.save_figure`. Reliability figures read the tables of
:func:`xaiquest.metrics.calibration.reliability_bins`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from xaiquest.errors import DataError
from xaiquest.metrics.calibration import RELIABILITY_COLUMNS

def reliability_figure(bins: pd.DataFrame, title: str, ece: float) -> Figure:
    """Accuracy per confidence bin over the diagonal, the gap to it hatched, and where the samples are.

    The histogram underneath matters: a large gap in a bin holding 0.1 % of the samples is harmless.
    """
    fig = Figure(figsize=(5.0, 6.0), layout="constrained")
    reliability_ax, histogram_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    _draw_reliability(reliability_ax, histogram_ax, _checked_bins(bins))
    reliability_ax.set_title(f"{title}\nECE {ece:.2%}")
    return fig


def before_after_figure(
    before: pd.DataFrame, after: pd.DataFrame, ece_before: float, ece_after: float, temperature: float, title: str
) -> Figure:
    """One model's reliability diagram before and after temperature scaling, side by side."""
    fig = Figure(figsize=(9.0, 6.0), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(2, 2, sharex=True, sharey="row", height_ratios=[3, 1])
    panels = (
        (before, f"before (T = 1), ECE {ece_before:.2%}"),
        (after, f"after (T = {temperature:.2f}), ECE {ece_after:.2%}"),
    )
    for column, (bins, heading) in enumerate(panels):
        _draw_reliability(axes[0, column], axes[1, column], _checked_bins(bins))
        axes[0, column].set_title(heading)
    return fig


def reliability_overlay_figure(curves: Mapping[str, pd.DataFrame], title: str = "Reliability") -> Figure:
    """Every model's accuracy-vs-confidence curve (non-empty bins only) on one axes, to compare at a glance."""
    if not curves:
        raise DataError("no reliability curves to draw")
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for name, bins in curves.items():
        filled = _checked_bins(bins).query("count > 0")
        ax.plot(filled["confidence"], filled["accuracy"], marker="o", markersize=3, label=name)
    _unit_square(ax)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


def _draw_reliability(reliability_ax: Axes, histogram_ax: Axes, bins: pd.DataFrame) -> None:
    """Bars of accuracy, hatched gap bars from accuracy to mean confidence, diagonal; sample histogram below."""
    centres = ((bins["lo"] + bins["hi"]) / 2).to_numpy()
    widths = (bins["hi"] - bins["lo"]).to_numpy()
    filled = (bins["count"] > 0).to_numpy()
    accuracy = bins["accuracy"].to_numpy()[filled]
    reliability_ax.bar(centres[filled], accuracy, width=widths[filled], color="tab:blue",
                       edgecolor="black", linewidth=0.5, label="accuracy")
    reliability_ax.bar(centres[filled], bins["gap"].to_numpy()[filled], bottom=accuracy, width=widths[filled],
                       color="tab:red", alpha=0.3, edgecolor="tab:red", hatch="//", label="gap to confidence")
    reliability_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    _unit_square(reliability_ax)
    reliability_ax.set_ylabel("accuracy")
    reliability_ax.legend(loc="upper left", fontsize="small")

    counts = bins["count"].to_numpy(dtype=float)
    total = counts.sum()
    histogram_ax.bar(centres, counts / total, width=widths, color="grey", edgecolor="black", linewidth=0.5)
    weights = counts[filled] / total
    histogram_ax.axvline(float(np.sum(weights * bins["confidence"].to_numpy()[filled])), color="tab:red",
                         linestyle="--", label="mean confidence")
    histogram_ax.axvline(float(np.sum(weights * accuracy)), color="tab:blue", linestyle="--", label="accuracy")
    histogram_ax.set_xlabel("confidence")
    histogram_ax.set_ylabel("fraction")
    histogram_ax.legend(loc="best", fontsize="x-small")


def _unit_square(ax: Axes) -> None:
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)


def _checked_bins(bins: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in RELIABILITY_COLUMNS if column not in bins.columns]
    if missing:
        raise DataError(f"reliability table lacks columns {missing}; expected {list(RELIABILITY_COLUMNS)}")
    if bins["count"].sum() <= 0:
        raise DataError("reliability table has no samples")
    return bins
