"""The report's sections: what each measured, its tables and figures, then its findings.

Builders only read the run (through :class:`RunTables`) and describe content; the renderer
writes the tables and figures the report computes itself and formats everything. A builder
whose data is absent returns None, so a stage that did not run leaves no empty section.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from xaiquest.layout import MODEL_RELATIVE, RELATIVE
from xaiquest.report.reader import EVAL_METRICS, PER_CLASS, ROBUSTNESS_ACCURACY, SWITCHED_STAGES
from xaiquest.report.findings import (
    CALIBRATION,
    COMPARISON,
    EXPLAIN_QUALITY,
    PATCH_RELIANCE,
    ROBUSTNESS_FAMILIES,
    ROBUSTNESS_SUMMARY,
    SETUP,
    STRESS_PROBES,
    Finding,
    RunTables,
    as_bool,
    comparison_labels,
    plural,
    robustness_families,
    run_rules,
    setup_table,
    summary_findings,
)
from xaiquest.report.analysis import (
    concepts_section,
    final_section,
    layerwise_section,
    reflection_section,
    transfer_section,
    stress_section,
    variants_section,
    xai_methods_section,
)
from xaiquest.report.blocks import (
    Block,
    FindingList,
    Paragraph,
    Ranking,
    Report,
    Section,
    SectionBuilder,
    TableBlock,
    display,
    files_gallery,
    model_gallery,
    run_figure,
    section_of,
)


SECTION_ORDER = ("setup", "comparison", "calibration", "robustness", "explanations", "stress", "variants",
                 "layerwise", "transfer", "final", "xai_methods")
"""Sections that state findings, in reading order: findings are numbered F1, F2, ... in this order."""


def build_report(run: RunTables, written: datetime | None = None) -> Report:
    """Run every finding rule, number the findings in reading order, then build every section.

    ``written`` (default: now) is the "last updated" time: when the report was written, not when the run began.
    """
    findings = numbered(run_rules(run))
    sections = tuple(s for builder in BUILDERS if (s := builder(run, findings)) is not None)
    manifest = run.manifest
    written = written or datetime.now(timezone.utc)
    missing = sum(map(len, run.missing().values())) + len(run.untrained)
    meta = (f"Run directory: {run.root.name}", f"last updated {written:%Y-%m-%d %H:%M} UTC (report written)",
            f"{len(findings)} findings", *([f"{missing} expected results missing (see Setup)"] if missing else []),
            *([f"{plural(len(run.failures), 'unit')} failed (see Setup)"] if run.failures else []))
    return Report(f"xaiquest audit report: {manifest.get('experiment', run.root.name)}", meta, sections,
                  tuple(findings))


def numbered(findings: list[Finding]) -> list[Finding]:
    """Findings sorted by section (rule order within one) and stamped ``F1``, ``F2``, ... so others can cite them."""
    order = {key: i for i, key in enumerate(SECTION_ORDER)}
    ordered = sorted(findings, key=lambda f: order.get(f.section, len(order)))
    return [replace(f, ref=f"F{i}") for i, f in enumerate(ordered, 1)]


# --------------------------------------------------------------------------------------------


def summary_section(run: RunTables, findings: list[Finding]) -> Section | None:
    """The verdict first: the few findings that matter most, each linked to its section and number."""
    chosen = summary_findings(findings)
    if not chosen:
        return None
    return Section("summary", "Summary",
                   "The findings that matter most for trusting these models; each links to the section that "
                   "measures it, where the tables, figures and the other findings are.",
                   (FindingList("Key findings", "", tuple(chosen), linked=True),))


def setup_section(run: RunTables, findings: list[Finding]) -> Section | None:
    manifest = run.manifest
    models = setup_table(run)
    blocks: list[Block | None] = [*_missing_paragraphs(run), _data_paragraph(run, manifest, models),
                                  _prediction_paragraph(run, manifest)]
    if models is not None:
        models = models.assign(params_m=models["params"] / 1e6) if "params" in models else models
        blocks.append(TableBlock("Models and training recipes", display(models, {
            "label": "Model", "variant": "Variant", "seed": "Seed", "params_m": "Params (M)", "epochs": "Epochs",
            "batch_size": "Batch", "optimizer": "Optimizer", "lr_schedule": "LR schedule",
            "augmentations": "Augmentations", "train_time_s": "Train time (s)", "device": "Device"}),
            SETUP, data=models.drop(columns=["label", "params_m"], errors="ignore")))
    timings = manifest.get("timings_s")
    if timings:
        table = pd.DataFrame({"stage": list(timings), "seconds": [float(v) for v in timings.values()]})
        table = pd.concat([table, pd.DataFrame({"stage": ["total"], "seconds": [table["seconds"].sum()]})])
        blocks.append(TableBlock(f"Wall time per stage (latest run of each{_machine_note(manifest)})", display(
            table, {"stage": "Stage", "seconds": "Seconds"}), RELATIVE.tables.stage_timings.as_posix(), data=table))
    return section_of("setup", "Setup", "What was trained, on which data, and what each stage cost.", blocks, findings)


def _machine_note(manifest: dict[str, Any]) -> str:
    """``; 2 cores, 2 torch threads``: a stage time means little without the machine it was measured on."""
    machine = manifest.get("machine") or {}
    if not machine:
        return ""
    return f"; {plural(machine['cores'], 'core')}, {plural(machine['torch_threads'], 'torch thread')}"


def _missing_paragraphs(run: RunTables) -> list[Paragraph]:
    """Results the run's config asks for that are not there, and the command that makes them: a stage
    that did not run or failed leaves its section out, and the reader must not take that for "nothing to say"."""
    paragraphs = []
    if run.untrained:
        paragraphs.append(Paragraph(f"Missing results: {plural(len(run.untrained), 'model')} of the config "
                                    f"({', '.join(run.untrained)}) never finished training; run `xaiquest train` with "
                                    "this run's config."))
    if run.failures:
        causes = "; ".join(f"{unit}: {cause}" for unit, cause in run.failures.items())
        paragraphs.append(Paragraph(f"Failed: {plural(len(run.failures), 'unit')} did not finish ({causes}). Their "
                                    f"tracebacks are under `{RELATIVE.failures.as_posix()}/`; rerun the same command to "
                                    "retry them."))
    for stage, files in run.missing().items():
        enabled = f" ({stage}.enabled in the config)" if stage in SWITCHED_STAGES else ""
        paragraphs.append(Paragraph(f"Missing results: {', '.join(files)} {'is' if len(files) == 1 else 'are'} "
                                    f"missing: the {stage} stage{enabled} has not run or failed; run "
                                    f"`xaiquest {stage}` with this run's config."))
    return paragraphs


def _data_paragraph(run: RunTables, manifest: dict, models: pd.DataFrame | None) -> Paragraph | None:
    parts = []
    if "data" in manifest:
        parts.append(f"Data: {manifest['data']}.")
    sizes = []
    if models is not None and "train_images" in models:
        sizes.append(f"{int(models['train_images'].iloc[0]):,} training")
    val = manifest.get("config", {}).get("data", {}).get("val_size")
    if val:
        sizes.append(f"{int(val):,} validation")
    tests = _test_size(run)
    if tests is not None:
        sizes.append(f"{tests:,} test")
    if sizes:
        parts.append("Images: " + ", ".join(sizes) + ".")
    versions = [f"{name} {manifest[key]}" for key, name in (("xaiquest", "xaiquest"), ("torch", "torch"),
                                                          ("python", "Python")) if key in manifest]
    if versions:
        parts.append("Software: " + ", ".join(versions) + ".")
    return Paragraph(" ".join(parts)) if parts else None


def _test_size(run: RunTables) -> int | None:
    """The test-set size every model was evaluated on (None when unknown or not the same for all)."""
    tests = {m["num_samples"] for m in run.per_run_json(EVAL_METRICS).values() if "num_samples" in m}
    return int(tests.pop()) if len(tests) == 1 else None


SUBSET_STAGES = (("robustness", (ROBUSTNESS_SUMMARY,), 0), ("stress", (STRESS_PROBES, PATCH_RELIANCE), 1))
"""Stages whose clean accuracy is on ``<stage>.test_images`` test images (null = all), at most the test set
less ``held_back`` (the stages' own subset rules)."""
TTA_WORDING = {
    "flip": "flip test-time augmentation (the mean of each image's and its mirror's logits)",
    "none": "the plain forward pass, without test-time augmentation",
    "flip_translate": "flip and translate test-time augmentation (airbench's: the mean of the flip logits of each "
                      "image and of its one-pixel shifts up-left and down-right)",
}


def _prediction_paragraph(run: RunTables, manifest: dict) -> Paragraph | None:
    """The run's one prediction policy, and the test subsets whose "clean accuracy" is not Stage 1's."""
    config = manifest.get("config", {})
    tta = config.get("eval", {}).get("tta")
    if tta not in TTA_WORDING:
        return None
    parts = [f"Predictions (eval.tta = {tta}): {TTA_WORDING[tta]}, for every number in this report (accuracy, "
             "calibration, robustness, stress) and for the class each explanation explains; the explainers attribute "
             "the un-augmented model's score for that class, and training curves use the plain forward pass."]
    tests = _test_size(run)
    for stage, tables, held_back in SUBSET_STAGES:
        if tests is not None and any(run.csv(table) is not None for table in tables):
            size = min(config.get(stage, {}).get("test_images") or tests, tests - held_back)
            parts.append(f"The {stage} stage's clean accuracy is on {size:,} stratified test images of Stage 1's "
                         f"{tests:,}, under the same policy.")
    return Paragraph(" ".join(parts))


def comparison_section(run: RunTables, findings: list[Finding]) -> Section | None:
    table = run.csv(COMPARISON)
    blocks: list[Block | None] = []
    if table is not None and "accuracy_mean" in table:
        shown = pd.DataFrame({"Model": comparison_labels(run, table)})
        if "n_seeds" in table:
            shown["Seeds"] = table["n_seeds"]
        for metric, header, percent in (("accuracy", "Accuracy (%)", True), ("macro_f1", "Macro F1 (%)", True),
                                        ("macro_auc", "Macro AUC", False), ("ece", "ECE", False),
                                        ("mce", "mCE", False)):
            if f"{metric}_mean" in table:
                shown[header] = [_mean_std(m, s, percent) for m, s in
                                 zip(table[f"{metric}_mean"], table.get(f"{metric}_std", [float("nan")] * len(table)))]
        blocks.append(TableBlock("Test metrics (mean ± std over seeds)", shown, COMPARISON,
                                 see_also=tuple(run.files(RELATIVE.tables.markdown_of(RELATIVE.tables.comparison).as_posix()))))
    recall = _per_class_recall(run)
    if recall is not None:
        blocks.append(TableBlock("Recall per class (%)", recall, RELATIVE.tables.per_class_recall.as_posix(), data=recall,
                                 ranking=Ranking(recall.drop(columns="class").mean(axis=1), "mean recall over models")))
    blocks.append(model_gallery(run, "Training curves", MODEL_RELATIVE.curves, "loss and accuracy per epoch"))
    blocks.append(model_gallery(run, "Confusion matrices (test)", MODEL_RELATIVE.eval.confusion_figure, "confusion matrix"))
    return section_of("comparison", "Stage 1: accuracy comparison",
                      "Test-set accuracy, macro F1 and AUC of every model, per-class recall, and how training went.",
                      blocks, findings)


def _mean_std(mean: float, std: float, percent: bool) -> str:
    scale, digits = (100, 2) if percent else (1, 4)
    if pd.isna(mean):
        return ""
    return f"{scale * mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {scale * std:.{digits}f}")


