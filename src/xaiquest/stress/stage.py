"""Stage: stress tests and bias probes on every model, with how its explanations move.

For each model: accuracy, macro F1 and ECE under every probe x intensity on one stratified test
subset (the same images for every model); the focus shift of a few explainers (rank
correlation, centre-of-mass displacement, share of attribution on the changed region); the
layer-wise view (edge alignment, high-frequency energy, clean-vs-noisy CKA per named depth).
When a training variant planted a patch: reliance on it (attack success against the same
architecture's baseline variant) and which explainers put their top pixels on it; for a patch
model with a control twin in the run, the benchmark of docs/xai-benchmark.md (model contrast with
its interval, the trivial baselines). The probe battery runs on the variants ``stress.variants``
selects; the patch probe on every planted model (control twins included) and its baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torchmetrics.functional.classification import multiclass_f1_score

from xaiquest.config import BASELINE, ExperimentConfig, PatchConfig
from xaiquest.console import console, progress_bar
from xaiquest.data import Split, stratified_indices
from xaiquest.data.corruptions import corrupt
from xaiquest.data.masks import foreground_masks
from xaiquest.explainers.quality import win_rates
from xaiquest.explainers.registry import explain, method_defaults
from xaiquest.figures import save_figure
from xaiquest.inference import audit_logits, prepare_batch
from xaiquest.layout import STRESS_TABLES, ModelFiles, StressFiles, unit_name
from xaiquest.metrics.calibration import expected_calibration_error
from xaiquest.patch import describe, stamp, stamp_parameters
from xaiquest.runs import (
    AuditData,
    RunKey,
    control_twin,
    evaluate_fingerprint,
    load_trained,
    planted_patch,
    probes_patch,
    run_keys,
    stress_keys,
)
from xaiquest.store import RunStore, atomic_write_json, atomic_write_text, fingerprint
from xaiquest.stress.background import mask_gallery_figure
from xaiquest.stress.benchmark import (
    BASELINES,
    Scores,
    baseline_map,
    benchmark_table,
    localisation_scores,
    pooled_benchmark,
    score_rows,
)
from xaiquest.stress.figures import before_after_figure, contrast_figure, patch_figure, probe_curve_figure
from xaiquest.stress.focus import focus_shift_table
from xaiquest.stress.layerwise import depth_metric_figure, first_layer_filters_figure, layerwise_table
from xaiquest.stress.patch import reliance_metrics
from xaiquest.stress.probes import PROBES, apply_probe
from xaiquest.stress.sensitivity import salience_sweep, sensitivity_table, target_class_maps
from xaiquest.units import Finished, UnitSpec, gather_tables, in_worker, per_model_units, run_per_model

BEFORE_AFTER_PROBES = ("noise", "occlusion_centre", "background_swap")


@dataclass(frozen=True)
class StressInputs:
    """What every model is probed on: the test subset, its foreground masks, the experiment's patch."""

    clean: Split
    foreground: torch.Tensor
    patch: PatchConfig | None


CONTRAST_IMAGES = 3
"""Stamped images in the reliant-versus-control figure (each method is a row, two maps per image)."""


def stress_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    cfg = config.stress
    if not cfg.enabled:
        console.print("stress: disabled in the config, skipping")
        return
    inputs = _inputs(config, data)
    if not in_worker():
        save_figure(mask_gallery_figure(inputs.clean.images[:16], inputs.foreground[:16]), store.layout.figures.png("stress_masks"))
    battery = {key.id for key in run_keys(config, cfg.variants)}

    def trained_patch(key: RunKey) -> PatchConfig | None:
        return config.train_config(key.spec, key.variant).patch

    def twin_of(key: RunKey) -> RunKey | None:
        return control_twin(config, key) if probes_patch(config, key) else None

    def compute(key: RunKey, files: ModelFiles) -> Finished:
        model = load_trained(store, key, data, device)
        clean_logits = audit_logits(model, inputs.clean.images, device, config)
        if key.id in battery:
            _probe_battery(model, key, files.stress, inputs, config, device, clean_logits)
        if probes_patch(config, key):
            twin = twin_of(key)
            _patch_probe(model, key, files.stress, inputs, config, device, clean_logits, trained_patch(key),
                         None if twin is None else (twin, load_trained(store, twin, data, device)))
        return Finished([])

    def unit_fingerprint(key: RunKey) -> str:
        twin = twin_of(key)  # a benchmarked model's results also rest on its control twin's weights
        against = [] if twin is None else [twin.id, evaluate_fingerprint(config, data, twin, store)]
        return fingerprint("stress", evaluate_fingerprint(config, data, key, store), cfg.model_dump(),
                           config.explain.methods, patch_parameters, *against,
                           method_defaults([*config.explain.methods, *cfg.focus_methods]))

    keys = stress_keys(config)
    patch_parameters = None if inputs.patch is None else stamp_parameters(inputs.patch, data.image_size)
    run_per_model("stress", keys, store, unit_fingerprint, compute)
    _aggregate(store, config)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    """A patch-probed model's unit also reads its control twin's evaluation (the model contrast)."""
    if not config.stress.enabled:
        return []

    def needs(key: RunKey) -> list[str]:
        twin = control_twin(config, key) if probes_patch(config, key) else None
        return [unit_name("evaluate", key.id)] + ([] if twin is None else [unit_name("evaluate", twin.id)])

    return per_model_units("stress", stress_keys(config), needs)


