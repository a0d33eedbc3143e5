"""Findings: measured statements about a finished run, each computed by a registered rule.

A rule reads the run's tables through :class:`RunTables` and returns :class:`Finding` objects
whose text quotes the numbers it was computed from and whose ``source`` names the file it
cites. No sentence about results is written in advance: a rule whose tables are missing
returns ``[]``, so the report states only what this run measured and stays silent elsewhere.
Adding an analysis is one ``@finding_rule("name", tags=...)`` function (see docs/report.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pandas.api.types import is_float_dtype

from xaiquest.config import BASELINE
from xaiquest.errors import UnknownNameError
from xaiquest.data.corruptions import FAMILIES

Kind = Literal["strength", "weakness", "note"]
TAGS = ("bias", "reliability", "generalisation")

COMPARISON = "tables/comparison.csv"
CALIBRATION = "tables/calibration.csv"
EXPLAIN_QUALITY = "tables/explain_quality.csv"
ROBUSTNESS_SUMMARY = "tables/robustness_summary.csv"
ROBUSTNESS_ACCURACY = "tables/robustness_accuracy.csv"
PATCH_RELIANCE = "tables/patch_reliance.csv"
PATCH_LOCALISATION = "tables/patch_localisation.csv"
LAYERWISE = "tables/layerwise.csv"
STRESS_PROBES = "tables/stress_probes.csv"
REEXAMINE = "tables/reexamine.csv"
# Tables the report itself computes (written by the renderer next to the stage tables).
SETUP = "tables/setup.csv"
ROBUSTNESS_FAMILIES = "tables/robustness_families.csv"
XAI_METHODS = "tables/xai_methods.csv"
FINAL_RANKING = "tables/final_ranking.csv"

CONFIDENCE_TOLERANCE = 0.02
"""|mean confidence - accuracy| below this (2 pp) counts as confidence matching accuracy."""
SHORTCUT_SUCCESS = 0.5
SHORTCUT_RATIO = 5.0
"""A planted patch is a learned shortcut when it succeeds on >= 50 % of images and >= 5x the baseline."""
CONDITION_COLUMNS = ("intensity", "level", "severity", "condition", "setting")
"""Columns that name a stress probe's condition (the intensity axis of docs/stress.md first)."""
STRESS_GAP = 0.05
"""A stress probe moving a model's score by >= 5 pp between conditions counts as a weakness."""
IDENTICAL_IOU = 0.999
"""Top-k IoU from which two methods' top regions count as the same."""
FAITHFULNESS = {"deletion_auc": True, "insertion_auc": False, "road_gap": False}
"""Faithfulness metric -> lower is better."""


# --------------------------------------------------------------------------------------------
# Reading a run


class RunTables:
    """Read-only, lazily loaded view of ``runs/<experiment>/``; a missing or empty table reads as None."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tables: dict[tuple[str, int | None], pd.DataFrame | None] = {}

    def csv(self, rel: str, index_col: int | None = None) -> pd.DataFrame | None:
        """A copy of the table at ``rel`` (rules may reshape it freely), or None."""
        key = (rel, index_col)
        if key not in self._tables:
            path = self.root / rel
            table = pd.read_csv(path, index_col=index_col) if path.is_file() and path.stat().st_size else None
            self._tables[key] = None if table is None or table.empty else table
        cached = self._tables[key]
        return None if cached is None else cached.copy()

    def json(self, rel: str) -> dict[str, Any] | None:
        path = self.root / rel
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    @cached_property
    def runs(self) -> list[str]:
        """Run ids: the folders under ``models/``."""
        models = self.root / "models"
        return sorted(p.name for p in models.iterdir() if p.is_dir()) if models.is_dir() else []

    def per_run_csv(self, name: str, index_col: int | None = None) -> dict[str, pd.DataFrame]:
        tables = {run: self.csv(f"models/{run}/{name}", index_col) for run in self.runs}
        return {run: table for run, table in tables.items() if table is not None}

    def per_run_json(self, name: str) -> dict[str, dict[str, Any]]:
        records = {run: self.json(f"models/{run}/{name}") for run in self.runs}
        return {run: record for run, record in records.items() if record is not None}

    def files(self, pattern: str) -> list[str]:
        """Run-relative paths of the files matching ``pattern``, sorted."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file())

    def labels(self, ids: Iterable[str]) -> dict[str, str]:
        """Short display names: parts of ``model__variant__sN`` that every run shares are dropped.

        Sharing is judged over ``ids`` and the run folders together, so labels never collide.
        """
        ids = list(dict.fromkeys(map(str, ids)))
        split = [i.split("__") for i in [*ids, *self.runs]]
        varies = (len({p[1] for p in split if len(p) >= 2}) > 1, len({p[2] for p in split if len(p) == 3}) > 1)
        return {i: _short_label(i, varies) for i in ids}


def _short_label(run_id: str, varies: tuple[bool, bool]) -> str:
    parts = run_id.split("__")
    if len(parts) not in (2, 3):
        return run_id
    extra = [part for part, keep in zip(parts[1:], varies) if keep]
    return parts[0] + (f" ({', '.join(extra)})" if extra else "")


