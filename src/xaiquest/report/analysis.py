"""The report's sections on behaviour beyond accuracy: stress tests and the planted patch, concepts,
training variants, layer-wise analysis, the final ranking, the XAI methods and the critical reflection.

Like ``sections``, each builder only reads the run and returns None when its data is absent."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from xaiquest.layout import MODEL_RELATIVE, RELATIVE
from xaiquest.report.reader import (
    CONCEPTS_DETECTORS,
    CONCEPTS_RELIANCE,
    CONCEPTS_SUMMARY,
    CONCEPTS_TCAV,
    CONCEPTS_TCAV_UNTRAINED,
    CONCEPTS_TOP_UNITS,
    PATCH_SENSITIVITY,
    SALIENCE_SWEEP,
    XAI_BENCHMARK,
    TRANSFER,
    TRANSFER_SUMMARY,
    XAI_BENCHMARK_POOLED,
)
from xaiquest.report.derived import transfer_depths, transfer_summary
from xaiquest.report.rules.benchmark import BENCHMARK_METRIC, benchmark_rows, contrast_text
from xaiquest.report.text import has_columns
from xaiquest.report.findings import (
    COMPARISON,
    CRITERIA,
    FINAL_RANKING,
    LAYERWISE,
    PATCH_LOCALISATION,
    PATCH_RELIANCE,
    REEXAMINE,
    XAI_METHODS,
    Finding,
    RunTables,
    as_bool,
    critical_reflection,
    final_ranking,
    stress_tables,
    variant_table,
    xai_method_table,
)
from xaiquest.report.blocks import (
    Block,
    FigureBlock,
    Paragraph,
    Section,
    TableBlock,
    display,
    files_gallery,
    model_gallery,
    run_figure,
    section_of,
)


def stress_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    for rel, table in stress_tables(run).items():
        blocks.append(TableBlock(f"Stress probe table {rel.rsplit('/', 1)[-1]}", table, rel))
    blocks.append(files_gallery(run, "Stress probe figures", "stress_"))
    reliance = run.csv(PATCH_RELIANCE)
    if reliance is not None and "run" in reliance:
        reliance.insert(0, "label", reliance["run"].map(run.labels(reliance["run"])))
        blocks.append(TableBlock("Planted patch: reliance", display(reliance, {
            "label": "Model", "clean_accuracy": "Clean accuracy (%)", "attack_success": "Attack success (%)",
            "baseline_attack_success": "Baseline attack success (%)",
            "target_recall_without_patch": "Target recall without patch (%)"},
            percent=("clean_accuracy", "attack_success", "baseline_attack_success", "target_recall_without_patch")),
            PATCH_RELIANCE))
    localisation = run.csv(PATCH_LOCALISATION)
    if localisation is not None and "run" in localisation:
        localisation["run"] = localisation["run"].map(run.labels(localisation["run"]))
        blocks.append(TableBlock("Planted patch: which explainer finds it", display(localisation, {
            "run": "Model", "method": "Method", "tko": "Top-k overlap", "pointing": "Pointing (%)",
            "mass_inside": "Mass inside (%)", "win_rate": "Win rate (%)"},
            percent=("pointing", "mass_inside", "win_rate")), PATCH_LOCALISATION))
    blocks.append(_benchmark_block(run))
    blocks.append(_pooled_block(run))
    blocks.append(_sensitivity_block(run))
    blocks.append(_sweep_block(run))
    blocks.append(model_gallery(run, "Planted patch: maps on the reliant model and on its control twin",
                                MODEL_RELATIVE.stress.patch_contrast, "reliant (left) and control (right) maps", columns=1))
    blocks.append(files_gallery(run, "Planted patch figures", "patch_"))
    return section_of("stress", "Stress tests, bias probes and the planted patch",
                      "How predictions move under controlled changes of the input (stress and bias probes), and "
                      "whether models learned a planted shortcut patch (attack success >= 50% and >= 5x the "
                      "baseline counts as a shortcut), which explainer locates it, and whether that localisation survives a "
                      "control model trained with the same patch on every class (model contrast; a map lighting the "
                      "patch as much on the control is salience-driven) and beats four model-free baseline maps.",
                      blocks, findings)


def _benchmark_block(run: RunTables) -> TableBlock | None:
    """The planted-patch benchmark (Top-K overlap) per reliant model: explainers and trivial baselines, best contrast first."""
    rows = benchmark_rows(run)
    if rows is None:
        return None
    rows = rows.sort_values(["run", "rank"], kind="stable")
    shown = pd.DataFrame({
        "Model": rows["run"].map(run.labels(rows["run"])), "Map": rows["method"],
        "Reliant TKO": rows["reliant"].map(lambda v: f"{v:.3f}"), "Control TKO": rows["control"].map(lambda v: f"{v:.3f}"),
        **_verdict_columns(rows), "Rank": rows["rank"]})
    return TableBlock("Planted patch: benchmark against the control models (Top-K overlap)", shown, XAI_BENCHMARK)


def _verdict_columns(rows: pd.DataFrame) -> dict[str, object]:
    """The benchmark's verdict on each map, as the report shows it: contrast with its interval, salience-driven,
    beats all baselines (baselines marked as such)."""
    yes_no = {True: "yes", False: "no"}
    return {"Contrast [interval]": [contrast_text(row).removeprefix("contrast ") for _, row in rows.iterrows()],
            "Salience-driven": as_bool(rows["salience_driven"]).map(yes_no),
            "Beats all baselines": as_bool(rows["beats_baselines"]).map(yes_no).where(rows["kind"] == "method", "(baseline)")}


def _pooled_block(run: RunTables) -> TableBlock | None:
    """The benchmark pooled over seeds (Top-K overlap): intervals over images and seeds, win rates across
    seeds, and which methods' contrasts are significantly above which (paired Wilcoxon, Holm-corrected)."""
    table = run.csv(XAI_BENCHMARK_POOLED)
    if not has_columns(table, "model", "variant", "metric", "method", "kind", "contrast", "salience_driven", "rank", "seeds") \
            or not {"win_rate", "significantly_above", "beats_baselines"} <= set(table.columns):  # may be all empty
        return None
    rows = table[table["metric"] == BENCHMARK_METRIC].sort_values(["model", "variant", "rank"], kind="stable")
    verdict = _verdict_columns(rows)
    shown = pd.DataFrame({
        "Model": rows["model"] + " (" + rows["variant"] + ")", "Map": rows["method"], "Seeds": rows["seeds"],
        "Contrast [interval]": verdict.pop("Contrast [interval]"),
        "Win rate": rows["win_rate"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}"),
        "Significantly above": rows["significantly_above"].fillna("").str.replace(";", ", "),
        **verdict, "Rank": rows["rank"]})
    return TableBlock("Planted patch: benchmark pooled over seeds (Top-K overlap)", shown, XAI_BENCHMARK_POOLED)