def _per_class_recall(run: RunTables) -> pd.DataFrame | None:
    tables = run.per_run_csv(PER_CLASS)
    labels = run.labels(tables)
    columns = {labels[r]: t.set_index("class")["recall"] * 100 for r, t in tables.items() if {"class", "recall"} <= set(t)}
    return pd.DataFrame(columns).round(2).rename_axis("class").reset_index() if columns else None


def calibration_section(run: RunTables, findings: list[Finding]) -> Section | None:
    table = run.csv(CALIBRATION)
    blocks: list[Block | None] = []
    if table is not None and "run" in table:
        table.insert(0, "label", table["run"].map(run.labels(table["run"])))
        blocks.append(TableBlock("Calibration before and after temperature scaling (test)", display(table, {
            "label": "Model", "temperature": "T", "ece": "ECE", "ece_after_ts": "ECE after TS", "mce": "MCE",
            "mce_after_ts": "MCE after TS", "adaptive_ece": "Adaptive ECE", "brier": "Brier", "nll": "NLL",
            "accuracy": "Accuracy (%)", "mean_confidence": "Mean confidence (%)"},
            percent=("accuracy", "mean_confidence")), CALIBRATION))
    blocks.append(run_figure(run, "reliability_overlay", "Reliability of every model (before scaling)"))
    blocks.append(model_gallery(run, "Reliability per model", MODEL_RELATIVE.calibration.figure,
                                "before and after temperature scaling"))
    return section_of("calibration", "Calibration",
                      "Whether confidence matches accuracy: ECE, MCE, Brier score and NLL on the test set, before "
                      "and after a temperature fitted on the validation split. T > 1 softens the logits "
                      "(over-confident model), T < 1 sharpens them (under-confident model).", blocks, findings)


