"""Stage: explain every model on the same images with every method, and score the explanations.

Images: a fixed seeded sample of ``per_class`` test images per class (the same for every model,
so maps can be compared across models) plus each model's most confident mistakes. Each model
explains its own prediction. Quality per method: deletion/insertion AUC and ROAD (faithfulness),
entropy and Gini sparseness (complexity), cost, and the cascading-randomisation sanity check;
agreement between methods as top-k IoU and Spearman matrices. ``explain.variants`` selects the
training variants explained this way; every variant other than the baseline (planted-patch ones
aside) is also re-examined on its baseline's most confident mistakes (``reexamine.py``).
"""

from __future__ import annotations

import itertools
import math
import time
from functools import partial

import pandas as pd
import torch
from torch import nn

from xaiquest.config import ExperimentConfig, ExplainConfig
from xaiquest.console import console, progress_bar
from xaiquest.data import stratified_indices
from xaiquest.explain.figures import agreement_figure, explanation_grid, quality_figure
from xaiquest.explainers.quality import (
    agreement_matrix,
    cascading_randomisation,
    deletion_insertion,
    entropy,
    road,
    sanity_flag,
    sparseness,
    spearman,
)
from xaiquest.explainers.quality.sanity import ExplainFn
from xaiquest.explain.reexamine import reexamine_variants
from xaiquest.explainers.registry import explain, explained_layer, method_defaults, seed_option
from xaiquest.figures import save_figure
from xaiquest.inference import prepare_batch
from xaiquest.layout import EXPLAIN_TABLES, MODEL_RELATIVE, ModelFiles, unit_name
from xaiquest.runs import (
    AuditData,
    RunKey,
    confident_mistakes,
    evaluate_fingerprint,
    load_logits,
    load_trained,
    run_keys,
)
from xaiquest.store import RunStore, atomic_torch_save, atomic_write_text, fingerprint
from xaiquest.units import Finished, UnitSpec, gather_tables, per_model_units, run_per_model

QUALITY_PLOTS = (("deletion_auc", "deletion AUC, pixels to the {deletion_baseline} (lower = better)"),
                 ("insertion_auc", "insertion AUC, pixels into the {insertion_baseline} (higher = better)"),
                 ("road_gap", "ROAD MoRF-LeRF gap (higher = better)"), ("sanity_ssim", "SSIM after full randomisation (lower = better)"),
                 ("seed_spearman", "Spearman between two seeds' maps (higher = more repeatable)"),
                 ("seconds_per_image", "seconds per image"))
BASELINE_NAMES = {"mean": "mean colour", "blur": "blurred image"}
CROSS_MODEL_IMAGES = 3
GRID_ROWS = 24
"""Most images in one model's explanation grid (a 100-class sample has over 100); all maps stay in ``maps.pt``."""


def explain_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    cfg = config.explain
    if not cfg.enabled:
        console.print("explain: disabled in the config, skipping")
        return
    sample = shared_sample(data.test.labels, cfg)
    keys = run_keys(config, cfg.variants)
    run_per_model("explain", keys, store,
                  lambda key: fingerprint("explain", evaluate_fingerprint(config, data, key, store), cfg.model_dump(),
                                          method_defaults(cfg.methods)),
                  partial(_explain_unit, store=store, data=data, sample=sample, cfg=cfg, device=device))
    tables = store.layout.tables
    table = gather_tables(store, keys, lambda files, name: files.explain.table(name), EXPLAIN_TABLES)[EXPLAIN_TABLES["quality"]]
    atomic_write_text(tables.markdown_of(tables.explain_quality), table.to_markdown(index=False, floatfmt=".4f") + "\n")
    baselines = {"deletion_baseline": BASELINE_NAMES[cfg.deletion_baseline],
                 "insertion_baseline": BASELINE_NAMES[cfg.insertion_baseline]}
    plots = tuple((column, label.format(**baselines)) for column, label in QUALITY_PLOTS)
    save_figure(quality_figure(table, plots), store.layout.figures.png("explain_quality"))
    _cross_model_grids(store, config, data, sample)
    reexamine_variants(config, store, data, device)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    """Each model's maps read its evaluation (the predicted classes, its confident mistakes)."""
    if not config.explain.enabled:
        return []
    return per_model_units("explain", run_keys(config, config.explain.variants), lambda key: [unit_name("evaluate", key.id)])


