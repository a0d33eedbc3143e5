"""Rules on transfer: what starting from weights bought on the target task, and which depths training moved."""

from __future__ import annotations

import pandas as pd

from xaiquest.report.derived import FROM_SCRATCH, FROM_WEIGHTS, transfer_depths, transfer_summary
from xaiquest.report.reader import TRANSFER, TRANSFER_SUMMARY, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import join_and, num, pct, signed_pp

UNMOVED = 1e-3
"""CKA within this of 1 at every depth: the backbone is its starting weights (a linear probe's is)."""


@finding_rule("transfer_accuracy", tags=("generalisation",))
def transfer_accuracy(run: RunTables) -> list[Finding]:
    """Each architecture's runs from weights against its run from scratch, on the same target test set."""
    table = transfer_summary(run)
    if table is None or "accuracy" not in table:
        return []
    findings = []
    for architecture, rows in table.groupby(table["group"].str.split("__").str[0], sort=False):
        scratch, started = rows[rows["start"] == FROM_SCRATCH], rows[rows["start"] == FROM_WEIGHTS]
        if scratch.empty or started.empty:
            continue
        base = scratch.iloc[0]
        parts = [f"{row['model']} {pct(row['accuracy'])} ({signed_pp(row['accuracy'] - base['accuracy'])})"
                 for _, row in started.iterrows()]
        text = (f"Started from weights, {join_and(parts)} test accuracy, against {pct(base['accuracy'])} for "
                f"{base['model']} trained from scratch on the same images.")
        numbers = {f"accuracy_{row['group']}": row["accuracy"] for _, row in rows.iterrows()}
        findings.append(Finding("transfer", text + _calibration_and_robustness(started, base), numbers,
                                TRANSFER_SUMMARY, subjects=tuple(rows["group"])))
    return findings


def _calibration_and_robustness(started: pd.DataFrame, base: pd.Series) -> str:
    """`` ECE 0.031 and 0.045 vs 0.052; mCE ...``: the other criteria the run measured, in the same order."""
    quoted = []
    for column, name in (("ece", "ECE"), ("mce", "mCE")):
        if column in started and pd.notna(base.get(column)):
            quoted.append(f"{name} {join_and([num(v, 3) for v in started[column]])} vs {num(base[column], 3)}")
    return f" {'; '.join(quoted)} (same order, from scratch last)." if quoted else ""


@finding_rule("transfer_depths", tags=("generalisation",))
def transfer_depths_moved(run: RunTables) -> list[Finding]:
    """Per run from weights: the depth training moved most (lowest CKA to the start) against the least moved."""
    depths = transfer_depths(run)
    if depths is None:
        return []
    names = run.labels(depths["group"])
    findings = []
    for group, rows in depths.groupby("group", sort=False):
        if len(rows) < 2:
            continue
        most, least = rows.loc[rows["cka"].idxmin()], rows.loc[rows["cka"].idxmax()]
        numbers = {"min_cka": most["cka"], "max_cka": least["cka"], "min_cka_spearman": most["map_spearman"]}
        if 1 - most["cka"] <= UNMOVED:
            text = (f"{names[group]} kept its starting weights' representation at every depth (CKA >= "
                    f"{num(most['cka'], 3)}): only its classifier trained.")
        else:
            text = (f"Training moved {names[group]} most at {most['depth']}: CKA {num(most['cka'], 2)} to its starting "
                    f"weights (class-free maps: Spearman {num(most['map_spearman'], 2)}, top-k IoU "
                    f"{num(most['map_topk_iou'], 2)}) vs {num(least['cka'], 2)} at {least['depth']}.")
        findings.append(Finding("transfer", text, numbers, TRANSFER, subjects=(group,)))
    return findings
