"""Where units run: a process pool on this machine, Ray tasks, or Slurm jobs through Submitit.

Each backend only starts a unit and says when it has finished; the scheduler decides what runs
next. A backend's own failure (a killed worker, a lost node, a cancelled job) comes out of
:meth:`Backend.outcome` as an exception, a unit's exception as the traceback in its outcome.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Hashable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import torch

from xaiquest.config import ExecutorConfig
from xaiquest.errors import ConfigError
from xaiquest.execute.worker import UnitOutcome, UnitRequest, run_unit


class Backend(Protocol):
    slots: int
    """Units it runs at once; the scheduler keeps that many in flight."""

    def submit(self, request: UnitRequest) -> Hashable: ...

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        """The handles among ``handles`` that have finished, waiting up to ``timeout`` seconds for one."""
        ...

    def outcome(self, handle: Hashable) -> UnitOutcome: ...

    def close(self) -> None: ...


def threads_per_unit(configured: int | None, workers: int) -> int:
    """The config's ``threads`` if set, else this machine's cores shared evenly between the workers."""
    return configured or max(1, (os.cpu_count() or 1) // workers)


def default_workers(cfg: ExecutorConfig) -> int:
    """``workers`` if set, else one worker per GPU on a GPU machine, else two."""
    return cfg.workers or torch.cuda.device_count() or 2


class LocalBackend:
    """A ``concurrent.futures`` process pool (spawned, so no forked OpenMP state); on a GPU machine each
    worker sees one GPU through ``CUDA_VISIBLE_DEVICES``. A killed worker breaks the whole pool: its
    running units fail with the pool's error and the pool is rebuilt for the next submission."""

    def __init__(self, workers: int, threads: int) -> None:
        self.slots = workers
        self._threads = threads
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        gpus: Any = context.Queue()
        for gpu in range(torch.cuda.device_count()):
            gpus.put(gpu)
        return concurrent.futures.ProcessPoolExecutor(self.slots, mp_context=context, initializer=_pin_worker,
                                                      initargs=(gpus, self._threads))

    def submit(self, request: UnitRequest) -> Hashable:
        try:
            return self._pool.submit(run_unit, request)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(run_unit, request)

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        done, _ = concurrent.futures.wait(handles, timeout, return_when=concurrent.futures.FIRST_COMPLETED)  # type: ignore[arg-type]
        return list(done)

    def outcome(self, handle: Hashable) -> UnitOutcome:
        outcome: UnitOutcome = handle.result()  # type: ignore[attr-defined]
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _pin_worker(gpus: Any, threads: int) -> None:
    """Pool initializer: one GPU per worker while there are GPUs to give, and the worker's CPU threads."""
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get_nowait())
    except Exception:  # noqa: BLE001 - queue.Empty: a CPU machine, or more workers than GPUs
        pass
    torch.set_num_threads(threads)


class RayBackend:
    """Ray tasks, each asking for its CPU threads and, on a machine with GPUs, ``gpus_per_unit`` GPUs.
    ``ray.init()`` starts Ray here when no cluster address is given; a crashed worker or lost node
    comes back as Ray's error and counts as a failed attempt (Ray's own retries are off: one policy)."""

    def __init__(self, cfg: ExecutorConfig, workers: int, threads: int) -> None:
        ray = _optional("ray", "ray")
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            local = {} if cfg.ray_address else {"num_cpus": workers * threads, "include_dashboard": False}
            ray.init(address=cfg.ray_address, log_to_driver=False, **local)
        gpus = cfg.gpus_per_unit if ray.cluster_resources().get("GPU", 0) else 0
        self.slots = workers
        self._task = ray.remote(run_unit).options(num_cpus=threads, num_gpus=gpus, max_retries=0)

    def submit(self, request: UnitRequest) -> Hashable:
        ref: Hashable = self._task.remote(request)
        return ref

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        if ready:  # and any others that are finished too
            ready, _ = self._ray.wait(list(handles), num_returns=len(handles), timeout=0)
        return list(ready)

    def outcome(self, handle: Hashable) -> UnitOutcome:
        outcome: UnitOutcome = self._ray.get(handle)
        return outcome

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


class SubmititBackend:
    """One Slurm job per unit through Submitit (or its local executor, ``slurm.local``): the run
    directory must be on a file system every node sees (docs/scaling.md)."""

    def __init__(self, cfg: ExecutorConfig, folder: Path, workers: int) -> None:
        submitit = _optional("submitit", "slurm")
        slurm = cfg.slurm
        self._executor = submitit.AutoExecutor(folder=folder, cluster="local" if slurm.local else None)
        parameters: dict[str, Any] = {"timeout_min": slurm.time_min, "gpus_per_node": slurm.gpus_per_job,
                                      "cpus_per_task": slurm.cpus_per_job, "mem_gb": slurm.mem_gb, "nodes": 1,
                                      "tasks_per_node": 1}
        if slurm.partition is not None:
            parameters["slurm_partition"] = slurm.partition
        self._executor.update_parameters(**parameters)
        self.slots = workers

    def submit(self, request: UnitRequest) -> Hashable:
        job: Hashable = self._executor.submit(run_unit, request)
        return job

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        deadline = time.monotonic() + timeout
        while True:
            done = [job for job in handles if job.done()]  # type: ignore[attr-defined]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def outcome(self, handle: Hashable) -> UnitOutcome:
        outcome: UnitOutcome = handle.result()  # type: ignore[attr-defined]
        return outcome

    def close(self) -> None:
        pass


def _optional(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"executor.backend needs {module}, which is not installed; pip install 'xaiquest[{extra}]'") from None
