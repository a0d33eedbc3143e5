"""Stages: Stage-1 metrics per trained model, and the comparison table across all of them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.evaluate.artifacts import write_evaluation
from xaiquest.evaluate.compare import write_comparison
from xaiquest.inference import audit_logits
from xaiquest.metrics import classification_metrics, top_confident_mistakes
from xaiquest.runs import (AuditData, RunKey, check_evaluation, evaluate_fingerprint, evaluate_unit, load_trained, run_dir,
                           run_keys)
from xaiquest.store import RunStore, atomic_torch_save

STAGE1_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc")


def evaluate_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """Test metrics of every trained model, plus its val and test logits for later stages."""
    for key in run_keys(config):
        unit_fp = evaluate_fingerprint(config, data, key, store)
        if store.is_complete(evaluate_unit(key), unit_fp):
            continue
        started = time.perf_counter()
        model = load_trained(store, key, data, device)
        out = run_dir(store, key) / "eval"
        test_logits = audit_logits(model, data.test.images, device, config)
        val_logits = audit_logits(model, data.val.images, device, config)
        probs = test_logits.softmax(1)
        metrics = classification_metrics(probs, data.test.labels, data.classes)
        mistakes = top_confident_mistakes(probs, data.test.labels, config.eval.top_mistakes)
        write_evaluation(metrics, mistakes, data.classes, out, title=key.id)
        atomic_torch_save(out / "logits.pt", {"test": test_logits, "test_labels": data.test.labels,
                                              "val": val_logits, "val_labels": data.val.labels})
        store.mark_complete(evaluate_unit(key), unit_fp, {"accuracy": metrics.accuracy},
                            artifacts=[out / name for name in ("logits.pt", "metrics.json", "misclassified.csv")])
        console.print(f"evaluate: {key.id} test accuracy {metrics.accuracy:.2%} ({time.perf_counter() - started:.1f} s)")


def compare_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """One table across all trained models (mean ± std over seeds), with whatever later stages measured."""
    rows = [_comparison_row(store, key) for key in run_keys(config)]
    _, md_path = write_comparison(rows, store.path("tables"))
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        console.print(f"  {row['model']:<20} {row['variant']:<12} seed {row['seed']}: accuracy {row['accuracy']:.2%}")
    console.print(f"compare: wrote {md_path}")


def _comparison_row(store: RunStore, key: RunKey) -> dict[str, Any]:
    folder = run_dir(store, key)
    metrics_file = folder / "eval" / "metrics.json"
    if not metrics_file.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet; run `xaiquest evaluate` first")
    check_evaluation(store, key, metrics_file)
    setup = json.loads((folder / "train.json").read_text(encoding="utf-8"))
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    row = {**{k: v for k, v in setup.items() if k not in ("device", "train_images", "patch")}, **{k: metrics[k] for k in STAGE1_METRICS}}
    return {**row, **_calibration_columns(folder), **_robustness_columns(store, key)}


def _calibration_columns(folder: Path) -> dict[str, float]:
    path = folder / "calibration" / "calibration.json"
    if not path.exists():
        return {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    return {"ece": summary["before"]["ece"], "ece_after_ts": summary["after"]["ece"], "nll": summary["before"]["nll"],
            "nll_after_ts": summary["after"]["nll"], "temperature": summary["temperature"]}


def _robustness_columns(store: RunStore, key: RunKey) -> dict[str, float]:
    path = store.path("tables", "robustness_summary.csv")
    if not path.exists():
        return {}
    table = pd.read_csv(path).set_index("run")
    if key.id not in table.index:
        return {}
    row = table.loc[key.id]
    return {"mean_corruption_accuracy": float(row["mean_corruption_accuracy"]), "mce": float(row["mce"]),
            "relative_mce": float(row["relative_mce"])}
