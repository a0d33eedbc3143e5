"""Rules on training cost and test accuracy (Stage 1)."""

from __future__ import annotations

import math
from itertools import combinations

import pandas as pd

from xaiquest.report.derived import (
    CHANCE_MARGIN, chance_level_groups, class_count, run_accuracies, setting_differences, setup_table, without_planted,
)
from xaiquest.report.reader import COMPARISON, PER_CLASS, SETUP, RunTables, comparison_labels, group_of
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import has_columns, holders, join_and, pct, pp


@finding_rule("training_cost")
def training_cost(run: RunTables) -> list[Finding]:
    table = setup_table(run)
    if not has_columns(table, "train_time_s") or len(table) < 2:
        return []
    fast, slow = table.loc[table["train_time_s"].idxmin()], table.loc[table["train_time_s"].idxmax()]

    def params(row: pd.Series) -> str:
        return f", {row['params'] / 1e6:.2f} M parameters" if "params" in row and pd.notna(row["params"]) else ""

    numbers = {"fastest_s": fast["train_time_s"], "slowest_s": slow["train_time_s"]}
    if fast["train_time_s"] == slow["train_time_s"]:
        text = f"All {len(table)} models took the same training time ({fast['train_time_s']:.1f} s)."
        return [Finding("setup", text, numbers, SETUP)]
    ratio = f", {slow['train_time_s'] / fast['train_time_s']:.2f}x longer" if fast["train_time_s"] > 0 else ""
    text = (f"{fast['label']} trains fastest ({fast['train_time_s']:.1f} s{params(fast)}) and "
            f"{slow['label']} slowest ({slow['train_time_s']:.1f} s{params(slow)}){ratio}.")
    differences = setting_differences(run, [fast["run"]], [slow["run"]])
    if differences:
        text += f" Their recipes differ ({'; '.join(differences)}), so the times are not a like-for-like comparison"
        if has_columns(table, "epochs") and pd.notna(fast.get("epochs")) and pd.notna(slow.get("epochs")):
            per_fast, per_slow = fast["train_time_s"] / fast["epochs"], slow["train_time_s"] / slow["epochs"]
            text += f": per epoch {per_fast:.1f} s vs {per_slow:.1f} s"
            numbers |= {"fastest_s_per_epoch": per_fast, "slowest_s_per_epoch": per_slow}
        text += "."
    return [Finding("setup", text, numbers, SETUP)]


@finding_rule("chance_level", tags=("reliability", "generalisation"))
def chance_level(run: RunTables) -> list[Finding]:
    groups = sorted(chance_level_groups(run))
    if not groups:
        return []
    accuracy = pd.Series(run_accuracies(run), dtype=float)
    means = accuracy.groupby(accuracy.index.map(group_of)).mean()
    names, chance = run.labels(groups), 1 / class_count(run)
    quoted = join_and([f"{names[g]} ({pct(means[g])})" for g in groups])
    verb = "is" if len(groups) == 1 else "are"
    text = (f"{quoted} {verb} at or near chance level (chance is {pct(chance)} with {class_count(run)} classes; "
            f"flagged within {pp(CHANCE_MARGIN)} of it): such a model learned next to nothing, so its calibration, "
            "robustness and explanation results are not counted as strengths.")
    return [Finding("comparison", text, {"chance": chance, **{f"accuracy_{g}": means[g] for g in groups}},
                    COMPARISON, kind="weakness", subjects=tuple(groups))]


