"""Stages: Stage-1 metrics per trained model, and the comparison table across all of them."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import torch

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.evaluate.artifacts import write_evaluation
from xaiquest.evaluate.compare import write_comparison
from xaiquest.inference import audit_logits
from xaiquest.layout import ModelFiles, unit_name
from xaiquest.metrics import classification_metrics, top_confident_mistakes
from xaiquest.runs import (
    AuditData,
    RunKey,
    calibrate_fingerprint,
    check_evaluation,
    evaluate_fingerprint,
    load_trained,
    robustness_fingerprint,
    run_keys,
)
from xaiquest.store import RunStore, atomic_torch_save
from xaiquest.units import Finished, UnitSpec, per_model_units, run_per_model

STAGE1_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc")


def evaluate_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """Test metrics of every trained model, plus its val and test logits for later stages."""

    def evaluate_one(key: RunKey, files: ModelFiles) -> Finished:
        model = load_trained(store, key, data, device)
        test_logits = audit_logits(model, data.test.images, device, config)
        val_logits = audit_logits(model, data.val.images, device, config)
        probs = test_logits.softmax(1)
        metrics = classification_metrics(probs, data.test.labels, data.classes)
        mistakes = top_confident_mistakes(probs, data.test.labels, config.eval.top_mistakes)
        write_evaluation(metrics, mistakes, data.classes, files.eval, title=key.id)
        atomic_torch_save(files.eval.logits, {"test": test_logits, "test_labels": data.test.labels,
                                              "val": val_logits, "val_labels": data.val.labels})
        return Finished([files.eval.logits, files.eval.metrics, files.eval.misclassified], {"accuracy": metrics.accuracy},
                        f"test accuracy {metrics.accuracy:.2%}")

    run_per_model("evaluate", run_keys(config), store, lambda key: evaluate_fingerprint(config, data, key, store),
                  evaluate_one)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    return per_model_units("evaluate", run_keys(config), lambda key: [unit_name("train", key.id)])


def compare_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """One table across all trained models (mean ± std over seeds), with what later stages measured as long
    as it is current: a column from an older config or an older model would mix stale numbers with fresh ones."""
    keys = run_keys(config)
    calibration = _calibration_columns(config, store, data, keys)
    robustness = _robustness_columns(config, store, data)
    rows = [{**_evaluation_row(store, key), **calibration.get(key.id, {}), **robustness.get(key.id, {})} for key in keys]
    _, md_path = write_comparison(rows, store.layout.tables)
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        console.print(f"  {row['model']:<20} {row['variant']:<12} seed {row['seed']}: accuracy {row['accuracy']:.2%}")
    console.print(f"compare: wrote {md_path}")


def _evaluation_row(store: RunStore, key: RunKey) -> dict[str, Any]:
    files = store.layout.model(key.id)
    if not files.eval.metrics.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet; run `xaiquest evaluate` first")
    check_evaluation(store, key, files.eval.metrics)
    setup = json.loads(files.train_record.read_text(encoding="utf-8"))
    metrics = json.loads(files.eval.metrics.read_text(encoding="utf-8"))
    return {**{k: v for k, v in setup.items() if k not in ("device", "train_images", "patch")},
            **{k: metrics[k] for k in STAGE1_METRICS}}


def _calibration_columns(config: ExperimentConfig, store: RunStore, data: AuditData,
                         keys: list[RunKey]) -> dict[str, dict[str, float]]:
    """ECE, NLL and temperature by run id, of the models whose calibration is current."""
    columns, stale, missing = {}, [], []
    for key in keys:
        unit, path = unit_name("calibrate", key.id), store.layout.model(key.id).calibration.summary
        if path.exists() and store.is_current(unit, calibrate_fingerprint(config, data, key, store)):
            store.check_artifact(unit, path, _REDO.format(command="calibrate"))
            summary = json.loads(path.read_text(encoding="utf-8"))
            columns[key.id] = {"ece": summary["before"]["ece"], "ece_after_ts": summary["after"]["ece"],
                               "nll": summary["before"]["nll"], "nll_after_ts": summary["after"]["nll"],
                               "temperature": summary["temperature"]}
        else:
            (stale if path.exists() or store.unit_record(unit) else missing).append(key.id)
    _say_left_out("calibration", ", ".join(stale), True, "calibrate")
    _say_left_out("calibration", ", ".join(missing), False, "calibrate")
    return columns


def _robustness_columns(config: ExperimentConfig, store: RunStore, data: AuditData) -> dict[str, dict[str, float]]:
    """Corruption accuracy and mCE by run id, if the robustness stage measured them for today's config and models."""
    if not config.robustness.enabled:
        return {}
    path = store.layout.tables.robustness_summary
    recorded = bool(store.unit_record("robustness"))  # asked first: the fingerprint loads the corruption registry
    if not (recorded and path.exists() and store.is_current("robustness", robustness_fingerprint(config, data, store))):
        _say_left_out("robustness", "the run", recorded or path.exists(), "robustness")
        return {}
    store.check_artifact("robustness", path, _REDO.format(command="robustness"))
    table = pd.read_csv(path).set_index("run")
    return {str(run): {"mean_corruption_accuracy": float(row["mean_corruption_accuracy"]), "mce": float(row["mce"]),
                       "relative_mce": float(row["relative_mce"])} for run, row in table.iterrows()}


_REDO = "run `xaiquest {command}` to redo it"


def _say_left_out(stage: str, runs: str, stale: bool, command: str) -> None:
    """One line naming a stage whose columns the comparison leaves out, and the command that adds them."""
    if not runs:
        return
    reason = "is stale (config or model changed since)" if stale else "was not measured yet"
    console.print(f"compare: {stage} of {runs} {reason}, its columns are left out; run `xaiquest {command}` "
                  f"to {'refresh' if stale else 'add'} them", highlight=False)
