"""The report's sections: what each measured, its tables and figures, then its findings.

Builders only read the run (through :class:`RunTables`) and describe content; the renderer
writes the tables and figures the report computes itself and formats everything. A builder
whose data is absent returns None, so a stage that did not run leaves no empty section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from xaiquest.layout import MODEL_RELATIVE, RELATIVE
from xaiquest.report.reader import (
    CONCEPTS_DETECTORS,
    CONCEPTS_RELIANCE,
    CONCEPTS_SUMMARY,
    CONCEPTS_TCAV,
    CONCEPTS_TOP_UNITS,
    EVAL_METRICS,
    PER_CLASS,
    ROBUSTNESS_ACCURACY,
    SWITCHED_STAGES,
    XAI_BENCHMARK,
)
from xaiquest.report.rules.benchmark import benchmark_rows, contrast_text
from xaiquest.report.findings import (
    CALIBRATION,
    COMPARISON,
    CRITERIA,
    EXPLAIN_QUALITY,
    FINAL_RANKING,
    LAYERWISE,
    PATCH_LOCALISATION,
    PATCH_RELIANCE,
    REEXAMINE,
    ROBUSTNESS_FAMILIES,
    ROBUSTNESS_SUMMARY,
    SETUP,
    STRESS_PROBES,
    XAI_METHODS,
    Finding,
    RunTables,
    as_bool,
    comparison_labels,
    critical_reflection,
    final_ranking,
    plural,
    robustness_families,
    run_rules,
    setup_table,
    stress_tables,
    summary_findings,
    variant_table,
    xai_method_table,
)


@dataclass(frozen=True)
class Ranking:
    """A score per row of a table (aligned with its rows) and what it is, e.g. "mean recall"."""

    scores: pd.Series
    by: str


@dataclass(frozen=True)
class TableBlock:
    """A table as shown (``display``) and the CSV it comes from (``source``, linked).

    ``data`` is set when the report computed the table: the renderer writes it to ``source``.
    A table too long to read shows its first rows, or with a ``ranking`` its lowest- and
    highest-scoring rows (the worst and best classes, say); the note links the full CSV.
    """

    title: str
    display: pd.DataFrame
    source: str
    data: pd.DataFrame | None = None
    see_also: tuple[str, ...] = ()
    ranking: Ranking | None = None


@dataclass(frozen=True)
class FigureBlock:
    """A PNG under the run directory; ``figure`` is set when the report draws it (saved to ``path``)."""

    path: str
    caption: str
    figure: Figure | None = None


@dataclass(frozen=True)
class Gallery:
    """Related figures side by side (one per model, say), ``columns`` to a row."""

    title: str
    figures: tuple[FigureBlock, ...]
    columns: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Text; with ``cites`` its finding numbers (``F12``) become links to the findings."""

    text: str
    cites: bool = False


@dataclass(frozen=True)
class FindingList:
    """Findings with their numbers; with ``linked`` each also links to the section that states it (the summary)."""

    title: str
    intro: str
    findings: tuple[Finding, ...]
    linked: bool = False


Block = TableBlock | FigureBlock | Gallery | Paragraph | FindingList


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    meta: tuple[str, ...]
    sections: tuple[Section, ...]
    findings: tuple[Finding, ...]


SectionBuilder = Callable[[RunTables, list[Finding]], Section | None]


SECTION_ORDER = ("setup", "comparison", "calibration", "robustness", "explanations", "stress", "variants",
                 "layerwise", "final", "xai_methods")
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
            f"{len(findings)} findings", *([f"{missing} expected results missing (see Setup)"] if missing else []))
    return Report(f"xaiquest audit report: {manifest.get('experiment', run.root.name)}", meta, sections,
                  tuple(findings))


def numbered(findings: list[Finding]) -> list[Finding]:
    """Findings sorted by section (rule order within one) and stamped ``F1``, ``F2``, ... so others can cite them."""
    order = {key: i for i, key in enumerate(SECTION_ORDER)}
    ordered = sorted(findings, key=lambda f: order.get(f.section, len(order)))
    return [replace(f, ref=f"F{i}") for i, f in enumerate(ordered, 1)]


