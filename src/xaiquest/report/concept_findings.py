"""Findings of the concepts stage: shape/texture bias, colour reliance, significant TCAV concepts, detector units.

Each rule reads a ``tables/concepts_*.csv`` written by the concepts stage and quotes its numbers;
a missing table yields no finding.
"""

from __future__ import annotations

import pandas as pd

from xaiquest.config import BASELINE
from xaiquest.report.findings import Finding, RunTables, as_bool, finding_rule, num, pct, plural, pp

CONCEPTS_SUMMARY = "tables/concepts_summary.csv"
CONCEPTS_RELIANCE = "tables/concepts_colour_reliance.csv"
CONCEPTS_TCAV = "tables/concepts_tcav.csv"
CONCEPTS_DETECTORS = "tables/concepts_detectors.csv"
CONCEPTS_TOP_UNITS = "tables/concepts_top_units.csv"

TEXTURE_BIASED = 0.5
"""Shape bias below 0.5: more texture than shape decisions on cue-conflict images."""
COLOUR_DROP = 0.05
"""A grayscale accuracy drop of >= 5 pp counts as relying on colour."""
COLOUR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "black", "white", "grey")


@finding_rule("concept_shape_bias", tags=("bias",))
def concept_shape_bias(run: RunTables) -> list[Finding]:
    """Each model's shape bias, and each variant's against its baseline's."""
    table = run.csv(CONCEPTS_SUMMARY)
    if table is None or "shape_bias" not in table:
        return []
    names = run.labels(table["run"])
    findings = []
    for row in table.itertuples():
        if pd.isna(row.shape_bias):
            continue
        text = (f"{names[row.run]}: shape bias {num(row.shape_bias, 2)} on cue-conflict images "
                f"({pct(row.shape_decisions)} shape, {pct(row.texture_decisions)} texture decisions); "
                f"silhouette accuracy {pct(row.silhouette_accuracy)}, outline {pct(row.outline_accuracy)}.")
        findings.append(Finding("concepts", text, {"shape_bias": row.shape_bias}, CONCEPTS_SUMMARY,
                                kind="weakness" if row.shape_bias < TEXTURE_BIASED else "strength"))
    base = table[table["variant"] == BASELINE].set_index(["model", "seed"])["shape_bias"]
    for row in table[table["variant"] != BASELINE].itertuples():
        before = base.get((row.model, row.seed))
        if before is not None and pd.notna(before) and pd.notna(row.shape_bias):
            verb = "raises" if row.shape_bias > before else "lowers"
            text = f"On {row.model}, {row.variant} {verb} shape bias from {num(before, 2)} to {num(row.shape_bias, 2)}."
            findings.append(Finding("concepts", text, {"shape_bias_change": row.shape_bias - before}, CONCEPTS_SUMMARY))
    return findings


@finding_rule("concept_colour_reliance", tags=("bias",))
def concept_colour_reliance(run: RunTables) -> list[Finding]:
    """Grayscale accuracy drop per model and the class that falls apart most without colour."""
    summary, reliance = run.csv(CONCEPTS_SUMMARY), run.csv(CONCEPTS_RELIANCE)
    if summary is None or "grayscale_accuracy" not in summary:
        return []
    names = run.labels(summary["run"])
    findings = []
    for row in summary.itertuples():
        drop = row.clean_accuracy - row.grayscale_accuracy
        text = f"{names[row.run]} loses {pp(drop)} without colour ({pct(row.clean_accuracy)} -> {pct(row.grayscale_accuracy)} on grayscale)"
        if reliance is not None and "run" in reliance:
            classes = reliance[reliance["run"] == row.run]
            if not classes.empty:
                worst = classes.loc[classes["colour_reliance"].idxmax()]
                text += f"; {worst['class']} most ({pct(worst['recall'])} -> {pct(worst['grayscale_recall'])} recall)"
        findings.append(Finding("concepts", text + ".", {"grayscale_drop": drop}, CONCEPTS_SUMMARY,
                                kind="weakness" if drop >= COLOUR_DROP else "note"))
    return findings


@finding_rule("concept_tcav", tags=("bias",))
def concept_tcav(run: RunTables) -> list[Finding]:
    """Per model: which concepts are significant (after correction) for which classes and depths."""
    table = run.csv(CONCEPTS_TCAV)
    if table is None or "significant" not in table:
        return []
    table["significant"] = as_bool(table["significant"])
    names = run.labels(table["run"])
    findings = []
    for run_id, rows in table.groupby("run", sort=False):
        hits = rows[rows["significant"]]
        if hits.empty:
            text = f"{names[run_id]}: no concept is significant for any class at any depth ({len(rows)} tests, corrected)."
        else:
            counts = hits.groupby("concept")["class_name"].nunique().sort_values(ascending=False)
            parts = [f"{concept} ({plural(int(n), 'class', 'classes')})" for concept, n in counts.head(5).items()]
            text = (f"{names[run_id]}: {len(hits)} of {len(rows)} (depth, concept, class) TCAV tests significant after "
                    f"correction; most often {', '.join(parts)}.")
        findings.append(Finding("concepts", text, {"significant": float(len(hits))}, CONCEPTS_TCAV))
    return findings


@finding_rule("concept_detectors", tags=("bias",))
def concept_detectors(run: RunTables) -> list[Finding]:
    """Per model: the depth with most colour detectors, and patch-detector units when the patch was dissected."""
    table = run.csv(CONCEPTS_DETECTORS)
    if table is None or "detectors" not in table:
        return []
    names = run.labels(table["run"])
    findings = []
    for run_id, rows in table.groupby("run", sort=False):
        colour = rows[rows["concept"].isin(COLOUR_NAMES)].groupby("depth", sort=False)["detectors"].sum()
        if not colour.empty:
            depth = colour.idxmax()
            findings.append(Finding("concepts", f"{names[run_id]}: {depth} has {plural(int(colour[depth]), 'colour detector')} "
                                    f"(unit-concept pairs with IoU above the threshold), the most of any depth.",
                                    {"colour_detectors": float(colour[depth])}, CONCEPTS_DETECTORS))
        patch = rows[rows["concept"] == "patch"]
        if not patch.empty:
            total = int(patch["detectors"].sum())
            where = ", ".join(f"{r.depth} {int(r.detectors)}" for r in patch.itertuples() if r.detectors)
            findings.append(Finding("concepts", f"{names[run_id]}: {plural(total, 'patch-detector unit')}"
                                    + (f" ({where})." if total else "."), {"patch_detectors": float(total)},
                                    CONCEPTS_DETECTORS, kind="weakness" if total else "note"))
    return findings