def group_of(run_id: str) -> str:
    """The (model, variant) a run belongs to: its id without the seed."""
    return re.sub(r"__s\d+$", "", run_id)


def comparison_labels(run: RunTables, table: pd.DataFrame) -> pd.Series:
    """Labels of ``comparison.csv`` rows (one per model x variant)."""
    ids = table["model"].astype(str) + "__" + table["variant"].astype(str)
    names = run.labels(ids)
    return ids.map(names)


# --------------------------------------------------------------------------------------------
# Findings and their registry


@dataclass(frozen=True)
class Finding:
    """One measured statement: ``text`` quotes ``numbers``; ``source`` is the run-relative file it cites."""

    section: str
    text: str
    numbers: Mapping[str, float]
    source: str
    kind: Kind = "note"
    tags: tuple[str, ...] = ()
    rule: str = ""
    subjects: tuple[str, ...] = ()
    """Run or (model, variant) ids the finding judges: a strength about a chance-level model is demoted."""
    ref: str = ""
    """The finding's number in the report (``F12``), set when the report orders its findings."""


RuleFn = Callable[[RunTables], list[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    fn: RuleFn
    tags: tuple[str, ...]


RULES: dict[str, Rule] = {}
"""Registered rules in registration order (the order findings appear within a section)."""


def finding_rule(name: str, tags: Iterable[str] = ()) -> Callable[[RuleFn], RuleFn]:
    """Register a rule; its ``tags`` (bias / reliability / generalisation) feed the critical reflection."""
    tags = tuple(tags)
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise ValueError(f"unknown finding tags {unknown}; available: {', '.join(TAGS)}")

    def decorator(fn: RuleFn) -> RuleFn:
        if name in RULES:
            raise ValueError(f"finding rule {name!r} is registered twice")
        RULES[name] = Rule(name, fn, tags)
        return fn

    return decorator


def run_rules(run: RunTables, names: Iterable[str] | None = None) -> list[Finding]:
    """The findings of every rule (or of ``names``), stamped with the rule's name and default tags;
    strengths about chance-level models are demoted to notes (an untrained model has no strengths)."""
    findings: list[Finding] = []
    near_chance = chance_level_groups(run)
    for name in RULES if names is None else names:
        if name not in RULES:
            raise UnknownNameError(f"unknown finding rule {name!r}; available: {', '.join(RULES)}")
        rule = RULES[name]
        findings += [demote_at_chance(replace(f, rule=name, tags=f.tags or rule.tags), near_chance)
                     for f in rule.fn(run)]
    return findings


def demote_at_chance(finding: Finding, near_chance: set[str]) -> Finding:
    """A strength about a model at chance level becomes a note that says why."""
    if finding.kind != "strength" or not any(group_of(s) in near_chance for s in finding.subjects):
        return finding
    return replace(finding, kind="note",
                   text=finding.text + " Not counted as a strength: the model is at chance-level accuracy.")


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def pp(value: float) -> str:
    return f"{100 * value:.2f} pp"


def num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def signed_pp(value: float) -> str:
    """A change in percentage points with its sign (``+1.64 pp``, ``-2.00 pp``)."""
    shown = 100 * value if abs(100 * value) >= 0.005 else 0.0  # no "-0.00"
    return f"{shown:+.2f} pp"


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _has(table: pd.DataFrame | None, *columns: str) -> bool:
    return table is not None and all(c in table.columns and table[c].notna().any() for c in columns)


def as_bool(values: pd.Series) -> pd.Series:
    """CSV booleans ("True"/"False", 1/0) as bools."""
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "1.0", "yes"})


# --------------------------------------------------------------------------------------------
# Setup and Stage-1 accuracy


def setup_table(run: RunTables) -> pd.DataFrame | None:
    """Each model's recipe and training cost, from its ``train.json``."""
    records = run.per_run_json("train.json")
    if not records:
        return None
    names = run.labels(records)
    rows = [{"run": run_id, "label": names[run_id], **{k: _cell(v) for k, v in record.items()}}
            for run_id, record in records.items()]
    return pd.DataFrame(rows)


def planted_runs(run: RunTables) -> set[str]:
    """Runs trained with a planted patch: instruments for the shortcut test, not candidates to rank."""
    return {run_id for run_id, record in run.per_run_json("train.json").items() if record.get("patch")}


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
    records = run.per_run_json("train.json")

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


@finding_rule("training_cost")
def training_cost(run: RunTables) -> list[Finding]:
    table = setup_table(run)
    if not _has(table, "train_time_s") or len(table) < 2:
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
        if _has(table, "epochs") and pd.notna(fast.get("epochs")) and pd.notna(slow.get("epochs")):
            per_fast, per_slow = fast["train_time_s"] / fast["epochs"], slow["train_time_s"] / slow["epochs"]
            text += f": per epoch {per_fast:.1f} s vs {per_slow:.1f} s"
            numbers |= {"fastest_s_per_epoch": per_fast, "slowest_s_per_epoch": per_slow}
        text += "."
    return [Finding("setup", text, numbers, SETUP)]


CHANCE_MARGIN = 0.05
"""A model within 5 pp of chance accuracy (1 / classes) learned next to nothing: it is flagged, and
its calibration or robustness (trivially good at chance) never counts as a strength."""


