"""Stage: every model under every corruption x severity, on one stratified test subset.

Corruptions are generated on the fly by the batched engine (or read from real CIFAR-10-C
``.npy`` files with ``robustness.cifar10c``), once per corruption x severity and shared by all
models, so generation never dominates inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torchmetrics.functional.classification import multiclass_f1_score

from xaiquest.config import ExperimentConfig, RobustnessConfig
from xaiquest.console import console, progress_bar
from xaiquest.data import Split, stratified_indices
from xaiquest.data.cifar10c import load_cifar10c
from xaiquest.data.corruptions import BENCHMARK_CORRUPTIONS, FAMILIES, corrupt
from xaiquest.errors import ConfigError
from xaiquest.figures import save_figure
from xaiquest.figures.corruptions import gallery_figure
from xaiquest.figures.robustness import severity_figure
from xaiquest.inference import audit_logits
from xaiquest.metrics.calibration import expected_calibration_error
from xaiquest.metrics.robustness import mean_corruption_error
from xaiquest.runs import AuditData, RunKey, corruption_names, load_trained, robustness_fingerprint, run_keys
from xaiquest.layout import unit_name
from xaiquest.store import RunStore, atomic_write_text
from xaiquest.units import UnitSpec, allowed

UNIT = "robustness"
"""The stage's one run-level unit in the manifest."""


@dataclass(frozen=True)
class Scored:
    """One model on one (corruption, severity): the long-table row and its per-class F1."""

    row: dict[str, object]
    per_class_f1: list[float]


def robustness_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    cfg = config.robustness
    if not cfg.enabled:
        console.print("robustness: disabled in the config, skipping")
        return
    if not allowed(UNIT):  # after an executor run in which an evaluation it reads failed
        console.print("robustness: not run, an evaluation it reads failed")
        return
    unit_fp = robustness_fingerprint(config, data, store)
    with store.claim(UNIT):
        if store.is_complete(UNIT, unit_fp):
            console.print("robustness: already measured, skipping")
            return
        _measure(config, store, data, device, run_keys(config, cfg.variants), unit_fp)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    """One run-level unit: every measured model sees the same corrupted images, generated once."""
    if not config.robustness.enabled:
        return []
    needs = tuple(unit_name("evaluate", key.id) for key in run_keys(config, config.robustness.variants))
    return [UnitSpec("robustness", UNIT, needs)]


def _measure(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device, keys: list[RunKey],
             unit_fp: str) -> None:
    cfg = config.robustness
    names = corruption_names(cfg)
    models = {key.id: load_trained(store, key, data, device) for key in keys}
    clean = _clean_subset(data.test, cfg)
    real = load_cifar10c(cfg.cifar10c, names, cfg.test_images, cfg.seed) if cfg.cifar10c else None
    scored = [_score(run, "clean", 0, audit_logits(model, clean.images, device, config), clean.labels, len(data.classes))
              for run, model in models.items()]
    with progress_bar() as progress:
        task = progress.add_task("robustness", total=len(names) * len(cfg.severities))
        for name in names:
            for severity in cfg.severities:
                images, labels = _corrupted(clean, name, severity, cfg, real)
                for run, model in models.items():
                    scored.append(_score(run, name, severity, audit_logits(model, images, device, config), labels, len(data.classes)))
                progress.advance(task)
    basis = f"clean accuracy on the same {len(clean):,} stratified test images, predictions under eval.tta = {config.eval.tta}"
    _write_outputs(store, scored, data.classes, names, _baseline_run(config, keys), clean.images[0], basis)
    store.mark_complete(UNIT, unit_fp, artifacts=[store.layout.tables.robustness_summary])


def _clean_subset(test: Split, cfg: RobustnessConfig) -> Split:
    """The stratified test subset (the same images for every generated corruption)."""
    if cfg.test_images is None or cfg.test_images >= len(test):
        return test
    _, chosen = stratified_indices(test.labels, cfg.test_images, cfg.seed)
    return test.subset(chosen)


def _corrupted(clean: Split, name: str, severity: int, cfg: RobustnessConfig,
               real: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated corruption of the clean subset, or real CIFAR-10-C's own stratified subset (its
    rows follow the original test order, not necessarily the project's, so the images can differ
    from the clean subset's; the class counts are the same)."""
    if real is None:
        return corrupt(clean.images, name, severity, seed=cfg.seed), clean.labels
    return real[name][severity - 1], real["labels"]


def _score(run: str, corruption: str, severity: int, logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Scored:
    probs = logits.softmax(1)
    f1 = multiclass_f1_score(probs, labels, num_classes, average=None)
    row = {"model": run, "corruption": corruption, "severity": severity,
           "accuracy": (probs.argmax(1) == labels).float().mean().item(),
           "macro_f1": f1.mean().item(), "ece": expected_calibration_error(probs, labels)}
    return Scored(row, f1.tolist())


def _baseline_run(config: ExperimentConfig, keys: list[RunKey]) -> str:
    """The run whose errors normalise mCE: the configured model (else the first), first variant and seed."""
    wanted = config.robustness.baseline or keys[0].spec.name
    for key in keys:
        if key.spec.name == wanted:
            return key.id
    raise ConfigError(f"config field 'robustness.baseline': {wanted!r} is not one of the experiment's models "
                      f"({', '.join(sorted({k.spec.name for k in keys}))})")


def _write_outputs(store: RunStore, scored: list[Scored], classes: tuple[str, ...], names: list[str],
                   baseline: str, example: torch.Tensor, basis: str) -> None:
    table = pd.DataFrame([s.row for s in scored])
    per_class = pd.DataFrame([s.per_class_f1 for s in scored], columns=list(classes))
    per_class = pd.concat([table[["model", "corruption", "severity"]], per_class], axis=1)
    corrupted = table[table["severity"] > 0]
    clean_acc = table[table["severity"] == 0].set_index("model")["accuracy"].to_dict()
    benchmark = [n for n in BENCHMARK_CORRUPTIONS if n in names] or names
    summary = mean_corruption_error(corrupted, clean_acc, baseline, corruptions=benchmark)
    per_model = summary.per_model.reset_index().rename(columns={"model": "run"})
    tables, figures = store.layout.tables, store.layout.figures
    texts = {
        tables.robustness_accuracy: table.to_csv(index=False),
        tables.robustness_per_class_f1: per_class.to_csv(index=False),
        tables.robustness_ce: summary.per_corruption.to_csv(index=False),
        tables.robustness_summary: per_model.to_csv(index=False),
        tables.markdown_of(tables.robustness_summary): per_model.to_markdown(index=False, floatfmt=".4f")
        + f"\n\nmCE normalised by `{baseline}` over {len(benchmark)} corruptions; {basis}."
        + "".join(f"\n- {note}" for note in summary.notes) + "\n",
    }
    for path, text in texts.items():
        atomic_write_text(path, text)
    families = {family: [n for n in members if n in names] for family, members in FAMILIES.items()}
    for metric, label in (("accuracy", "accuracy"), ("ece", "ECE")):
        long = table.rename(columns={metric: "value"})[["model", "corruption", "severity", "value"]]
        save_figure(severity_figure(long, families, label, title=f"{label} vs corruption severity"),
                    figures.png(f"robustness_{metric}"))
    save_figure(gallery_figure(example), figures.png("corruption_gallery"))
    for row in per_model.itertuples():
        console.print(f"robustness: {row.run} clean {row.clean_accuracy:.2%}, corrupted {row.mean_corruption_accuracy:.2%}, "
                      f"mCE {row.mce:.3f}, relative mCE {row.relative_mce:.3f}")
