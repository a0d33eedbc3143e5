"""Rules on the stress probes, the training variants and the planted patch."""

from __future__ import annotations

import math

import pandas as pd
from pandas.api.types import is_float_dtype

from xaiquest.config import BASELINE
from xaiquest.report.derived import runs_of, setting_differences, stress_tables, variant_table
from xaiquest.report.reader import COMPARISON, PATCH_LOCALISATION, PATCH_RELIANCE, REEXAMINE, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import has_columns, join_and, num, pct, plural, pp, signed_pp


SHORTCUT_SUCCESS = 0.5
SHORTCUT_RATIO = 5.0


CONDITION_COLUMNS = ("intensity", "level", "severity", "condition", "setting")
"""Columns that name a stress probe's condition (the intensity axis of docs/stress.md first)."""
STRESS_GAP = 0.05
"""A stress probe moving a model's score by >= 5 pp between conditions counts as a weakness."""


@finding_rule("stress_probe_sensitivity", tags=("bias",))
def stress_probe_sensitivity(run: RunTables) -> list[Finding]:
    """Per probe: how far each model's score moves between the probe's conditions.

    The score is ``accuracy`` (else ``macro_f1``); a row's condition is told by the columns named in
    ``CONDITION_COLUMNS`` when the table has any, else by its non-float columns other than the
    model and the probe.
    """
    findings = []
    for rel, table in stress_tables(run).items():
        metric = next((m for m in ("accuracy", "macro_f1") if has_columns(table, m)), None)
        who = next((c for c in ("run", "model") if c in table), None)
        if metric is None or who is None:
            continue
        conditions = [c for c in CONDITION_COLUMNS if c in table] or [
            c for c in table.columns if c not in {who, "probe", metric} and not is_float_dtype(table[c])]
        names = run.labels(table[who])
        for probe, rows in table.groupby("probe", sort=False):
            gaps = []
            for model, model_rows in rows.dropna(subset=[metric]).groupby(who, sort=False):
                if len(model_rows) >= 2:
                    hi = model_rows.loc[model_rows[metric].idxmax()]
                    lo = model_rows.loc[model_rows[metric].idxmin()]
                    gaps.append((hi[metric] - lo[metric], model, hi, lo))
            if not gaps:
                continue
            gap, model, hi, lo = max(gaps, key=lambda g: g[0])
            text = (f"Probe {probe}: {metric.replace('_', ' ')} moves most for {names[model]}, from {pct(hi[metric])} "
                    f"({_condition(hi, conditions)}) to {pct(lo[metric])} ({_condition(lo, conditions)}), "
                    f"a {pp(gap)} gap")
            if len(gaps) > 1:
                least = min(gaps, key=lambda g: g[0])
                text += f"; least for {names[least[1]]} ({pp(least[0])})"
            findings.append(Finding("stress", text + ".", {"gap": gap}, rel,
                                    kind="weakness" if gap >= STRESS_GAP else "note"))
    return findings


def _condition(row: pd.Series, columns: list[str]) -> str:
    return ", ".join(f"{c} {row[c]}" for c in columns) or f"row {row.name}"


VARIANT_METRICS = (("accuracy", "accuracy", pct), ("ece", "ECE", lambda v: num(v, 3)),
                   ("mce", "mCE", lambda v: num(v, 3)), ("stress_accuracy", "mean accuracy under the stress probes", pct))


def _variant_change(column: str, before: float, after: float) -> str:
    """The change of one variant metric, in its own unit, quoted right after the metric it belongs to."""
    if column in ("accuracy", "stress_accuracy"):
        return signed_pp(after - before)
    return f"{after - before:+.3f}"


@finding_rule("variant_effects", tags=("generalisation", "reliability"))
def variant_effects(run: RunTables) -> list[Finding]:
    """One sentence per variant: each metric of its baseline -> the variant's, with the change next to it."""
    table = variant_table(run)
    if table is None:
        return []
    findings = []
    for model, rows in table.groupby("model", sort=False):
        base = rows[rows["variant"] == BASELINE].iloc[0]
        for row in rows[rows["variant"] != BASELINE].itertuples():
            parts = [f"{label} {fmt(base[column])} -> {fmt(getattr(row, column))} "
                     f"({_variant_change(column, base[column], getattr(row, column))})"
                     for column, label, fmt in VARIANT_METRICS if pd.notna(base[column]) and pd.notna(getattr(row, column))]
            if not parts:
                continue
            text = f"{model} with {row.variant} instead of the baseline: {join_and(parts)}."
            differences = setting_differences(run, runs_of(run, f"{model}__{BASELINE}"),
                                              runs_of(run, f"{model}__{row.variant}"))
            if differences:
                text += f" Beyond the variant itself their recipes differ: {'; '.join(differences)}."
            findings.append(Finding("variants", text, {"accuracy_gain": row.accuracy - base["accuracy"]}, COMPARISON))
    return findings