def run_accuracies(run: RunTables) -> dict[str, float]:
    """Test accuracy per run, from ``eval/metrics.json`` (else ``calibration.csv``)."""
    accuracy = {r: float(m["accuracy"]) for r, m in run.per_run_json("eval/metrics.json").items() if "accuracy" in m}
    calibration = run.csv(CALIBRATION)
    if _has(calibration, "run", "accuracy"):
        for row in calibration.dropna(subset=["accuracy"]).itertuples():
            accuracy.setdefault(str(row.run), float(row.accuracy))
    return accuracy


def class_count(run: RunTables) -> int:
    """Classes of the dataset: the rows of a per-class table, else CIFAR-10's 10."""
    for table in run.per_run_csv("eval/per_class.csv").values():
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


@finding_rule("chance_level", tags=("reliability", "generalisation"))
def chance_level(run: RunTables) -> list[Finding]:
    groups = sorted(chance_level_groups(run))
    if not groups:
        return []
    accuracy = pd.Series(run_accuracies(run), dtype=float)
    means = accuracy.groupby(accuracy.index.map(group_of)).mean()
    names, chance = run.labels(groups), 1 / class_count(run)
    quoted = _join([f"{names[g]} ({pct(means[g])})" for g in groups])
    verb = "is" if len(groups) == 1 else "are"
    text = (f"{quoted} {verb} at or near chance level (chance is {pct(chance)} with {class_count(run)} classes; "
            f"flagged within {pp(CHANCE_MARGIN)} of it): such a model learned next to nothing, so its calibration, "
            "robustness and explanation results are not counted as strengths.")
    return [Finding("comparison", text, {"chance": chance, **{f"accuracy_{g}": means[g] for g in groups}},
                    COMPARISON, kind="weakness", subjects=tuple(groups))]


@finding_rule("accuracy_ranking", tags=("generalisation",))
def accuracy_ranking(run: RunTables) -> list[Finding]:
    table = run.csv(COMPARISON)
    if not _has(table, "model", "variant", "accuracy_mean"):
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
    text = (f"{_holders(accuracy, top)} the highest test accuracy ({pct(top)}) and {_holders(accuracy, low)} the "
            f"lowest ({pct(low)}): a spread of {pp(top - low)} across {len(table)} models.")
    return [Finding("comparison", text, {"best": top, "worst": low, "spread": top - low}, COMPARISON)]


@finding_rule("accuracy_noise", tags=("reliability",))
def accuracy_noise(run: RunTables) -> list[Finding]:
    """Which accuracy gaps are smaller than seed noise: std of a difference = sqrt(std_a^2 + std_b^2)."""
    table = run.csv(COMPARISON)
    if not _has(table, "model", "variant", "accuracy_mean", "n_seeds") or len(table) < 2:
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
    for run_id, table in run.per_run_csv("eval/per_class.csv").items():
        if not _has(table, "class", "recall"):
            continue
        worst, best = table.loc[table["recall"].idxmin()], table.loc[table["recall"].idxmax()]
        text = (f"{names[run_id]} recognises {worst['class']} worst (recall {pct(worst['recall'])}) and "
                f"{best['class']} best ({pct(best['recall'])}).")
        findings.append(Finding("comparison", text, {"worst_recall": worst["recall"], "best_recall": best["recall"]},
                                f"models/{run_id}/eval/per_class.csv"))
    return findings


# --------------------------------------------------------------------------------------------
# Calibration


def _calibration(run: RunTables) -> tuple[pd.DataFrame, dict[str, str]] | None:
    table = run.csv(CALIBRATION)
    if not _has(table, "run", "ece"):
        return None
    table = table.dropna(subset=["ece"]).reset_index(drop=True)
    return table, run.labels(table["run"])


@finding_rule("calibration_extremes", tags=("reliability",))
def calibration_extremes(run: RunTables) -> list[Finding]:
    """Best and worst ECE among models above chance: a chance-level model is trivially calibrated."""
    loaded = _calibration(run)
    if loaded is None:
        return []
    table, names = loaded
    near_chance = chance_level_groups(run)
    table = table[~table["run"].map(group_of).isin(near_chance)].reset_index(drop=True)
    if len(table) < 2 or table["ece"].min() == table["ece"].max():
        return []
    best, worst = table.loc[table["ece"].idxmin()], table.loc[table["ece"].idxmax()]
    among = f" among the {len(table)} models above chance level" if near_chance else ""
    ratio = f", {worst['ece'] / best['ece']:.2f}x the best" if best["ece"] > 0 else ""
    return [
        Finding("calibration", f"{names[best['run']]} is the best calibrated model before temperature scaling{among} "
                f"(ECE {num(best['ece'])}).", {"ece": best["ece"]}, CALIBRATION, kind="strength",
                subjects=(best["run"],)),
        Finding("calibration", f"{names[worst['run']]} is the worst calibrated model before temperature scaling{among} "
                f"(ECE {num(worst['ece'])}{ratio}).", {"ece": worst["ece"]}, CALIBRATION, kind="weakness",
                subjects=(worst["run"],)),
    ]


