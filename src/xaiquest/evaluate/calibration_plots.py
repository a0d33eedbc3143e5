"""Figures for the calibration and corruption-robustness stages.

Like the Stage-1 figures these are bare ``Figure`` objects (Agg rendering, no pyplot state);
save them with :func:`xaiquest.store.save_figure`. Reliability figures read the tables of
:func:`xaiquest.metrics.calibration.reliability_bins`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xaiquest.errors import DataError
from xaiquest.metrics.calibration import RELIABILITY_COLUMNS

SEVERITY_COLUMNS = ("model", "corruption", "severity", "value")


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


def severity_figure(
    acc_table: pd.DataFrame, families: Mapping[str, Sequence[str]], ylabel: str, title: str = ""
) -> Figure:
    """A metric against corruption severity: one panel per corruption family.

    Per model, thin lines show each corruption of the family and a thick line their mean, so four
    panels carry both the family trend that separates models and the spread between corruptions
    (15 per-corruption panels would make the model comparison hard to read; the exact
    per-corruption numbers live in the CE table). Rows with severity 0 are the clean value, one
    per model, and start every line of that model when present.
    """
    table = _checked_severity_table(acc_table)
    clean = _clean_values(table)
    corrupted = table[table["severity"] > 0]
    present = set(corrupted["corruption"])
    panels = {family: [name for name in names if name in present] for family, names in families.items()}
    panels = {family: names for family, names in panels.items() if names}
    if not panels:
        raise DataError(f"no corruption of families {list(families)} in the table; it has {sorted(present)}")
    colours = {model: f"C{i}" for i, model in enumerate(corrupted["model"].unique())}

    fig = Figure(figsize=(3.6 * len(panels) + 0.5, 3.8), layout="constrained")
    if title:
        fig.suptitle(title)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (family, names) in zip(axes, panels.items()):
        family_rows = corrupted[corrupted["corruption"].isin(names)]
        for model, rows in family_rows.groupby("model", sort=False):
            lines = rows.pivot(index="severity", columns="corruption", values="value")
            if model in clean:
                lines.loc[0] = clean[model]
            lines = lines.sort_index()
            ax.plot(lines.index, lines.to_numpy(), color=colours[model], alpha=0.35, linewidth=0.8)
            ax.plot(lines.index, lines.mean(axis=1, skipna=False), color=colours[model], linewidth=2.5,
                    marker="o", markersize=4, label=model)
        ax.set_title(family)
        ax.set_xlabel("severity (0 = clean)" if clean else "severity")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize="small")
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


def _checked_severity_table(table: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in SEVERITY_COLUMNS if column not in table.columns]
    if missing:
        raise DataError(f"severity table lacks columns {missing}; expected {list(SEVERITY_COLUMNS)}")
    corrupted = table[table["severity"] > 0]
    if corrupted.duplicated(["model", "corruption", "severity"]).any():
        raise DataError("severity table has duplicate model x corruption x severity rows")
    return table


def _clean_values(table: pd.DataFrame) -> dict[str, float]:
    """The severity-0 value of each model that has one; it must not depend on the corruption column."""
    clean = table[table["severity"] == 0].groupby("model")["value"]
    ambiguous = sorted(model for model, count in clean.nunique().items() if count > 1)
    if ambiguous:
        raise DataError(f"models {ambiguous} have several different severity-0 (clean) values")
    return {model: float(value) for model, value in clean.first().items()}