@finding_rule("accuracy_ranking", tags=("generalisation",))
def accuracy_ranking(run: RunTables) -> list[Finding]:
    table = run.csv(COMPARISON)
    if not has_columns(table, "model", "variant", "accuracy_mean"):
        return []
    table = without_planted(run, table.dropna(subset=["accuracy_mean"]))
    if table.empty:
        return []
    names = comparison_labels(run, table)
    best, worst = table["accuracy_mean"].idxmax(), table["accuracy_mean"].idxmin()
    top, low = table.at[best, "accuracy_mean"], table.at[worst, "accuracy_mean"]
    if len(table) == 1:
        return [Finding("comparison", f"{names[best]}, the only model, reaches {pct(top)} test accuracy.",
                        {"accuracy": top}, COMPARISON)]
    if top == low:
        text = f"All {len(table)} models reach the same test accuracy ({pct(top)})."
        return [Finding("comparison", text, {"accuracy": top}, COMPARISON)]
    accuracy = pd.Series(table["accuracy_mean"].to_numpy(), index=names.to_numpy())
    text = (f"{holders(accuracy, top)} the highest test accuracy ({pct(top)}) and {holders(accuracy, low)} the "
            f"lowest ({pct(low)}): a spread of {pp(top - low)} across {len(table)} models.")
    return [Finding("comparison", text, {"best": top, "worst": low, "spread": top - low}, COMPARISON)]


@finding_rule("accuracy_noise", tags=("reliability",))
def accuracy_noise(run: RunTables) -> list[Finding]:
    """Which accuracy gaps are smaller than seed noise: std of a difference = sqrt(std_a^2 + std_b^2)."""
    table = run.csv(COMPARISON)
    if not has_columns(table, "model", "variant", "accuracy_mean", "n_seeds") or len(table) < 2:
        return []
    names = comparison_labels(run, table)
    std = table["accuracy_std"] if "accuracy_std" in table else pd.Series(math.nan, index=table.index)
    if (table["n_seeds"] < 2).all():
        spread = table["accuracy_mean"].max() - table["accuracy_mean"].min()
        text = (f"Each of the {len(table)} models was trained with a single seed, so the accuracy differences "
                f"between them (up to {pp(spread)}) come with no estimate of seed noise.")
        return [Finding("comparison", text, {"spread": spread}, COMPARISON)]
    seeded = [i for i in table.index if table.at[i, "n_seeds"] >= 2 and pd.notna(std[i])]
    findings, margins = [], []
    for a, b in combinations(seeded, 2):
        diff = abs(table.at[a, "accuracy_mean"] - table.at[b, "accuracy_mean"])
        noise = math.hypot(std[a], std[b])
        margins.append((diff - noise, a, b, diff, noise))
        if diff < noise:
            text = (f"{names[a]} and {names[b]} are within seed noise: {pct(table.at[a, 'accuracy_mean'])} ± "
                    f"{pp(std[a])} vs {pct(table.at[b, 'accuracy_mean'])} ± {pp(std[b])}; the difference, "
                    f"{pp(diff)}, is below their combined std of {pp(noise)}.")
            findings.append(Finding("comparison", text, {"difference": diff, "combined_std": noise}, COMPARISON))
    if margins and not findings:
        _, a, b, diff, noise = min(margins)
        text = (f"All {len(seeded)} multi-seed models differ by more than their combined seed std "
                f"(closest pair: {names[a]} vs {names[b]}, {pp(diff)} > {pp(noise)}).")
        groups = tuple(f"{table.at[i, 'model']}__{table.at[i, 'variant']}" for i in table.index)
        findings.append(Finding("comparison", text, {"difference": diff, "combined_std": noise}, COMPARISON,
                                kind="strength", subjects=groups))
    return findings


@finding_rule("hardest_class", tags=("generalisation",))
def hardest_class(run: RunTables) -> list[Finding]:
    findings = []
    names = run.labels(run.runs)
    for run_id, table in run.per_run_csv(PER_CLASS).items():
        if not has_columns(table, "class", "recall"):
            continue
        worst, best = table.loc[table["recall"].idxmin()], table.loc[table["recall"].idxmax()]
        text = (f"{names[run_id]} recognises {worst['class']} worst (recall {pct(worst['recall'])}) and "
                f"{best['class']} best ({pct(best['recall'])}).")
        findings.append(Finding("comparison", text, {"worst_recall": worst["recall"], "best_recall": best["recall"]},
                                run.model_file(run_id, PER_CLASS)))
    return findings
