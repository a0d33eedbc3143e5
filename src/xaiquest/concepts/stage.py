"""Stage: concepts — shape/texture/colour bias, TCAV with significance tests, and dissection-lite.

The probe sets (bias battery, TCAV concept and random sets, dissection images and their concept
masks) are generated once per run from seeded draws and cached in ``concepts/probes.pt``. Then,
for every model of the variants ``concepts.variants`` selects: accuracy under each bias
condition, Geirhos' shape bias on cue-conflict images, colour reliance per class, TCAV scores of
every concept at every chosen depth with their corrected p-values, and every unit's IoU with the
offline concept masks. One model per architecture also runs TCAV on an untrained copy of that
architecture (``concepts.untrained_control``): how many tests come out significant with no training
at all is the baseline the trained models' counts are read against. Protocol and sizes:
``docs/concepts.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from xaiquest.concepts.bias import BiasProbes, accuracy_table, bias_probes, colour_reliance, shape_bias
from xaiquest.concepts.dissect import detector_fractions, dissect, top_units
from xaiquest.concepts.figures import detector_figure, shape_bias_figure, tcav_figure
from xaiquest.concepts.probes import (
    IMAGE_FREE_CONCEPTS,
    SHAPE_CONCEPTS,
    colour_name_masks,
    edge_masks,
    outlines,
    silhouettes,
)
from xaiquest.concepts.tcav import tcav_table, with_significance
from xaiquest.config import ConceptsConfig, ExperimentConfig
from xaiquest.console import console
from xaiquest.data import stratified_indices
from xaiquest.data.masks import foreground_masks, other_class_donors
from xaiquest.figures import save_figure
from xaiquest.inference import audit_logits, collect_activations
from xaiquest.layout import CONCEPT_TABLES, ConceptFiles, ModelFiles, unit_name
from xaiquest.models.base import named_depths, resolve_layer
from xaiquest.patch import stamp, stamp_parameters
from xaiquest.runs import AuditData, RunKey, build_run_model, evaluate_fingerprint, load_trained, planted_patch, run_keys
from xaiquest.store import RunStore, atomic_torch_save, atomic_write_json, atomic_write_text, fingerprint
from xaiquest.units import Finished, UnitSpec, allowed, gather_tables, per_model_units, run_per_model

PROBES_UNIT = "concepts/probes"


@dataclass(frozen=True)
class ConceptProbes:
    """Everything the models are probed with; the same tensors for every model of the run."""

    bias: BiasProbes
    concepts: dict[str, torch.Tensor]
    random_sets: list[torch.Tensor]
    tcav_inputs: torch.Tensor
    tcav_labels: torch.Tensor
    dissection_images: torch.Tensor
    dissection_masks: dict[str, torch.Tensor]


def concepts_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    cfg = config.concepts
    if not cfg.enabled:
        console.print("concepts: disabled in the config, skipping")
        return
    keys = run_keys(config, cfg.variants)
    if not any(allowed(unit_name("concepts", key.id)) for key in keys):  # every unit's input failed
        console.print("concepts: not run, the evaluations it reads failed")
        return
    probes = cached_probes(config, store, data)
    probes_fp = store.unit_record(PROBES_UNIT).get("fingerprint")
    controls = untrained_controls(keys) if cfg.tcav and cfg.untrained_control else set()

    def compute(key: RunKey, files: ModelFiles) -> Finished:
        model = load_trained(store, key, data, device)
        written = audit_model(model, files.concepts, probes, config, data.classes, device)
        if key.id in controls:
            untrained = significant_tcav(untrained_copy(key, data, cfg.seed), probes, cfg, data.classes)
            atomic_write_text(files.concepts.tcav_untrained, untrained.assign(architecture=key.spec.name).to_csv(index=False))
            written.append(files.concepts.tcav_untrained)
        return Finished(written)

    run_per_model("concepts", keys, store,
                  lambda key: fingerprint("concepts", evaluate_fingerprint(config, data, key, store), cfg.model_dump(), probes_fp,
                                          key.id in controls),
                  compute)
    aggregate(store, config)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    if not config.concepts.enabled:
        return []
    return per_model_units("concepts", run_keys(config, config.concepts.variants), lambda key: [unit_name("evaluate", key.id)])


def untrained_controls(keys: list[RunKey]) -> set[str]:
    """The runs that also measure TCAV on an untrained copy of their architecture: the first of each architecture
    (the copy does not depend on the variant or the training seed). A TorchScript import has no architecture to
    rebuild untrained."""
    first: dict[str, str] = {}
    for key in keys:
        if key.spec.torchscript is None:
            first.setdefault(key.spec.name, key.id)
    return set(first.values())


def untrained_copy(key: RunKey, data: AuditData, seed: int) -> nn.Module:
    """``key``'s architecture as initialised under ``seed`` and never trained (library models without pretrained
    weights): on it TCAV measures how the architecture alone responds to the concepts."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_run_model(key.spec, data).float().eval()


