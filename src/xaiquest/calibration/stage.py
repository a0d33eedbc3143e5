"""Stage: calibration of every model, before and after temperature scaling fitted on validation.

Works from the logits the evaluate stage saved (under the run's ``eval.tta``, i.e. the
same predictions the accuracy was measured on), so it costs no inference. The temperature is
fitted on the held-out validation split only, never on test.
"""

from __future__ import annotations

import json

import pandas as pd
import torch

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.figures import save_figure
from xaiquest.figures.calibration import before_after_figure, reliability_overlay_figure
from xaiquest.metrics.calibration import calibration_report, classwise_ece, fit_temperature, reliability_bins
from xaiquest.runs import AuditData, RunKey, evaluate_fingerprint, load_logits, run_dir, run_keys
from xaiquest.store import RunStore, atomic_write_json, atomic_write_text, fingerprint

REPORTED = ("ece", "mce", "adaptive_ece", "classwise_ece", "brier", "nll", "accuracy", "mean_confidence")


def calibrate_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    rows, curves = [], {}
    for key in run_keys(config):
        out = run_dir(store, key) / "calibration"
        unit_fp = fingerprint("calibrate", evaluate_fingerprint(config, data, key, store), config.calibration.model_dump())
        if not store.is_complete(f"calibrate/{key.id}", unit_fp):
            _calibrate_one(store, key, config.calibration.bins, data.classes)
            store.mark_complete(f"calibrate/{key.id}", unit_fp, artifacts=[out / "calibration.json"])
        summary = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
        rows.append(_table_row(key, summary))
        curves[key.id] = pd.read_csv(out / "reliability_bins.csv")
    table = pd.DataFrame(rows)
    atomic_write_text(store.path("tables", "calibration.csv"), table.to_csv(index=False))
    atomic_write_text(store.path("tables", "calibration.md"), table.to_markdown(index=False, floatfmt=".4f") + "\n")
    save_figure(reliability_overlay_figure(curves, title="Reliability (test, before temperature scaling)"),
                store.path("figures", "reliability_overlay.png"))
    for row in rows:
        console.print(f"calibrate: {row['run']} ECE {row['ece']:.4f} -> {row['ece_after_ts']:.4f} (T = {row['temperature']:.2f})")


def _calibrate_one(store: RunStore, key: RunKey, bins: int, classes: tuple[str, ...]) -> None:
    logits = load_logits(store, key)
    if len(logits["val_labels"]) == 0:
        raise XaiquestError("temperature scaling needs a validation split; set data.val_size > 0")
    temperature = fit_temperature(logits["val"], logits["val_labels"])
    test, labels = logits["test"], logits["test_labels"]
    before = calibration_report(test, labels, bins)
    after = calibration_report(test / temperature, labels, bins)
    out = run_dir(store, key) / "calibration"
    bins_before = reliability_bins(test.softmax(1), labels, bins)
    bins_after = reliability_bins((test / temperature).softmax(1), labels, bins)
    per_class = pd.DataFrame({
        "class": classes,
        "ece": classwise_ece(test.softmax(1), labels, bins).per_class.numpy(),
        "ece_after_ts": classwise_ece((test / temperature).softmax(1), labels, bins).per_class.numpy(),
    })
    atomic_write_text(out / "reliability_bins.csv", bins_before.to_csv(index=False))
    atomic_write_text(out / "reliability_bins_after_ts.csv", bins_after.to_csv(index=False))
    atomic_write_text(out / "classwise_ece.csv", per_class.to_csv(index=False))
    save_figure(before_after_figure(bins_before, bins_after, before["ece"], after["ece"], temperature, key.id),
                out / "reliability.png")
    atomic_write_json(out / "calibration.json", {"temperature": temperature, "before": before, "after": after})


def _table_row(key: RunKey, summary: dict) -> dict[str, float | str]:
    row: dict[str, float | str] = {"run": key.id, "temperature": summary["temperature"]}
    for name in REPORTED:
        row[name] = summary["before"][name]
        if name != "accuracy":
            row[f"{name}_after_ts"] = summary["after"][name]
    return row
