"""The skeleton every per-model stage shares, written once.

run keys -> fingerprint -> skip if complete -> compute (load, measure, write) -> mark complete,
with one progress line per finished unit (count, elapsed time, ETA) that reads the same on a
terminal and in a log file, then gathering the per-model tables into run tables. A stage is its
compute function plus the declaration of the files it writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xaiquest.console import console
from xaiquest.layout import ModelFiles, unit_name
from xaiquest.runs import RunKey
from xaiquest.store import RunStore, atomic_write_text


@dataclass(frozen=True)
class Finished:
    """What a unit's compute function hands back: the key files to record (by size and hash, checked
    on every later skip or read), a summary for the manifest, and an optional line for the log."""

    artifacts: Sequence[Path]
    summary: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""


def run_per_model(stage: str, keys: Sequence[RunKey], store: RunStore, fingerprint_of: Callable[[RunKey], str],
                  compute: Callable[[RunKey, ModelFiles], Finished]) -> list[RunKey]:
    """Run ``compute`` for every key whose unit is not finished under its fingerprint; returns the keys redone.

    ``compute`` writes the model's files (atomically, through the store helpers) and returns
    :class:`Finished`; only then is the unit marked complete, so a killed run redoes it."""
    todo = [(key, fingerprint_of(key)) for key in keys]
    todo = [(key, fp) for key, fp in todo if not store.is_complete(unit_name(stage, key.id), fp)]
    if not todo:
        if keys:
            console.print(f"{stage}: all {len(keys)} models already done, skipping")
        return []
    started = time.perf_counter()
    for done, (key, fp) in enumerate(todo, 1):
        unit_started = time.perf_counter()
        finished = compute(key, store.layout.model(key.id))
        store.mark_complete(unit_name(stage, key.id), fp, dict(finished.summary), artifacts=finished.artifacts)
        console.print(progress_line(stage, key.id, done, len(todo), time.perf_counter() - unit_started,
                                    time.perf_counter() - started, finished.message), highlight=False)
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
