"""Rules on corruption robustness (CIFAR-10-C): mCE, corruption families, severity, calibration."""

from __future__ import annotations

import pandas as pd

from xaiquest.report.derived import chance_level_groups, robustness_families
from xaiquest.report.reader import ROBUSTNESS_ACCURACY, ROBUSTNESS_FAMILIES, ROBUSTNESS_SUMMARY, RunTables, group_of
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import has_columns, join_and, num, pct, plural, signed_pp


@finding_rule("robustness_ranking", tags=("generalisation",))
def robustness_ranking(run: RunTables) -> list[Finding]:
    table = run.csv(ROBUSTNESS_SUMMARY)
    if not has_columns(table, "run", "mce"):
        return []
    table = table.dropna(subset=["mce"]).reset_index(drop=True)
    names = run.labels(table["run"])

    def describe(row: pd.Series) -> str:
        parts = [f"mCE {num(row['mce'], 3)}"]
        if pd.notna(row.get("relative_mce")):
            parts.append(f"relative mCE {num(row['relative_mce'], 3)}")
        if pd.notna(row.get("mean_corruption_accuracy")) and pd.notna(row.get("clean_accuracy")):
            parts.append(f"{pct(row['mean_corruption_accuracy'])} mean corruption accuracy vs "
                         f"{pct(row['clean_accuracy'])} clean")
        return ", ".join(parts)

    best, worst = table.loc[table["mce"].idxmin()], table.loc[table["mce"].idxmax()]
    if len(table) > 1 and best["mce"] == worst["mce"]:
        return []
    if len(table) == 1:
        return [Finding("robustness", f"{names[best['run']]}: {describe(best)}.", {"mce": best["mce"]},
                        ROBUSTNESS_SUMMARY)]
    findings = [
        Finding("robustness", f"{names[best['run']]} is the most robust model to corruptions ({describe(best)}).",
                {"mce": best["mce"]}, ROBUSTNESS_SUMMARY, kind="strength", subjects=(best["run"],)),
        Finding("robustness", f"{names[worst['run']]} is the least robust model to corruptions ({describe(worst)}).",
                {"mce": worst["mce"]}, ROBUSTNESS_SUMMARY, kind="weakness", subjects=(worst["run"],)),
    ]
    above_chance = table[~table["run"].map(group_of).isin(chance_level_groups(run))]
    if has_columns(above_chance, "relative_mce") and pd.notna(best.get("relative_mce")):
        relative = above_chance.loc[above_chance["relative_mce"].idxmin()]
        if relative["run"] != best["run"] and relative["relative_mce"] < best["relative_mce"]:
            text = (f"By relative mCE (degradation beyond the clean error) the most robust model is "
                    f"{names[relative['run']]} ({num(relative['relative_mce'], 3)}), not {names[best['run']]} "
                    f"({num(best['relative_mce'], 3)}).")
            findings.append(Finding("robustness", text, {"relative_mce": relative["relative_mce"]}, ROBUSTNESS_SUMMARY))
    return findings


def _extremes(values: pd.Series) -> str:
    """The index labels holding ``values``' extreme, joined (ties name every holder)."""
    return join_and([str(i) for i in values.index])


@finding_rule("worst_corruption_family", tags=("generalisation",))
def worst_corruption_family(run: RunTables) -> list[Finding]:
    families = robustness_families(run)
    if families is None:
        return []
    names = run.labels(families["model"])
    findings = []
    for model, rows in families.groupby("model", sort=False):
        accuracy = rows.set_index("family")["mean_accuracy"].dropna()
        if accuracy.empty:
            continue
        low, high = accuracy.min(), accuracy.max()
        over = f"mean accuracy over severities 1-{rows['max_severity'].iloc[0]}"
        if len(accuracy) == 1:
            text = f"{names[model]} keeps {pct(low)} {over} on {accuracy.index[0]} corruptions, the only family measured."
        elif low == high:
            text = f"{names[model]} is equally accurate on all {len(accuracy)} corruption families ({pct(low)} {over})."
        else:
            text = (f"{names[model]} is weakest on {_extremes(accuracy[accuracy == low])} corruptions ({pct(low)} {over}) "
                    f"and strongest on {_extremes(accuracy[accuracy == high])} ({pct(high)}).")
        findings.append(Finding("robustness", text, {"worst": low, "best": high}, ROBUSTNESS_FAMILIES,
                                kind="weakness" if len(accuracy) > 1 and low < high else "note", subjects=(model,)))
    return findings