def shared_sample(labels: torch.Tensor, cfg: ExplainConfig) -> torch.Tensor:
    """``per_class`` seeded test indices per class, identical for every model of the run."""
    classes = int(labels.max()) + 1
    _, chosen = stratified_indices(labels, min(cfg.per_class * classes, len(labels) - 1), cfg.seed)
    return chosen


def _explain_unit(key: RunKey, files: ModelFiles, store: RunStore, data: AuditData, sample: torch.Tensor,
                  cfg: ExplainConfig, device: torch.device) -> Finished:
    """One model's maps of the shared sample and its own confident mistakes, scored; the maps and quality are its key files."""
    out = files.explain
    model = load_trained(store, key, data, device)
    failures = confident_mistakes(store, key)[: cfg.confident_failures]
    indices = torch.cat([sample, failures])
    kinds = ["sample"] * len(sample) + ["confident failure"] * len(failures)
    images = prepare_batch(data.test.images[indices], device, channels_last=False)
    # the evaluate stage's predictions (under eval.tta): each map explains the class that accuracy counted
    confidence, targets = load_logits(store, key)["test"][indices].softmax(1).max(1)
    maps, rows = {}, []
    with progress_bar() as progress:
        task = progress.add_task(f"explain {key.id}", total=len(cfg.methods))
        for method in cfg.methods:
            maps[method], row = _explain_and_score(method, model, images, targets.to(device), cfg)
            rows.append(row)
            progress.advance(task)
    iou, rank = agreement_matrix(maps, cfg.topk_frac)
    selection = pd.DataFrame({"index": indices.tolist(), "kind": kinds, "true": data.test.labels[indices].tolist(),
                              "predicted": targets.tolist(), "confidence": confidence.tolist()})
    atomic_torch_save(out.maps, {"indices": indices, "targets": targets, "maps": maps})
    atomic_write_text(out.selection, selection.to_csv(index=False))
    atomic_write_text(out.quality, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out.agreement_iou, iou.to_csv())
    atomic_write_text(out.agreement_spearman, rank.to_csv())
    save_figure(agreement_figure(iou, rank, f"{key.id}: agreement between methods"), out.agreement_figure)
    titles = [_row_title(row, data.classes) for row in selection.itertuples()]
    shown = grid_rows(kinds, GRID_ROWS)
    cut = ("" if len(shown) == len(kinds)
           else f" ({len(shown)} of {len(kinds)} images; every map is in {MODEL_RELATIVE.explain.maps.as_posix()})")
    save_figure(explanation_grid(data.test.images[indices[shown]], {m: v[shown] for m, v in maps.items()},
                                 [titles[i] for i in shown], f"{key.id}: explanations of the predicted class{cut}"),
                out.grid, dpi=110)
    return Finished([out.maps, out.quality])