def robustness_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    summary = run.csv(ROBUSTNESS_SUMMARY)
    if summary is not None and "run" in summary:
        summary.insert(0, "label", summary["run"].map(run.labels(summary["run"])))
        blocks.append(TableBlock("Corruption robustness summary", display(summary, {
            "label": "Model", "clean_accuracy": "Clean accuracy (%)",
            "mean_corruption_accuracy": "Mean corruption accuracy (%)", "mce": "mCE", "relative_mce": "Relative mCE"},
            percent=("clean_accuracy", "mean_corruption_accuracy")), ROBUSTNESS_SUMMARY,
            see_also=tuple(run.files(RELATIVE.tables.robustness_ce.as_posix()))))
    families = robustness_families(run)
    if families is not None:
        shown = families.assign(model=families["model"].map(run.labels(families["model"])))
        blocks.append(TableBlock("Accuracy per corruption family", display(shown, {
            "model": "Model", "family": "Family", "mean_accuracy": "Mean over severities (%)",
            "clean_accuracy": "Clean (%)", "max_severity": "Max severity",
            "max_severity_accuracy": "At max severity (%)", "drop": "Drop (pp)"},
            percent=("mean_accuracy", "clean_accuracy", "max_severity_accuracy", "drop")),
            ROBUSTNESS_FAMILIES, data=families, see_also=tuple(run.files(ROBUSTNESS_ACCURACY))))
    blocks.append(run_figure(run, "robustness_accuracy", "Accuracy vs corruption severity"))
    blocks.append(run_figure(run, "robustness_ece", "ECE vs corruption severity"))
    blocks.append(run_figure(run, "corruption_gallery", "The corruptions at every severity"))
    return section_of("robustness", "Robustness to corruptions",
                      "Accuracy and calibration under the CIFAR-10-C corruptions at severities 1-5: mean corruption "
                      "error (mCE, normalised by a baseline model of the zoo), relative mCE (degradation beyond the "
                      "clean error), accuracy per corruption family and its drop from clean images.", blocks, findings)


