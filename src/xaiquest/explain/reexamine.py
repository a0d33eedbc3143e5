"""Seed 003's check: every training variant re-examined on its baseline's most confident mistakes.

A change such as label smoothing is meant to curb over-confidence, and the honest test looks at
the images the baseline got confidently wrong: does the variant get them right, how much
probability does it still give the baseline's wrong class, and does its Grad-CAM look elsewhere?
Predictions are the evaluate stage's (under ``eval.tta``, like every other number); each model's
Grad-CAM explains its own prediction.
"""

from __future__ import annotations

import pandas as pd
import torch

from xaiquest.config import BASELINE, ExperimentConfig
from xaiquest.explain.figures import explanation_grid
from xaiquest.explainers.quality import spearman
from xaiquest.explainers.registry import explain
from xaiquest.figures import save_figure
from xaiquest.inference import prepare_batch
from xaiquest.layout import ModelFiles
from xaiquest.runs import (
    AuditData,
    RunKey,
    confident_mistakes,
    evaluate_fingerprint,
    load_logits,
    load_trained,
    run_keys,
)
from xaiquest.store import RunStore, atomic_write_text, fingerprint
from xaiquest.units import Finished, run_per_model

METHOD = "gradcam"


def reexamination_pairs(config: ExperimentConfig) -> list[tuple[RunKey, RunKey]]:
    """(baseline, variant) for each variant without a planted patch that has a baseline of its own."""
    keys = run_keys(config)
    baselines = {(key.spec.name, key.seed): key for key in keys if key.variant == BASELINE}
    return [
        (baselines[(key.spec.name, key.seed)], key)
        for key in keys
        if key.variant != BASELINE and (key.spec.name, key.seed) in baselines
        and config.train_config(key.spec, key.variant).patch is None
    ]


def reexamine_variants(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """Per pair: ``models/<variant>/explain/reexamine.csv`` + figure; one summary table for the run."""
    pairs = reexamination_pairs(config)
    if not pairs or config.explain.reexamine == 0:
        return
    baseline_of = {variant.id: baseline for baseline, variant in pairs}

    def fingerprint_of(variant: RunKey) -> str:
        return fingerprint("reexamine", evaluate_fingerprint(config, data, baseline_of[variant.id], store),
                           evaluate_fingerprint(config, data, variant, store), config.explain.reexamine, config.explain.layer)

    def compute(variant: RunKey, files: ModelFiles) -> Finished:
        baseline = baseline_of[variant.id]
        table = _reexamine_pair(baseline, variant, store, data, config, device)
        atomic_write_text(files.explain.reexamine, table.to_csv(index=False))
        return Finished([], message=f"re-examined on {baseline.id}'s {len(table)} most confident mistakes")

    run_per_model("explain/reexamine", [variant for _, variant in pairs], store, fingerprint_of, compute)
    summary = pd.DataFrame([summarise(pd.read_csv(store.layout.model(variant.id).explain.reexamine), baseline, variant)
                            for baseline, variant in pairs])
    tables = store.layout.tables
    atomic_write_text(tables.reexamine, summary.to_csv(index=False))
    atomic_write_text(tables.markdown_of(tables.reexamine), summary.to_markdown(index=False, floatfmt=".3f") + "\n")


def _reexamine_pair(baseline: RunKey, variant: RunKey, store: RunStore, data: AuditData, config: ExperimentConfig,
                    device: torch.device) -> pd.DataFrame:
    """One row per baseline mistake (most confident first), plus the before/after Grad-CAM figure."""
    indices = confident_mistakes(store, baseline)
    probs = {key.variant: load_logits(store, key)["test"][indices].softmax(1) for key in (baseline, variant)}
    predicted = {name: p.argmax(1) for name, p in probs.items()}
    images = prepare_batch(data.test.images[indices], device, channels_last=False)
    maps = {}
    for key in (baseline, variant):
        model = load_trained(store, key, data, device)
        targets = predicted[key.variant].to(device)
        maps[key.variant] = explain(METHOD, model, images, targets, layer=config.explain.layer).cpu()
    before, after = maps.values()
    labels = data.test.labels[indices]
    table = pd.DataFrame({
        "index": indices.tolist(), "true": labels.tolist(),
        "baseline_predicted": predicted[baseline.variant].tolist(),
        "baseline_confidence": probs[baseline.variant].max(1).values.tolist(),
        "variant_predicted": predicted[variant.variant].tolist(),
        "variant_confidence": probs[variant.variant].max(1).values.tolist(),
        "variant_prob_baseline_class": probs[variant.variant].gather(1, predicted[baseline.variant][:, None]).squeeze(1).tolist(),
        "variant_prob_true": probs[variant.variant].gather(1, labels[:, None]).squeeze(1).tolist(),
        "gradcam_spearman": spearman(before, after).tolist(),
    })
    shown = min(config.explain.reexamine, len(table))
    titles = [_title(row, data.classes, variant.variant) for row in table.head(shown).itertuples()]
    figure = explanation_grid(data.test.images[indices[:shown]], {name: m[:shown] for name, m in maps.items()}, titles,
                              f"Grad-CAM on {baseline.id}'s most confident mistakes: baseline vs {variant.variant}")
    save_figure(figure, store.layout.model(variant.id).explain.reexamine_figure, dpi=110)
    return table


def summarise(table: pd.DataFrame, baseline: RunKey, variant: RunKey) -> dict[str, object]:
    """How the variant does on the baseline's confident mistakes, in one row."""
    return {
        "model": baseline.spec.name, "seed": baseline.seed, "variant": variant.variant, "mistakes": len(table),
        "variant_correct": (table["variant_predicted"] == table["true"]).mean(),
        "same_wrong_class": (table["variant_predicted"] == table["baseline_predicted"]).mean(),
        "baseline_confidence": table["baseline_confidence"].mean(),
        "variant_prob_baseline_class": table["variant_prob_baseline_class"].mean(),
        "variant_prob_true": table["variant_prob_true"].mean(),
        "gradcam_spearman": table["gradcam_spearman"].mean(),
    }


def _title(row: object, classes: tuple[str, ...], variant: str) -> str:
    return (f"#{row.index} true {classes[row.true]}\n{BASELINE}: {classes[row.baseline_predicted]} {row.baseline_confidence:.0%}"
            f"\n{variant}: {classes[row.variant_predicted]} {row.variant_confidence:.0%}")
