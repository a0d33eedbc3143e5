"""Rules on explanation methods: faithfulness, sanity checks, agreement, cost, completeness."""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from xaiquest.report.derived import FAITHFULNESS, explain_quality, faithfulness_ranks
from xaiquest.report.reader import AGREEMENT, EXPLAIN_QUALITY, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import as_bool, has_columns, holders, join_and, ms, num, plural


IDENTICAL_IOU = 0.999
"""Top-k IoU from which two methods' top regions count as the same."""


@finding_rule("faithfulness_per_model")
def faithfulness_per_model(run: RunTables) -> list[Finding]:
    quality = explain_quality(run)
    if quality is None:
        return []
    names = run.labels(quality["run"])
    labels = {"deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC", "road_gap": "ROAD gap"}
    findings = []
    for run_id, rows in quality.groupby("run", sort=False):
        parts, numbers = [], {}
        for metric, lower in FAITHFULNESS.items():
            if not has_columns(rows, metric):
                continue
            best = rows.loc[rows[metric].idxmin() if lower else rows[metric].idxmax()]
            parts.append(f"{best['method']} by {labels[metric]} ({num(best[metric])}"
                         f"{', lower is better' if lower else ''})")
            numbers[metric] = best[metric]
        if parts:
            text = f"On {names[run_id]} the most faithful method is " + join_and(parts) + "."
            findings.append(Finding("explanations", text, numbers, EXPLAIN_QUALITY))
    return findings


@finding_rule("faithfulness_overall", tags=("reliability",))
def faithfulness_overall(run: RunTables) -> list[Finding]:
    quality = explain_quality(run)
    if quality is None:
        return []
    ranks = faithfulness_ranks(quality)
    mean = ranks.groupby("method", sort=False)["faithfulness_rank"].mean().dropna()
    if len(mean) < 2:
        return []
    metrics = [m.replace("_", " ") for m in FAITHFULNESS if m in ranks]
    best, worst = mean.min(), mean.max()
    if best == worst:
        return []
    text = (f"Aggregated over {plural(quality['run'].nunique(), 'model')} and {len(metrics)} faithfulness metrics "
            f"({', '.join(metrics)}), {holders(mean, best)} the best mean rank ({num(best, 2)} of {len(mean)} methods) "
            f"and {holders(mean, worst)} the worst ({num(worst, 2)}).")
    return [Finding("explanations", text, {"best_rank": best, "worst_rank": worst}, EXPLAIN_QUALITY)]


@finding_rule("sanity_failures", tags=("reliability",))
def sanity_failures(run: RunTables) -> list[Finding]:
    quality = explain_quality(run)
    if quality is None or "sanity_fails" not in quality:
        return []
    names = run.labels(quality["run"])
    failed = quality[as_bool(quality["sanity_fails"])]
    if failed.empty:
        text = (f"All {quality['method'].nunique()} methods pass the cascading-randomisation sanity check on all "
                f"{plural(quality['run'].nunique(), 'model')}: their maps change once the weights are randomised.")
        numbers = {"failures": 0.0}
        if has_columns(quality, "sanity_ssim"):
            top = quality.loc[quality["sanity_ssim"].idxmax()]
            text = text[:-1] + (f" (highest final SSIM: {num(top['sanity_ssim'], 3)}, {top['method']} on "
                                f"{names[top['run']]}).")
            numbers["max_ssim"] = top["sanity_ssim"]
        return [Finding("explanations", text, numbers, EXPLAIN_QUALITY, kind="strength")]
    per_method = failed.groupby("method", sort=False)["run"].nunique()
    models = quality["run"].nunique()
    listed = join_and([f"{method} ({m} of {plural(models, 'model')})" for method, m in per_method.items()])
    overview = (f"{plural(len(per_method), 'method')} of {quality['method'].nunique()} "
                f"{'fails' if len(per_method) == 1 else 'fail'} the cascading-randomisation sanity check on at least "
                f"one model: {listed}. {'Its' if len(per_method) == 1 else 'Their'} maps barely depend on the learned "
                "weights there.")
    findings = [Finding("explanations", overview, {"failing_methods": float(len(per_method))}, EXPLAIN_QUALITY,
                        kind="weakness")]
    for row in failed.itertuples():
        text = (f"{row.method} fails the cascading-randomisation sanity check on {names[row.run]}: with every layer "
                f"randomised its maps stay similar to the trained model's (final SSIM {num(row.sanity_ssim, 3)}, "
                f"Spearman {num(row.sanity_spearman, 3)}).")
        findings.append(Finding("explanations", text, {"ssim": row.sanity_ssim, "spearman": row.sanity_spearman},
                                EXPLAIN_QUALITY, kind="weakness"))
    return findings


def _pairs(matrix: pd.DataFrame) -> pd.Series:
    """Off-diagonal upper-triangle entries of a method x method matrix, indexed by (a, b)."""
    methods = [m for m in matrix.index if m in matrix.columns]
    return pd.Series({(a, b): matrix.at[a, b] for a, b in combinations(methods, 2)}).dropna()


@finding_rule("method_agreement")
def method_agreement(run: RunTables) -> list[Finding]:
    matrices = run.per_run_csv(AGREEMENT, index_col=0)
    names = run.labels(matrices)
    findings = []
    for run_id, matrix in matrices.items():
        pairs = _pairs(matrix)
        if len(pairs) < 2:
            continue
        (a, b), (c, d) = pairs.idxmax(), pairs.idxmin()
        same = " - their top-k regions coincide" if pairs[(a, b)] >= IDENTICAL_IOU else ""
        text = (f"On {names[run_id]}, {a} and {b} agree most (top-k IoU {num(pairs[(a, b)], 3)}{same}) and {c} and "
                f"{d} least ({num(pairs[(c, d)], 3)}).")
        findings.append(Finding("explanations", text, {"max_iou": pairs[(a, b)], "min_iou": pairs[(c, d)]},
                                run.model_file(run_id, AGREEMENT)))
    return findings


@finding_rule("method_cost")
def method_cost(run: RunTables) -> list[Finding]:
    quality = explain_quality(run)
    if not has_columns(quality, "seconds_per_image"):
        return []
    cost = quality.groupby("method", sort=False)["seconds_per_image"].mean().dropna()
    if len(cost) < 2:
        return []
    cheap, dear = cost.idxmin(), cost.idxmax()
    ratio = f", {cost[dear] / cost[cheap]:.0f}x more" if cost[cheap] > 0 else ""
    text = (f"{cheap} is the cheapest method ({ms(cost[cheap])} per image, mean over "
            f"{plural(quality['run'].nunique(), 'model')}) and {dear} the most expensive ({ms(cost[dear])}{ratio}).")
    return [Finding("explanations", text, {"cheapest_s": cost[cheap], "dearest_s": cost[dear]}, EXPLAIN_QUALITY)]


@finding_rule("ig_completeness", tags=("reliability",))
def ig_completeness(run: RunTables) -> list[Finding]:
    quality = explain_quality(run)
    if not has_columns(quality, "ig_delta_abs"):
        return []
    rows = quality.dropna(subset=["ig_delta_abs"])
    names = run.labels(rows["run"])
    values = ", ".join(f"{num(r.ig_delta_abs)} on {names[r.run]}" for r in rows.itertuples())
    text = (f"Integrated Gradients' completeness error, mean |sum of attributions - (F(x) - F(baseline))|, "
            f"is {values}.")
    return [Finding("explanations", text, {"max_delta": rows["ig_delta_abs"].max()}, EXPLAIN_QUALITY)]