def explanations_section(run: RunTables, findings: list[Finding]) -> Section | None:
    quality = run.csv(EXPLAIN_QUALITY)
    blocks: list[Block | None] = []
    if quality is not None and "method" in quality:
        means = quality.groupby("method", sort=False).mean(numeric_only=True)
        if "sanity_fails" in quality:
            means["sanity_fails"] = as_bool(quality["sanity_fails"]).groupby(quality["method"]).sum()
        means = means.reset_index()
        if "seconds_per_image" in means:
            means["ms_per_image"] = means["seconds_per_image"] * 1000
        blocks.append(TableBlock("Explanation quality per method (mean over models)", display(means, {
            "method": "Method", "deletion_auc": "Deletion AUC ↓", "insertion_auc": "Insertion AUC ↑",
            "road_gap": "ROAD gap ↑", "entropy": "Entropy", "sparseness": "Sparseness", "ms_per_image": "ms / image",
            "sanity_spearman": "Sanity Spearman ↓", "sanity_ssim": "Sanity SSIM ↓", "sanity_fails": "Sanity fails",
            "ig_delta_abs": "IG completeness error"}), RELATIVE.tables.explain_quality_by_method.as_posix(),
            data=means.drop(columns="ms_per_image", errors="ignore"), see_also=(EXPLAIN_QUALITY,)))
    blocks.append(_cam_layers(run, quality))
    blocks.append(run_figure(run, "explain_quality", "Quality metrics per method and model"))
    blocks.append(files_gallery(run, "The same test images explained on every model", "explain_image_"))
    blocks.append(model_gallery(run, "Explanation grids per model", MODEL_RELATIVE.explain.grid, "explanations of the predicted class",
                                columns=1))
    blocks.append(model_gallery(run, "Agreement between methods per model", MODEL_RELATIVE.explain.agreement_figure,
                                "top-k IoU and Spearman between methods", columns=1))
    return section_of("explanations", "Explanations",
                      "Every explanation method on a shared sample of test images: faithfulness (deletion AUC, lower "
                      "is better; insertion AUC and ROAD gap, higher is better), complexity, cost, the "
                      "cascading-randomisation sanity check (final Spearman/SSIM to the trained model's maps; a method "
                      "fails when both stay above 0.5), Integrated Gradients' completeness error, and agreement "
                      "between methods.", blocks, findings)


def _cam_layers(run: RunTables, quality: pd.DataFrame | None) -> Block | None:
    """Which layer each layer-based method (the CAMs) explained, per model, as the explain stage recorded it."""
    if quality is not None and {"run", "method", "layer"} <= set(quality) and quality["layer"].notna().any():
        used = quality.dropna(subset=["layer"])
        table = used.groupby(["run", "layer"], sort=False)["method"].agg(", ".join).reset_index()
        table["run"] = table["run"].map(run.labels(table["run"]))
        return TableBlock("Layer each CAM method explained", display(table, {
            "run": "Model", "layer": "Layer", "method": "Methods"}), EXPLAIN_QUALITY)
    layer = (run.manifest.get("config", {}).get("explain", {}) or {}).get("layer")
    if quality is None:
        return None
    named = f"layer {layer}" if layer else "each model's last feature depth (the default)"
    return Paragraph(f"Layer-based methods (the CAM family) explained {named}; this run's quality table does not "
                     "record the layer per model.")


BUILDERS: tuple[SectionBuilder, ...] = (
    summary_section,
    setup_section,
    comparison_section,
    calibration_section,
    robustness_section,
    explanations_section,
    stress_section,
    concepts_section,
    variants_section,
    layerwise_section,
    transfer_section,
    final_section,
    xai_methods_section,
    reflection_section,
)
