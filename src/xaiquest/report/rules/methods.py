"""Rule profiling each explanation method's strengths and weaknesses across criteria."""

from __future__ import annotations

import math

import pandas as pd

from xaiquest.report.derived import xai_method_table
from xaiquest.report.reader import XAI_METHODS, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import has_columns, ms, num, ordinal, pct, plural


PROFILE = (  # column, criterion, lower is better, value format
    ("faithfulness_rank", "faithfulness", True, lambda v: f"mean rank {num(v, 2)}"),
    ("agreement_iou", "agreement with the other methods", False, lambda v: f"mean top-k IoU {num(v, 3)}"),
    ("seconds_per_image", "cost", True, lambda v: f"{ms(v)} per image"),
    ("patch_mass_inside", "attribution mass on the planted patch", False, pct),
)
"""Criteria of the strengths/weaknesses profile: top third of the methods = strength, bottom third = weakness."""


@finding_rule("xai_method_profiles")
def xai_method_profiles(run: RunTables) -> list[Finding]:
    table = xai_method_table(run)
    if table is None or len(table) < 3:
        return []
    findings = []
    for i, row in table.iterrows():
        strengths, weaknesses = [], []
        for column, criterion, lower, fmt in PROFILE:
            if not has_columns(table, column) or pd.isna(row[column]):
                continue
            values = table[column].dropna()
            position = int(values.rank(ascending=lower, method="min")[i])
            third = math.ceil(len(values) / 3)
            quoted = f"{criterion} ({fmt(row[column])}, {ordinal(position)} of {len(values)})"
            if position <= third:
                strengths.append(quoted)
            elif position > len(values) - third:
                weaknesses.append(quoted)
        if row.get("sanity_fails", 0) > 0:
            weaknesses.append(f"fails the sanity check on {row['sanity_fails']} of {plural(row['models'], 'model')}")
        method = row["method"]
        if strengths:
            findings.append(Finding("xai_methods", f"Strengths of {method}: " + "; ".join(strengths) + ".",
                                    {"strengths": float(len(strengths))}, XAI_METHODS, kind="strength"))
        if weaknesses:
            findings.append(Finding("xai_methods", f"Weaknesses of {method}: " + "; ".join(weaknesses) + ".",
                                    {"weaknesses": float(len(weaknesses))}, XAI_METHODS, kind="weakness"))
        if not strengths and not weaknesses:
            findings.append(Finding("xai_methods", f"{method} sits in the middle third of the methods on every "
                                    "measured criterion.", {}, XAI_METHODS))
    return findings