_FOREGROUND: dict[tuple[str, int, int], torch.Tensor] = {}
"""GrabCut masks of the stress subset by (data fingerprint, size, seed): GrabCut is the stage's costly preamble,
and an executor's worker that runs several models' stress units computes them once."""


def _inputs(config: ExperimentConfig, data: AuditData) -> StressInputs:
    cfg = config.stress
    n = min(cfg.test_images, len(data.test) - 1)
    _, chosen = stratified_indices(data.test.labels, n, cfg.seed)
    clean = data.test.subset(chosen)
    key = (data.fingerprint, n, cfg.seed)
    if key not in _FOREGROUND:
        _FOREGROUND.clear()  # one run's subset at a time
        _FOREGROUND[key] = foreground_masks(clean.images)
    return StressInputs(clean, _FOREGROUND[key], planted_patch(config))


def _probe_battery(model: nn.Module, key: RunKey, out: StressFiles, inputs: StressInputs, config: ExperimentConfig,
                   device: torch.device, clean_logits: torch.Tensor) -> None:
    """Every probe x intensity: scores, focus shift, before/after figures; then the layer-wise view."""
    cfg, clean = config.stress, inputs.clean
    rows = [_probe_row("clean", "none", clean_logits, clean.labels)]
    focus = clean.subset(torch.arange(min(cfg.focus_images, len(clean))))
    focus_x = prepare_batch(focus.images, device, channels_last=False)
    focus_targets = clean_logits[: len(focus)].argmax(1).to(device)
    clean_maps = {m: explain(m, model, focus_x, focus_targets) for m in cfg.focus_methods}
    stressed_maps, changed, examples = {}, {}, {}
    with progress_bar() as progress:
        task = progress.add_task(f"stress {key.id}", total=sum(len(PROBES.get(p).intensities) for p in cfg.probes))
        for probe in cfg.probes:
            for intensity in PROBES.get(probe).intensities:
                generator = torch.Generator().manual_seed(cfg.seed)
                images, mask = apply_probe(probe, clean.images, intensity, generator, foreground=inputs.foreground, labels=clean.labels)
                rows.append(_probe_row(probe, intensity, audit_logits(model, images, device, config), clean.labels))
                stressed_x = prepare_batch(images[: len(focus)], device, channels_last=False)
                stressed_maps[(probe, intensity)] = {m: explain(m, model, stressed_x, focus_targets) for m in cfg.focus_methods}
                changed[(probe, intensity)] = mask[: len(focus)]
                examples.setdefault(probe, (intensity, images[: len(focus)]))
                progress.advance(task)
    atomic_write_text(out.probes, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out.focus, focus_shift_table(clean_maps, stressed_maps, changed).to_csv(index=False))
    for probe in BEFORE_AFTER_PROBES:
        if probe in examples:
            intensity, images = examples[probe]
            shown = min(6, len(focus))
            figure = before_after_figure(focus.images[:shown], images[:shown], {m: v[:shown] for m, v in clean_maps.items()},
                                         {m: v[:shown] for m, v in stressed_maps[(probe, intensity)].items()},
                                         [f"test #{i}" for i in range(shown)],
                                         f"{key.id}: {probe} ({intensity}), explanations before / after")
            save_figure(figure, out.before_after(probe), dpi=110)
    noisy = corrupt(clean.images[: cfg.layerwise_images], "gaussian_noise", cfg.layerwise_noise, seed=cfg.seed)
    layers = layerwise_table(model, prepare_batch(clean.images[: cfg.layerwise_images], device, channels_last=False),
                             prepare_batch(noisy, device, channels_last=False))
    atomic_write_text(out.layerwise, layers.to_csv(index=False))
    save_figure(first_layer_filters_figure(model, f"{key.id}: first-layer filters"), out.first_layer_filters)


