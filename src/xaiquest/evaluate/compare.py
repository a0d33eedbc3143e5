"""The cross-model comparison table: one row per (model, variant), aggregated over seeds.

The CSV keeps numbers (``<metric>_mean``, ``<metric>_std``, ``n_seeds``) for later analysis;
the Markdown renders them as "mean ± std" for the report. Std is the sample std (ddof=1),
so a single seed has an undefined (NaN / empty) std rather than a misleading 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from xaiquest.errors import DataError
from xaiquest.layout import Tables
from xaiquest.store import atomic_write_text

GROUP_COLUMNS = ("model", "variant")
RUN_KEY = (*GROUP_COLUMNS, "seed")
REQUIRED_COLUMNS = (*RUN_KEY, "accuracy")
KNOWN_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc")
PERCENT_METRICS = frozenset({"accuracy", "macro_precision", "macro_recall", "macro_f1", "mean_corruption_accuracy"})
SETUP_COLUMNS = ("optimizer", "lr_schedule", "epochs", "batch_size", "augmentations", "params")
MEAN_SETUP_COLUMNS = ("train_time_s",)
STATS = ("mean", "std")

LABELS = {
    "model": "Model",
    "variant": "Variant",
    "n_seeds": "Seeds",
    "accuracy": "Accuracy (%)",
    "macro_precision": "Macro precision (%)",
    "macro_recall": "Macro recall (%)",
    "macro_f1": "Macro F1 (%)",
    "macro_auc": "Macro AUC",
    "optimizer": "Optimizer",
    "lr_schedule": "LR schedule",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "augmentations": "Augmentations",
    "params": "Params (M)",
    "train_time_s": "Train time (s)",
    "ece": "ECE",
    "ece_after_ts": "ECE after T-scaling",
    "nll": "NLL",
    "nll_after_ts": "NLL after T-scaling",
    "temperature": "Temperature",
    "mean_corruption_accuracy": "Corruption accuracy (%)",
    "mce": "mCE",
    "relative_mce": "Relative mCE",
}
FOOTNOTE = (
    "Metrics are mean ± sample std (ddof=1) over seeds; accuracy, precision, recall and F1 in %. "
    "Train time is the mean over seeds."
)


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Aggregate per-run rows into one numeric row per (model, variant), best accuracy first.

    Numeric columns other than the setup ones count as metrics (mean and std over seeds);
    any other column is setup and must agree across a group's seeds.
    """
    runs = _runs_frame(rows)
    metrics = _metric_columns(runs)
    averaged = [column for column in MEAN_SETUP_COLUMNS if column in runs.columns]
    setup = [c for c in runs.columns if c not in {*RUN_KEY, *metrics, *averaged}]
    groups = runs.groupby(list(GROUP_COLUMNS), sort=False, dropna=False)
    _check_setup_agrees(groups, setup)
    table = groups.agg(
        n_seeds=("seed", "size"),
        seeds=("seed", lambda seeds: ",".join(map(str, sorted(seeds)))),
        **{column: (column, "first") for column in setup},
        **{column: (column, "mean") for column in averaged},
        **{f"{metric}_{stat}": (metric, stat) for metric in metrics for stat in STATS},
    ).reset_index()
    return table.sort_values("accuracy_mean", ascending=False, kind="stable").reset_index(drop=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    """Render a :func:`comparison_table` as a Markdown table with "mean ± std" cells."""
    metrics = [column.removesuffix("_mean") for column in table.columns if column.endswith("_mean")]
    stat_columns = {f"{metric}_{stat}" for metric in metrics for stat in STATS}
    display = table[[*GROUP_COLUMNS, "n_seeds"]].copy()
    for metric in metrics:
        display[metric] = [
            _mean_std(mean, std, metric in PERCENT_METRICS)
            for mean, std in zip(table[f"{metric}_mean"], table[f"{metric}_std"])
        ]
    for column in table.columns:
        if column not in display.columns and column not in stat_columns and column != "seeds":
            display[column] = table[column].map(_setup_formatter(column))
    display = display.rename(columns=LABELS)
    return display.to_markdown(index=False, disable_numparse=True) + f"\n\n{FOOTNOTE}\n"


def write_comparison(rows: Sequence[Mapping[str, Any]], tables: Tables) -> tuple[Path, Path]:
    """Write the comparison table to ``tables``, numeric (CSV) and formatted (Markdown)."""
    table = comparison_table(rows)
    csv_path, md_path = tables.comparison, tables.markdown_of(tables.comparison)
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(md_path, comparison_markdown(table))
    return csv_path, md_path


def _runs_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run with hashable cells, after checking the keys a comparison needs."""
    if not rows:
        raise DataError("no runs to compare; train at least one model first")
    runs = pd.DataFrame([dict(row) for row in rows])
    missing = [column for column in REQUIRED_COLUMNS if column not in runs.columns]
    if missing or runs[list(REQUIRED_COLUMNS)].isna().any(axis=None):
        raise DataError(f"every run row needs {list(REQUIRED_COLUMNS)}; missing or empty: {missing or 'some values'}")
    duplicated = runs.duplicated(list(RUN_KEY))
    if duplicated.any():
        raise DataError(f"runs listed twice (same model, variant, seed):\n{runs[duplicated][list(RUN_KEY)]}")
    for column in runs.columns:
        if runs[column].dtype == object:
            runs[column] = runs[column].map(_hashable)
    for metric in KNOWN_METRICS:
        if metric in runs.columns:
            runs[metric] = pd.to_numeric(runs[metric])
    return runs


def _metric_columns(runs: pd.DataFrame) -> list[str]:
    """Known metrics in their usual order, then any other numeric non-setup column."""
    known = [metric for metric in KNOWN_METRICS if metric in runs.columns]
    excluded = {*RUN_KEY, *SETUP_COLUMNS, *MEAN_SETUP_COLUMNS, *known}
    extra = [
        column
        for column in runs.columns
        if column not in excluded and is_numeric_dtype(runs[column]) and not is_bool_dtype(runs[column])
    ]
    return known + extra


def _check_setup_agrees(groups: Any, setup: list[str]) -> None:
    """Seeds of one (model, variant) must share a recipe, or their mean would mix recipes."""
    if not setup:
        return
    distinct = groups[setup].nunique(dropna=False)
    conflicts = distinct[(distinct > 1).any(axis=1)]
    if not conflicts.empty:
        raise DataError(
            "runs of the same (model, variant) differ in setup; give them different variant names:\n"
            f"{conflicts}"
        )


def _hashable(value: Any) -> Any:
    """Lists (e.g. augmentations) become readable strings so they can be grouped and compared."""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _number(value: float, percent: bool) -> str:
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def _mean_std(mean: float, std: float, percent: bool) -> str:
    """"84.12 ± 0.31"; only the mean for a single seed; empty when undefined."""
    if math.isnan(mean):
        return ""
    if math.isnan(std):
        return _number(mean, percent)
    return f"{_number(mean, percent)} ± {_number(std, percent)}"


def _setup_formatter(column: str) -> Callable[[Any], str]:
    """Params in millions and train time in whole seconds; other setup values as text."""
    if column == "params":
        return lambda value: "" if pd.isna(value) else f"{value / 1e6:.2f}"
    if column == "train_time_s":
        return lambda value: "" if pd.isna(value) else f"{value:.0f}"
    return lambda value: "" if pd.isna(value) else str(value)