def _section(key: str, title: str, intro: str, blocks: Iterable[Block | None],
             findings: list[Finding]) -> Section | None:
    """The section with its findings appended; None when it has neither content nor findings."""
    content = [b for b in blocks if b is not None]
    own = tuple(f for f in findings if f.section == key)
    if not content and not own:
        return None
    if own:
        content.append(FindingList("Findings", "", own))
    return Section(key, title, intro, tuple(content))


def _display(frame: pd.DataFrame, columns: Mapping[str, str], percent: Iterable[str] = ()) -> pd.DataFrame:
    """The listed columns that exist, renamed to their headers; ``percent`` columns as 0-100 with 2 decimals."""
    shown = frame[[c for c in columns if c in frame]].copy()
    for column in percent:
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{100 * v:.2f}")
    return shown.rename(columns=dict(columns))


def _figure(run: RunTables, name: str, caption: str) -> FigureBlock | None:
    """The run figure ``name`` (under ``figures/``), if a stage drew it."""
    path = RELATIVE.figures.png(name).as_posix()
    return FigureBlock(path, caption) if (run.root / path).is_file() else None


def _gallery(run: RunTables, title: str, file: Path, caption: str, columns: int = 2) -> Gallery | None:
    """One figure per model (``file`` of :data:`MODEL_RELATIVE`), captioned with the model's label."""
    labels = run.labels(run.runs)
    paths = {r: run.model_file(r, file.as_posix()) for r in run.runs}
    figures = tuple(FigureBlock(path, f"{labels[r]}: {caption}") for r, path in paths.items() if (run.root / path).is_file())
    return Gallery(title, figures, columns) if figures else None


