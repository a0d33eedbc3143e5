"""The executor's parts on their own: the DAG the stages declare, the scheduler's order, retries and
blocking, and the store's locks across real processes (claims survive no killed worker)."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.config import load_config
from xaiquest.console import console
from xaiquest.execute.plan import audit_units
from xaiquest.execute.scheduler import Schedule, _eta, run_units
from xaiquest.execute.worker import UnitOutcome, UnitRequest
from xaiquest.pipeline import STAGES, UNIT_DECLARATIONS
from xaiquest.runs import RunKey, run_keys
from xaiquest.store import RunStore, file_lock
from xaiquest.units import Finished, Scope, StageCut, UnitSpec, run_per_model, scoped


def _config(**extra):
    return load_config("smoke", {"name": "x", "models": ["fastnet"], **extra})


def test_the_plan_holds_every_per_model_unit_once_with_its_inputs():
    units = audit_units(_config(), list(STAGES), UNIT_DECLARATIONS)
    names = [unit.name for unit in units]
    assert len(names) == len(set(names)) == 13 - 6  # one model: 6 per-model stages + robustness
    needs = {unit.name: unit.needs for unit in units}
    assert needs["train/fastnet__baseline__s0"] == ()
    assert needs["evaluate/fastnet__baseline__s0"] == ("train/fastnet__baseline__s0",)
    assert needs["robustness"] == ("evaluate/fastnet__baseline__s0",)
    assert not any(name.startswith(("compare", "report")) for name in names)


def test_a_patch_model_s_stress_unit_also_waits_for_its_control_twin():
    config = _config(variants={"baseline": {}, "patch": {"patch": {"target_class": 0}},
                               "patch_control": {"patch": {"target_class": 0, "control": True}}},
                     models=[{"name": "fastnet", "variants": ["baseline", "patch", "patch_control"]}])
    needs = {unit.name: unit.needs for unit in audit_units(config, list(STAGES), UNIT_DECLARATIONS)}
    assert needs["stress/fastnet__patch__s0"] == ("evaluate/fastnet__patch__s0", "evaluate/fastnet__patch_control__s0")


def test_inputs_from_stages_not_run_now_are_read_from_the_run_not_waited_for():
    units = audit_units(_config(), ["explain"], UNIT_DECLARATIONS)
    assert [(unit.name, unit.needs) for unit in units] == [("explain/fastnet__baseline__s0", ())]


class FakeBackend:
    """Runs each unit synchronously at submission; ``fail`` maps unit -> attempts that fail, ``crash`` raises
    like a lost worker. Records the order units started in."""

    def __init__(self, slots: int, fail: dict[str, int] | None = None, crash: Sequence[str] = (),
                 reused: Sequence[str] = ()) -> None:
        self.slots = slots
        self.fail = dict(fail or {})
        self.crash = set(crash)
        self.reused = set(reused)
        self.started: list[str] = []
        self._outcomes: dict[int, UnitOutcome | Exception] = {}

    def submit(self, request: UnitRequest) -> Hashable:
        self.started.append(request.unit)
        handle = len(self.started)
        if request.unit in self.crash:
            self._outcomes[handle] = RuntimeError("worker killed")
        elif self.fail.get(request.unit, 0) > 0:
            self.fail[request.unit] -= 1
            self._outcomes[handle] = UnitOutcome(request.unit, 0.0, "h", 1, "Traceback\nValueError: boom")
        else:
            self._outcomes[handle] = UnitOutcome(request.unit, 0.0, "h", 1, reused=request.unit in self.reused)
        return handle

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        return [handles[0]]

    def outcome(self, handle: Hashable) -> UnitOutcome:
        outcome = self._outcomes[handle]  # type: ignore[index]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


DAG = [UnitSpec("train", "train/a"), UnitSpec("train", "train/b"),
       UnitSpec("evaluate", "evaluate/a", ("train/a",)), UnitSpec("evaluate", "evaluate/b", ("train/b",)),
       UnitSpec("robustness", "robustness", ("evaluate/a", "evaluate/b")), UnitSpec("explain", "explain/b", ("evaluate/b",))]


def _request(unit: UnitSpec) -> UnitRequest:
    return UnitRequest({}, "", unit.stage, unit.name, 1)


def test_units_start_only_after_their_inputs_and_all_finish(tmp_path):
    backend = FakeBackend(slots=2)
    schedule = run_units(DAG, backend, RunStore(tmp_path), _request, retries=0)
    assert sorted(schedule.done) == sorted(unit.name for unit in DAG) and not schedule.failed
    for unit in DAG:
        assert all(backend.started.index(need) < backend.started.index(unit.name) for need in unit.needs)


def test_a_failing_unit_is_retried_then_recorded_and_only_its_dependants_are_skipped(tmp_path):
    store = RunStore(tmp_path)
    backend = FakeBackend(slots=2, fail={"train/a": 5})
    schedule = run_units(DAG, backend, store, _request, retries=2)
    assert backend.started.count("train/a") == 3
    assert set(schedule.failed) == {"train/a"}
    assert schedule.blocked == {"evaluate/a": "train/a", "robustness": "evaluate/a"}
    assert set(schedule.done) == {"train/b", "evaluate/b", "explain/b"}
    failures = store.failures()
    assert failures["train/a"].endswith("ValueError: boom") and "train/a, which failed" in failures["evaluate/a"]


def test_a_retry_that_succeeds_leaves_no_failure_and_a_lost_worker_counts_as_a_failure(tmp_path):
    schedule = run_units(DAG, FakeBackend(slots=1, fail={"explain/b": 1}), RunStore(tmp_path), _request, retries=1)
    assert "explain/b" in schedule.done and not schedule.failed
    schedule = run_units(DAG, FakeBackend(slots=1, crash=["train/b"]), RunStore(tmp_path / "2"), _request, retries=0)
    assert "RuntimeError: worker killed" in schedule.failed["train/b"]


class StallingBackend(FakeBackend):
    """Finishes nothing in its first wait, as a long unit does."""

    stalled = False

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[Hashable]:
        if not self.stalled:
            self.stalled = True
            return []
        return super().wait(handles, timeout)


def test_a_status_line_appears_while_units_run_long_and_after_each_finished_unit(tmp_path, capsys):
    run_units(DAG[:2], StallingBackend(slots=2), RunStore(tmp_path), _request, retries=0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("run: ")]
    assert lines[0].startswith("run: 0/2 done · still running · running 2: train/a 0 s, train/b 0 s · queued 0")
    assert len(lines) == 3 and lines[-1].startswith("run: 2/2 done · train/b done on h pid 1")


def test_units_a_resumed_run_finds_done_say_so_and_do_not_shorten_the_eta(tmp_path, capsys):
    run_units(DAG[:4], FakeBackend(slots=1, reused=["train/a"]), RunStore(tmp_path), _request, retries=0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("run: ")]
    assert "train/a done on h pid 1 (already done)" in lines[0] and "ETA" not in lines[0]
    assert "ETA" in lines[1]
    schedule = Schedule(done=["train/a", "train/b"], seconds={"train/a": 0.1, "train/b": 30.0}, reused={"train/a"})
    assert _eta(DAG[2:4], schedule, DAG, slots=1) == 60.0  # two units at train/b's 30 s, train/a's 0.1 s left out


def test_a_worker_reports_a_unit_it_found_complete_as_reused(tmp_path, monkeypatch):
    from xaiquest.execute import worker

    store = RunStore(tmp_path)
    request = UnitRequest({}, str(tmp_path), "train", "train/a", 1)
    monkeypatch.setattr(worker, "_run", lambda request, store: store.mark_complete(request.unit, "fp"))
    assert not worker.run_unit(request).reused  # computed now
    monkeypatch.setattr(worker, "_run", lambda request, store: None)
    assert worker.run_unit(request).reused  # complete before, untouched
    monkeypatch.setattr(worker, "_run", lambda request, store: 1 / 0)
    assert not worker.run_unit(request).reused
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)  # as CliRunner does: the console must follow, not stay pinned
    console.print("after the units")
    assert later.getvalue() == "after the units\n"


def _keys() -> list[RunKey]:
    return run_keys(_config(models=["fastnet", "resnet_small"]))


def test_a_worker_scope_computes_its_unit_only_and_stops_the_stage_before_its_tail(tmp_path):
    store, computed = RunStore(tmp_path), []

    def compute(key: RunKey, files) -> Finished:
        computed.append(key.id)
        return Finished([])

    keys = _keys()
    with scoped(Scope(only=frozenset({f"evaluate/{keys[1].id}"}))), pytest.raises(StageCut):
        run_per_model("evaluate", keys, store, lambda key: "fp", compute)
    assert computed == [keys[1].id]
    with scoped(Scope(skip=frozenset({f"evaluate/{keys[0].id}"}))):
        assert run_per_model("evaluate", keys, store, lambda key: "fp", compute) == []  # keys[1] is complete
    assert computed == [keys[1].id] and not store.is_complete(f"evaluate/{keys[0].id}", "fp")


def _hold(path: str, ready) -> None:  # spawned: holds the lock until killed
    with file_lock(Path(path)):
        ready.set()
        time.sleep(60)


def _mark(root: str, prefix: str, count: int) -> None:
    store = RunStore(Path(root))
    for number in range(count):
        store.mark_complete(f"{prefix}/{number}", "fp")


def test_a_claim_waits_for_its_holder_and_is_freed_when_the_holder_is_killed(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    lock = tmp_path / ".claims" / "train" / "a.lock"
    holder = context.Process(target=_hold, args=(str(lock), ready))
    holder.start()
    assert ready.wait(60)
    store = RunStore(tmp_path)
    assert store.busy()
    assert str(holder.pid) in lock.read_text()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    started = time.perf_counter()
    with store.claim("train/a"):
        assert time.perf_counter() - started < 5
    assert not store.busy()


def test_parallel_writers_never_lose_each_other_s_completion_records(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_mark, args=(str(tmp_path), name, 40)) for name in ("a", "b", "c")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert len(RunStore(tmp_path).read_manifest()["units"]) == 120


def test_temp_files_of_a_killed_write_are_swept_only_when_no_unit_is_claimed(tmp_path):
    store = RunStore(tmp_path)
    leftover = tmp_path / "models" / "m" / ".weights.pt.abc.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    assert not store.busy() and store.sweep_temp_files() == 1 and not leftover.exists()


def test_a_bad_executor_setting_is_one_line_naming_the_choices(tmp_path):
    result = CliRunner().invoke(app, ["run", "smoke", "--executor", "threads", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "executor.backend" in result.output and "'inline', 'local', 'ray' or 'submitit'" in result.output
    assert not (tmp_path / "smoke").exists()