@finding_rule("reexamination", tags=("reliability",))
def reexamination(run: RunTables) -> list[Finding]:
    """Confident-failure re-examination: what each variant makes of the baseline's most confident mistakes."""
    table = run.csv(REEXAMINE)
    if not has_columns(table, "model", "variant", "mistakes", "variant_correct", "baseline_confidence", "variant_prob_baseline_class"):
        return []
    findings = []
    for row in table.itertuples():
        text = (f"On {row.model}'s {row.mistakes} most confident baseline mistakes (mean confidence "
                f"{pct(row.baseline_confidence)}), {row.variant} predicts the true class for {pct(row.variant_correct)}, "
                f"repeats the baseline's wrong class for {pct(row.same_wrong_class)} and gives that class "
                f"{pct(row.variant_prob_baseline_class)} on average")
        if pd.notna(getattr(row, "gradcam_spearman", math.nan)):
            text += f"; its Grad-CAM rank-correlates {num(row.gradcam_spearman, 2)} with the baseline's"
        less_sure = row.variant_prob_baseline_class < row.baseline_confidence
        findings.append(Finding("variants", text + ".", {"variant_correct": row.variant_correct,
                                                         "variant_prob_baseline_class": row.variant_prob_baseline_class},
                                REEXAMINE, kind="strength" if less_sure and row.variant_correct > 0 else "note",
                                subjects=(f"{row.model}__{row.variant}",)))
    return findings


@finding_rule("patch_shortcut", tags=("bias",))
def patch_shortcut(run: RunTables) -> list[Finding]:
    table = run.csv(PATCH_RELIANCE)
    if not has_columns(table, "run", "attack_success", "baseline_attack_success"):
        return []
    names = run.labels(table["run"])
    findings = []
    for row in table.dropna(subset=["attack_success", "baseline_attack_success"]).itertuples():
        ratio = row.attack_success / row.baseline_attack_success if row.baseline_attack_success > 0 else math.inf
        detected = row.attack_success >= SHORTCUT_SUCCESS and ratio >= SHORTCUT_RATIO
        versus = (f"{ratio:.1f}x the baseline's {pct(row.baseline_attack_success)}" if math.isfinite(ratio)
                  else f"while the baseline never succeeds ({pct(row.baseline_attack_success)})")
        context = ""
        clean, recall = getattr(row, "clean_accuracy", math.nan), getattr(row, "target_recall_without_patch", math.nan)
        if pd.notna(clean) and pd.notna(recall):
            context = f"; clean accuracy {pct(clean)}, target-class recall without the patch {pct(recall)}"
        if detected:
            text = (f"Shortcut detected on {names[row.run]}: the planted patch sends {pct(row.attack_success)} of "
                    f"images to the target class, {versus}{context}.")
        else:
            text = (f"No shortcut detected on {names[row.run]}: attack success {pct(row.attack_success)}, {versus} "
                    f"(threshold: >= {pct(SHORTCUT_SUCCESS)} and >= {SHORTCUT_RATIO:.0f}x){context}.")
        findings.append(Finding("stress", text, {"attack_success": row.attack_success, "ratio": ratio}, PATCH_RELIANCE,
                                kind="weakness" if detected else "strength", subjects=(row.run,)))
    return findings


@finding_rule("patch_localisation", tags=("bias", "reliability"))
def patch_localisation(run: RunTables) -> list[Finding]:
    table = run.csv(PATCH_LOCALISATION)
    if not has_columns(table, "run", "method"):
        return []
    names = run.labels(table["run"])
    labels = {"mass_inside": ("puts the most attribution mass on the patch", pct),
              "tko": ("has the highest top-k overlap with it", lambda v: num(v, 3)),
              "pointing": ("points at it most often", pct)}
    findings = []
    for run_id, rows in table.groupby("run", sort=False):
        parts, numbers = [], {}
        for metric, (phrase, fmt) in labels.items():
            if has_columns(rows, metric):
                best = rows.loc[rows[metric].idxmax()]
                parts.append(f"{best['method']} {phrase} ({fmt(best[metric])})")
                numbers[metric] = best[metric]
        if parts:
            findings.append(Finding("stress", f"On {names[run_id]}, " + join_and(parts) + ".", numbers, PATCH_LOCALISATION))
    if has_columns(table, "win_rate") and table["method"].nunique() > 1:
        wins = table.groupby("method", sort=False)["win_rate"].mean()
        best = wins.idxmax()
        text = (f"Across {plural(table['run'].nunique(), 'model')}, {best} localises the planted patch best "
                f"(mean win rate {pct(wins[best])} against the other methods).")
        findings.append(Finding("stress", text, {"win_rate": wins[best]}, PATCH_LOCALISATION, kind="strength"))
    return findings