def confidence_gap(row: Any) -> float:
    """Mean confidence minus accuracy (NaN when either is missing): > 0 over-, < 0 under-confident."""
    return getattr(row, "mean_confidence", math.nan) - getattr(row, "accuracy", math.nan)


@finding_rule("confidence_direction", tags=("reliability",))
def confidence_direction(run: RunTables) -> list[Finding]:
    loaded = _calibration(run)
    if loaded is None or not _has(loaded[0], "mean_confidence", "accuracy"):
        return []
    table, names = loaded
    findings = []
    for row in table.dropna(subset=["mean_confidence", "accuracy"]).itertuples():
        gap = confidence_gap(row)
        numbers = {"mean_confidence": row.mean_confidence, "accuracy": row.accuracy, "gap": gap}
        quoted = f"mean confidence {pct(row.mean_confidence)} against {pct(row.accuracy)} accuracy"
        if abs(gap) < CONFIDENCE_TOLERANCE:
            text = f"{names[row.run]}'s confidence matches its accuracy: {quoted} (gap {signed_pp(gap)})."
            findings.append(Finding("calibration", text, numbers, CALIBRATION, kind="strength", subjects=(row.run,)))
        else:
            direction = "over-confident" if gap > 0 else "under-confident"
            text = f"{names[row.run]} is {direction}: {quoted} (gap {signed_pp(gap)})."
            findings.append(Finding("calibration", text, numbers, CALIBRATION, kind="weakness", subjects=(row.run,)))
    return findings


def temperature_meaning(temperature: float, gap: float) -> str:
    """What T says, checked against the test-set confidence gap: T > 1 only means over-confidence
    when the model's confidence actually exceeds its accuracy (a chance-level model's T is noise)."""
    if temperature == 1:
        return "= 1: no change"
    effect = "> 1: logits softened" if temperature > 1 else "< 1: logits sharpened"
    expected = "over-confident" if temperature > 1 else "under-confident"
    if math.isnan(gap):
        return f"{effect}, the model was {expected} on the validation split"
    if abs(gap) < CONFIDENCE_TOLERANCE:
        return f"{effect}, although on the test set its confidence already matched its accuracy (gap {signed_pp(gap)})"
    actual = "over-confident" if gap > 0 else "under-confident"
    if actual == expected:
        return f"{effect}, the model was {actual} (test gap {signed_pp(gap)})"
    return f"{effect}, although on the test set the model is {actual} (gap {signed_pp(gap)})"


@finding_rule("temperature_scaling", tags=("reliability",))
def temperature_scaling(run: RunTables) -> list[Finding]:
    """T > 1 softens the logits, T < 1 sharpens them; the direction is checked against the confidence gap."""
    loaded = _calibration(run)
    if loaded is None or not _has(loaded[0], "temperature", "ece_after_ts"):
        return []
    table, names = loaded
    findings = []
    for row in table.dropna(subset=["temperature", "ece_after_ts"]).itertuples():
        change = f" ({(row.ece_after_ts - row.ece) / row.ece:+.1%})" if row.ece else ""
        text = (f"Temperature scaling on {names[row.run]} (T = {num(row.temperature, 3)} "
                f"{temperature_meaning(row.temperature, confidence_gap(row))}) moves ECE from "
                f"{num(row.ece)} to {num(row.ece_after_ts)}{change}.")
        kind: Kind = "strength" if row.ece_after_ts < row.ece else "weakness" if row.ece_after_ts > row.ece else "note"
        findings.append(Finding("calibration", text, {"temperature": row.temperature, "ece": row.ece,
                                                      "ece_after_ts": row.ece_after_ts}, CALIBRATION, kind=kind,
                                subjects=(row.run,)))
    return findings


# --------------------------------------------------------------------------------------------
# Robustness


def family_of(corruption: str) -> str:
    """The CIFAR-10-C family of a corruption ("other" for corruptions outside the benchmark)."""
    return next((family for family, members in FAMILIES.items() if corruption in members), "other")


def robustness_families(run: RunTables) -> pd.DataFrame | None:
    """Per model x corruption family: mean accuracy over severities >= 1, clean accuracy, and accuracy
    at the highest severity with its drop from clean."""
    table = run.csv(ROBUSTNESS_ACCURACY)
    if not _has(table, "model", "corruption", "severity", "accuracy"):
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


@finding_rule("robustness_ranking", tags=("generalisation",))
def robustness_ranking(run: RunTables) -> list[Finding]:
    table = run.csv(ROBUSTNESS_SUMMARY)
    if not _has(table, "run", "mce"):
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
    if _has(above_chance, "relative_mce") and pd.notna(best.get("relative_mce")):
        relative = above_chance.loc[above_chance["relative_mce"].idxmin()]
        if relative["run"] != best["run"] and relative["relative_mce"] < best["relative_mce"]:
            text = (f"By relative mCE (degradation beyond the clean error) the most robust model is "
                    f"{names[relative['run']]} ({num(relative['relative_mce'], 3)}), not {names[best['run']]} "
                    f"({num(best['relative_mce'], 3)}).")
            findings.append(Finding("robustness", text, {"relative_mce": relative["relative_mce"]}, ROBUSTNESS_SUMMARY))
    return findings