@finding_rule("hardest_family_overall", tags=("generalisation",))
def hardest_family_overall(run: RunTables) -> list[Finding]:
    """The family that costs the most accuracy averaged over models above chance (the summary's headline)."""
    families = robustness_families(run)
    if families is None:
        return []
    families = families[~families["model"].map(group_of).isin(chance_level_groups(run))]
    accuracy = families.groupby("family", sort=False)["mean_accuracy"].mean().dropna()
    if len(accuracy) < 2 or accuracy.min() == accuracy.max():
        return []
    low, high = accuracy.min(), accuracy.max()
    clean = families.drop_duplicates("model")["clean_accuracy"].mean()
    models = plural(families["model"].nunique(), "model")
    text = (f"Averaged over {models} and severities, {_extremes(accuracy[accuracy == low])} corruptions are the "
            f"hardest family ({pct(low)} mean accuracy") + (f" against {pct(clean)} clean" if pd.notna(clean) else "")
    text += f") and {_extremes(accuracy[accuracy == high])} the easiest ({pct(high)})."
    return [Finding("robustness", text, {"hardest": low, "easiest": high}, ROBUSTNESS_FAMILIES, kind="weakness")]


@finding_rule("severity_drop", tags=("generalisation",))
def severity_drop(run: RunTables) -> list[Finding]:
    families = robustness_families(run)
    if families is None or families["drop"].isna().all():
        return []
    families = families.dropna(subset=["drop"])
    names = run.labels(families["model"])
    findings = []
    for model, rows in families.groupby("model", sort=False):
        most, least = rows.loc[rows["drop"].idxmax()], rows.loc[rows["drop"].idxmin()]

        def change(row: pd.Series) -> str:
            return f"{signed_pp(-row['drop'])}, to {pct(row['max_severity_accuracy'])}"

        start = f"From clean images ({pct(most['clean_accuracy'])}) to severity {most['max_severity']}, {names[model]}"
        if most["family"] == least["family"] or most["drop"] == least["drop"]:
            which = most["family"] if len(rows) == 1 else f"all {len(rows)} families"
            text = f"{start}'s accuracy changes by the same amount on {which} ({change(most)})."
        else:
            text = (f"{start}'s accuracy changes worst on {most['family']} ({change(most)}) and best on "
                    f"{least['family']} ({change(least)}).")
        findings.append(Finding("robustness", text, {"largest_drop": most["drop"], "smallest_drop": least["drop"]},
                                ROBUSTNESS_FAMILIES))
    return findings


@finding_rule("corruption_calibration", tags=("reliability", "generalisation"))
def corruption_calibration(run: RunTables) -> list[Finding]:
    table = run.csv(ROBUSTNESS_ACCURACY)
    if not has_columns(table, "model", "severity", "ece") or not (table["severity"] == 0).any():
        return []
    top = table["severity"].max()
    clean = table[table["severity"] == 0].groupby("model", sort=False)["ece"].mean()
    severe = table[table["severity"] == top].groupby("model", sort=False)["ece"].mean()
    names = run.labels(clean.index)
    findings = []
    for model in clean.index.intersection(severe.index):
        before, after = clean[model], severe[model]
        verb = "rises" if after > before else "falls" if after < before else "stays the same,"
        ratio = f", {after / before:.1f}x" if before > 0 else ""
        text = (f"{names[model]}'s ECE {verb} from {num(before)} on clean images to {num(after)} at severity {top} "
                f"(mean over corruptions{ratio}).")
        findings.append(Finding("robustness", text, {"ece_clean": before, "ece_severe": after}, ROBUSTNESS_ACCURACY,
                                kind="weakness" if after > before else "strength", subjects=(model,)))
    return findings
