"""Reading a finished run: the tables the report reads (paths from the layout), the tables each stage must
write, and a lazy read-only view of the run restricted to its own models."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from xaiquest.config import ExperimentConfig
from xaiquest.layout import MODEL_RELATIVE, RELATIVE, RunLayout, unit_name

_TABLES = RELATIVE.tables
# Run tables the stages write (run-relative, from the layout).
COMPARISON = _TABLES.comparison.as_posix()
CALIBRATION = _TABLES.calibration.as_posix()
EXPLAIN_QUALITY = _TABLES.explain_quality.as_posix()
ROBUSTNESS_SUMMARY = _TABLES.robustness_summary.as_posix()
ROBUSTNESS_ACCURACY = _TABLES.robustness_accuracy.as_posix()
PATCH_RELIANCE = _TABLES.patch_reliance.as_posix()
PATCH_LOCALISATION = _TABLES.patch_localisation.as_posix()
XAI_BENCHMARK = _TABLES.xai_benchmark.as_posix()
XAI_BENCHMARK_POOLED = _TABLES.xai_benchmark_pooled.as_posix()
PATCH_SENSITIVITY = _TABLES.patch_sensitivity.as_posix()
SALIENCE_SWEEP = _TABLES.salience_sweep.as_posix()
LAYERWISE = _TABLES.layerwise.as_posix()
STRESS_PROBES = _TABLES.stress_probes.as_posix()
REEXAMINE = _TABLES.reexamine.as_posix()
STRESS_TABLES = _TABLES.pattern_stress.as_posix()
CONCEPTS_SUMMARY = _TABLES.concepts_summary.as_posix()
CONCEPTS_RELIANCE = _TABLES.concepts_colour_reliance.as_posix()
CONCEPTS_TCAV = _TABLES.concepts_tcav.as_posix()
CONCEPTS_TCAV_UNTRAINED = _TABLES.concepts_tcav_untrained.as_posix()
CONCEPTS_DETECTORS = _TABLES.concepts_detectors.as_posix()
CONCEPTS_TOP_UNITS = _TABLES.concepts_top_units.as_posix()
TRANSFER = _TABLES.transfer.as_posix()
# Files the stages write per run (relative to ``models/<run>/``).
TRAIN_RECORD = MODEL_RELATIVE.train_record.as_posix()
EVAL_METRICS = MODEL_RELATIVE.eval.metrics.as_posix()
PER_CLASS = MODEL_RELATIVE.eval.per_class.as_posix()
AGREEMENT = MODEL_RELATIVE.explain.agreement_iou.as_posix()
# Tables the report itself computes (written by the renderer next to the stage tables).
SETUP = _TABLES.setup.as_posix()
ROBUSTNESS_FAMILIES = _TABLES.robustness_families.as_posix()
XAI_METHODS = _TABLES.xai_methods.as_posix()
FINAL_RANKING = _TABLES.final_ranking.as_posix()
TRANSFER_SUMMARY = _TABLES.transfer_summary.as_posix()

STAGE_TABLES = (COMPARISON, CALIBRATION, EXPLAIN_QUALITY, ROBUSTNESS_SUMMARY, ROBUSTNESS_ACCURACY, PATCH_RELIANCE,
                PATCH_LOCALISATION, XAI_BENCHMARK, LAYERWISE, STRESS_PROBES, REEXAMINE, STRESS_TABLES, CONCEPTS_SUMMARY,
                CONCEPTS_RELIANCE, CONCEPTS_TCAV, CONCEPTS_TCAV_UNTRAINED, CONCEPTS_DETECTORS, TRANSFER)
"""Run-relative tables (or glob patterns) from the stages that the findings rules read."""
PER_RUN_FILES = (TRAIN_RECORD, EVAL_METRICS, PER_CLASS, AGREEMENT)
"""Per-run files from the stages that the findings rules read: a test checks a stage writes each one,
so renaming a stage's output fails loudly instead of silencing the rules that read it."""
EXPECTED_TABLES: dict[str, tuple[str, ...]] = {
    "evaluate": (COMPARISON,),
    "calibrate": (CALIBRATION,),
    "robustness": (ROBUSTNESS_SUMMARY, ROBUSTNESS_ACCURACY),
    "explain": (EXPLAIN_QUALITY,),
    "stress": (STRESS_PROBES, LAYERWISE),
    "concepts": (CONCEPTS_SUMMARY,),
}
"""Stage (as its ``xaiquest`` command) -> the run tables it writes whenever it runs. Tables a stage writes
only for some configs (re-examined mistakes, the planted patch, TCAV, dissection) are left out, so a
table listed here and absent means the stage has not run or failed: the report says so."""
SWITCHED_STAGES = ("robustness", "explain", "stress", "concepts")
"""Stages a config can turn off (``<stage>.enabled``); the others always run."""