def _extremes(values: pd.Series) -> str:
    """The index labels holding ``values``' extreme, joined (ties name every holder)."""
    return _join([str(i) for i in values.index])


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
    if not _has(table, "model", "severity", "ece") or not (table["severity"] == 0).any():
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


# --------------------------------------------------------------------------------------------
# Explanations


def _quality(run: RunTables) -> pd.DataFrame | None:
    table = run.csv(EXPLAIN_QUALITY)
    return table if _has(table, "run", "method") else None


def faithfulness_ranks(quality: pd.DataFrame) -> pd.DataFrame:
    """Rank of every method per model and faithfulness metric (1 = most faithful) and their mean."""
    metrics = [m for m in FAITHFULNESS if _has(quality, m)]
    ranks = quality[["run", "method"]].copy()
    for metric in metrics:
        ranks[metric] = quality.groupby("run")[metric].rank(ascending=FAITHFULNESS[metric], method="min")
    ranks["faithfulness_rank"] = ranks[metrics].mean(axis=1) if metrics else math.nan
    return ranks


@finding_rule("faithfulness_per_model")
def faithfulness_per_model(run: RunTables) -> list[Finding]:
    quality = _quality(run)
    if quality is None:
        return []
    names = run.labels(quality["run"])
    labels = {"deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC", "road_gap": "ROAD gap"}
    findings = []
    for run_id, rows in quality.groupby("run", sort=False):
        parts, numbers = [], {}
        for metric, lower in FAITHFULNESS.items():
            if not _has(rows, metric):
                continue
            best = rows.loc[rows[metric].idxmin() if lower else rows[metric].idxmax()]
            parts.append(f"{best['method']} by {labels[metric]} ({num(best[metric])}"
                         f"{', lower is better' if lower else ''})")
            numbers[metric] = best[metric]
        if parts:
            text = f"On {names[run_id]} the most faithful method is " + _join(parts) + "."
            findings.append(Finding("explanations", text, numbers, EXPLAIN_QUALITY))
    return findings


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@finding_rule("faithfulness_overall", tags=("reliability",))
def faithfulness_overall(run: RunTables) -> list[Finding]:
    quality = _quality(run)
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
            f"({', '.join(metrics)}), {_holders(mean, best)} the best mean rank ({num(best, 2)} of {len(mean)} methods) "
            f"and {_holders(mean, worst)} the worst ({num(worst, 2)}).")
    return [Finding("explanations", text, {"best_rank": best, "worst_rank": worst}, EXPLAIN_QUALITY)]


def _holders(values: pd.Series, value: float) -> str:
    """Who holds ``value`` ("a has" / "a and b share"): ranks tie often enough to matter."""
    names = [str(name) for name in values.index[values == value]]
    return f"{names[0]} has" if len(names) == 1 else f"{_join(names)} share"


@finding_rule("sanity_failures", tags=("reliability",))
def sanity_failures(run: RunTables) -> list[Finding]:
    quality = _quality(run)
    if quality is None or "sanity_fails" not in quality:
        return []
    names = run.labels(quality["run"])
    failed = quality[as_bool(quality["sanity_fails"])]
    if failed.empty:
        text = (f"All {quality['method'].nunique()} methods pass the cascading-randomisation sanity check on all "
                f"{plural(quality['run'].nunique(), 'model')}: their maps change once the weights are randomised.")
        numbers = {"failures": 0.0}
        if _has(quality, "sanity_ssim"):
            top = quality.loc[quality["sanity_ssim"].idxmax()]
            text = text[:-1] + (f" (highest final SSIM: {num(top['sanity_ssim'], 3)}, {top['method']} on "
                                f"{names[top['run']]}).")
            numbers["max_ssim"] = top["sanity_ssim"]
        return [Finding("explanations", text, numbers, EXPLAIN_QUALITY, kind="strength")]
    per_method = failed.groupby("method", sort=False)["run"].nunique()
    models = quality["run"].nunique()
    listed = _join([f"{method} ({m} of {plural(models, 'model')})" for method, m in per_method.items()])
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
    matrices = run.per_run_csv("explain/agreement_iou.csv", index_col=0)
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
                                f"models/{run_id}/explain/agreement_iou.csv"))
    return findings


@finding_rule("method_cost")
def method_cost(run: RunTables) -> list[Finding]:
    quality = _quality(run)
    if not _has(quality, "seconds_per_image"):
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
    quality = _quality(run)
    if not _has(quality, "ig_delta_abs"):
        return []
    rows = quality.dropna(subset=["ig_delta_abs"])
    names = run.labels(rows["run"])
    values = ", ".join(f"{num(r.ig_delta_abs)} on {names[r.run]}" for r in rows.itertuples())
    text = (f"Integrated Gradients' completeness error, mean |sum of attributions - (F(x) - F(baseline))|, "
            f"is {values}.")
    return [Finding("explanations", text, {"max_delta": rows["ig_delta_abs"].max()}, EXPLAIN_QUALITY)]


# --------------------------------------------------------------------------------------------
# Stress probes and the planted patch


