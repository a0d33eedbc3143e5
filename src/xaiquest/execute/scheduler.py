"""Hands every unit whose inputs exist to a backend, keeps ``slots`` in flight, retries, reports.

Progress is one line per finished or failed unit, the same on a terminal and in a log: done /
running / queued / failed counts, the units running now and an ETA from the finished units'
mean time per stage (units a resumed run finds already complete do not count: they take no time).
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from rich.markup import escape

from xaiquest.console import console
from xaiquest.execute.backends import Backend
from xaiquest.execute.worker import UnitOutcome, UnitRequest
from xaiquest.store import RunStore
from xaiquest.units import UnitSpec, duration

WAIT_SECONDS = 60.0
"""How long one wait for a finished unit lasts before the status line is printed anyway (a log shows long units go on)."""


@dataclass
class Schedule:
    """Where every unit of the plan stands; ``failed`` holds tracebacks, ``blocked`` the failed input."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Each done unit's time from submission to its result, as the scheduler saw it."""
    worker_seconds: dict[str, float] = field(default_factory=dict)
    """The same units' time inside the worker: the difference is the backend's overhead (dispatch, transfer)."""
    reused: set[str] = field(default_factory=set)
    """Done units that were already complete before this run (a resume): left out of the ETA."""

    @property
    def missing(self) -> frozenset[str]:
        return frozenset(self.failed) | frozenset(self.blocked)


@dataclass
class _Running:
    spec: UnitSpec
    started: float


def run_units(units: Sequence[UnitSpec], backend: Backend, store: RunStore, request_of: Callable[[UnitSpec], UnitRequest],
              retries: int) -> Schedule:
    """Run the DAG ``units`` on ``backend``; a unit starts once every unit it needs is done. A failed
    unit is tried ``retries`` more times, then recorded (its traceback under ``failures/``) and the
    units that need it, directly or not, are not run; everything else goes on."""
    schedule = Schedule()
    queued = {unit.name: unit for unit in units}
    running: dict[Hashable, _Running] = {}
    attempts: Counter[str] = Counter()
    started = time.perf_counter()
    while queued or running:
        _block_dependants(queued, schedule, store)
        ready = [unit for unit in queued.values() if all(need in schedule.done for need in unit.needs)]
        for unit in ready[: backend.slots - len(running)]:
            del queued[unit.name]
            attempts[unit.name] += 1
            running[backend.submit(request_of(unit))] = _Running(unit, time.perf_counter())
        if not running:
            break  # nothing can start: everything left waits on a failed unit
        finished = backend.wait(list(running), WAIT_SECONDS)
        if not finished:
            console.print(_status_line("still running", schedule, running, queued, units, started, backend.slots),
                          highlight=False)
        for handle in finished:
            entry = running.pop(handle)
            outcome, error = _result_of(backend, handle)
            unit = entry.spec
            if error is None and outcome is not None:
                schedule.done.append(unit.name)
                schedule.seconds[unit.name] = time.perf_counter() - entry.started
                schedule.worker_seconds[unit.name] = outcome.seconds
                if outcome.reused:
                    schedule.reused.add(unit.name)
                how = "already done" if outcome.reused else f"{schedule.seconds[unit.name]:.1f} s"
                event = f"{escape(unit.name)} done on {outcome.host} pid {outcome.pid} ({how})"
            elif attempts[unit.name] <= retries:
                queued[unit.name] = unit
                event = f"[yellow]{escape(unit.name)} failed (attempt {attempts[unit.name]}), retrying[/]: {escape(_last_line(error))}"
            else:
                schedule.failed[unit.name] = error
                store.record_failure(unit.name, error)
                event = f"[red]{escape(unit.name)} failed[/] after {attempts[unit.name]} attempts: {escape(_last_line(error))}"
            console.print(_status_line(event, schedule, running, queued, units, started, backend.slots), highlight=False)
    _block_dependants(queued, schedule, store)
    return schedule


def _result_of(backend: Backend, handle: Hashable) -> tuple[UnitOutcome | None, str | None]:
    """The unit's outcome and its traceback (None on success); the backend's error (a killed worker) as a traceback."""
    try:
        outcome: UnitOutcome = backend.outcome(handle)
    except Exception:  # noqa: BLE001 - whatever the backend raises for a lost worker is this unit's failure
        return None, traceback.format_exc()
    return outcome, outcome.error


def _block_dependants(queued: dict[str, UnitSpec], schedule: Schedule, store: RunStore) -> None:
    """Move every queued unit that needs a failed or blocked unit to ``blocked`` (to a fixed point)."""
    changed = True
    while changed:
        changed = False
        for unit in list(queued.values()):
            cause = next((need for need in unit.needs if need in schedule.missing), None)
            if cause is not None:
                schedule.blocked[unit.name] = cause
                store.record_failure(unit.name, f"not run: it needs {cause}, which failed\n")
                del queued[unit.name]
                changed = True


def _last_line(report: str) -> str:
    lines = [line for line in report.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def _status_line(event: str, schedule: Schedule, running: dict[Hashable, _Running], queued: dict[str, UnitSpec],
                 units: Sequence[UnitSpec], started: float, slots: int) -> str:
    """``run: 5/40 done · train/x done on node3 pid 4242 (35.1 s) · running 2: train/y 12 s, evaluate/z 1 s · queued 33 · failed 0 (elapsed 2 min 10 s, ETA 9 min)``."""
    now = time.perf_counter()
    active = ", ".join(f"{escape(entry.spec.name)} {now - entry.started:.0f} s" for entry in running.values())
    left = [entry.spec for entry in running.values()] + list(queued.values())
    eta = _eta(left, schedule, units, slots)
    return (f"run: {len(schedule.done)}/{len(units)} done · {event} · running {len(running)}"
            f"{f': {active}' if active else ''} · queued {len(queued)} · failed {len(schedule.failed)}"
            f"{f' · blocked {len(schedule.blocked)}' if schedule.blocked else ''} (elapsed {duration(now - started)}"
            f"{f', ETA {duration(eta)}' if eta is not None and left else ''})")


def _eta(left: Sequence[UnitSpec], schedule: Schedule, units: Sequence[UnitSpec], slots: int) -> float | None:
    """Remaining units times their stage's mean finished-unit time (the overall mean for a stage with
    none finished yet), shared by the slots; None before any unit has been computed (not just found done)."""
    computed = {name: seconds for name, seconds in schedule.seconds.items() if name not in schedule.reused}
    if not computed:
        return None
    stage_of = {unit.name: unit.stage for unit in units}
    by_stage: dict[str, list[float]] = {}
    for name, seconds in computed.items():
        by_stage.setdefault(stage_of[name], []).append(seconds)
    overall = sum(computed.values()) / len(computed)
    mean = {stage: sum(times) / len(times) for stage, times in by_stage.items()}
    return sum(mean.get(unit.stage, overall) for unit in left) / slots