def _files_gallery(run: RunTables, title: str, prefix: str, columns: int = 1) -> Gallery | None:
    """Every run figure whose name starts with ``prefix``, captioned with its name."""
    figures = tuple(FigureBlock(path, PurePosixPath(path).stem.replace("_", " "))
                    for path in run.files(RELATIVE.figures.pattern(prefix).as_posix()))
    return Gallery(title, figures, columns) if figures else None


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
        blocks.append(TableBlock("Models and training recipes", _display(models, {
            "label": "Model", "variant": "Variant", "seed": "Seed", "params_m": "Params (M)", "epochs": "Epochs",
            "batch_size": "Batch", "optimizer": "Optimizer", "lr_schedule": "LR schedule",
            "augmentations": "Augmentations", "train_time_s": "Train time (s)", "device": "Device"}),
            SETUP, data=models.drop(columns=["label", "params_m"], errors="ignore")))
    timings = manifest.get("timings_s")
    if timings:
        table = pd.DataFrame({"stage": list(timings), "seconds": [float(v) for v in timings.values()]})
        table = pd.concat([table, pd.DataFrame({"stage": ["total"], "seconds": [table["seconds"].sum()]})])
        blocks.append(TableBlock(f"Wall time per stage (latest run of each{_machine_note(manifest)})", _display(
            table, {"stage": "Stage", "seconds": "Seconds"}), RELATIVE.tables.stage_timings.as_posix(), data=table))
    return _section("setup", "Setup", "What was trained, on which data, and what each stage cost.", blocks, findings)


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
    blocks.append(_gallery(run, "Training curves", MODEL_RELATIVE.curves, "loss and accuracy per epoch"))
    blocks.append(_gallery(run, "Confusion matrices (test)", MODEL_RELATIVE.eval.confusion_figure, "confusion matrix"))
    return _section("comparison", "Stage 1: accuracy comparison",
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
        blocks.append(TableBlock("Calibration before and after temperature scaling (test)", _display(table, {
            "label": "Model", "temperature": "T", "ece": "ECE", "ece_after_ts": "ECE after TS", "mce": "MCE",
            "mce_after_ts": "MCE after TS", "adaptive_ece": "Adaptive ECE", "brier": "Brier", "nll": "NLL",
            "accuracy": "Accuracy (%)", "mean_confidence": "Mean confidence (%)"},
            percent=("accuracy", "mean_confidence")), CALIBRATION))
    blocks.append(_figure(run, "reliability_overlay", "Reliability of every model (before scaling)"))
    blocks.append(_gallery(run, "Reliability per model", MODEL_RELATIVE.calibration.figure,
                           "before and after temperature scaling"))
    return _section("calibration", "Calibration",
                    "Whether confidence matches accuracy: ECE, MCE, Brier score and NLL on the test set, before "
                    "and after a temperature fitted on the validation split. T > 1 softens the logits "
                    "(over-confident model), T < 1 sharpens them (under-confident model).", blocks, findings)


def robustness_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    summary = run.csv(ROBUSTNESS_SUMMARY)
    if summary is not None and "run" in summary:
        summary.insert(0, "label", summary["run"].map(run.labels(summary["run"])))
        blocks.append(TableBlock("Corruption robustness summary", _display(summary, {
            "label": "Model", "clean_accuracy": "Clean accuracy (%)",
            "mean_corruption_accuracy": "Mean corruption accuracy (%)", "mce": "mCE", "relative_mce": "Relative mCE"},
            percent=("clean_accuracy", "mean_corruption_accuracy")), ROBUSTNESS_SUMMARY,
            see_also=tuple(run.files(RELATIVE.tables.robustness_ce.as_posix()))))
    families = robustness_families(run)
    if families is not None:
        shown = families.assign(model=families["model"].map(run.labels(families["model"])))
        blocks.append(TableBlock("Accuracy per corruption family", _display(shown, {
            "model": "Model", "family": "Family", "mean_accuracy": "Mean over severities (%)",
            "clean_accuracy": "Clean (%)", "max_severity": "Max severity",
            "max_severity_accuracy": "At max severity (%)", "drop": "Drop (pp)"},
            percent=("mean_accuracy", "clean_accuracy", "max_severity_accuracy", "drop")),
            ROBUSTNESS_FAMILIES, data=families, see_also=tuple(run.files(ROBUSTNESS_ACCURACY))))
    blocks.append(_figure(run, "robustness_accuracy", "Accuracy vs corruption severity"))
    blocks.append(_figure(run, "robustness_ece", "ECE vs corruption severity"))
    blocks.append(_figure(run, "corruption_gallery", "The corruptions at every severity"))
    return _section("robustness", "Robustness to corruptions",
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
        blocks.append(TableBlock("Explanation quality per method (mean over models)", _display(means, {
            "method": "Method", "deletion_auc": "Deletion AUC ↓", "insertion_auc": "Insertion AUC ↑",
            "road_gap": "ROAD gap ↑", "entropy": "Entropy", "sparseness": "Sparseness", "ms_per_image": "ms / image",
            "sanity_spearman": "Sanity Spearman ↓", "sanity_ssim": "Sanity SSIM ↓", "sanity_fails": "Sanity fails",
            "ig_delta_abs": "IG completeness error"}), RELATIVE.tables.explain_quality_by_method.as_posix(),
            data=means.drop(columns="ms_per_image", errors="ignore"), see_also=(EXPLAIN_QUALITY,)))
    blocks.append(_cam_layers(run, quality))
    blocks.append(_figure(run, "explain_quality", "Quality metrics per method and model"))
    blocks.append(_files_gallery(run, "The same test images explained on every model", "explain_image_"))
    blocks.append(_gallery(run, "Explanation grids per model", MODEL_RELATIVE.explain.grid, "explanations of the predicted class",
                           columns=1))
    blocks.append(_gallery(run, "Agreement between methods per model", MODEL_RELATIVE.explain.agreement_figure,
                           "top-k IoU and Spearman between methods", columns=1))
    return _section("explanations", "Explanations",
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
        return TableBlock("Layer each CAM method explained", _display(table, {
            "run": "Model", "layer": "Layer", "method": "Methods"}), EXPLAIN_QUALITY)
    layer = (run.manifest.get("config", {}).get("explain", {}) or {}).get("layer")
    if quality is None:
        return None
    named = f"layer {layer}" if layer else "each model's last feature depth (the default)"
    return Paragraph(f"Layer-based methods (the CAM family) explained {named}; this run's quality table does not "
                     "record the layer per model.")


def stress_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    for rel, table in stress_tables(run).items():
        blocks.append(TableBlock(f"Stress probe table {rel.rsplit('/', 1)[-1]}", table, rel))
    blocks.append(_files_gallery(run, "Stress probe figures", "stress_"))
    reliance = run.csv(PATCH_RELIANCE)
    if reliance is not None and "run" in reliance:
        reliance.insert(0, "label", reliance["run"].map(run.labels(reliance["run"])))
        blocks.append(TableBlock("Planted patch: reliance", _display(reliance, {
            "label": "Model", "clean_accuracy": "Clean accuracy (%)", "attack_success": "Attack success (%)",
            "baseline_attack_success": "Baseline attack success (%)",
            "target_recall_without_patch": "Target recall without patch (%)"},
            percent=("clean_accuracy", "attack_success", "baseline_attack_success", "target_recall_without_patch")),
            PATCH_RELIANCE))
    localisation = run.csv(PATCH_LOCALISATION)
    if localisation is not None and "run" in localisation:
        localisation["run"] = localisation["run"].map(run.labels(localisation["run"]))
        blocks.append(TableBlock("Planted patch: which explainer finds it", _display(localisation, {
            "run": "Model", "method": "Method", "tko": "Top-k overlap", "pointing": "Pointing (%)",
            "mass_inside": "Mass inside (%)", "win_rate": "Win rate (%)"},
            percent=("pointing", "mass_inside", "win_rate")), PATCH_LOCALISATION))
    blocks.append(_benchmark_block(run))
    blocks.append(_files_gallery(run, "Planted patch figures", "patch_"))
    return _section("stress", "Stress tests, bias probes and the planted patch",
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
    yes_no = {True: "yes", False: "no"}
    shown = pd.DataFrame({
        "Model": rows["run"].map(run.labels(rows["run"])), "Map": rows["method"],
        "Reliant TKO": rows["reliant"].map(lambda v: f"{v:.3f}"), "Control TKO": rows["control"].map(lambda v: f"{v:.3f}"),
        "Contrast [interval]": [contrast_text(row).removeprefix("contrast ") for _, row in rows.iterrows()],
        "Salience-driven": as_bool(rows["salience_driven"]).map(yes_no),
        "Beats all baselines": as_bool(rows["beats_baselines"]).map(yes_no).where(rows["kind"] == "method", "(baseline)"),
        "Rank": rows["rank"]})
    return TableBlock("Planted patch: benchmark against the control models (Top-K overlap)", shown, XAI_BENCHMARK)


def concepts_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    summary = run.csv(CONCEPTS_SUMMARY)
    if summary is not None and "run" in summary:
        summary.insert(0, "label", summary["run"].map(run.labels(summary["run"])))
        blocks.append(TableBlock("Shape, texture and colour bias", _display(summary, {
            "label": "Model", "shape_bias": "Shape bias", "shape_decisions": "Shape decisions (%)",
            "texture_decisions": "Texture decisions (%)", "clean_accuracy": "Clean (%)", "grayscale_accuracy": "Grayscale (%)",
            "hue_90_accuracy": "Hue +90° (%)", "hue_180_accuracy": "Hue +180° (%)", "silhouette_accuracy": "Silhouette (%)",
            "outline_accuracy": "Outline (%)"}, percent=("shape_decisions", "texture_decisions", "clean_accuracy",
            "grayscale_accuracy", "hue_90_accuracy", "hue_180_accuracy", "silhouette_accuracy", "outline_accuracy")),
            CONCEPTS_SUMMARY, see_also=tuple(run.files(CONCEPTS_RELIANCE))))
    blocks.append(_figure(run, "concepts_shape_bias", "Shape vs texture decisions on cue-conflict images"))
    tcav = run.csv(CONCEPTS_TCAV)
    if tcav is not None and "significant" in tcav:
        hits = tcav[as_bool(tcav["significant"])].copy()
        hits["run"] = hits["run"].map(run.labels(tcav["run"]))
        blocks.append(TableBlock("TCAV: concepts significant after correction", _display(hits, {
            "run": "Model", "depth": "Depth", "concept": "Concept", "class_name": "Class", "tcav": "TCAV",
            "random_tcav": "Random TCAV", "p_corrected": "p (corrected)", "cav_accuracy": "CAV accuracy"}), CONCEPTS_TCAV))
    blocks.append(_figure(run, "concepts_tcav", "Mean TCAV score per concept and depth (hatched: not significant)"))
    top = run.csv(CONCEPTS_TOP_UNITS)
    if top is not None and "run" in top:
        top["run"] = top["run"].map(run.labels(top["run"]))
        blocks.append(TableBlock("Top units per concept (dissection)", _display(top, {
            "run": "Model", "concept": "Concept", "depth": "Depth", "unit": "Unit", "iou": "IoU"}), CONCEPTS_TOP_UNITS,
            see_also=(CONCEPTS_DETECTORS,)))
    blocks.append(_figure(run, "concepts_detectors", "Share of units detecting each concept, per depth"))
    return _section("concepts", "Concepts: shape, texture and colour",
                    "Which cues the models use: Geirhos' shape bias on cue-conflict images (the silhouette of one "
                    "class filled with the texture of another; shape decisions / (shape + texture decisions)), "
                    "accuracy without texture (silhouettes, outlines) and without or with changed colour; TCAV "
                    "scores of colour, texture and shape concepts, tested against random concepts (two-sided "
                    "t-test, corrected over all tests of a model); and units whose top 0.5 % activations overlap a "
                    "concept mask with IoU > 0.04 (dissection). Protocol: docs/concepts.md.", blocks, findings)


def variants_section(run: RunTables, findings: list[Finding]) -> Section | None:
    blocks: list[Block | None] = []
    table = variant_table(run)
    if table is not None:
        blocks.append(TableBlock("Variants against their baseline", _display(table, {
            "model": "Model", "variant": "Variant", "augmentations": "Recipe", "accuracy": "Accuracy (%)",
            "ece": "ECE", "ece_after_ts": "ECE after TS", "mce": "mCE", "stress_accuracy": "Mean stress-probe accuracy (%)"},
            percent=("accuracy", "stress_accuracy")), COMPARISON))
    reexamined = run.csv(REEXAMINE)
    if reexamined is not None and "variant" in reexamined:
        blocks.append(TableBlock("The baseline's most confident mistakes, re-examined", _display(reexamined, {
            "model": "Model", "variant": "Variant", "mistakes": "Mistakes", "variant_correct": "Now correct (%)",
            "same_wrong_class": "Same wrong class (%)", "baseline_confidence": "Baseline confidence (%)",
            "variant_prob_baseline_class": "Variant's prob. of that class (%)", "variant_prob_true": "Variant's prob. of the true class (%)",
            "gradcam_spearman": "Grad-CAM rank corr."},
            percent=("variant_correct", "same_wrong_class", "baseline_confidence", "variant_prob_baseline_class",
                     "variant_prob_true")), REEXAMINE))
    blocks.append(_gallery(run, "Confident mistakes, Grad-CAM before / after", MODEL_RELATIVE.explain.reexamine_figure,
                           "the baseline's most confident mistakes, baseline vs variant Grad-CAM", columns=1))
    return _section("variants", "Training variants against their baseline",
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
    blocks.append(_files_gallery(run, "Layer-wise figures", "layerwise_"))
    return _section("layerwise", "Layer-wise analysis",
                    "What each depth of the network represents on clean and noisy inputs: alignment with image "
                    "edges, high-frequency energy, and CKA similarity between clean and noisy activations.",
                    blocks, findings)


def final_section(run: RunTables, findings: list[Finding]) -> Section | None:
    ranking = final_ranking(run)
    blocks: list[Block | None] = []
    if ranking is not None:
        columns = {"model": "Model", "runs": "Runs", "accuracy": "Accuracy (%)", "ece": "ECE", "mce": "mCE",
                   "interpretability": "Interpretability",
                   **{f"rank_{c}": f"Rank {c}" for c in CRITERIA}, "mean_rank": "Mean rank"}
        blocks.append(TableBlock("Ranking on every criterion (1 = best)", _display(ranking, columns, ("accuracy",)),
                                 FINAL_RANKING, data=ranking))
        blocks.append(FigureBlock(RELATIVE.figures.png("final_comparison").as_posix(), "Every model on every criterion",
                                  final_comparison_figure(ranking)))
    return _section("final", "Final comparison",
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
        blocks.append(TableBlock("Profile of every explanation method (means over models)", _display(table, {
            "method": "Method", "faithfulness_rank": "Faithfulness rank ↓", "deletion_auc": "Deletion AUC ↓",
            "insertion_auc": "Insertion AUC ↑", "road_gap": "ROAD gap ↑", "sanity_fails": "Sanity fails",
            "models": "Models", "sanity_ssim": "Sanity SSIM ↓", "agreement_iou": "Agreement IoU",
            "ms_per_image": "ms / image", "patch_mass_inside": "Patch mass (%)", "patch_tko": "Patch TKO"},
            percent=("patch_mass_inside",)), XAI_METHODS, data=table.drop(columns="ms_per_image", errors="ignore")))
    return _section("xai_methods", "XAI methods: strengths and weaknesses",
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
    final_section,
    xai_methods_section,
    reflection_section,
)
