"""Findings of the concepts stage: shape/texture bias, colour reliance, significant TCAV concepts, detector units.

Each rule reads a ``tables/concepts_*.csv`` written by the concepts stage and quotes its numbers
(a change next to its metric, with one sign); a missing table yields no finding. Each finding names
the run it judges (``subjects``), so a strength of a chance-level model is demoted like any other.
"""

from __future__ import annotations

import pandas as pd

from xaiquest.config import BASELINE
from xaiquest.report.reader import (
    CONCEPTS_DETECTORS,
    CONCEPTS_RELIANCE,
    CONCEPTS_SUMMARY,
    CONCEPTS_TCAV,
    CONCEPTS_TCAV_UNTRAINED,
    RunTables,
)
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import as_bool, num, pct, plural, pp, signed_pp

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
        text = (f"{names[row.run]}: shape bias {num(row.shape_bias, 3)} on cue-conflict images "
                f"({pct(row.shape_decisions)} shape, {pct(row.texture_decisions)} texture decisions); "
                f"silhouette accuracy {pct(row.silhouette_accuracy)}, outline {pct(row.outline_accuracy)}.")
        findings.append(Finding("concepts", text, {"shape_bias": row.shape_bias}, CONCEPTS_SUMMARY,
                                kind="weakness" if row.shape_bias < TEXTURE_BIASED else "strength", subjects=(row.run,)))
    base = table[table["variant"] == BASELINE].set_index(["model", "seed"])
    for row in table[table["variant"] != BASELINE].itertuples():
        if (row.model, row.seed) not in base.index:
            continue
        before = base.at[(row.model, row.seed), "shape_bias"]
        if pd.notna(before) and pd.notna(row.shape_bias):
            change = row.shape_bias - before
            verb = "raises" if change > 0 else "lowers" if change < 0 else "leaves unchanged"
            seed = f" (seed {row.seed})" if table["seed"].nunique() > 1 else ""
            text = (f"On {row.model}{seed}, {row.variant} {verb} shape bias: {num(before, 3)} -> {num(row.shape_bias, 3)} "
                    f"({change:+.3f}) against its baseline.")
            findings.append(Finding("concepts", text, {"shape_bias_change": change}, CONCEPTS_SUMMARY, subjects=(row.run,)))
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
        if pd.isna(row.clean_accuracy) or pd.isna(row.grayscale_accuracy):
            continue
        drop = row.clean_accuracy - row.grayscale_accuracy
        verb = f"loses {pp(drop)}" if drop > 0 else f"gains {pp(-drop)}" if drop < 0 else "keeps its accuracy"
        text = (f"{names[row.run]} {verb} without colour: accuracy {pct(row.clean_accuracy)} -> "
                f"{pct(row.grayscale_accuracy)} ({signed_pp(-drop)}) on grayscale images")
        classes = (reliance[reliance["run"] == row.run].dropna(subset=["colour_reliance"])
                   if reliance is not None and "run" in reliance else pd.DataFrame())
        if not classes.empty and classes["colour_reliance"].max() > 0:
            worst = classes.loc[classes["colour_reliance"].idxmax()]
            text += (f"; {worst['class']} loses most: recall {pct(worst['recall'])} -> {pct(worst['grayscale_recall'])} "
                     f"({signed_pp(worst['grayscale_recall'] - worst['recall'])})")
        findings.append(Finding("concepts", text + ".", {"grayscale_drop": drop}, CONCEPTS_SUMMARY,
                                kind="weakness" if drop >= COLOUR_DROP else "note", subjects=(row.run,)))
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
            text = (f"{names[run_id]}: 0 of {len(rows)} (depth, concept, class) TCAV tests significant after correction; "
                    "no concept is significant for any class at any depth.")
        else:
            counts = hits.groupby("concept")["class_name"].nunique().sort_values(ascending=False)
            parts = [f"{concept} ({plural(int(n), 'class', 'classes')})" for concept, n in counts.head(5).items()]
            text = (f"{names[run_id]}: {len(hits)} of {len(rows)} (depth, concept, class) TCAV tests significant after "
                    f"correction; most often {', '.join(parts)}.")
        if "degenerate" in rows:
            flat = rows[as_bool(rows["degenerate"])]
            if len(flat):
                depths = ", ".join(dict.fromkeys(flat["depth"].astype(str)))
                text += (f" {len(flat)} tests were not made: at {depths} the class gradient has the same sign along "
                         "every random direction for all of a class's images, so a sign count cannot measure a concept.")
        findings.append(Finding("concepts", text, {"significant": float(len(hits))}, CONCEPTS_TCAV, subjects=(run_id,)))
    return findings