def stress_tables(run: RunTables) -> dict[str, pd.DataFrame]:
    """``tables/stress_*.csv`` that have a ``probe`` column, by run-relative path."""
    tables = {rel: run.csv(rel) for rel in run.files("tables/stress_*.csv")}
    return {rel: table for rel, table in tables.items() if table is not None and "probe" in table}


@finding_rule("stress_probe_sensitivity", tags=("bias",))
def stress_probe_sensitivity(run: RunTables) -> list[Finding]:
    """Per probe: how far each model's score moves between the probe's conditions.

    The score is ``accuracy`` (else ``macro_f1``); a row's condition is told by the columns named in
    ``CONDITION_COLUMNS`` when the table has any, else by its non-float columns other than the
    model and the probe.
    """
    findings = []
    for rel, table in stress_tables(run).items():
        metric = next((m for m in ("accuracy", "macro_f1") if _has(table, m)), None)
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


def variant_table(run: RunTables) -> pd.DataFrame | None:
    """Each model's training variants (planted-patch ones aside) next to its baseline: accuracy,
    calibration, corruption robustness, and mean accuracy over the stress probes."""
    table = run.csv(COMPARISON)
    if not _has(table, "model", "variant", "accuracy_mean"):
        return None
    rows = without_planted(run, table)
    rows = rows[rows.groupby("model")["variant"].transform("nunique").gt(1)
                & rows.groupby("model")["variant"].transform(lambda v: (v == BASELINE).any())]
    if rows.empty:
        return None
    groups = rows["model"].astype(str) + "__" + rows["variant"].astype(str)
    probes = run.csv(STRESS_PROBES)
    stressed = probes[probes["probe"] != "clean"] if _has(probes, "run", "probe", "accuracy") else None
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
            text = f"{model} with {row.variant} instead of the baseline: {_join(parts)}."
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
    if not _has(table, "model", "variant", "mistakes", "variant_correct", "baseline_confidence", "variant_prob_baseline_class"):
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
    if not _has(table, "run", "attack_success", "baseline_attack_success"):
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
    if not _has(table, "run", "method"):
        return []
    names = run.labels(table["run"])
    labels = {"mass_inside": ("puts the most attribution mass on the patch", pct),
              "tko": ("has the highest top-k overlap with it", lambda v: num(v, 3)),
              "pointing": ("points at it most often", pct)}
    findings = []
    for run_id, rows in table.groupby("run", sort=False):
        parts, numbers = [], {}
        for metric, (phrase, fmt) in labels.items():
            if _has(rows, metric):
                best = rows.loc[rows[metric].idxmax()]
                parts.append(f"{best['method']} {phrase} ({fmt(best[metric])})")
                numbers[metric] = best[metric]
        if parts:
            findings.append(Finding("stress", f"On {names[run_id]}, " + _join(parts) + ".", numbers, PATCH_LOCALISATION))
    if _has(table, "win_rate") and table["method"].nunique() > 1:
        wins = table.groupby("method", sort=False)["win_rate"].mean()
        best = wins.idxmax()
        text = (f"Across {plural(table['run'].nunique(), 'model')}, {best} localises the planted patch best "
                f"(mean win rate {pct(wins[best])} against the other methods).")
        findings.append(Finding("stress", text, {"win_rate": wins[best]}, PATCH_LOCALISATION, kind="strength"))
    return findings


# --------------------------------------------------------------------------------------------
# Layer-wise


def _layerwise(run: RunTables, *columns: str) -> list[tuple[str, pd.DataFrame, str]]:
    table = run.csv(LAYERWISE)
    if not _has(table, "run", "depth", *columns):
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


# --------------------------------------------------------------------------------------------
# XAI methods: strengths and weaknesses


def mean_agreement(run: RunTables) -> pd.Series | None:
    """Each method's mean top-k IoU with the other methods, averaged over models."""
    rows = []
    for matrix in run.per_run_csv("explain/agreement_iou.csv", index_col=0).values():
        methods = [m for m in matrix.index if m in matrix.columns]
        square = matrix.loc[methods, methods].astype(float)
        for m in methods:
            square.at[m, m] = math.nan
        rows.append(square.mean(axis=1))
    return pd.concat(rows, axis=1).mean(axis=1) if rows else None


def xai_method_table(run: RunTables) -> pd.DataFrame | None:
    """One row per method: faithfulness rank, quality means, sanity failures, agreement, cost, patch localisation."""
    quality = _quality(run)
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
    if _has(patch, "method"):
        for column in ("mass_inside", "tko"):
            if column in patch:
                table[f"patch_{column}"] = patch.groupby("method")[column].mean()
    return table.reset_index()


PROFILE = (  # column, criterion, lower is better, value format
    ("faithfulness_rank", "faithfulness", True, lambda v: f"mean rank {num(v, 2)}"),
    ("agreement_iou", "agreement with the other methods", False, lambda v: f"mean top-k IoU {num(v, 3)}"),
    ("seconds_per_image", "cost", True, lambda v: f"{ms(v)} per image"),
    ("patch_mass_inside", "attribution mass on the planted patch", False, pct),
)
"""Criteria of the strengths/weaknesses profile: top third of the methods = strength, bottom third = weakness."""


