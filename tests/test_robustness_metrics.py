"""Corruption error (CE), relative CE and their means on hand-computed tables."""

import math

import pandas as pd
import pytest

from xaiquest.errors import DataError
from xaiquest.metrics.robustness import (
    corruption_errors,
    mean_corruption_error,
)

CORRUPTIONS = ["fog", "snow"]
CLEAN = {"base": 0.9, "other": 0.95}
# accuracy at severities 1 and 2; "base" is the normalising baseline
ACCURACY = {
    ("base", "fog"): (0.8, 0.6),
    ("base", "snow"): (0.7, 0.5),
    ("other", "fog"): (0.85, 0.75),
    ("other", "snow"): (0.8, 0.4),
}


def _table(accuracy=ACCURACY, clean_rows=False):
    rows = [
        {"model": model, "corruption": corruption, "severity": severity, "accuracy": acc}
        for (model, corruption), values in accuracy.items()
        for severity, acc in enumerate(values, start=1)
    ]
    if clean_rows:  # severity-0 rows as a severity plot would carry them; CE must ignore them
        rows += [{"model": m, "corruption": "fog", "severity": 0, "accuracy": acc} for m, acc in CLEAN.items()]
    return pd.DataFrame(rows)


def test_corruption_errors_sum_over_severities():
    errors = corruption_errors(_table(clean_rows=True))
    assert list(errors.columns) == ["model", "corruption", "summed_error"]
    assert errors[["model", "corruption"]].values.tolist() == [list(key) for key in ACCURACY]
    assert errors["summed_error"].tolist() == pytest.approx([0.2 + 0.4, 0.3 + 0.5, 0.15 + 0.25, 0.2 + 0.6])


def test_mean_corruption_error_hand_case():
    summary = mean_corruption_error(_table(clean_rows=True), CLEAN, baseline="base", corruptions=CORRUPTIONS)
    assert summary.notes == ()

    ce = summary.per_corruption.set_index(["model", "corruption"])
    assert ce.loc[("other", "fog"), "ce"] == pytest.approx(0.4 / 0.6)
    assert ce.loc[("other", "snow"), "ce"] == pytest.approx(0.8 / 0.8)
    # degradation over clean error: base (0.1) fog .1+.3, snow .2+.4; other (0.05) fog .1+.2, snow .15+.55
    assert ce.loc[("other", "fog"), "relative_ce"] == pytest.approx(0.3 / 0.4)
    assert ce.loc[("other", "snow"), "relative_ce"] == pytest.approx(0.7 / 0.6)

    other = summary.per_model.loc["other"]
    assert other["mce"] == pytest.approx((2 / 3 + 1) / 2)
    assert other["relative_mce"] == pytest.approx((0.75 + 7 / 6) / 2)
    assert other["mean_corruption_accuracy"] == pytest.approx((0.85 + 0.75 + 0.8 + 0.4) / 4)
    assert other["clean_accuracy"] == 0.95
    assert list(summary.per_model.columns) == ["clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce"]


def test_baseline_scores_exactly_one():
    per_model = mean_corruption_error(_table(), CLEAN, baseline="base", corruptions=CORRUPTIONS).per_model
    assert per_model.loc["base", "mce"] == 1.0
    assert per_model.loc["base", "relative_mce"] == 1.0
    assert per_model.loc["base", "mean_corruption_accuracy"] == pytest.approx(0.65)


def test_zero_baseline_error_gives_nan_and_a_note():
    accuracy = ACCURACY | {("base", "fog"): (1.0, 1.0)}
    summary = mean_corruption_error(_table(accuracy), {"base": 1.0, "other": 0.95}, "base", CORRUPTIONS)
    ce = summary.per_corruption.set_index(["model", "corruption"])
    assert math.isnan(ce.loc[("other", "fog"), "ce"])
    assert math.isnan(ce.loc[("other", "fog"), "relative_ce"])
    assert summary.per_model.loc["other", "mce"] == pytest.approx(1.0)  # snow only
    assert any("'fog'" in note and "CE" in note for note in summary.notes)


def test_inconsistent_tables_raise_data_error():
    incomplete = _table().query("not (model == 'other' and corruption == 'snow' and severity == 2)")
    with pytest.raises(DataError, match="other"):
        mean_corruption_error(incomplete, CLEAN, "base", CORRUPTIONS)
    with pytest.raises(DataError, match="missing"):
        mean_corruption_error(_table(), CLEAN, "missing", CORRUPTIONS)
    with pytest.raises(DataError, match="clean"):
        mean_corruption_error(_table(), {"base": 0.9}, "base", CORRUPTIONS)
    with pytest.raises(DataError, match="duplicate"):
        corruption_errors(pd.concat([_table(), _table().head(1)]))
    with pytest.raises(DataError, match="frost"):  # the default list asks for all 15 corruptions
        mean_corruption_error(_table(), CLEAN, "base")
