"""Corruption-robustness figures: a metric against severity, one panel per corruption family.

A bare ``Figure`` (Agg rendering, no pyplot state); save it with :func:`xaiquest.figures.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xaiquest.errors import DataError

SEVERITY_COLUMNS = ("model", "corruption", "severity", "value")


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
