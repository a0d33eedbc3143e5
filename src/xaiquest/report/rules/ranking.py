"""Rule on the final comparison: mean rank over the criteria and the trade-offs behind it."""

from __future__ import annotations

from xaiquest.report.derived import CRITERIA, final_ranking
from xaiquest.report.reader import FINAL_RANKING, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import holders, join_and, num


@finding_rule("overall_ranking")
def overall_ranking(run: RunTables) -> list[Finding]:
    table = final_ranking(run)
    if table is None or len(table) < 2:
        return []
    criteria = [c for c in CRITERIA if f"rank_{c}" in table]
    mean = table.set_index("model")["mean_rank"]
    best, worst = mean.min(), mean.max()
    findings = []
    if best < worst:
        findings.append(Finding("final", f"{holders(mean, best)} the best mean rank ({num(best, 2)}) over "
                                f"{join_and(criteria)}; {holders(mean, worst)} the worst ({num(worst, 2)}).",
                                {"best": best, "worst": worst}, FINAL_RANKING))
    ranked = [c for c in criteria if table[f"rank_{c}"].nunique() > 1]
    for _, row in table.iterrows():
        firsts = [c for c in ranked if row[f"rank_{c}"] == table[f"rank_{c}"].min()]
        lasts = [c for c in ranked if row[f"rank_{c}"] == table[f"rank_{c}"].max()]
        if firsts and lasts:
            text = f"Trade-off: {row['model']} ranks first on {join_and(firsts)} but last of {len(table)} on {join_and(lasts)}."
            findings.append(Finding("final", text, {"models": float(len(table))}, FINAL_RANKING))
    return findings
