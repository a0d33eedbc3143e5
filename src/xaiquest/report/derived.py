"""Tables the report derives from the stage tables (setup, chance level, families, variants, methods, ranking)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from xaiquest.config import BASELINE
from xaiquest.data.corruptions import FAMILIES
from xaiquest.report.reader import (
    AGREEMENT,
    CALIBRATION,
    COMPARISON,
    EVAL_METRICS,
    EXPLAIN_QUALITY,
    PATCH_LOCALISATION,
    PER_CLASS,
    ROBUSTNESS_ACCURACY,
    ROBUSTNESS_SUMMARY,
    STRESS_PROBES,
    STRESS_TABLES,
    TRAIN_RECORD,
    TRANSFER,
    RunTables,
    group_of,
)
from xaiquest.report.text import as_bool, has_columns


def setup_table(run: RunTables) -> pd.DataFrame | None:
    """Each model's recipe and training cost, from its ``train.json``."""
    records = run.per_run_json(TRAIN_RECORD)
    if not records:
        return None
    names = run.labels(records)
    rows = [{"run": run_id, "label": names[run_id], **{k: _cell(v) for k, v in record.items()}}
            for run_id, record in records.items()]
    return pd.DataFrame(rows)


def planted_runs(run: RunTables) -> set[str]:
    """Runs trained with a planted patch: instruments for the shortcut test, not candidates to rank."""
    return {run_id for run_id, record in run.per_run_json(TRAIN_RECORD).items() if record.get("patch")}