@finding_rule("xai_method_profiles")
def xai_method_profiles(run: RunTables) -> list[Finding]:
    table = xai_method_table(run)
    if table is None or len(table) < 3:
        return []
    findings = []
    for i, row in table.iterrows():
        strengths, weaknesses = [], []
        for column, criterion, lower, fmt in PROFILE:
            if not _has(table, column) or pd.isna(row[column]):
                continue
            values = table[column].dropna()
            position = int(values.rank(ascending=lower, method="min")[i])
            third = math.ceil(len(values) / 3)
            quoted = f"{criterion} ({fmt(row[column])}, {ordinal(position)} of {len(values)})"
            if position <= third:
                strengths.append(quoted)
            elif position > len(values) - third:
                weaknesses.append(quoted)
        if row.get("sanity_fails", 0) > 0:
            weaknesses.append(f"fails the sanity check on {row['sanity_fails']} of {plural(row['models'], 'model')}")
        method = row["method"]
        if strengths:
            findings.append(Finding("xai_methods", f"Strengths of {method}: " + "; ".join(strengths) + ".",
                                    {"strengths": float(len(strengths))}, XAI_METHODS, kind="strength"))
        if weaknesses:
            findings.append(Finding("xai_methods", f"Weaknesses of {method}: " + "; ".join(weaknesses) + ".",
                                    {"weaknesses": float(len(weaknesses))}, XAI_METHODS, kind="weakness"))
        if not strengths and not weaknesses:
            findings.append(Finding("xai_methods", f"{method} sits in the middle third of the methods on every "
                                    "measured criterion.", {}, XAI_METHODS))
    return findings


# --------------------------------------------------------------------------------------------
# Final comparison


CRITERIA = {  # criterion -> (value column, lower is better)
    "accuracy": ("accuracy", False),
    "calibration": ("ece", True),
    "robustness": ("mce", True),
    "interpretability": ("interpretability", False),
}
"""Interpretability = mean over a model's methods of (insertion AUC - deletion AUC): how well its
decisions can be explained faithfully, by the typical method rather than the single best one."""


def _per_run(table: pd.DataFrame | None, column: str) -> pd.Series:
    return table.groupby("run")[column].mean() if _has(table, "run", column) else pd.Series(dtype=float)


def final_ranking(run: RunTables) -> pd.DataFrame | None:
    """Per model (x variant, averaged over seeds; planted-patch runs aside): each criterion's value,
    its rank and the mean rank."""
    quality = run.csv(EXPLAIN_QUALITY)
    if _has(quality, "insertion_auc", "deletion_auc"):
        quality = quality.assign(interpretability=quality["insertion_auc"] - quality["deletion_auc"])
    accuracy = {r: m["accuracy"] for r, m in run.per_run_json("eval/metrics.json").items() if "accuracy" in m}
    values = pd.DataFrame({
        "accuracy": pd.Series(accuracy, dtype=float),
        "ece": _per_run(run.csv(CALIBRATION), "ece"),
        "mce": _per_run(run.csv(ROBUSTNESS_SUMMARY), "mce"),
        "interpretability": _per_run(quality, "interpretability"),
    }).dropna(axis=1, how="all")
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
        findings.append(Finding("final", f"{_holders(mean, best)} the best mean rank ({num(best, 2)}) over "
                                f"{_join(criteria)}; {_holders(mean, worst)} the worst ({num(worst, 2)}).",
                                {"best": best, "worst": worst}, FINAL_RANKING))
    ranked = [c for c in criteria if table[f"rank_{c}"].nunique() > 1]
    for _, row in table.iterrows():
        firsts = [c for c in ranked if row[f"rank_{c}"] == table[f"rank_{c}"].min()]
        lasts = [c for c in ranked if row[f"rank_{c}"] == table[f"rank_{c}"].max()]
        if firsts and lasts:
            text = f"Trade-off: {row['model']} ranks first on {_join(firsts)} but last of {len(table)} on {_join(lasts)}."
            findings.append(Finding("final", text, {"models": float(len(table))}, FINAL_RANKING))
    return findings


# --------------------------------------------------------------------------------------------
# Summary


SUMMARY = (  # (rules tried in order, kinds preferred in order): one finding per entry
    (("chance_level",), ("weakness",)),
    (("overall_ranking", "accuracy_ranking"), ("note",)),
    (("patch_shortcut",), ("weakness", "strength", "note")),
    (("calibration_extremes", "confidence_direction"), ("weakness",)),
    (("hardest_family_overall", "worst_corruption_family"), ("weakness", "note")),
    (("sanity_failures",), ("weakness", "strength")),
)
"""The verdict first: models that learned nothing, the overall ranking, a learned shortcut, miscalibration,
the hardest corruption family and explanation methods failing the sanity check."""


def summary_findings(findings: Iterable[Finding]) -> list[Finding]:
    """The few findings the summary leads with, at most one per ``SUMMARY`` entry."""
    findings = list(findings)
    chosen = []
    for rules, kinds in SUMMARY:
        candidates = [f for rule in rules for kind in kinds for f in findings if f.rule == rule and f.kind == kind]
        if candidates:
            chosen.append(candidates[0])
    return chosen


# --------------------------------------------------------------------------------------------
# Critical reflection


