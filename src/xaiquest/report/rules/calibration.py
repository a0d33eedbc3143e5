"""Rules on calibration: best and worst ECE, confidence against accuracy, temperature scaling."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from xaiquest.report.derived import chance_level_groups
from xaiquest.report.reader import CALIBRATION, RunTables, group_of
from xaiquest.report.registry import Finding, Kind, finding_rule
from xaiquest.report.text import has_columns, num, pct, signed_pp


CONFIDENCE_TOLERANCE = 0.02
"""|mean confidence - accuracy| below this (2 pp) counts as confidence matching accuracy."""


def _calibration(run: RunTables) -> tuple[pd.DataFrame, dict[str, str]] | None:
    table = run.csv(CALIBRATION)
    if not has_columns(table, "run", "ece"):
        return None
    table = table.dropna(subset=["ece"]).reset_index(drop=True)
    return table, run.labels(table["run"])


@finding_rule("calibration_extremes", tags=("reliability",))
def calibration_extremes(run: RunTables) -> list[Finding]:
    """Best and worst ECE among models above chance: a chance-level model is trivially calibrated."""
    loaded = _calibration(run)
    if loaded is None:
        return []
    table, names = loaded
    near_chance = chance_level_groups(run)
    table = table[~table["run"].map(group_of).isin(near_chance)].reset_index(drop=True)
    if len(table) < 2 or table["ece"].min() == table["ece"].max():
        return []
    best, worst = table.loc[table["ece"].idxmin()], table.loc[table["ece"].idxmax()]
    among = f" among the {len(table)} models above chance level" if near_chance else ""
    ratio = f", {worst['ece'] / best['ece']:.2f}x the best" if best["ece"] > 0 else ""
    return [
        Finding("calibration", f"{names[best['run']]} is the best calibrated model before temperature scaling{among} "
                f"(ECE {num(best['ece'])}).", {"ece": best["ece"]}, CALIBRATION, kind="strength",
                subjects=(best["run"],)),
        Finding("calibration", f"{names[worst['run']]} is the worst calibrated model before temperature scaling{among} "
                f"(ECE {num(worst['ece'])}{ratio}).", {"ece": worst["ece"]}, CALIBRATION, kind="weakness",
                subjects=(worst["run"],)),
    ]


def confidence_gap(row: Any) -> float:
    """Mean confidence minus accuracy (NaN when either is missing): > 0 over-, < 0 under-confident."""
    return getattr(row, "mean_confidence", math.nan) - getattr(row, "accuracy", math.nan)


@finding_rule("confidence_direction", tags=("reliability",))
def confidence_direction(run: RunTables) -> list[Finding]:
    loaded = _calibration(run)
    if loaded is None or not has_columns(loaded[0], "mean_confidence", "accuracy"):
        return []
    table, names = loaded
    findings = []
    for row in table.dropna(subset=["mean_confidence", "accuracy"]).itertuples():
        gap = confidence_gap(row)
        numbers = {"mean_confidence": row.mean_confidence, "accuracy": row.accuracy, "gap": gap}
        quoted = f"mean confidence {pct(row.mean_confidence)} against {pct(row.accuracy)} accuracy"
        if abs(gap) < CONFIDENCE_TOLERANCE:
            text = f"{names[row.run]}'s confidence matches its accuracy: {quoted} (gap {signed_pp(gap)})."
            findings.append(Finding("calibration", text, numbers, CALIBRATION, kind="strength", subjects=(row.run,)))
        else:
            direction = "over-confident" if gap > 0 else "under-confident"
            text = f"{names[row.run]} is {direction}: {quoted} (gap {signed_pp(gap)})."
            findings.append(Finding("calibration", text, numbers, CALIBRATION, kind="weakness", subjects=(row.run,)))
    return findings


def temperature_meaning(temperature: float, gap: float) -> str:
    """What T says, checked against the test-set confidence gap: T > 1 only means over-confidence
    when the model's confidence actually exceeds its accuracy (a chance-level model's T is noise)."""
    if temperature == 1:
        return "= 1: no change"
    effect = "> 1: logits softened" if temperature > 1 else "< 1: logits sharpened"
    expected = "over-confident" if temperature > 1 else "under-confident"
    if math.isnan(gap):
        return f"{effect}, the model was {expected} on the validation split"
    if abs(gap) < CONFIDENCE_TOLERANCE:
        return f"{effect}, although on the test set its confidence already matched its accuracy (gap {signed_pp(gap)})"
    actual = "over-confident" if gap > 0 else "under-confident"
    if actual == expected:
        return f"{effect}, the model was {actual} (test gap {signed_pp(gap)})"
    return f"{effect}, although on the test set the model is {actual} (gap {signed_pp(gap)})"


@finding_rule("temperature_scaling", tags=("reliability",))
def temperature_scaling(run: RunTables) -> list[Finding]:
    """T > 1 softens the logits, T < 1 sharpens them; the direction is checked against the confidence gap."""
    loaded = _calibration(run)
    if loaded is None or not has_columns(loaded[0], "temperature", "ece_after_ts"):
        return []
    table, names = loaded
    findings = []
    for row in table.dropna(subset=["temperature", "ece_after_ts"]).itertuples():
        change = f" ({(row.ece_after_ts - row.ece) / row.ece:+.1%})" if row.ece else ""
        text = (f"Temperature scaling on {names[row.run]} (T = {num(row.temperature, 3)} "
                f"{temperature_meaning(row.temperature, confidence_gap(row))}) moves ECE from "
                f"{num(row.ece)} to {num(row.ece_after_ts)}{change}.")
        kind: Kind = "strength" if row.ece_after_ts < row.ece else "weakness" if row.ece_after_ts > row.ece else "note"
        findings.append(Finding("calibration", text, {"temperature": row.temperature, "ece": row.ece,
                                                      "ece_after_ts": row.ece_after_ts}, CALIBRATION, kind=kind,
                                subjects=(row.run,)))
    return findings