def concepts_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    summary = run.csv(CONCEPTS_SUMMARY)
    if summary is not None and "run" in summary:
        summary.insert(0, "label", summary["run"].map(run.labels(summary["run"])))
        blocks.append(TableBlock("Shape, texture and colour bias", display(summary, {
            "label": "Model", "shape_bias": "Shape bias", "shape_decisions": "Shape decisions (%)",
            "texture_decisions": "Texture decisions (%)", "clean_accuracy": "Clean (%)", "grayscale_accuracy": "Grayscale (%)",
            "hue_90_accuracy": "Hue +90° (%)", "hue_180_accuracy": "Hue +180° (%)", "silhouette_accuracy": "Silhouette (%)",
            "outline_accuracy": "Outline (%)"}, percent=("shape_decisions", "texture_decisions", "clean_accuracy",
            "grayscale_accuracy", "hue_90_accuracy", "hue_180_accuracy", "silhouette_accuracy", "outline_accuracy")),
            CONCEPTS_SUMMARY, see_also=tuple(run.files(CONCEPTS_RELIANCE))))
    blocks.append(run_figure(run, "concepts_shape_bias", "Shape vs texture decisions on cue-conflict images"))
    tcav = run.csv(CONCEPTS_TCAV)
    if tcav is not None and "significant" in tcav:
        hits = tcav[as_bool(tcav["significant"])].copy()
        hits["run"] = hits["run"].map(run.labels(tcav["run"]))
        blocks.append(TableBlock("TCAV: concepts significant after correction", display(hits, {
            "run": "Model", "depth": "Depth", "concept": "Concept", "class_name": "Class", "tcav": "TCAV",
            "random_tcav": "Random TCAV", "p_corrected": "p (corrected)", "cav_accuracy": "CAV accuracy"}), CONCEPTS_TCAV))
        untrained = run.csv(CONCEPTS_TCAV_UNTRAINED)
        if untrained is not None and {"significant", "architecture"} <= set(untrained):
            blocks.append(TableBlock("TCAV sanity check: significant tests per depth, trained models and untrained copies",
                                     tcav_counts(tcav, untrained, run.labels(tcav["run"])), CONCEPTS_TCAV_UNTRAINED,
                                     see_also=(CONCEPTS_TCAV,)))
    blocks.append(run_figure(run, "concepts_tcav", "Mean TCAV score per concept and depth (hatched: not significant)"))
    top = run.csv(CONCEPTS_TOP_UNITS)
    if top is not None and "run" in top:
        top["run"] = top["run"].map(run.labels(top["run"]))
        blocks.append(TableBlock("Top units per concept (dissection)", display(top, {
            "run": "Model", "concept": "Concept", "depth": "Depth", "unit": "Unit", "iou": "IoU"}), CONCEPTS_TOP_UNITS,
            see_also=(CONCEPTS_DETECTORS,)))
    blocks.append(run_figure(run, "concepts_detectors", "Share of units detecting each concept, per depth"))
    return section_of("concepts", "Concepts: shape, texture and colour",
                      "Which cues the models use: Geirhos' shape bias on cue-conflict images (the silhouette of one "
                      "class filled with the texture of another; shape decisions / (shape + texture decisions)), "
                      "accuracy without texture (silhouettes, outlines) and without or with changed colour; TCAV "
                      "scores of colour, texture and shape concepts, tested against random concepts (two-sided "
                      "t-test, corrected over all tests of a model); and units whose top 0.5 % activations overlap a "
                      "concept mask with IoU > 0.04 (dissection). Protocol: docs/concepts.md.", blocks, findings)


