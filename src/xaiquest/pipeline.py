"""Orders the audit's stages over a run directory; each stage skips work already finished.

Data flows one way: config -> data -> train -> evaluate -> calibrate -> robustness -> explain -> stress -> compare
-> report,
each stage reading only what earlier stages wrote into ``runs/<experiment>/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from xaiquest.calibration.stage import calibrate_stage
from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.evaluate.stage import compare_stage, evaluate_stage
from xaiquest.explain.stage import explain_stage
from xaiquest.inference import resolve_device
from xaiquest.report.stage import report_stage
from xaiquest.robustness.stage import robustness_stage
from xaiquest.stress.stage import stress_stage
from xaiquest.runs import AuditData, prepare_data
from xaiquest.store import RunStore
from xaiquest.train.stage import train_stage

Stage = Callable[[ExperimentConfig, RunStore, AuditData, torch.device], None]
STAGES: dict[str, Stage] = {
    "train": train_stage,
    "evaluate": evaluate_stage,
    "calibrate": calibrate_stage,
    "robustness": robustness_stage,
    "explain": explain_stage,
    "stress": stress_stage,
    "compare": compare_stage,
    "report": report_stage,
}


def run_pipeline(config: ExperimentConfig, runs_dir: Path, stages: list[str]) -> RunStore:
    """Validate inputs first, then open the run directory and run the stages in order."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise XaiquestError(f"unknown stage {unknown[0]!r}; available: {', '.join(STAGES)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    started = time.perf_counter()
    data = prepare_data(config)
    console.print(f"data: {data.source} — train {len(data.train)}, val {len(data.val)}, test {len(data.test)} "
                  f"({time.perf_counter() - started:.1f} s); device {device}")
    store = RunStore(Path(runs_dir) / config.name)
    store.initialise(config.model_dump(mode="json"), data.source)
    for name in stages:
        stage_started = time.perf_counter()
        STAGES[name](config, store, data, device)
        store.record_timing(name, time.perf_counter() - stage_started)
    console.print(f"done in {time.perf_counter() - started:.0f} s: {store.root}")
    return store
