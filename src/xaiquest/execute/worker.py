"""One unit in a worker process: the same stage code as an inline run, scoped to that unit."""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.data import normalised_by
from xaiquest.inference import resolve_device
from xaiquest.runs import AuditData, prepare_data
from xaiquest.store import RunStore
from xaiquest.units import Scope, StageCut, scoped


@dataclass(frozen=True)
class UnitRequest:
    """Everything a worker needs, picklable for any backend: the resolved config, the run, the unit."""

    config: dict[str, Any]
    run_root: str
    stage: str
    unit: str
    threads: int


@dataclass(frozen=True)
class UnitOutcome:
    """What came back: success, or the traceback of the exception the unit raised."""

    unit: str
    seconds: float
    host: str
    pid: int
    error: str | None = None
    reused: bool = False
    """The unit was already complete (a resumed run): its time says nothing about how long the unit takes."""


_DATA: dict[str, AuditData] = {}
"""This process's loaded data, by the data section it came from: a pool worker loads it once."""


def run_unit(request: UnitRequest) -> UnitOutcome:
    """Run ``request.unit`` through its stage (skipped if another process already finished it); an
    exception comes back as its traceback, a killed process as the backend's own error."""
    started = time.perf_counter()
    store = RunStore(Path(request.run_root))
    before = store.unit_record(request.unit)
    with _logging_to(store.layout.unit_log(request.unit)):
        try:
            _run(request, store)
            error = None
        except Exception:  # noqa: BLE001 - any failure is the unit's, reported with its traceback
            error = traceback.format_exc()
            console.print(error, highlight=False, markup=False)
    reused = error is None and bool(before) and store.unit_record(request.unit) == before
    return UnitOutcome(request.unit, time.perf_counter() - started, socket.gethostname(), os.getpid(), error, reused)


def _run(request: UnitRequest, store: RunStore) -> None:
    from xaiquest.pipeline import load_stage  # the stage registry; imported here, where the stages run

    torch.set_num_threads(request.threads)
    config = ExperimentConfig.model_validate(request.config)
    data = _data(config)
    with normalised_by(data.normalisation), scoped(Scope(only=frozenset({request.unit}))):
        try:
            load_stage(request.stage)(config, store, data, resolve_device(config.device))
        except StageCut:
            pass


def _data(config: ExperimentConfig) -> AuditData:
    key = config.data.model_dump_json()
    if key not in _DATA:
        _DATA[key] = prepare_data(config)
    return _DATA[key]


@contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The unit's progress lines go to its own log file (parallel workers would interleave on one terminal).

    Afterwards the console follows ``sys.stderr`` again, as it was made to: restoring the stream
    ``console.file`` returned would pin the one that was current then (a test's captured stream),
    and later output would go there whatever ``sys.stderr`` has become."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        console.file = log
        try:
            yield
        finally:
            console.file = None  # type: ignore[assignment]  # rich: no file of its own, write to sys.stderr
