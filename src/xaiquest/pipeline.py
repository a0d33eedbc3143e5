"""Orders the audit's stages over a run directory; each stage skips work already finished.

Data flows one way: config -> data -> train -> evaluate -> calibrate -> robustness -> explain -> stress -> concepts
-> transfer -> compare -> report,
each stage reading only what earlier stages wrote into ``runs/<experiment>/``.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from xaiquest.config import VARIANT_STAGES, ExperimentConfig
from xaiquest.console import console
from xaiquest.data import normalised_by, peek_class_count
from xaiquest.errors import XaiquestError
from xaiquest.inference import resolve_device
from xaiquest.layout import unit_name
from xaiquest.runs import (
    AuditData,
    check_model_sources,
    describe_data,
    prepare_data,
    run_keys,
    started_from_weights,
    stress_keys,
    train_fingerprint,
)
from xaiquest.store import RunStore
from xaiquest.units import Scope, scoped
from xaiquest.validation import check_config

Stage = Callable[[ExperimentConfig, RunStore, AuditData, torch.device], None]
STAGES: dict[str, str] = {
    "train": "xaiquest.train.stage:train_stage",
    "evaluate": "xaiquest.evaluate.stage:evaluate_stage",
    "calibrate": "xaiquest.calibration.stage:calibrate_stage",
    "robustness": "xaiquest.robustness.stage:robustness_stage",
    "explain": "xaiquest.explain.stage:explain_stage",
    "stress": "xaiquest.stress.stage:stress_stage",
    "concepts": "xaiquest.concepts.stage:concepts_stage",
    "transfer": "xaiquest.transfer.stage:transfer_stage",
    "compare": "xaiquest.evaluate.stage:compare_stage",
    "report": "xaiquest.report.stage:report_stage",
}
"""Stage name -> ``module:function``, imported only when the stage runs: a config mistake is
reported before the stages' heavy libraries (Captum, grad-cam, OpenCV, matplotlib) load."""
UNIT_DECLARATIONS: dict[str, str] = {
    stage: f"{STAGES[stage].split(':')[0]}:stage_units"
    for stage in ("train", "evaluate", "calibrate", "robustness", "explain", "stress", "concepts", "transfer")
}
"""Stage name -> its ``stage_units(config)``: the units an executor runs side by side, with their inputs.
Compare and report have none: they are run-level tails, run once when every unit is done."""


def load_stage(name: str) -> Stage:
    module, function = STAGES[name].split(":")
    stage: Stage = getattr(importlib.import_module(module), function)
    return stage


def run_pipeline(config: ExperimentConfig, runs_dir: Path, stages: list[str]) -> RunStore:
    """Validate inputs first (every name of the config, then the data and what depends on it: class
    indices, torchvision layers at the data's size, weights files), then open the run directory and
    run the stages in order."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise XaiquestError(f"unknown stage {unknown[0]!r}; available: {', '.join(STAGES)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    started = time.perf_counter()
    # every name and class index, in seconds, before the data loads (the class count from its folders)
    classes = len(config.data.classes) if config.data.classes else peek_class_count(config.data.source,
                                                                                    Path(config.data.cache_dir))
    check_config(config, classes, config.data.image_size, quick=True)
    data = prepare_data(config)
    console.print(f"data: {data.source} — train {len(data.train)}, val {len(data.val)}, test {len(data.test)} "
                  f"({time.perf_counter() - started:.1f} s); device {device}")
    check_config(config, len(data.classes), data.image_size)
    check_model_sources(config, data)
    store = RunStore(Path(runs_dir) / config.name)
    store.initialise(config.model_dump(mode="json"), data.source, data.root, data.fingerprint, describe_data(data),
                     [key.id for key in run_keys(config)])
    console.print(plan_line(config, store, data, stages), highlight=False)
    if not store.busy():
        store.sweep_temp_files()
    missing: frozenset[str] = frozenset()
    if config.executor.backend != "inline":
        from xaiquest.execute.run import execute_units

        executed = time.perf_counter()
        missing = execute_units(config, store, stages, UNIT_DECLARATIONS).missing
        store.record_timing("executor", time.perf_counter() - executed)
    with normalised_by(data.normalisation), scoped(Scope(skip=missing)):
        for name in stages:
            stage_started = time.perf_counter()
            _run_stage(name, config, store, data, device, tolerate=bool(missing))
            store.record_timing(name, time.perf_counter() - stage_started)
    failures = store.failures()
    if failures:
        raise XaiquestError(f"{len(failures)} unit(s) failed ({', '.join(failures)}); their tracebacks are in "
                            f"{store.layout.failures}, the report lists what is missing; rerun the same command to retry them")
    console.print(f"done in {time.perf_counter() - started:.0f} s: {store.root}")
    return store


def _run_stage(name: str, config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device,
               tolerate: bool) -> None:
    """Run one stage (after an executor: only its run-level tail, its units being done). With failed
    units (``tolerate``) a stage that cannot finish without them is recorded as failed, and the rest go on
    so the report can say what is missing and why."""
    try:
        load_stage(name)(config, store, data, device)
        store.layout.failure(name).unlink(missing_ok=True)
    except Exception:
        if not tolerate:
            raise
        report = traceback.format_exc()
        store.record_failure(name, report)
        console.print(f"[red]{name} could not finish without the failed units[/]: {report.strip().splitlines()[-1]}",
                      highlight=False)


def plan_line(config: ExperimentConfig, store: RunStore, data: AuditData, stages: list[str]) -> str:
    """``plan: train 6 models (2 done), evaluate 6, ..., robustness 4, ...``: what the run will cover, so a
    log shows the work ahead before the first long step (each stage skips what it finished before)."""
    keys = run_keys(config)
    trained = sum(store.is_current(unit_name("train", key.id), train_fingerprint(config, data, key)) for key in keys)
    parts = []
    for stage in stages:
        section = getattr(config, stage, None) if stage in VARIANT_STAGES else None
        if section is not None and not section.enabled:
            parts.append(f"{stage} off")
        elif stage == "train":
            parts.append(f"train {len(keys)} models ({trained} done)" if trained else f"train {len(keys)} models")
        elif stage in ("compare", "report"):
            parts.append(stage)
        elif stage == "transfer":
            parts.append(_transfer_plan(config))
        elif stage == "stress":  # the patch probe's models too, not only the battery's variants
            parts.append(f"stress {len(stress_keys(config))}")
        else:
            parts.append(f"{stage} {len(run_keys(config, section.variants if section is not None else None))}")
    return "plan: " + ", ".join(parts)



def _transfer_plan(config: ExperimentConfig) -> str:
    """``transfer 2``, or why the stage has nothing to do (no model starts from weights, or it is off)."""
    started = len(started_from_weights(config))
    if not config.transfer.enabled:
        return "transfer off"
    return f"transfer {started}" if started else "transfer skipped (no model starts from weights)"