def chosen_layers(model: nn.Module, cfg: ConceptsConfig) -> dict[str, nn.Module]:
    return {layer: resolve_layer(model, layer) for layer in (cfg.layers or list(named_depths(model)))}


def cached_probes(config: ExperimentConfig, store: RunStore, data: AuditData) -> ConceptProbes:
    """The run's probe sets, built once (GrabCut is the costly part) and reloaded while the inputs are unchanged."""
    cfg = config.concepts
    patch = planted_patch(config)
    testing_only = {"variants", "tcav", "alpha", "correction", "untrained_control"}  # settings the probe sets do not depend on
    probes_fp = fingerprint("concept-probes", data.fingerprint, cfg.model_dump(exclude=testing_only),
                            None if patch is None else stamp_parameters(patch, data.image_size))
    path = store.layout.concept_probes
    with store.claim(PROBES_UNIT):  # parallel concept units build them once, the others wait and load
        if store.is_complete(PROBES_UNIT, probes_fp) and path.exists():
            return ConceptProbes(**torch.load(path, weights_only=False))  # our own file, holding dataclasses
        probes = build_probes(config, data)
        atomic_torch_save(path, probes.__dict__)
        store.mark_complete(PROBES_UNIT, probes_fp, artifacts=[path])
    return probes


def build_probes(config: ExperimentConfig, data: AuditData) -> ConceptProbes:
    cfg = config.concepts
    generator = torch.Generator().manual_seed(cfg.seed)
    size = data.test.images.shape[-1]
    _, chosen = stratified_indices(data.test.labels, min(cfg.test_images, len(data.test) - 1), cfg.seed)
    subset = data.test.subset(chosen)
    masks = foreground_masks(subset.images)
    bias = bias_probes(subset.images, subset.labels, masks, other_class_donors(subset.labels, generator))
    pool = torch.randperm(len(subset), generator=generator)[: cfg.concept_images]
    shape_sets = {"silhouette": silhouettes(masks[pool]), "outline": outlines(masks[pool])}
    concepts = {name: shape_sets[name] if name in SHAPE_CONCEPTS else IMAGE_FREE_CONCEPTS[name][1](cfg.concept_images, size, generator)
                for name in cfg.concepts}
    random_sets = [data.test.images[torch.randperm(len(data.test), generator=generator)[: cfg.concept_images]]
                   for _ in range(cfg.random_sets + 1)]
    per_class = torch.cat([(subset.labels == c).nonzero().squeeze(1)[: cfg.tcav_images_per_class]
                           for c in range(len(data.classes))])
    images = subset.images[: cfg.dissection_images]
    dissection = {**colour_name_masks(images), "object": masks[: len(images)], "background": ~masks[: len(images)],
                  "edges": edge_masks(images)}
    patch = planted_patch(config)
    if patch is not None:
        images, dissection["patch"] = stamp(images, patch, torch.Generator().manual_seed(cfg.seed))
    return ConceptProbes(bias, concepts, random_sets, subset.images[per_class], subset.labels[per_class], images, dissection)


