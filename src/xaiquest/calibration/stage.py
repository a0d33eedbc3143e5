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
from xaiquest.errors import XaiquestError
from xaiquest.figures import save_figure
from xaiquest.figures.calibration import before_after_figure, reliability_overlay_figure
from xaiquest.layout import CalibrationFiles, ModelFiles, unit_name
from xaiquest.metrics.calibration import calibration_report, classwise_ece, fit_temperature, reliability_bins
from xaiquest.runs import AuditData, RunKey, calibrate_fingerprint, load_logits, run_keys
from xaiquest.store import RunStore, atomic_write_json, atomic_write_text
from xaiquest.units import Finished, UnitSpec, per_model_units, run_per_model

REPORTED = ("ece", "mce", "adaptive_ece", "classwise_ece", "brier", "nll", "accuracy", "mean_confidence")


def calibrate_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    keys = run_keys(config)

    def calibrate_one(key: RunKey, files: ModelFiles) -> Finished:
        summary = _calibrate_one(store, key, files.calibration, config.calibration.bins, data.classes)
        return Finished([files.calibration.summary], message=f"ECE {summary['before']['ece']:.4f} -> "
                        f"{summary['after']['ece']:.4f} (T = {summary['temperature']:.2f})")

    run_per_model("calibrate", keys, store, lambda key: calibrate_fingerprint(config, data, key, store), calibrate_one)
    rows, curves = [], {}
    for key in keys:
        files = store.layout.model(key.id).calibration
        rows.append(_table_row(key, json.loads(files.summary.read_text(encoding="utf-8"))))
        curves[key.id] = pd.read_csv(files.bins)
    table = pd.DataFrame(rows)
    tables = store.layout.tables
    atomic_write_text(tables.calibration, table.to_csv(index=False))
    atomic_write_text(tables.markdown_of(tables.calibration), table.to_markdown(index=False, floatfmt=".4f") + "\n")
    save_figure(reliability_overlay_figure(curves, title="Reliability (test, before temperature scaling)"),
                store.layout.figures.png("reliability_overlay"))


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    return per_model_units("calibrate", run_keys(config), lambda key: [unit_name("evaluate", key.id)])


def _calibrate_one(store: RunStore, key: RunKey, files: CalibrationFiles, bins: int, classes: tuple[str, ...]) -> dict:
    """Fit the temperature on validation, measure test before and after; returns the summary it wrote."""
    logits = load_logits(store, key)
    if len(logits["val_labels"]) == 0:
        raise XaiquestError("temperature scaling needs a validation split; set data.val_size > 0")
    temperature = fit_temperature(logits["val"], logits["val_labels"])
    test, labels = logits["test"], logits["test_labels"]
    before = calibration_report(test, labels, bins)
    after = calibration_report(test / temperature, labels, bins)
    bins_before = reliability_bins(test.softmax(1), labels, bins)
    bins_after = reliability_bins((test / temperature).softmax(1), labels, bins)
    per_class = pd.DataFrame({
        "class": classes,
        "ece": classwise_ece(test.softmax(1), labels, bins).per_class.numpy(),
        "ece_after_ts": classwise_ece((test / temperature).softmax(1), labels, bins).per_class.numpy(),
    })
    atomic_write_text(files.bins, bins_before.to_csv(index=False))
    atomic_write_text(files.bins_after, bins_after.to_csv(index=False))
    atomic_write_text(files.classwise, per_class.to_csv(index=False))
    save_figure(before_after_figure(bins_before, bins_after, before["ece"], after["ece"], temperature, key.id),
                files.figure)
    summary = {"temperature": temperature, "before": before, "after": after}
    atomic_write_json(files.summary, summary)
    return summary


def _table_row(key: RunKey, summary: dict) -> dict[str, float | str]:
    row: dict[str, float | str] = {"run": key.id, "temperature": summary["temperature"]}
    for name in REPORTED:
        row[name] = summary["before"][name]
        if name != "accuracy":
            row[f"{name}_after_ts"] = summary["after"][name]
    return row
