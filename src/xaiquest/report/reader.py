"""Reading a finished run: the tables the report reads, named once, and a lazy read-only view of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

# Run tables the stages write (under ``tables/``).
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
STRESS_TABLES = "tables/stress_*.csv"
CONCEPTS_SUMMARY = "tables/concepts_summary.csv"
CONCEPTS_RELIANCE = "tables/concepts_colour_reliance.csv"
CONCEPTS_TCAV = "tables/concepts_tcav.csv"
CONCEPTS_DETECTORS = "tables/concepts_detectors.csv"
CONCEPTS_TOP_UNITS = "tables/concepts_top_units.csv"
# Files the stages write per run (under ``models/<run>/``).
TRAIN_RECORD = "train.json"
EVAL_METRICS = "eval/metrics.json"
PER_CLASS = "eval/per_class.csv"
AGREEMENT = "explain/agreement_iou.csv"
# Tables the report itself computes (written by the renderer next to the stage tables).
SETUP = "tables/setup.csv"
ROBUSTNESS_FAMILIES = "tables/robustness_families.csv"
XAI_METHODS = "tables/xai_methods.csv"
FINAL_RANKING = "tables/final_ranking.csv"

STAGE_TABLES = (COMPARISON, CALIBRATION, EXPLAIN_QUALITY, ROBUSTNESS_SUMMARY, ROBUSTNESS_ACCURACY, PATCH_RELIANCE,
                PATCH_LOCALISATION, LAYERWISE, STRESS_PROBES, REEXAMINE, STRESS_TABLES, CONCEPTS_SUMMARY,
                CONCEPTS_RELIANCE, CONCEPTS_TCAV, CONCEPTS_DETECTORS)
"""Run-relative tables (or glob patterns) from the stages that the findings rules read."""
PER_RUN_FILES = (TRAIN_RECORD, EVAL_METRICS, PER_CLASS, AGREEMENT)
"""Per-run files from the stages that the findings rules read: a test checks a stage writes each one,
so renaming a stage's output fails loudly instead of silencing the rules that read it."""


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