EVIDENCE = {
    "bias": "stress probes (tables/stress_*.csv) or the planted-patch probe (tables/patch_reliance.csv)",
    "reliability": "calibration (tables/calibration.csv), multi-seed accuracy or explanation sanity checks "
                   "(tables/explain_quality.csv)",
    "generalisation": "test accuracy (tables/comparison.csv), corruption robustness (tables/robustness_*.csv) or "
                      "layer-wise representations (tables/layerwise.csv)",
}
"""What would have measured each reflection category, quoted when a run lacks it."""


LESSONS: dict[tuple[str, Kind], str] = {
    ("chance_level", "weakness"): "Some models learned next to nothing: every other number about them describes an "
                                  "untrained network, so none of it counts in their favour",
    ("accuracy_noise", "note"): "Accuracy gaps are not all known to exceed seed noise, so rankings by accuracy "
                                "alone are provisional",
    ("calibration_extremes", "weakness"): "Calibration differs between models, so their confidence scores cannot be "
                                          "compared, or read as probabilities, without recalibration",
    ("confidence_direction", "weakness"): "Confidence does not match accuracy for some models: a confidence "
                                          "threshold tuned on one model does not transfer to another",
    ("temperature_scaling", "weakness"): "A single global temperature made some models worse: their miscalibration "
                                         "is not global",
    ("hardest_family_overall", "weakness"): "Accuracy on clean test images overstates accuracy under distribution "
                                            "shift, by an amount that depends on the kind of shift",
    ("corruption_calibration", "weakness"): "Calibration degrades under corruption, so confidence is least "
                                            "trustworthy exactly when the inputs drift",
    ("sanity_failures", "weakness"): "Some explanation methods barely depend on the learned weights: their maps are "
                                     "no evidence of what a model learned",
    ("sanity_failures", "strength"): "Every method passes the randomisation sanity check, which rules out "
                                     "weight-independent maps but not unfaithful ones",
    ("faithfulness_overall", "note"): "Methods differ in faithfulness, so the choice of explainer changes the "
                                      "story an explanation tells",
    ("patch_shortcut", "weakness"): "A model follows a planted shortcut: a good test accuracy does not rule out "
                                    "shortcut learning",
    ("patch_shortcut", "strength"): "No model learned the planted patch at the strength tested; that bounds this "
                                    "shortcut, not shortcuts in general",
    ("stress_probe_sensitivity", "weakness"): "Predictions move with input properties that should not decide the "
                                              "class, the signature of biases learned from the data",
    ("variant_effects", "note"): "Each training variant moves several properties at once, so it has to be judged "
                                 "on all of them, not on accuracy alone",
    ("reexamination", "note"): "Re-examining the baseline's most confident mistakes shows how little (or how much) "
                               "a recipe change repairs the failures that matter most",
    ("layerwise_cka", "note"): "Clean and noisy representations part at specific depths, which locates where "
                               "robustness is lost",
}
"""What a kind of finding implies for trust, stated once and backed by the findings that triggered it."""


@dataclass(frozen=True)
class Reflection:
    """One category: a count, the lessons drawn (each citing its findings by number) and the findings cited."""

    tag: str
    summary: str
    findings: tuple[Finding, ...]
    lessons: tuple[str, ...] = ()


def cite(findings: Iterable[Finding]) -> str:
    """``F3, F7``: findings cited by their report numbers (by rule name before they are numbered)."""
    refs = dict.fromkeys(f.ref or f.rule for f in findings)
    return ", ".join(sorted(refs, key=lambda r: int(r[1:]) if re.fullmatch(r"F\d+", r) else math.inf))


def critical_reflection(findings: Iterable[Finding]) -> list[Reflection]:
    """Per category, what the measurements imply, citing the findings instead of repeating them: the
    reflection argues only from this run's findings, weaknesses first, and says what was not measured."""
    order = {"weakness": 0, "note": 1, "strength": 2}
    findings = list(findings)
    reflections = []
    for tag in TAGS:
        tagged = tuple(sorted((f for f in findings if tag in f.tags), key=lambda f: order[f.kind]))
        if not tagged:
            reflections.append(Reflection(tag, f"This run did not measure {tag}: it has none of {EVIDENCE[tag]}.", ()))
            continue
        weak = sum(f.kind == "weakness" for f in tagged)
        strong = sum(f.kind == "strength" for f in tagged)
        summary = (f"{plural(len(tagged), 'measured finding')} on {tag}: {plural(weak, 'weakness', 'weaknesses')}, "
                   f"{plural(strong, 'strength')}, {plural(len(tagged) - weak - strong, 'note')}.")
        lessons, explained = [], set()
        for f in tagged:
            key = (f.rule, f.kind)
            if key in LESSONS and key not in explained:
                explained.add(key)
                lessons.append(f"{LESSONS[key]} ({cite(g for g in tagged if (g.rule, g.kind) == key)}).")
        rest = [f for f in tagged if (f.rule, f.kind) not in explained]
        if rest:
            lessons.append(f"Also bearing on {tag}: {cite(rest)}.")
        reflections.append(Reflection(tag, summary, tagged, tuple(lessons)))
    return reflections
