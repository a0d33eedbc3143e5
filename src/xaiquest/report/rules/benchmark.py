"""The planted-patch benchmark's verdict: whose localisation of the patch survives the control model.

Raw localisation cannot tell a map that follows the model's use of the patch from one that follows
the patch's salience; the contrast against a control twin that cannot use it can
(docs/xai-benchmark.md). These rules say so per reliant model, quoting the benchmark table.
"""

from __future__ import annotations

import pandas as pd

from xaiquest.report.reader import PATCH_RELIANCE, XAI_BENCHMARK, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.rules.stress import SHORTCUT_SUCCESS
from xaiquest.report.text import as_bool, has_columns, join_and, num, pct

BENCHMARK_METRIC = "tko"
"""The metric the verdict is written for: Top-K overlap, by which source document 002 ranks methods."""
REQUIRED_COLUMNS = ("run", "method", "kind", "metric", "reliant", "control", "contrast", "contrast_low", "contrast_high",
                    "threshold", "salience_driven", "beats_baselines", "rank")


def benchmark_rows(run: RunTables, metric: str = BENCHMARK_METRIC) -> pd.DataFrame | None:
    """The benchmark table's rows for ``metric`` (explainers and baselines), or None without a usable table."""
    table = run.csv(XAI_BENCHMARK)
    if not has_columns(table, *REQUIRED_COLUMNS):
        return None
    rows = table[table["metric"] == metric]
    return None if rows.empty else rows


def contrast_text(row: pd.Series) -> str:
    """``contrast 0.412 [0.301, 0.520]``: the mean contrast with its bootstrap interval."""
    return f"contrast {num(row['contrast'], 3)} [{num(row['contrast_low'], 3)}, {num(row['contrast_high'], 3)}]"


@finding_rule("patch_benchmark", tags=("reliability", "bias"))
def patch_benchmark(run: RunTables) -> list[Finding]:
    """Per reliant model: the explainers whose Top-K overlap survives the control, those that are salience-driven
    (flagged, and as high on the control), and those flagged because they miss the patch on both models."""
    rows = benchmark_rows(run)
    if rows is None:
        return []
    methods = rows[rows["kind"] == "method"]
    twins = methods["control_run"].dropna().astype(str) if "control_run" in methods else pd.Series(dtype=str)
    names = run.labels([*methods["run"], *twins])
    reliance = run.csv(PATCH_RELIANCE)
    attack = (reliance.set_index("run")["attack_success"].dropna() if has_columns(reliance, "run", "attack_success")
              else pd.Series(dtype=float))
    findings = []
    for run_id, group in methods.groupby("run", sort=False):
        threshold = num(group["threshold"].iloc[0], 3)
        twin = twins.reindex(group.index).dropna()
        control = f"model {names[twin.iloc[0]]}" if len(twin) else "twin"
        driven = as_bool(group["salience_driven"])
        lit_on_control = group["control"] >= group["threshold"]
        for verdict, chosen in (("survives", group[~driven]), ("salience", group[driven & lit_on_control]),
                                ("missed", group[driven & ~lit_on_control])):
            if chosen.empty:
                continue
            listed = join_and([f"{row['method']} ({contrast_text(row)})" for _, row in chosen.iterrows()])
            numbers = {row["method"]: row["contrast"] for _, row in chosen.iterrows()}
            one = len(chosen) == 1
            if verdict == "survives":
                text = (f"On {names[run_id]}, the Top-K overlap of {listed} {'survives' if one else 'survive'} the control "
                        f"{control}: the reliant model's map puts clearly more of its top pixels on the planted "
                        f"patch (interval above 0, mean contrast >= {threshold}).")
                behind = chosen[~as_bool(chosen["beats_baselines"])]
                text += _baselines_text(chosen, behind)
                kind = "strength" if behind.empty else "note"
            else:
                if verdict == "salience":
                    text = (f"On {names[run_id]}, the Top-K overlap of {listed} {'is' if one else 'are'} salience-driven: "
                            f"{'it lights' if one else 'they light'} the patch about as much on the control {control}, "
                            f"which cannot use it (interval reaching 0 or mean contrast below {threshold}).")
                else:
                    text = (f"On {names[run_id]}, the Top-K overlap of {listed} {'finds' if one else 'find'} the planted "
                            f"patch too rarely to show the model's use of it: below {threshold} on the control "
                            f"{control} and hardly more on the reliant model (interval reaching 0 or mean contrast "
                            f"below {threshold}).")
                kind = "weakness"
                if run_id in attack and attack[run_id] < SHORTCUT_SUCCESS:  # no reliance, nothing to find
                    text += (f" But the model itself sends only {pct(attack[run_id])} of stamped images to the target "
                             f"class (a shortcut needs >= {pct(SHORTCUT_SUCCESS)}): it may not use the patch either, "
                             "so this does not condemn the explainers.")
                    numbers["attack_success"] = attack[run_id]
                    kind = "note"
            findings.append(Finding("stress", text, numbers, XAI_BENCHMARK, kind=kind, subjects=(run_id,)))
    return findings


def _baselines_text(survivors: pd.DataFrame, behind: pd.DataFrame) -> str:
    """Which surviving methods fail to beat every trivial baseline on the reliant model (and which baselines)."""
    if behind.empty:
        return " Each also beats every trivial baseline map." if len(survivors) > 1 else " It also beats every trivial baseline map."
    parts = []
    for _, row in behind.iterrows():
        missed = row.get("baselines_not_beaten")
        parts.append(f"{row['method']} (not {str(missed).replace(';', ', ')})" if pd.notna(missed) and missed
                     else str(row["method"]))
    verb = "does" if len(behind) == 1 else "do"
    return f" Yet {join_and(parts)} {verb} not beat every trivial baseline map."
