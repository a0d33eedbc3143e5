"""Rules on layer-wise representations: clean-vs-noisy CKA and edge alignment by depth."""

from __future__ import annotations

import pandas as pd

from xaiquest.report.reader import LAYERWISE, RunTables
from xaiquest.report.registry import Finding, finding_rule
from xaiquest.report.text import has_columns, num


def _layerwise(run: RunTables, *columns: str) -> list[tuple[str, pd.DataFrame, str]]:
    table = run.csv(LAYERWISE)
    if not has_columns(table, "run", "depth", *columns):
        return []
    names = run.labels(table["run"])
    order = next(column for column in ("depth_index", "relative_depth", "depth") if column in table)  # shallow -> deep
    return [(run_id, rows.sort_values(order).dropna(subset=list(columns)), names[run_id])
            for run_id, rows in table.groupby("run", sort=False)]


@finding_rule("layerwise_cka", tags=("generalisation",))
def layerwise_cka(run: RunTables) -> list[Finding]:
    findings = []
    for _, rows, name in _layerwise(run, "cka_clean_vs_noisy"):
        if len(rows) < 2:
            continue
        cka = rows["cka_clean_vs_noisy"].to_numpy()
        depths = rows["depth"].to_numpy()
        steps = cka[1:] - cka[:-1]
        i = int(steps.argmin())
        low = int(cka.argmin())
        if steps[i] >= 0:
            text = (f"On {name}, clean-vs-noisy CKA never falls with depth ({num(cka[0], 3)} at depth {depths[0]} to "
                    f"{num(cka[-1], 3)} at depth {depths[-1]}).")
        else:
            text = (f"On {name}, clean-vs-noisy CKA drops most between depth {depths[i]} and {depths[i + 1]} "
                    f"({num(cka[i], 3)} -> {num(cka[i + 1], 3)}, {steps[i]:+.3f}); it is lowest at depth "
                    f"{depths[low]} ({num(cka[low], 3)}).")
        findings.append(Finding("layerwise", text, {"largest_drop": float(steps[i]), "min_cka": float(cka[low])},
                                LAYERWISE))
    return findings


@finding_rule("layerwise_edges", tags=("generalisation",))
def layerwise_edges(run: RunTables) -> list[Finding]:
    findings = []
    columns = ("edge_alignment_clean", "edge_alignment_noisy", "hf_energy_clean", "hf_energy_noisy")
    for _, rows, name in _layerwise(run, *columns):
        peak = rows.loc[rows["edge_alignment_clean"].idxmax()]
        ratio = (rows["hf_energy_noisy"] / rows["hf_energy_clean"].where(rows["hf_energy_clean"] > 0)).dropna()
        text = (f"On {name}, edge alignment peaks at depth {peak['depth']} ({num(peak['edge_alignment_clean'], 3)} "
                f"clean, {num(peak['edge_alignment_noisy'], 3)} noisy)")
        numbers = {column: peak[column] for column in ("edge_alignment_clean", "edge_alignment_noisy")}
        if not ratio.empty:
            depth = rows.at[ratio.idxmax(), "depth"]
            text += f"; noise raises high-frequency energy most at depth {depth} ({ratio.max():.2f}x clean)"
            numbers["hf_ratio"] = ratio.max()
        findings.append(Finding("layerwise", text + ".", numbers, LAYERWISE))
    return findings