def without_planted(run: RunTables, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a per-(model, variant) table whose runs were not trained with a planted patch."""
    planted = {group_of(run_id) for run_id in planted_runs(run)}
    groups = table["model"].astype(str) + "__" + table["variant"].astype(str)
    return table[~groups.isin(planted)].reset_index(drop=True)


def _cell(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else value


SETTINGS = {"epochs": "epochs", "batch_size": "batch size", "train_images": "training images",
            "optimizer": "optimizer", "lr_schedule": "learning-rate schedule"}
"""Training settings a comparison between runs must mention when they differ (from ``train.json``)."""


def setting_differences(run: RunTables, a: Iterable[str], b: Iterable[str]) -> list[str]:
    """How the recipes of runs ``a`` and runs ``b`` differ (``"epochs 2 vs 4"``), so comparisons say so."""
    records = run.per_run_json(TRAIN_RECORD)

    def values(ids: Iterable[str], key: str) -> str:
        found = sorted({str(_cell(records[i][key])) for i in ids if i in records and key in records[i]})
        return "/".join(found)

    differences = []
    for key, label in SETTINGS.items():
        left, right = values(a, key), values(b, key)
        if left and right and left != right:
            differences.append(f"{label} {left} vs {right}")
    return differences


def runs_of(run: RunTables, group: str) -> list[str]:
    """The run ids of a (model, variant) group (or the run itself)."""
    return [r for r in run.runs if r == group or group_of(r) == group]


CHANCE_MARGIN = 0.05
"""A model within 5 pp of chance accuracy (1 / classes) learned next to nothing: it is flagged, and
its calibration or robustness (trivially good at chance) never counts as a strength."""


def run_accuracies(run: RunTables) -> dict[str, float]:
    """Test accuracy per run, from ``eval/metrics.json`` (else ``calibration.csv``)."""
    accuracy = {r: float(m["accuracy"]) for r, m in run.per_run_json(EVAL_METRICS).items() if "accuracy" in m}
    calibration = run.csv(CALIBRATION)
    if has_columns(calibration, "run", "accuracy"):
        for row in calibration.dropna(subset=["accuracy"]).itertuples():
            accuracy.setdefault(str(row.run), float(row.accuracy))
    return accuracy


def class_count(run: RunTables) -> int:
    """Classes of the dataset: the rows of a per-class table, else CIFAR-10's 10."""
    for table in run.per_run_csv(PER_CLASS).values():
        if "class" in table:
            return int(table["class"].nunique())
    return 10


def chance_level_groups(run: RunTables) -> set[str]:
    """(model, variant) groups whose mean test accuracy is within ``CHANCE_MARGIN`` of chance."""
    accuracy = pd.Series(run_accuracies(run), dtype=float)
    if accuracy.empty:
        return set()
    means = accuracy.groupby(accuracy.index.map(group_of)).mean()
    return set(means.index[means <= 1 / class_count(run) + CHANCE_MARGIN])


def family_of(corruption: str) -> str:
    """The CIFAR-10-C family of a corruption ("other" for corruptions outside the benchmark)."""
    return next((family for family, members in FAMILIES.items() if corruption in members), "other")


def robustness_families(run: RunTables) -> pd.DataFrame | None:
    """Per model x corruption family: mean accuracy over severities >= 1, clean accuracy, and accuracy
    at the highest severity with its drop from clean."""
    table = run.csv(ROBUSTNESS_ACCURACY)
    if not has_columns(table, "model", "corruption", "severity", "accuracy"):
        return None
    clean = table[table["severity"] == 0].groupby("model")["accuracy"].mean()
    corrupted = table[table["severity"] > 0]
    if corrupted.empty:
        return None
    corrupted = corrupted.assign(family=corrupted["family"] if "family" in corrupted else
                                 corrupted["corruption"].map(family_of))
    top = int(corrupted["severity"].max())
    keys = ["model", "family"]
    out = corrupted.groupby(keys, sort=False)["accuracy"].mean().rename("mean_accuracy").to_frame()
    out["clean_accuracy"] = out.index.get_level_values("model").map(clean)
    out["max_severity"] = top
    out["max_severity_accuracy"] = corrupted[corrupted["severity"] == top].groupby(keys, sort=False)["accuracy"].mean()
    out["drop"] = out["clean_accuracy"] - out["max_severity_accuracy"]
    return out.reset_index()


FAITHFULNESS = {"deletion_auc": True, "insertion_auc": False, "road_gap": False}
"""Faithfulness metric -> lower is better."""


def explain_quality(run: RunTables) -> pd.DataFrame | None:
    table = run.csv(EXPLAIN_QUALITY)
    return table if has_columns(table, "run", "method") else None


def faithfulness_ranks(quality: pd.DataFrame) -> pd.DataFrame:
    """Rank of every method per model and faithfulness metric (1 = most faithful) and their mean."""
    metrics = [m for m in FAITHFULNESS if has_columns(quality, m)]
    ranks = quality[["run", "method"]].copy()
    for metric in metrics:
        ranks[metric] = quality.groupby("run")[metric].rank(ascending=FAITHFULNESS[metric], method="min")
    ranks["faithfulness_rank"] = ranks[metrics].mean(axis=1) if metrics else math.nan
    return ranks


def stress_tables(run: RunTables) -> dict[str, pd.DataFrame]:
    """``tables/stress_*.csv`` that have a ``probe`` column, by run-relative path."""
    tables = {rel: run.csv(rel) for rel in run.files(STRESS_TABLES)}
    return {rel: table for rel, table in tables.items() if table is not None and "probe" in table}


def variant_table(run: RunTables) -> pd.DataFrame | None:
    """Each model's training variants (planted-patch ones aside) next to its baseline: accuracy,
    calibration, corruption robustness, and mean accuracy over the stress probes."""
    table = run.csv(COMPARISON)
    if not has_columns(table, "model", "variant", "accuracy_mean"):
        return None
    rows = without_planted(run, table)
    rows = rows[rows.groupby("model")["variant"].transform("nunique").gt(1)
                & rows.groupby("model")["variant"].transform(lambda v: (v == BASELINE).any())]
    if rows.empty:
        return None
    groups = rows["model"].astype(str) + "__" + rows["variant"].astype(str)
    probes = run.csv(STRESS_PROBES)
    stressed = probes[probes["probe"] != "clean"] if has_columns(probes, "run", "probe", "accuracy") else None
    stress = stressed.groupby(stressed["run"].map(group_of))["accuracy"].mean() if stressed is not None else pd.Series(dtype=float)
    table = pd.DataFrame({
        "model": rows["model"], "variant": rows["variant"], "augmentations": rows.get("augmentations"),
        "accuracy": rows["accuracy_mean"], "ece": rows.get("ece_mean"), "ece_after_ts": rows.get("ece_after_ts_mean"),
        "mce": rows.get("mce_mean"), "stress_accuracy": groups.map(stress),
    })
    first_seen = {model: i for i, model in enumerate(dict.fromkeys(table["model"]))}

    def models_in_order_baseline_first(column: pd.Series) -> pd.Series:
        return column.map(first_seen) if column.name == "model" else column != BASELINE

    return table.sort_values(["model", "variant"], key=models_in_order_baseline_first, kind="stable").reset_index(drop=True)


def mean_agreement(run: RunTables) -> pd.Series | None:
    """Each method's mean top-k IoU with the other methods, averaged over models."""
    rows = []
    for matrix in run.per_run_csv(AGREEMENT, index_col=0).values():
        methods = [m for m in matrix.index if m in matrix.columns]
        square = matrix.loc[methods, methods].astype(float)
        for m in methods:
            square.at[m, m] = math.nan
        rows.append(square.mean(axis=1))
    return pd.concat(rows, axis=1).mean(axis=1) if rows else None


def xai_method_table(run: RunTables) -> pd.DataFrame | None:
    """One row per method: faithfulness rank, quality means, sanity failures, agreement, cost, patch localisation."""
    quality = explain_quality(run)
    if quality is None:
        return None
    by_method = quality.groupby("method", sort=False)
    table = faithfulness_ranks(quality).groupby("method", sort=False)["faithfulness_rank"].mean().to_frame()
    for column in ("deletion_auc", "insertion_auc", "road_gap", "sanity_ssim", "sanity_spearman", "seconds_per_image"):
        if column in quality:
            table[column] = by_method[column].mean()
    if "sanity_fails" in quality:
        table["sanity_fails"] = as_bool(quality["sanity_fails"]).groupby(quality["method"]).sum().astype(int)
        table["models"] = by_method.size()
    agreement = mean_agreement(run)
    if agreement is not None:
        table["agreement_iou"] = agreement
    patch = run.csv(PATCH_LOCALISATION)
    if has_columns(patch, "method"):
        for column in ("mass_inside", "tko"):
            if column in patch:
                table[f"patch_{column}"] = patch.groupby("method")[column].mean()
    return table.reset_index()


CRITERIA = {  # criterion -> (value column, lower is better)
    "accuracy": ("accuracy", False),
    "calibration": ("ece", True),
    "robustness": ("mce", True),
    "interpretability": ("interpretability", False),
}
"""Interpretability = mean over a model's methods of (insertion AUC - deletion AUC): how well its
decisions can be explained faithfully, by the typical method rather than the single best one."""


def _per_run(table: pd.DataFrame | None, column: str) -> pd.Series:
    return table.groupby("run")[column].mean() if has_columns(table, "run", column) else pd.Series(dtype=float)


def criteria_per_run(run: RunTables) -> pd.DataFrame:
    """Each run's value on every criterion the run measured (columns of :data:`CRITERIA`), indexed by run id."""
    quality = run.csv(EXPLAIN_QUALITY)
    if has_columns(quality, "insertion_auc", "deletion_auc"):
        quality = quality.assign(interpretability=quality["insertion_auc"] - quality["deletion_auc"])
    accuracy = {r: m["accuracy"] for r, m in run.per_run_json(EVAL_METRICS).items() if "accuracy" in m}
    return pd.DataFrame({
        "accuracy": pd.Series(accuracy, dtype=float),
        "ece": _per_run(run.csv(CALIBRATION), "ece"),
        "mce": _per_run(run.csv(ROBUSTNESS_SUMMARY), "mce"),
        "interpretability": _per_run(quality, "interpretability"),
    }).dropna(axis=1, how="all")


def final_ranking(run: RunTables) -> pd.DataFrame | None:
    """Per model (x variant, averaged over seeds; planted-patch runs aside): each criterion's value,
    its rank and the mean rank."""
    values = criteria_per_run(run)
    values = values.drop(index=list(planted_runs(run) & set(values.index)))
    if values.empty:
        return None
    groups = values.index.map(group_of)
    table = values.groupby(groups, sort=False).mean()
    table.insert(0, "runs", values.groupby(groups, sort=False).size())
    for criterion, (column, lower) in CRITERIA.items():
        if column in table:
            table[f"rank_{criterion}"] = table[column].rank(ascending=lower, method="min")
    table["mean_rank"] = table.filter(like="rank_").mean(axis=1)
    table.insert(0, "model", table.index.map(run.labels(table.index)))
    return table.sort_values("mean_rank", kind="stable").rename_axis("group").reset_index()


FROM_SCRATCH, FROM_WEIGHTS = "from scratch", "from weights"
"""How a run of the transfer summary started: its own random initialisation, or a file (init, pretrained)."""


def transfer_depths(run: RunTables) -> pd.DataFrame | None:
    """The transfer stage's per-depth table averaged over seeds: one row per (model x variant) group and depth."""
    table = run.csv(TRANSFER)
    if not has_columns(table, "run", "depth", "depth_index", "cka", "map_topk_iou", "map_spearman"):
        return None
    table = table.assign(group=table["run"].map(group_of))
    means = table.groupby(["group", "depth"], sort=False)[["depth_index", "cka", "map_topk_iou", "map_spearman"]].mean()
    return means.reset_index().sort_values(["group", "depth_index"], kind="stable")


def transfer_summary(run: RunTables) -> pd.DataFrame | None:
    """Per (model x variant), averaged over seeds, for every architecture that has a run started from weights:
    how it started, accuracy, ECE, mCE and interpretability where measured, and its CKA to the starting
    weights at each depth (``cka_<depth>``; none for a run from scratch, which has no such weights)."""
    depths = transfer_depths(run)
    if depths is None:
        return None
    started = set(depths["group"])
    architectures = {group.split("__")[0] for group in started}
    groups = [group for group in dict.fromkeys(map(group_of, run.runs)) if group.split("__")[0] in architectures]
    values = criteria_per_run(run)
    values = values.groupby(values.index.map(group_of)).mean()
    cka = depths.pivot_table(index="group", columns="depth", values="cka", sort=False).add_prefix("cka_")
    table = pd.DataFrame({"group": groups, "start": [FROM_WEIGHTS if g in started else FROM_SCRATCH for g in groups]})
    table = table.join(values, on="group").join(cka, on="group")
    table.insert(1, "model", table["group"].map(run.labels(table["group"])))
    return table