def audit_model(model: nn.Module, out: ConceptFiles, probes: ConceptProbes, config: ExperimentConfig, classes: tuple[str, ...],
                device: torch.device) -> list[Path]:
    """Every concept measurement of one model, written into ``out``; returns the files written.

    Predictions follow the run's one prediction policy (``eval.tta``), as in every other stage."""
    cfg, bias = config.concepts, probes.bias
    predicted = {name: audit_logits(model, images, device, config).argmax(1) for name, images in bias.conditions.items()}
    atomic_write_text(out.bias, accuracy_table(predicted, bias.labels).to_csv(index=False))
    conflict = audit_logits(model, bias.conflict, device, config).argmax(1)
    atomic_write_json(out.shape_bias, {**shape_bias(conflict, bias.shape_labels, bias.texture_labels), "images": len(conflict)})
    atomic_write_text(out.colour_reliance,
                      colour_reliance(predicted["clean"], predicted["grayscale"], bias.labels, classes).to_csv(index=False))
    written = [out.bias, out.shape_bias, out.colour_reliance]
    cpu_model = model.float().cpu()  # Captum's CAV training and the dissection run on CPU tensors
    layers = chosen_layers(cpu_model, cfg)
    if cfg.tcav:
        atomic_write_text(out.tcav, significant_tcav(cpu_model, probes, cfg, classes).to_csv(index=False))
        written.append(out.tcav)
    if cfg.dissection:
        activations = collect_activations(cpu_model, probes.dissection_images, list(layers))
        table = dissect(activations, probes.dissection_masks, cfg.quantile, cfg.iou_threshold)
        atomic_write_text(out.detectors, detector_fractions(table).to_csv(index=False))
        atomic_write_text(out.top_units, top_units(table, cfg.top_units).to_csv(index=False))
        written += [out.detectors, out.top_units]
    return written


def significant_tcav(model: nn.Module, probes: ConceptProbes, cfg: ConceptsConfig, classes: tuple[str, ...]) -> pd.DataFrame:
    """TCAV scores of every concept, depth and class of a CPU ``model``, with corrected p-values and class names."""
    table = tcav_table(model, list(chosen_layers(model, cfg)), probes.concepts, probes.random_sets, probes.tcav_inputs,
                       probes.tcav_labels, len(classes), cfg.seed)
    return with_significance(table, cfg.alpha, cfg.correction).assign(class_name=lambda t: t["class_index"].map(dict(enumerate(classes))))


def aggregate(store: RunStore, config: ExperimentConfig) -> None:
    """Run-level tables (``tables/concepts_*.csv``) and figures from every model's concepts folder."""
    keys = run_keys(config, config.concepts.variants)
    tables = gather_tables(store, keys, lambda files, name: files.concepts.table(name), CONCEPT_TABLES)
    summary = []
    for key in keys:
        files = store.layout.model(key.id).concepts
        if files.shape_bias.exists():
            bias = pd.read_json(files.shape_bias, typ="series").to_dict()
            accuracy = pd.read_csv(files.bias).set_index("condition")["accuracy"]
            summary.append({"run": key.id, "model": key.spec.name, "variant": key.variant, "seed": key.seed, **bias,
                            **{f"{c}_accuracy": a for c, a in accuracy.items()}})
    figures = store.layout.figures
    if summary:
        table = pd.DataFrame(summary)
        atomic_write_text(store.layout.tables.concepts_summary, table.to_csv(index=False))
        save_figure(shape_bias_figure(table), figures.png("concepts_shape_bias"))
    if CONCEPT_TABLES["tcav"] in tables:
        save_figure(tcav_figure(tables[CONCEPT_TABLES["tcav"]]), figures.png("concepts_tcav"))
    if CONCEPT_TABLES["detectors"] in tables:
        save_figure(detector_figure(tables[CONCEPT_TABLES["detectors"]]), figures.png("concepts_detectors"))