def _probe_row(probe: str, intensity: object, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
    probs = logits.softmax(1)
    return {"probe": probe, "intensity": str(intensity), "accuracy": (probs.argmax(1) == labels).float().mean().item(),
            "macro_f1": multiclass_f1_score(probs, labels, probs.shape[1]).item(),
            "ece": expected_calibration_error(probs, labels)}


def _patch_probe(model: nn.Module, key: RunKey, out: StressFiles, inputs: StressInputs, config: ExperimentConfig,
                 device: torch.device, clean_logits: torch.Tensor, trained_patch: PatchConfig | None,
                 twin: tuple[RunKey, nn.Module] | None) -> None:
    """Reliance on the patch the model was trained with (a baseline: the experiment's first patch); for a model
    that learned it as a cue (not a control twin), explainer localisation on it, and with a control ``twin``
    (its key and model) the benchmark against it. Probing each model with its own patch is what lets a
    salience sweep (patch variants of several colours, sizes, positions) compare the settings."""
    clean = inputs.clean
    spec = inputs.patch if trained_patch is None else trained_patch.model_copy(update={"control": False})
    stamped, masks = stamp(clean.images, spec, torch.Generator().manual_seed(config.stress.seed))
    stamped_logits = audit_logits(model, stamped, device, config)
    reliance = reliance_metrics(clean_logits, stamped_logits, clean.labels, spec.target_class)
    reliance["ece_stamped"] = expected_calibration_error(stamped_logits.softmax(1), clean.labels)
    reliance["trained_with_patch"] = trained_patch is not None
    reliance["control"] = trained_patch is not None and trained_patch.control
    reliance["probed_patch"] = describe(spec)
    atomic_write_json(out.patch, reliance)
    if trained_patch is None or trained_patch.control:
        return
    others = (clean.labels != spec.target_class).nonzero().squeeze(1)[: config.stress.focus_images]
    x = prepare_batch(stamped[others], device, channels_last=False)
    targets = stamped_logits[others].argmax(1).to(device)
    region = masks[others]
    maps = {method: explain(method, model, x, targets) for method in config.explain.methods}
    scores = {method: localisation_scores(values, region) for method, values in maps.items()}
    per_image = pd.concat([pd.DataFrame(values).assign(image=range(len(others)), method=method)
                           for method, values in scores.items()], ignore_index=True)
    wins = win_rates(per_image.rename(columns={"tko": "score"})[["image", "method", "score"]]).set_index("method")["win_rate"]
    table = per_image.groupby("method", sort=False)[["tko", "pointing", "mass_inside"]].mean().assign(win_rate=wins).reset_index()
    atomic_write_text(out.patch_localisation, table.to_csv(index=False))
    by_target = target_class_maps(maps, targets, spec.target_class,
                                  lambda method, chosen, classes: explain(method, model, x[chosen], classes))
    atomic_write_text(out.patch_sensitivity,
                      sensitivity_table({"predicted": maps, "target": by_target}, region).to_csv(index=False))
    save_figure(patch_figure(stamped[others[0]], {m: v[0] for m, v in maps.items()}, f"{key.id}: patched image", masks[others[0]]),
                out.patch_maps, dpi=110)
    if twin is None:
        for left in (out.xai_benchmark, out.xai_scores, out.patch_contrast):  # from a run whose config had the twin
            left.unlink(missing_ok=True)
        return
    _against_twin(key, out, twin, stamped[others], x, region, maps, scores, config, device)


def _against_twin(key: RunKey, out: StressFiles, twin: tuple[RunKey, nn.Module], images: torch.Tensor, x: torch.Tensor,
                  region: torch.Tensor, maps: dict[str, torch.Tensor], reliant: Scores, config: ExperimentConfig,
                  device: torch.device) -> None:
    """The benchmark of the reliant model's maps against its control twin's (each model explaining its own
    predicted class on the same stamped ``images``) and the trivial baselines': the table, its per-image
    scores (pooled over seeds at run level) and the figure of both models' maps side by side."""
    twin_key, twin_model = twin
    twin_targets = audit_logits(twin_model, images, device, config).argmax(1).to(device)
    twin_maps = {method: explain(method, twin_model, x, twin_targets) for method in maps}
    control = {method: localisation_scores(twin_maps[method], region) for method in reliant}
    seed = config.stress.seed
    baselines = {name: localisation_scores(baseline_map(name, images, seed), region) for name in BASELINES.names()}
    benchmark = benchmark_table(reliant, control, baselines, seed=seed)
    atomic_write_text(out.xai_benchmark, benchmark.assign(control_run=twin_key.id).to_csv(index=False))
    atomic_write_text(out.xai_scores, score_rows(reliant, control, baselines).to_csv(index=False))
    shown = slice(0, CONTRAST_IMAGES)
    save_figure(contrast_figure(images[shown], {m: v[shown] for m, v in maps.items()},
                                {m: v[shown] for m, v in twin_maps.items()}, region[shown],
                                f"{key.id} (reliant) against {twin_key.id} (control): the same stamped images"),
                out.patch_contrast, dpi=110)


def _pool_seeds(store: RunStore, config: ExperimentConfig, keys: list[RunKey]) -> None:
    """The benchmark of every architecture and patch variant pooled over its seeds (when it has two or
    more): intervals over images and seeds, win rates across seeds, and which contrasts differ significantly."""
    groups: dict[tuple[str, str], list[RunKey]] = {}
    for key in keys:
        if store.layout.model(key.id).stress.xai_scores.exists():
            groups.setdefault((key.spec.name, key.variant), []).append(key)
    tables, pairs = [], []
    for (model, variant), members in groups.items():
        if len(members) < 2:
            continue
        scores = pd.concat([pd.read_csv(store.layout.model(key.id).stress.xai_scores).assign(seed=key.seed)
                            for key in members], ignore_index=True)
        table, tested = pooled_benchmark(scores, seed=config.stress.seed)
        tables.append(table.assign(model=model, variant=variant))
        pairs.append(tested.assign(model=model, variant=variant))
    layout = store.layout.tables
    for path, frames in ((layout.xai_benchmark_pooled, tables), (layout.xai_benchmark_pairs, pairs)):
        if frames:
            atomic_write_text(path, pd.concat(frames, ignore_index=True).to_csv(index=False))
        else:
            path.unlink(missing_ok=True)


def _aggregate(store: RunStore, config: ExperimentConfig) -> None:
    """Run-level tables and figures from every model's stress folder."""
    keys = run_keys(config)
    tables = gather_tables(store, keys, lambda files, name: files.stress.table(name), STRESS_TABLES)
    figures = store.layout.figures
    if STRESS_TABLES["probes"] in tables:
        probes = tables[STRESS_TABLES["probes"]]
        for probe in config.stress.probes:
            rows = probes[probes["probe"] == probe]
            save_figure(probe_curve_figure(rows, "intensity", "accuracy", "run", title=f"accuracy under {probe}"),
                        figures.png(f"stress_{probe}"))
    if STRESS_TABLES["layerwise"] in tables:
        layerwise = tables[STRESS_TABLES["layerwise"]]
        for metric in ("edge_alignment", "hf_energy", "cka_clean_vs_noisy"):
            columns = [c for c in layerwise.columns if c.startswith(metric)]
            save_figure(depth_metric_figure(layerwise, columns, title=metric.replace("_", " ")),
                        figures.png(f"layerwise_{metric}"))
    reliance = [{"run": key.id, "model": key.spec.name, "variant": key.variant, "seed": key.seed,
                 **{k: v for k, v in json.loads(patch.read_text()).items() if not k.startswith("f1_")}}
                for key in keys if (patch := store.layout.model(key.id).stress.patch).exists()]
    reliance_table = _with_baseline(pd.DataFrame(reliance)) if reliance else None
    if reliance_table is not None:
        atomic_write_text(store.layout.tables.patch_reliance, reliance_table.to_csv(index=False))
    _sweep(store, config, keys, tables, reliance_table)
    _pool_seeds(store, config, keys)


def _sweep(store: RunStore, config: ExperimentConfig, keys: list[RunKey], tables: dict[str, pd.DataFrame],
           reliance: pd.DataFrame | None) -> None:
    """With reliant patch models of two or more patch settings (colour, size, position), the salience sweep
    table: each setting's reliance and every method's localisation and model contrast on it."""
    patches = {key.id: patch for key in keys if (patch := config.train_config(key.spec, key.variant).patch) and not patch.control}
    settings = pd.DataFrame([{"run": run, "patch": describe(patch)} for run, patch in patches.items()])
    localisation = tables.get(STRESS_TABLES["patch_localisation"])
    path = store.layout.tables.salience_sweep
    if settings.empty or settings["patch"].nunique() < 2 or localisation is None or reliance is None:
        path.unlink(missing_ok=True)
        return
    atomic_write_text(path, salience_sweep(settings, reliance, localisation,
                                           tables.get(STRESS_TABLES["xai_benchmark"])).to_csv(index=False))


def _with_baseline(reliance: pd.DataFrame) -> pd.DataFrame:
    """Each run's attack success next to that of the same architecture and seed's baseline variant."""
    baseline = reliance[reliance["variant"] == BASELINE].set_index(["model", "seed"])["attack_success"]
    keys = list(zip(reliance["model"], reliance["seed"]))
    return reliance.assign(baseline_attack_success=[baseline.get(k, float("nan")) for k in keys])
