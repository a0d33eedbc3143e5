"""Corruption robustness scores of Hendrycks & Dietterich (2019), normalised by one of our models.

The paper divides every error by AlexNet's so that corruptions of different difficulty weigh the
same in the mean; we divide by a baseline model of our own zoo instead, so "mCE 0.8" reads as
"20 % fewer corruption errors than the baseline".

Accuracy tables are long: one row per model, corruption and severity (1..5). Rows with severity
0 (the clean reference some plots prepend) are ignored here; clean accuracy is passed separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from xaiquest.data.corruptions.engine import BENCHMARK_CORRUPTIONS
from xaiquest.errors import DataError

ACCURACY_COLUMNS = ("model", "corruption", "severity", "accuracy")


@dataclass(frozen=True)
class CorruptionSummary:
    """Hendrycks & Dietterich scores of every model against one baseline."""

    per_model: pd.DataFrame
    """Indexed by model; columns clean_accuracy, mean_corruption_accuracy, mce, relative_mce."""
    per_corruption: pd.DataFrame
    """One row per model x corruption; columns model, corruption, summed_error, ce, relative_ce."""
    notes: tuple[str, ...]
    """Why a score is NaN or averages over fewer corruptions; empty when every score is defined."""


def corruption_errors(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Error summed over severities per model x corruption: the numerator of the corruption error.

    Columns model, corruption, summed_error; models and corruptions keep the table's order.
    """
    table = _corrupted_rows(accuracy)
    return (
        table.assign(summed_error=1.0 - table["accuracy"])
        .groupby(["model", "corruption"], sort=False, as_index=False)["summed_error"]
        .sum()
    )


def mean_corruption_error(
    acc_table: pd.DataFrame,
    clean_acc: Mapping[str, float],
    baseline: str,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> CorruptionSummary:
    """CE, relative CE, their means over ``corruptions`` and mean corruption accuracy per model.

    CE_c = sum_s E_{s,c} / sum_s E_{s,c}^baseline; relative CE_c = sum_s (E_{s,c} - E_clean) over
    the baseline's same sum, i.e. the degradation caused by the corruption rather than the error.
    A corruption whose baseline denominator is not positive (the baseline never errs, or does no
    worse than on clean data) has NaN scores for every model; the means then average over the
    remaining corruptions, identically for all models, and ``notes`` says so.
    """
    corrupted = _corrupted_rows(acc_table)
    table = corrupted[corrupted["corruption"].isin(corruptions)]
    _check_coverage(table, list(corrupted["model"].unique()), baseline, corruptions)
    missing_clean = sorted(set(table["model"]) - set(clean_acc))
    if missing_clean:
        raise DataError(f"clean_acc lacks the clean accuracy of models {missing_clean}")

    error = 1.0 - table["accuracy"]
    clean_error = 1.0 - table["model"].map(clean_acc).astype(float)
    sums = (
        table.assign(summed_error=error, summed_degradation=error - clean_error)
        .groupby(["model", "corruption"], sort=False)[["summed_error", "summed_degradation"]]
        .sum()
    )
    reference = sums.xs(baseline, level="model")
    error_denominator = reference["summed_error"].where(reference["summed_error"] > 0)
    degradation_denominator = reference["summed_degradation"].where(reference["summed_degradation"] > 0)
    per_corruption = sums.assign(
        ce=sums["summed_error"].div(error_denominator, level="corruption"),
        relative_ce=sums["summed_degradation"].div(degradation_denominator, level="corruption"),
    )

    by_model = per_corruption.groupby(level="model", sort=False)
    per_model = pd.DataFrame(
        {
            "mean_corruption_accuracy": table.groupby("model", sort=False)["accuracy"].mean(),
            "mce": by_model["ce"].mean(),  # NaN CEs are skipped: the same corruptions for every model
            "relative_mce": by_model["relative_ce"].mean(),
        }
    )
    per_model.insert(0, "clean_accuracy", per_model.index.map(clean_acc).astype(float))
    per_model.index.name = "model"
    notes = _undefined_notes(error_denominator, "CE", f"{baseline!r} makes no error") + _undefined_notes(
        degradation_denominator, "relative CE", f"{baseline!r} is no worse than on clean data"
    )
    return CorruptionSummary(
        per_model=per_model,
        per_corruption=per_corruption.drop(columns="summed_degradation").reset_index(),
        notes=notes,
    )


def _undefined_notes(denominator: pd.Series, score: str, reason: str) -> tuple[str, ...]:
    undefined = list(denominator.index[denominator.isna()])
    if not undefined:
        return ()
    return (f"{score} is undefined (NaN) for {undefined}: on these corruptions {reason}; "
            f"the mean {score} averages over the other {len(denominator) - len(undefined)} corruptions",)


def _corrupted_rows(accuracy: pd.DataFrame) -> pd.DataFrame:
    """The severity >= 1 rows of a validated long accuracy table."""
    missing = [column for column in ACCURACY_COLUMNS if column not in accuracy.columns]
    if missing:
        raise DataError(f"accuracy table lacks columns {missing}; expected {list(ACCURACY_COLUMNS)}")
    duplicated = accuracy.duplicated(["model", "corruption", "severity"])
    if duplicated.any():
        first = accuracy.loc[duplicated, ["model", "corruption", "severity"]].iloc[0].tolist()
        raise DataError(f"accuracy table has {int(duplicated.sum())} duplicate rows, e.g. {first}")
    if not accuracy["accuracy"].between(0.0, 1.0).all():
        raise DataError("accuracy values must lie in [0, 1] (fractions, not percentages)")
    return accuracy.loc[accuracy["severity"] >= 1, list(ACCURACY_COLUMNS)]


def _check_coverage(table: pd.DataFrame, models: list[str], baseline: str, corruptions: Sequence[str]) -> None:
    """Every model must have exactly the baseline's (corruption, severity) cells, or sums are not comparable."""
    if baseline not in models:
        raise DataError(f"baseline {baseline!r} is not in the accuracy table; models: {models}")
    cells: dict[str, set[tuple[str, int]]] = {model: set() for model in models}
    for model, rows in table.groupby("model"):
        cells[model] = set(zip(rows["corruption"], rows["severity"]))
    absent = sorted(set(corruptions) - {corruption for corruption, _ in cells[baseline]})
    if absent:
        raise DataError(f"baseline {baseline!r} has no accuracy for corruptions {absent}")
    for model, model_cells in cells.items():
        if model_cells != cells[baseline]:
            raise DataError(
                f"model {model!r} is not scored on the baseline's corruption x severity cells: "
                f"missing {sorted(cells[baseline] - model_cells)[:5]}, extra {sorted(model_cells - cells[baseline])[:5]}"
            )