@finding_rule("concept_tcav_untrained", tags=("bias",))
def concept_tcav_untrained(run: RunTables) -> list[Finding]:
    """Per architecture: how many TCAV tests an untrained copy passes, against its trained models' counts. A trained
    model that passes no more is a weakness: its significant concepts say more about the architecture than about
    what it learned."""
    untrained, trained = run.csv(CONCEPTS_TCAV_UNTRAINED), run.csv(CONCEPTS_TCAV)
    if untrained is None or trained is None or "significant" not in untrained or "significant" not in trained:
        return []
    counts = trained.groupby("run", sort=False)["significant"].agg(lambda s: int(as_bool(s).sum()))
    findings = []
    for owner, rows in untrained.groupby("run", sort=False):
        prefix = str(owner).split("__")[0] + "__"
        models = counts[[str(r).startswith(prefix) for r in counts.index]]
        if models.empty:
            continue
        hits, low, high = int(as_bool(rows["significant"]).sum()), int(models.min()), int(models.max())
        span = str(low) if low == high else f"{low}–{high}"
        text = (f"Untrained {rows['architecture'].iloc[0]} (initial weights, the same probes and test): {hits} of "
                f"{len(rows)} (depth, concept, class) TCAV tests significant after correction, against {span} for its "
                f"{plural(len(models), 'trained model', 'trained models')}.")
        no_more = models[models <= hits]
        if len(no_more):
            verb = "passes" if len(no_more) == 1 else "pass"
            text += (f" {len(no_more)} of them {verb} no more tests than the untrained copy: read their significant "
                     "concepts as the architecture's response to the probe images, not as evidence of a learned concept.")
        findings.append(Finding("concepts", text, {"untrained_significant": float(hits), "trained_significant_min": float(low)},
                                CONCEPTS_TCAV_UNTRAINED, kind="weakness" if len(no_more) else "note",
                                subjects=tuple(no_more.index if len(no_more) else models.index)))
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
            most = int(colour.max())
            if most == 0:
                text = f"{names[run_id]}: no depth has a colour detector (unit-concept pair with IoU above the threshold)."
            else:
                tied = list(colour.index[colour == most])
                where = (f"{tied[0]} has" if len(tied) == 1 else f"{' and '.join(tied)} each have")
                text = (f"{names[run_id]}: {where} {plural(most, 'colour detector')} (unit-concept pairs with IoU "
                        f"above the threshold), the most of any depth.")
            findings.append(Finding("concepts", text, {"colour_detectors": float(most)}, CONCEPTS_DETECTORS,
                                    subjects=(run_id,)))
        patch = rows[rows["concept"] == "patch"]
        if not patch.empty:
            total = int(patch["detectors"].sum())
            where = ", ".join(f"{r.depth} {int(r.detectors)}" for r in patch.itertuples() if r.detectors)
            findings.append(Finding("concepts", f"{names[run_id]}: {plural(total, 'patch-detector unit')}"
                                    + (f" ({where})." if total else "."), {"patch_detectors": float(total)},
                                    CONCEPTS_DETECTORS, kind="weakness" if total else "note", subjects=(run_id,)))
    return findings
