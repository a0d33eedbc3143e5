"""The skeleton every per-model stage shares, written once.

run keys -> fingerprint -> skip if complete -> compute (load, measure, write) -> mark complete,
with one progress line per finished unit (count, elapsed time, ETA) that reads the same on a
terminal and in a log file, then gathering the per-model tables into run tables. A stage is its
compute function plus the declaration of the files it writes, and of its units and their inputs
(:class:`UnitSpec`), which is all an executor needs to run the units of several stages side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xaiquest.console import console
from xaiquest.layout import ModelFiles, unit_name
from xaiquest.runs import RunKey
from xaiquest.store import RunStore, atomic_write_text

if TYPE_CHECKING:  # pandas loads with the stages that gather tables, not with the pipeline's config check
    import pandas as pd


@dataclass(frozen=True)
class Finished:
    """What a unit's compute function hands back: the key files to record (by size and hash, checked
    on every later skip or read), a summary for the manifest, and an optional line for the log."""

    artifacts: Sequence[Path]
    summary: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class UnitSpec:
    """One unit a stage will run for this config, and the units whose outputs it reads (``needs``):
    the edges of the audit's DAG, declared by each stage's ``stage_units(config)``."""

    stage: str
    name: str
    needs: tuple[str, ...] = ()


def per_model_units(stage: str, keys: Iterable[RunKey], needs: Callable[[RunKey], Iterable[str]]) -> list[UnitSpec]:
    """``stage/<run id>`` for every key, each with the units it reads."""
    return [UnitSpec(stage, unit_name(stage, key.id), tuple(needs(key))) for key in keys]


@dataclass(frozen=True)
class Scope:
    """Which units this process may compute: ``only`` (an executor's worker: that unit, then stop the
    stage before its run-level tail) or all but ``skip`` (the final pass after failed units)."""

    only: frozenset[str] | None = None
    skip: frozenset[str] = frozenset()

    def allows(self, unit: str) -> bool:
        return unit not in self.skip and (self.only is None or unit in self.only)


class StageCut(Exception):
    """Raised in a worker once its unit is done: the stage's run-level tail (gathering tables, figures
    across models) is the final pass's job, run once after every unit has finished."""


_SCOPE: ContextVar[Scope] = ContextVar("xaiquest_unit_scope", default=Scope())


@contextmanager
def scoped(scope: Scope) -> Iterator[None]:
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def allowed(unit: str) -> bool:
    """Whether this process may compute ``unit``: what a run-level unit outside :func:`run_per_model` asks."""
    return _SCOPE.get().allows(unit)


def in_worker() -> bool:
    """Whether this process computes one unit for an executor (a stage skips its run-wide preamble then)."""
    return _SCOPE.get().only is not None


def run_per_model(stage: str, keys: Sequence[RunKey], store: RunStore, fingerprint_of: Callable[[RunKey], str],
                  compute: Callable[[RunKey, ModelFiles], Finished]) -> list[RunKey]:
    """Run ``compute`` for every key whose unit is not finished under its fingerprint; returns the keys redone.

    ``compute`` writes the model's files (atomically, through the store helpers) and returns
    :class:`Finished`; only then is the unit marked complete, so a killed run redoes it. Each unit runs
    under the store's claim, so two processes never compute the same unit at once. In a worker's
    scope only its unit runs, then :class:`StageCut` ends the stage."""
    scope = _SCOPE.get()
    keys = [key for key in keys if scope.allows(unit_name(stage, key.id))]
    todo = [(key, fingerprint_of(key)) for key in keys]
    todo = [(key, fp) for key, fp in todo if not store.is_complete(unit_name(stage, key.id), fp)]
    if not todo and keys and scope.only is None:
        console.print(f"{stage}: all {len(keys)} models already done, skipping")
    started = time.perf_counter()
    for done, (key, fp) in enumerate(todo, 1):
        unit = unit_name(stage, key.id)
        with store.claim(unit):
            if store.is_complete(unit, fp):  # another process finished it while this one waited for the claim
                continue
            unit_started = time.perf_counter()
            finished = compute(key, store.layout.model(key.id))
            store.mark_complete(unit, fp, dict(finished.summary), artifacts=finished.artifacts)
        console.print(progress_line(stage, key.id, done, len(todo), time.perf_counter() - unit_started,
                                    time.perf_counter() - started, finished.message), highlight=False)
    if scope.only is not None:
        raise StageCut(stage)
    return [key for key, _ in todo]


def progress_line(stage: str, unit: str, done: int, total: int, unit_seconds: float, elapsed: float, message: str = "") -> str:
    """``evaluate: 3/9 fastnet__baseline__s0 test accuracy 80.1% (12.0 s; elapsed 36 s, ETA 1 min 12 s)``:
    the ETA assumes the remaining units cost what the finished ones did on average."""
    detail = f" {message}" if message else ""
    return f"{stage}: {done}/{total} {unit}{detail} {timing(unit_seconds, elapsed, done, total)}"


def timing(step_seconds: float, elapsed: float, done: int, total: int) -> str:
    """``(12.0 s; elapsed 36 s, ETA 1 min 12 s)`` after ``done`` of ``total`` equal-looking steps (units, epochs)."""
    eta = f", ETA {duration(elapsed / done * (total - done))}" if done < total else ""
    return f"({step_seconds:.1f} s; elapsed {duration(elapsed)}{eta})"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: what a person waiting reads at a glance."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def gather_tables(store: RunStore, keys: Iterable[RunKey], per_model: Callable[[ModelFiles, str], Path],
                  names: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Concatenate each per-model table ``name`` (with a ``run`` column) into the run table ``names[name]``
    under ``tables/``; tables no model wrote are left out. Returns the written tables by run-table name."""
    import pandas as pd

    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    for key in keys:
        files = store.layout.model(key.id)
        for name in names:
            path = per_model(files, name)
            if path.exists():
                frames[name].append(pd.read_csv(path).assign(run=key.id))
    tables = {names[name]: pd.concat(parts, ignore_index=True) for name, parts in frames.items() if parts}
    for name, table in tables.items():
        atomic_write_text(store.layout.tables.csv(name), table.to_csv(index=False))
    return tables