def tcav_counts(trained: pd.DataFrame, untrained: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Significant tests per depth (and of how many) for each trained model, then for each untrained copy."""
    frames = [trained.assign(model=trained["run"].map(labels)),
              untrained.assign(model="untrained " + untrained["architecture"].astype(str))]
    rows = pd.concat(frames, ignore_index=True).assign(significant=lambda t: as_bool(t["significant"]).astype(int))
    counts = rows.pivot_table(index="model", columns="depth", values="significant", aggfunc="sum", sort=False).fillna(0)
    totals = rows.groupby("model", sort=False)["significant"].agg(["sum", "size"])
    return counts.astype(int).assign(total=totals["sum"], tests=totals["size"]).reset_index().rename(
        columns={"model": "Model", "total": "Total", "tests": "Tests"})


def variants_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    table = variant_table(run)
    if table is not None:
        blocks.append(TableBlock("Variants against their baseline", display(table, {
            "model": "Model", "variant": "Variant", "augmentations": "Recipe", "accuracy": "Accuracy (%)",
            "ece": "ECE", "ece_after_ts": "ECE after TS", "mce": "mCE", "stress_accuracy": "Mean stress-probe accuracy (%)"},
            percent=("accuracy", "stress_accuracy")), COMPARISON))
    reexamined = run.csv(REEXAMINE)
    if reexamined is not None and "variant" in reexamined:
        blocks.append(TableBlock("The baseline's most confident mistakes, re-examined", display(reexamined, {
            "model": "Model", "variant": "Variant", "mistakes": "Mistakes", "variant_correct": "Now correct (%)",
            "same_wrong_class": "Same wrong class (%)", "baseline_confidence": "Baseline confidence (%)",
            "variant_prob_baseline_class": "Variant's prob. of that class (%)", "variant_prob_true": "Variant's prob. of the true class (%)",
            "gradcam_spearman": "Grad-CAM rank corr."},
            percent=("variant_correct", "same_wrong_class", "baseline_confidence", "variant_prob_baseline_class",
                     "variant_prob_true")), REEXAMINE))
    blocks.append(model_gallery(run, "Confident mistakes, Grad-CAM before / after", MODEL_RELATIVE.explain.reexamine_figure,
                                "the baseline's most confident mistakes, baseline vs variant Grad-CAM", columns=1))
    return section_of("variants", "Training variants against their baseline",
                      "Each variant changes one thing in its baseline's recipe. Its accuracy, calibration, corruption "
                      "robustness and stress-probe accuracy are set against the baseline's. It is then re-examined on the "
                      "images the baseline got most confidently wrong, with both models' Grad-CAM: does a training change "
                      "(label smoothing, say) repair confident mistakes, or only lower the average confidence?",
                      blocks, findings)


def layerwise_section(run: RunTables, findings: list[Finding]) -> Section | None:
    table = run.csv(LAYERWISE)
    blocks: list[Block | None] = []
    if table is not None and "run" in table:
        table["run"] = table["run"].map(run.labels(table["run"]))
        blocks.append(TableBlock("Layer-wise measurements", table, LAYERWISE))
    blocks.append(files_gallery(run, "Layer-wise figures", "layerwise_"))
    return section_of("layerwise", "Layer-wise analysis",
                      "What each depth of the network represents on clean and noisy inputs: alignment with image "
                      "edges, high-frequency energy, and CKA similarity between clean and noisy activations.",
                      blocks, findings)


def transfer_section(run: RunTables, findings: list[Finding]) -> Section | None:
    """From scratch, linear probe, fine-tune: shown only when the run has models started from weights."""
    summary = transfer_summary(run)
    if summary is None:
        return None
    depth_columns = {column: f"CKA {column.removeprefix('cka_')}" for column in summary if column.startswith("cka_")}
    blocks: list[Block | None] = [TableBlock("Each model of an architecture trained from weights, and from scratch", display(
        summary, {"model": "Model", "start": "Start", "accuracy": "Accuracy (%)", "ece": "ECE", "mce": "mCE",
                  "interpretability": "Interpretability", **depth_columns}, percent=("accuracy",)),
        TRANSFER_SUMMARY, data=summary, see_also=(TRANSFER,))]
    depths = transfer_depths(run)
    if depths is not None:
        depths = depths.assign(model=depths["group"].map(run.labels(depths["group"])))
        blocks.append(TableBlock("Per depth, against the starting weights (mean over seeds)", display(depths, {
            "model": "Model", "depth": "Depth", "cka": "CKA", "map_topk_iou": "Map top-k IoU",
            "map_spearman": "Map Spearman"}), TRANSFER))
    return section_of("transfer", "Transfer",
                      "Models started from weights (init: a file; pretrained: torchvision's) against the same "
                      "architecture trained from scratch on the same images: accuracy, calibration (ECE), robustness "
                      "(mCE) and interpretability (insertion - deletion AUC, where explained). Per depth, how far "
                      "training moved each one from its starting weights on the same test images: debiased linear "
                      "CKA of the activations (1 = unchanged up to rotation and scale) and the agreement of the two "
                      "models' class-free maps (the channel-wise L2 norm of the activation, upsampled to the image; "
                      "class-free because the starting weights' classifier scores other classes): top-k IoU and "
                      "Spearman per image, averaged.", blocks, findings)


def final_section(run: RunTables, findings: list[Finding]) -> Section | None:
    ranking = final_ranking(run)
    blocks: list[Block | None] = []
    if ranking is not None:
        columns = {"model": "Model", "runs": "Runs", "accuracy": "Accuracy (%)", "ece": "ECE", "mce": "mCE",
                   "interpretability": "Interpretability",
                   **{f"rank_{c}": f"Rank {c}" for c in CRITERIA}, "mean_rank": "Mean rank"}
        blocks.append(TableBlock("Ranking on every criterion (1 = best)", display(ranking, columns, ("accuracy",)),
                                 FINAL_RANKING, data=ranking))
        blocks.append(FigureBlock(RELATIVE.figures.png("final_comparison").as_posix(), "Every model on every criterion",
                                  final_comparison_figure(ranking)))
    return section_of("final", "Final comparison",
                      "All models side by side: accuracy (test accuracy, higher is better), calibration (ECE before "
                      "temperature scaling, lower is better), robustness (mCE, lower is better) and interpretability, "
                      "defined as the mean over explanation methods of insertion AUC minus deletion AUC (higher: the "
                      "model's decisions are explained more faithfully by a typical method). Each criterion is ranked "
                      "separately; the mean rank averages the criteria the run measured. Seeds are averaged.",
                      blocks, findings)


PANEL_MEASURES = {"accuracy": "test accuracy", "calibration": "ECE", "robustness": "mCE",
                  "interpretability": "insertion - deletion AUC"}


def final_comparison_figure(ranking: pd.DataFrame) -> Figure:
    """Small multiples: one bar panel per criterion, models in ranking order, the best bar highlighted."""
    panels = [(criterion, column, lower) for criterion, (column, lower) in CRITERIA.items() if column in ranking]
    fig = Figure(figsize=(3.0 * len(panels) + 1.2, 0.42 * len(ranking) + 1.5), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    rows = list(range(len(ranking)))
    for ax, (criterion, column, lower) in zip(axes, panels):
        values = ranking[column].astype(float)
        best = values.idxmin() if lower else values.idxmax()
        ax.barh(rows, values.fillna(0), color=["#2f5d9e" if i == best else "#a9bcd8" for i in ranking.index])
        for row, value in zip(rows, values):
            if pd.notna(value):
                ax.text(value, row, f" {value:.3f}", va="center", fontsize=8)
        ax.set_xlim(min(0.0, values.min() * 1.3), max(values.max(), 0) * 1.3 or 1.0)
        ax.set_title(f"{criterion}\n{PANEL_MEASURES[criterion]}, {'lower' if lower else 'higher'} is better", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(rows, list(ranking["model"]))
    axes[0].invert_yaxis()
    fig.suptitle("Final comparison (best model per criterion highlighted)", fontsize=10)
    return fig


def xai_methods_section(run: RunTables, findings: list[Finding]) -> Section | None:
    table = xai_method_table(run)
    blocks: list[Block | None] = []
    if table is not None:
        if "seconds_per_image" in table:
            table["ms_per_image"] = table["seconds_per_image"] * 1000
        blocks.append(TableBlock("Profile of every explanation method (means over models)", display(table, {
            "method": "Method", "faithfulness_rank": "Faithfulness rank ↓", "deletion_auc": "Deletion AUC ↓",
            "insertion_auc": "Insertion AUC ↑", "road_gap": "ROAD gap ↑", "sanity_fails": "Sanity fails",
            "models": "Models", "sanity_ssim": "Sanity SSIM ↓", "agreement_iou": "Agreement IoU",
            "ms_per_image": "ms / image", "patch_mass_inside": "Patch mass (%)", "patch_tko": "Patch TKO"},
            percent=("patch_mass_inside",)), XAI_METHODS, data=table.drop(columns="ms_per_image", errors="ignore")))
    return section_of("xai_methods", "XAI methods: strengths and weaknesses",
                      "Each method against the others on faithfulness (mean rank over models and faithfulness "
                      "metrics), agreement with the other methods, cost, the sanity check and, when measured, "
                      "localisation of the planted patch. A criterion is a strength when the method is in the top "
                      "third of the methods, a weakness in the bottom third.", blocks, findings)


def reflection_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block] = []
    for reflection in critical_reflection(findings):
        blocks.append(Paragraph(f"{reflection.tag.capitalize()}. {reflection.summary}"))
        blocks += [Paragraph(lesson, cites=True) for lesson in reflection.lessons]
    return Section("reflection", "Critical reflection",
                   "What the findings imply for bias, reliability and generalisation. Each point cites the findings "
                   "(F-numbers) it rests on instead of repeating them; a category without measurements says so.",
                   tuple(blocks))


def _sensitivity_block(run: RunTables) -> TableBlock | None:
    """Per reliant model and setting (explained output x post-processing): the method that localises the patch
    best and how far the whole ranking moves from the benchmark's own setting (Kendall's tau)."""
    table = run.csv(PATCH_SENSITIVITY)
    if not has_columns(table, "run", "explained", "post", "method", "tko", "rank_tko") \
            or "kendall_tau_vs_default" not in table:  # NaN where every method ties
        return None
    best = table.sort_values("rank_tko", kind="stable").groupby(["run", "explained", "post"], sort=False).head(1)
    best = best.sort_values(["run", "explained", "post"], kind="stable")
    shown = pd.DataFrame({
        "Model": best["run"].map(run.labels(best["run"])), "Explained": best["explained"], "Map": best["post"],
        "Best method (TKO)": [f"{row.method} ({row.tko:.3f})" for row in best.itertuples()],
        "Kendall tau vs predicted/raw": best["kendall_tau_vs_default"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")})
    return TableBlock("Planted patch: the ranking under other explained outputs and post-processing", shown,
                      PATCH_SENSITIVITY)


def _sweep_block(run: RunTables) -> TableBlock | None:
    """Per patch setting of a salience sweep: reliance, how many explainers' localisation survives the control,
    and the best one by model contrast (by Top-K overlap where the setting has no control twin)."""
    table = run.csv(SALIENCE_SWEEP)
    if not has_columns(table, "run", "patch", "attack_success", "method", "tko") \
            or not {"contrast", "salience_driven"} <= set(table.columns):  # empty without control twins
        return None
    rows = []
    for run_id, group in table.groupby("run", sort=False):
        key = "contrast" if group["contrast"].notna().any() else "tko"
        best = group.loc[group[key].idxmax()]
        driven = as_bool(group["salience_driven"].fillna(True))
        rows.append({"Model": run.labels([run_id])[run_id], "Patch": best["patch"],
                     "Attack success": f"{best['attack_success']:.0%}",
                     "Surviving the control": f"{int((~driven).sum())} of {len(group)}" if key == "contrast" else "(no control)",
                     "Best method": f"{best['method']} ({'contrast' if key == 'contrast' else 'TKO'} {best[key]:.3f})"})
    return TableBlock("Planted patch: salience sweep (patch colour, size and position)", pd.DataFrame(rows), SALIENCE_SWEEP)
