"""The executor's entry: the plan's units on the configured backend, then back to the pipeline."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.execute.backends import (
    Backend,
    LocalBackend,
    RayBackend,
    SubmititBackend,
    default_workers,
    threads_per_unit,
)
from xaiquest.execute.plan import audit_units
from xaiquest.execute.scheduler import Schedule, run_units
from xaiquest.execute.worker import UnitRequest
from xaiquest.store import RunStore
from xaiquest.units import UnitSpec


def execute_units(config: ExperimentConfig, store: RunStore, stages: Sequence[str],
                  declarations: Mapping[str, str]) -> Schedule:
    """Run every unit of ``stages`` on ``config.executor``'s backend (each finished unit is skipped
    by its worker, as inline); the pipeline then runs the stages' run-level tails once."""
    cfg = config.executor
    units = audit_units(config, stages, declarations)
    workers = default_workers(cfg)
    threads = ((config.threads or cfg.slurm.cpus_per_job) if cfg.backend == "submitit"
               else threads_per_unit(config.threads, workers))
    backend = _backend(config, store, workers, threads)
    console.print(f"executor: {cfg.backend}, {len(units)} units on {backend.slots} workers x {threads} threads",
                  highlight=False)
    dumped = config.model_dump(mode="json")

    def request_of(unit: UnitSpec) -> UnitRequest:
        return UnitRequest(dumped, str(store.root.resolve()), unit.stage, unit.name, threads)

    try:
        schedule = run_units(units, backend, store, request_of, cfg.retries)
    finally:
        backend.close()
    store.record_executor(_summary(cfg.backend, backend.slots, threads, schedule))
    return schedule


def _summary(backend: str, workers: int, threads: int, schedule: Schedule) -> dict[str, object]:
    """What the manifest keeps of the executor's run. A unit's overhead is the time it spent outside its
    worker's own work: dispatch and result transfer, plus, for a worker's first unit, starting the worker
    (the mean carries those starts, the median is the steady per-unit cost)."""
    overheads = [schedule.seconds[unit] - schedule.worker_seconds[unit] for unit in schedule.done]
    return {"backend": backend, "workers": workers, "threads_per_unit": threads, "done": len(schedule.done),
            "failed": sorted(schedule.failed), "blocked": sorted(schedule.blocked),
            "unit_seconds": round(sum(schedule.worker_seconds.values()), 1),
            "overhead_s": round(statistics.mean(overheads), 3) if overheads else None,
            "overhead_median_s": round(statistics.median(overheads), 3) if overheads else None}


def _backend(config: ExperimentConfig, store: RunStore, workers: int, threads: int) -> Backend:
    cfg = config.executor
    if cfg.backend == "ray":
        return RayBackend(cfg, workers, threads)
    if cfg.backend == "submitit":
        return SubmititBackend(cfg, store.layout.jobs, workers)
    return LocalBackend(workers, threads)
