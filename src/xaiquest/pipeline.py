"""Orders the audit's stages over a run directory; each stage skips work already finished.

Data flows one way: config -> data -> train -> evaluate -> calibrate -> robustness -> explain -> stress -> concepts -> compare
-> report,
each stage reading only what earlier stages wrote into ``runs/<experiment>/``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from xaiquest.config import VARIANT_STAGES, ExperimentConfig
from xaiquest.console import console
from xaiquest.data import normalised_by, peek_class_count
from xaiquest.errors import XaiquestError
from xaiquest.inference import resolve_device
from xaiquest.layout import unit_name
from xaiquest.runs import AuditData, check_model_sources, describe_data, prepare_data, run_keys, train_fingerprint
from xaiquest.store import RunStore
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
    "compare": "xaiquest.evaluate.stage:compare_stage",
    "report": "xaiquest.report.stage:report_stage",
}
"""Stage name -> ``module:function``, imported only when the stage runs: a config mistake is
reported before the stages' heavy libraries (Captum, grad-cam, OpenCV, matplotlib) load."""


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
    check_config(config, peek_class_count(config.data.source, Path(config.data.cache_dir)), config.data.image_size,
                 quick=True)
    data = prepare_data(config)
    console.print(f"data: {data.source} — train {len(data.train)}, val {len(data.val)}, test {len(data.test)} "
                  f"({time.perf_counter() - started:.1f} s); device {device}")
    check_config(config, len(data.classes), data.image_size)
    check_model_sources(config, data)
    store = RunStore(Path(runs_dir) / config.name)
    store.initialise(config.model_dump(mode="json"), data.source, data.root, data.fingerprint, describe_data(data),
                     [key.id for key in run_keys(config)])
    console.print(plan_line(config, store, data, stages), highlight=False)
    with normalised_by(data.normalisation):
        for name in stages:
            stage_started = time.perf_counter()
            load_stage(name)(config, store, data, device)
            store.record_timing(name, time.perf_counter() - stage_started)
    console.print(f"done in {time.perf_counter() - started:.0f} s: {store.root}")
    return store


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
        else:
            parts.append(f"{stage} {len(run_keys(config, section.variants if section is not None else None))}")
    return "plan: " + ", ".join(parts)