def grid_rows(kinds: list[str], cap: int) -> list[int]:
    """The rows of the explanation grid: all when they fit under ``cap``, else every confident failure (up to
    half the cap) and sample images evenly spread over the rest, so a 100-class run's figure stays readable."""
    if len(kinds) <= cap:
        return list(range(len(kinds)))
    failures = [i for i, kind in enumerate(kinds) if kind != "sample"][: cap // 2]
    sample = [i for i, kind in enumerate(kinds) if kind == "sample"]
    room = cap - len(failures)
    spread = [sample[round(j * (len(sample) - 1) / max(1, room - 1))] for j in range(min(room, len(sample)))]
    return sorted(set(spread)) + failures


def _explain_and_score(method: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                       cfg: ExplainConfig) -> tuple[torch.Tensor, dict[str, object]]:
    """One method's maps and its quality row (faithfulness, complexity, cost, sanity)."""
    info: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    maps = explain(method, model, images, targets, layer=cfg.layer, info=info, **seed_option(method, cfg.seed))
    seconds = (time.perf_counter() - started) / len(images)
    on_device = maps.to(images.device)
    curves = deletion_insertion(model, images, on_device, targets, steps=cfg.deletion_steps,
                                deletion_baseline=cfg.deletion_baseline, insertion_baseline=cfg.insertion_baseline)
    road_gaps = [road(model, images, on_device, targets, seed=cfg.seed + run)["road_gap"].mean().item() for run in (0, 1)]
    n = min(cfg.sanity_images, len(images))
    sanity = cascading_randomisation(model, images[:n], targets[:n], sanity_explainer(method, cfg), seed=cfg.seed)
    final = sanity.iloc[-1]
    row = {
        "method": method,
        "layer": explained_layer(method, model, cfg.layer),
        "deletion_auc": curves["deletion_auc"].mean().item(),
        "insertion_auc": curves["insertion_auc"].mean().item(),
        "deletion_baseline": cfg.deletion_baseline,
        "insertion_baseline": cfg.insertion_baseline,
        "road_gap": road_gaps[0],
        "road_gap_seed_diff": abs(road_gaps[1] - road_gaps[0]),
        "seed_spearman": seed_spearman(method, model, images, targets, maps, cfg),
        "entropy": entropy(maps).mean().item(),
        "sparseness": sparseness(maps).mean().item(),
        "seconds_per_image": seconds,
        "sanity_spearman": float(final["spearman"]),
        "sanity_ssim": float(final["ssim"]),
        "sanity_fails": sanity_flag(sanity),
        "ig_delta_abs": info["delta"].abs().mean().item() if "delta" in info else float("nan"),
    }
    return maps, row


def seed_spearman(method: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
                  cfg: ExplainConfig) -> float:
    """Repeatability of a sampling method: mean Spearman between its maps for seeds ``seed`` and ``seed + 1``.

    NaN for deterministic methods, which have nothing to repeat.
    """
    options = seed_option(method, cfg.seed + 1)
    if not options:
        return math.nan
    again = explain(method, model, images, targets, layer=cfg.layer, **options)
    return spearman(maps, again).nanmean().item()


def sanity_explainer(method: str, cfg: ExplainConfig) -> ExplainFn:
    """The method for the sanity check, drawing a new seed on every call (``seed``, ``seed + 1``, ...).

    With one fixed seed a sampling method's maps on the untouched copy (step 0) would equal the
    originals exactly, hiding the method's own noise that the randomised steps are judged against.
    """
    seeds = itertools.count(cfg.seed)
    return lambda m, x, t: explain(method, m, x, t, layer=cfg.layer, **seed_option(method, next(seeds)))


def _row_title(row: object, classes: tuple[str, ...]) -> str:
    mark = "" if row.true == row.predicted else f" (true {classes[row.true]})"
    return f"#{row.index} {row.kind}\n{classes[row.predicted]} {row.confidence:.0%}{mark}"


def _cross_model_grids(store: RunStore, config: ExperimentConfig, data: AuditData, sample: torch.Tensor) -> None:
    """For the first sample images: rows = models, columns = methods, the same image throughout."""
    keys = run_keys(config, config.explain.variants)
    saved = {key.id: torch.load(store.layout.model(key.id).explain.maps, map_location="cpu", weights_only=True)
             for key in keys}
    for position in range(min(CROSS_MODEL_IMAGES, len(sample))):
        index = int(sample[position])
        maps = {method: torch.stack([saved[k.id]["maps"][method][position] for k in keys]) for method in config.explain.methods}
        titles = [f"{k.id}\npred {data.classes[int(saved[k.id]['targets'][position])]}" for k in keys]
        image = data.test.images[index].expand(len(keys), -1, -1, -1)
        figure = explanation_grid(image, maps, titles, f"test image #{index} ({data.classes[int(data.test.labels[index])]}) across models")
        save_figure(figure, store.layout.figures.png(f"explain_image_{index}"), dpi=110)