class RunTables:
    """Read-only, lazily loaded view of ``runs/<experiment>/``; a missing or empty table reads as None."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.layout = RunLayout(self.root)
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
    def manifest(self) -> dict[str, Any]:
        """The run's manifest (empty when it has none)."""
        return self.json(RELATIVE.manifest.as_posix()) or {}

    @cached_property
    def runs(self) -> list[str]:
        """The run's models, sorted: the config's model ids the manifest lists (``runs``) whose training
        finished (a ``train/<id>`` unit). A folder under ``models/`` may be left from an older config, so
        folders count only for a manifest written before ``runs`` was recorded (absent, or empty: a config
        has at least one model)."""
        listed = self.manifest.get("runs")
        if not listed:
            return sorted(p.name for p in self.layout.models.iterdir() if p.is_dir()) if self.layout.models.is_dir() else []
        units = self.manifest.get("units", {})
        return sorted(run for run in listed if unit_name("train", run) in units)

    @cached_property
    def untrained(self) -> list[str]:
        """The config's model ids whose training has not finished (in the manifest's order)."""
        return [run for run in self.manifest.get("runs") or [] if run not in self.runs]

    @cached_property
    def failures(self) -> dict[str, str]:
        """Unit (or stage tail) -> the last line of its traceback, for each that failed in the latest run."""
        folder = self.layout.failures
        if not folder.is_dir():
            return {}
        reports = {path.relative_to(folder).with_suffix("").as_posix(): path.read_text(encoding="utf-8")
                   for path in sorted(folder.rglob("*.txt"))}
        return {unit: ([line for line in text.splitlines() if line.strip()] or ["no message"])[-1].strip()
                for unit, text in reports.items()}

    def model_file(self, run: str, name: str) -> str:
        """The run-relative path of ``name`` (a :data:`PER_RUN_FILES` entry, say) in model ``run``'s folder."""
        return (RELATIVE.model(run).folder / name).as_posix()

    def per_run_csv(self, name: str, index_col: int | None = None) -> dict[str, pd.DataFrame]:
        tables = {run: self.csv(self.model_file(run, name), index_col) for run in self.runs}
        return {run: table for run, table in tables.items() if table is not None}

    def per_run_json(self, name: str) -> dict[str, dict[str, Any]]:
        records = {run: self.json(self.model_file(run, name)) for run in self.runs}
        return {run: record for run, record in records.items() if record is not None}

    def expected(self, stage: str) -> bool:
        """Whether the run's config runs ``stage``: always, for a stage that cannot be turned off, else as
        ``<stage>.enabled`` says (the schema's default when the recorded config omits it); never, when the
        manifest records no config (nothing to judge by)."""
        if "config" not in self.manifest:
            return False
        if stage not in SWITCHED_STAGES:
            return True
        section = self.manifest["config"].get(stage) or {}
        return bool(section.get("enabled", ExperimentConfig.model_fields[stage].default.enabled))

    def missing(self) -> dict[str, list[str]]:
        """Stage -> the run-relative files it always writes that are absent, for every stage the config
        runs: per-model metrics for each trained model, then :data:`EXPECTED_TABLES`."""
        missing: dict[str, list[str]] = {}
        for stage, tables in EXPECTED_TABLES.items():
            if not self.expected(stage):
                continue
            files = [self.model_file(run, EVAL_METRICS) for run in self.runs] if stage == "evaluate" else []
            absent = [rel for rel in [*files, *tables] if not (self.root / rel).is_file()]
            if absent:
                missing[stage] = absent
        return missing

    def files(self, pattern: str) -> list[str]:
        """Run-relative paths of the files matching ``pattern``, sorted."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file())

    def labels(self, ids: Iterable[str]) -> dict[str, str]:
        """Short display names: parts of ``model__variant__sN`` that every run shares are dropped.

        Sharing is judged over ``ids`` and the run's models together, so labels never collide.
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
