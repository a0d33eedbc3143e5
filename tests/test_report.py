"""Report: every findings rule on tiny synthetic tables, and the rendered HTML / Markdown of a synthetic run."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xaiquest.errors import UnknownNameError, XaiquestError
from xaiquest.layout import RELATIVE, RunLayout
from xaiquest.report import RunTables, finding_rule, run_rules, write_report
from xaiquest.report.findings import RULES, Finding, critical_reflection
from xaiquest.report.blocks import Paragraph
from xaiquest.report.sections import setup_section

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("fastnet__baseline__s0", "vgg_small__baseline__s0")
METHODS = ("gradcam", "saliency", "lime")


def _write(root: Path, rel: Path, content: pd.DataFrame | dict | str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    elif isinstance(content, dict):
        path.write_text(json.dumps(content))
    else:
        path.write_text(content)


def _png(root: Path, rel: Path) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(path)


def _findings(root: Path, *rules: str) -> list[Finding]:
    return run_rules(RunTables(root), rules)


def _text(findings: list[Finding]) -> str:
    return "\n".join(f.text for f in findings)


# -- tables ---------------------------------------------------------------------------------


def _comparison(stds: tuple[float, float] = (float("nan"), float("nan")), seeds: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"model": ["fastnet", "vgg_small"], "variant": ["baseline"] * 2, "n_seeds": [seeds] * 2,
                         "accuracy_mean": [0.8117, 0.7477], "accuracy_std": list(stds),
                         "macro_f1_mean": [0.81, 0.74], "macro_f1_std": list(stds)})


def _calibration() -> pd.DataFrame:
    return pd.DataFrame({"run": list(RUNS), "temperature": [0.565, 1.8], "ece": [0.1825, 0.05],
                         "ece_after_ts": [0.0148, 0.02], "accuracy": [0.8117, 0.7477],
                         "mean_confidence": [0.6292, 0.7977]})


def _quality() -> pd.DataFrame:
    rows = []
    for run, offset in zip(RUNS, (0.0, 0.05)):
        for method, deletion, insertion, road, seconds, fails in (
            ("gradcam", 0.28, 0.52, 0.28, 0.0163, False),
            ("saliency", 0.34, 0.48, 0.10, 0.0005, False),
            ("lime", 0.22, 0.63, 0.47, 0.0639, run == RUNS[0]),
        ):
            rows.append({"method": method, "deletion_auc": deletion + offset, "insertion_auc": insertion,
                         "road_gap": road, "entropy": 6.5, "sparseness": 0.4, "seconds_per_image": seconds,
                         "sanity_spearman": 0.697 if fails else 0.2, "sanity_ssim": 0.640 if fails else 0.1,
                         "sanity_fails": fails, "ig_delta_abs": float("nan"), "run": run})
    rows.append({**rows[0], "method": "integrated_gradients", "ig_delta_abs": 0.0126, "seconds_per_image": 0.02})
    return pd.DataFrame(rows)


def _agreement() -> pd.DataFrame:
    matrix = pd.DataFrame([[1.0, 0.8, 0.2], [0.8, 1.0, 0.1], [0.2, 0.1, 1.0]], index=METHODS, columns=METHODS)
    return matrix.reset_index(names="")


def _robustness_accuracy() -> pd.DataFrame:
    rows = [("clean", 0, 0.9, 0.03)]
    rows += [("gaussian_noise", 1, 0.6, 0.1), ("gaussian_noise", 5, 0.2, 0.3), ("fog", 1, 0.85, 0.05),
             ("fog", 5, 0.7, 0.1)]
    return pd.DataFrame([{"model": RUNS[0], "corruption": c, "severity": s, "accuracy": a, "macro_f1": a, "ece": e}
                         for c, s, a, e in rows])


def _minimal_run(root: Path) -> Path:
    """A two-model run directory with every file the report reads from the finished stages."""
    _write(root, RELATIVE.manifest, {"experiment": "tiny", "data": "synthetic", "torch": "2.x", "python": "3.11",
                                   "xaiquest": "0.1.0", "config": {"data": {"val_size": 50}},
                                   "timings_s": {"train": 12.5, "evaluate": 1.0}, "units": {},
                                   "machine": {"cores": 2, "torch_threads": 2}})
    for run, accuracy in zip(RUNS, (0.8117, 0.7477)):
        model = run.split("__")[0]
        _write(root, RELATIVE.model(run).train_record, {"model": model, "variant": "baseline", "seed": 0, "epochs": 4,
                                                  "params": 295096, "train_time_s": 94.1 if model == "fastnet" else 116.8,
                                                  "augmentations": ["crop(pad=2)", "hflip"], "device": "cpu",
                                                  "train_images": 450})
        _write(root, RELATIVE.model(run).eval.metrics, {"accuracy": accuracy, "num_samples": 100})
        _write(root, RELATIVE.model(run).eval.per_class,
               pd.DataFrame({"class": ["cat", "ship"], "recall": [0.623, 0.915]}))
        _write(root, RELATIVE.model(run).explain.agreement_iou, _agreement())
        files = RELATIVE.model(run)
        for figure in (files.curves, files.eval.confusion_figure, files.calibration.figure, files.explain.grid,
                       files.explain.agreement_figure):
            _png(root, figure)
    _write(root, RELATIVE.tables.comparison, _comparison())
    _write(root, RELATIVE.tables.calibration, _calibration())
    _write(root, RELATIVE.tables.explain_quality, _quality())
    for figure in ("reliability_overlay", "explain_quality", "explain_image_7"):
        _png(root, RELATIVE.figures.png(figure))
    return root


def _later_stages(root: Path) -> None:
    """The tables and figures of the robustness, stress, patch and layer-wise stages."""
    _write(root, RELATIVE.tables.robustness_summary, pd.DataFrame({
        "run": list(RUNS), "clean_accuracy": [0.9, 0.8], "mean_corruption_accuracy": [0.6, 0.55],
        "mce": [1.0, 0.85], "relative_mce": [1.0, 1.2]}))
    _write(root, RELATIVE.tables.robustness_accuracy, _robustness_accuracy())
    _write(root, RELATIVE.tables.csv("stress_colour"), pd.DataFrame({
        "run": [RUNS[0]] * 2 + [RUNS[1]] * 2, "probe": ["grayscale"] * 4, "condition": ["colour", "gray"] * 2,
        "accuracy": [0.8, 0.6, 0.75, 0.7]}))
    _write(root, RELATIVE.tables.patch_reliance, pd.DataFrame({
        "run": list(RUNS), "clean_accuracy": [0.8, 0.75], "attack_success": [0.92, 0.3],
        "baseline_attack_success": [0.02, 0.1], "target_recall_without_patch": [0.85, 0.8]}))
    _write(root, RELATIVE.tables.patch_localisation, pd.DataFrame({
        "run": [RUNS[0]] * 2, "method": ["gradcam", "lime"], "tko": [0.8, 0.4], "pointing": [0.9, 0.5],
        "mass_inside": [0.45, 0.2], "win_rate": [0.75, 0.25]}))
    _write(root, RELATIVE.tables.layerwise, pd.DataFrame({
        "run": [RUNS[0]] * 3, "depth": [1, 2, 3], "edge_alignment_clean": [0.7, 0.5, 0.3],
        "edge_alignment_noisy": [0.3, 0.2, 0.1], "hf_energy_clean": [1.0, 1.0, 1.0],
        "hf_energy_noisy": [3.2, 1.5, 1.1], "cka_clean_vs_noisy": [0.9, 0.6, 0.5]}))
    for figure in ("robustness_accuracy", "robustness_ece", "corruption_gallery", "stress_colour", "layerwise_cka"):
        _png(root, RELATIVE.figures.png(figure))


# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_is_silent_without_its_tables(tmp_path: Path, name: str) -> None:
    assert _findings(tmp_path, name) == []


def test_unknown_rule_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="no_such_rule"):
        _findings(tmp_path, "no_such_rule")


def test_a_new_rule_is_one_decorated_function(tmp_path: Path) -> None:
    @finding_rule("test_only_rule", tags=("bias",))
    def rule(run: RunTables) -> list[Finding]:
        return [Finding("setup", f"{len(run.runs)} runs", {"runs": 0.0}, RELATIVE.manifest.as_posix())]

    try:
        (finding,) = _findings(tmp_path, "test_only_rule")
        assert (finding.rule, finding.tags, finding.text) == ("test_only_rule", ("bias",), "0 runs")
        with pytest.raises(ValueError, match="twice"):
            finding_rule("test_only_rule")(rule)
    finally:
        RULES.pop("test_only_rule")
    with pytest.raises(ValueError, match="unknown finding tags"):
        finding_rule("bad_tags", tags=("fairness",))


def test_labels_drop_the_parts_every_run_shares(tmp_path: Path) -> None:
    run = RunTables(tmp_path)
    assert run.labels(RUNS) == {RUNS[0]: "fastnet", RUNS[1]: "vgg_small"}
    assert run.labels(["a__v__s0", "a__v__s1"]) == {"a__v__s0": "a (s0)", "a__v__s1": "a (s1)"}


def test_accuracy_ranking_and_single_seed_note(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.comparison, _comparison())
    text = _text(_findings(tmp_path, "accuracy_ranking", "accuracy_noise"))
    assert "fastnet has the highest test accuracy (81.17%)" in text
    assert "vgg_small has the lowest (74.77%)" in text and "6.40 pp across 2 models" in text
    assert "single seed" in text


def test_accuracy_within_seed_noise(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.comparison, _comparison(stds=(0.05, 0.05), seeds=3))
    (finding,) = _findings(tmp_path, "accuracy_noise")
    assert "fastnet and vgg_small are within seed noise: 81.17% ± 5.00 pp vs 74.77% ± 5.00 pp" in finding.text
    assert "the difference, 6.40 pp, is below their combined std of 7.07 pp" in finding.text
    _write(tmp_path, RELATIVE.tables.comparison, _comparison(stds=(0.01, 0.01), seeds=3))
    (finding,) = _findings(tmp_path, "accuracy_noise")
    assert "differ by more than their combined seed std" in finding.text and "6.40 pp > 1.41 pp" in finding.text


def test_hardest_class_and_training_cost(tmp_path: Path) -> None:
    _minimal_run(tmp_path)
    text = _text(_findings(tmp_path, "hardest_class", "training_cost"))
    assert "fastnet recognises cat worst (recall 62.30%) and ship best (91.50%)" in text
    assert "fastnet trains fastest (94.1 s, 0.30 M parameters)" in text and "1.24x longer" in text


def test_calibration_rules(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.calibration, _calibration())
    findings = _findings(tmp_path, "calibration_extremes", "confidence_direction", "temperature_scaling")
    text = _text(findings)
    assert "vgg_small is the best calibrated model before temperature scaling (ECE 0.0500)" in text
    assert "fastnet is the worst calibrated" in text and "ECE 0.1825, 3.65x the best" in text
    assert "fastnet is under-confident: mean confidence 62.92% against 81.17% accuracy (gap -18.25 pp)" in text
    assert "vgg_small is over-confident" in text and "(gap +5.00 pp)" in text
    assert "T = 0.565 < 1: logits sharpened, the model was under-confident" in text
    assert "ECE from 0.1825 to 0.0148 (-91.9%)" in text
    assert "T = 1.800 > 1: logits softened, the model was over-confident" in text
    assert {f.kind for f in findings} == {"strength", "weakness"}
    assert all("reliability" in f.tags for f in findings)


def test_robustness_rules(tmp_path: Path) -> None:
    _later_stages(tmp_path)
    text = _text(_findings(tmp_path, "robustness_ranking"))
    assert "vgg_small is the most robust model to corruptions (mCE 0.850, relative mCE 1.200" in text
    assert "55.00% mean corruption accuracy vs 80.00% clean" in text
    assert "By relative mCE" in text and "fastnet (1.000)" in text
    text = _text(_findings(tmp_path, "worst_corruption_family", "severity_drop", "corruption_calibration"))
    assert "fastnet is weakest on noise corruptions (40.00% mean accuracy over severities 1-5)" in text
    assert "strongest on weather (77.50%)" in text
    assert "From clean images (90.00%) to severity 5" in text
    assert "changes worst on noise (-70.00 pp, to 20.00%) and best on weather (-20.00 pp, to 70.00%)" in text
    assert "ECE rises from 0.0300 on clean images to 0.2000 at severity 5 (mean over corruptions, 6.7x)" in text


def test_explanation_rules(tmp_path: Path) -> None:
    _minimal_run(tmp_path)
    text = _text(_findings(tmp_path, "faithfulness_per_model", "faithfulness_overall", "method_cost",
                           "ig_completeness", "method_agreement"))
    assert "On fastnet the most faithful method is lime by deletion AUC (0.2200, lower is better)" in text
    assert "lime by insertion AUC (0.6300) and lime by ROAD gap (0.4700)" in text
    assert "lime has the best mean rank (1.00 of 4 methods)" in text
    assert "saliency is the cheapest method (0.50 ms per image" in text and "lime the most expensive (63.90 ms" in text
    assert "0.0126 on fastnet" in text
    assert "gradcam and saliency agree most (top-k IoU 0.800) and saliency and lime least (0.100)" in text


def test_sanity_rule_names_failures_and_passes(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.explain_quality, _quality())
    overview, finding = _findings(tmp_path, "sanity_failures")
    assert overview.kind == "weakness" and overview.text.startswith(
        "1 method of 4 fails the cascading-randomisation sanity check on at least one model: lime (1 of 2 models). "
        "Its maps barely depend on the learned weights there.")
    assert finding.kind == "weakness" and "lime fails the cascading-randomisation sanity check on fastnet" in finding.text
    assert "final SSIM 0.640, Spearman 0.697" in finding.text
    _write(tmp_path, RELATIVE.tables.explain_quality, _quality().assign(sanity_fails=False))
    (finding,) = _findings(tmp_path, "sanity_failures")
    assert finding.kind == "strength" and "All 4 methods pass" in finding.text and "on all 2 models" in finding.text


def test_xai_method_profiles(tmp_path: Path) -> None:
    _minimal_run(tmp_path)
    text = _text(_findings(tmp_path, "xai_method_profiles"))
    assert "Strengths of lime: faithfulness (mean rank 1.00, 1st of 4)" in text
    assert "Weaknesses of lime:" in text and "cost (63.90 ms per image, 4th of 4)" in text
    assert "fails the sanity check on 1 of 2 models" in text
    assert "Strengths of saliency: cost (0.50 ms per image, 1st of 4)" in text


def test_patch_rules(tmp_path: Path) -> None:
    _later_stages(tmp_path)
    findings = _findings(tmp_path, "patch_shortcut", "patch_localisation")
    text = _text(findings)
    assert "Shortcut detected on fastnet: the planted patch sends 92.00% of images to the target class, 46.0x the " \
           "baseline's 2.00%" in text
    assert "No shortcut detected on vgg_small: attack success 30.00%, 3.0x the baseline's 10.00%" in text
    assert "gradcam puts the most attribution mass on the patch (45.00%)" in text
    assert "gradcam has the highest top-k overlap with it (0.800)" in text
    assert "gradcam localises the planted patch best (mean win rate 75.00%" in text
    assert all("bias" in f.tags for f in findings)


def _benchmark() -> pd.DataFrame:
    """fastnet's patch model against its control twin: one map survives and beats the baselines, one survives
    but not every baseline, one is salience-driven, one misses the patch on both models; a baseline row; a row
    of another metric."""
    rows = [
        ("integrated_gradients", "method", "tko", 0.7, 0.1, 0.6, 0.5, 0.7, False, True, "", 1),
        ("gradcam", "method", "tko", 0.5, 0.3, 0.2, 0.12, 0.28, False, False, "baseline_colour", 2),
        ("saliency", "method", "tko", 0.6, 0.58, 0.02, -0.03, 0.07, True, True, "", 3),
        ("fusioncam", "method", "tko", 0.05, 0.0, 0.05, 0.0, 0.12, True, False, "baseline_colour", 5),
        ("baseline_colour", "baseline", "tko", 0.8, 0.8, 0.0, 0.0, 0.0, True, None, "", 4),
        ("saliency", "method", "pointing", 0.9, 0.2, 0.7, 0.6, 0.8, False, True, "", 1),
    ]
    columns = ["method", "kind", "metric", "reliant", "control", "contrast", "contrast_low", "contrast_high",
               "salience_driven", "beats_baselines", "baselines_not_beaten", "rank"]
    return pd.DataFrame(rows, columns=columns).assign(threshold=0.1, control_run="fastnet__patch_control__s0",
                                                      run="fastnet__patch__s0")


def test_patch_benchmark_says_which_maps_survive_the_control_and_which_are_salience_driven(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.xai_benchmark, _benchmark())
    missed = [f for f in _findings(tmp_path, "patch_benchmark") if "too rarely" in f.text]
    findings = {f.kind: f for f in _findings(tmp_path, "patch_benchmark") if f not in missed}
    assert set(findings) == {"note", "weakness"}  # gradcam survives without beating every baseline: no strength
    assert len(missed) == 1 and missed[0].kind == "weakness" and "salience-driven" not in missed[0].text
    assert missed[0].text.startswith("On fastnet (patch), the Top-K overlap of fusioncam (contrast 0.050 [0.000, 0.120]) "
                                     "finds the planted patch too rarely to show the model's use of it: below 0.100 on "
                                     "the control model fastnet (patch_control)")
    survives = findings["note"].text
    assert survives.startswith("On fastnet (patch), the Top-K overlap of integrated_gradients (contrast 0.600 [0.500, "
                               "0.700]) and gradcam (contrast 0.200 [0.120, 0.280]) survive the control model "
                               "fastnet (patch_control)")
    assert "Yet gradcam (not baseline_colour) does not beat every trivial baseline map." in survives
    assert findings["note"].numbers == {"integrated_gradients": 0.6, "gradcam": 0.2}
    salient = findings["weakness"].text
    assert salient.startswith("On fastnet (patch), the Top-K overlap of saliency (contrast 0.020 [-0.030, 0.070]) is "
                              "salience-driven: it lights the patch about as much on the control model fastnet (patch_control)")
    assert "mean contrast below 0.100" in salient and "pointing" not in salient and "baseline_colour" not in salient
    assert findings["weakness"].subjects == ("fastnet__patch__s0",)
    _write(tmp_path, RELATIVE.tables.patch_reliance, pd.DataFrame({"run": ["fastnet__patch__s0"], "attack_success": [0.3]}))
    unlearnt = next(f for f in _findings(tmp_path, "patch_benchmark") if "salience-driven" in f.text)
    assert unlearnt.kind == "note" and "But the model itself sends only 30.00% of stamped images to the target class" in unlearnt.text
    strong = _benchmark().drop(index=[1, 3])
    _write(tmp_path, RELATIVE.tables.xai_benchmark, strong)
    (strength,) = [f for f in _findings(tmp_path, "patch_benchmark") if f.kind == "strength"]
    assert "It also beats every trivial baseline map." in strength.text


def _variants_run(root: Path) -> None:
    """fastnet baseline + label smoothing + a planted-patch variant (which must stay out of the comparison)."""
    runs = ["fastnet__baseline__s0", "fastnet__label_smoothing__s0", "fastnet__patch__s0"]
    _write(root, RELATIVE.tables.comparison, pd.DataFrame({
        "model": ["fastnet"] * 3, "variant": ["baseline", "label_smoothing", "patch"], "accuracy_mean": [0.80, 0.81, 0.74],
        "ece_mean": [0.05, 0.02, 0.30], "mce_mean": [1.0, 0.95, float("nan")]}))
    for run, patch in zip(runs, [None, None, {"target_class": 0}]):
        _write(root, RELATIVE.model(run).train_record, {"model": "fastnet", "variant": run.split("__")[1], "patch": patch})
    _write(root, RELATIVE.tables.stress_probes, pd.DataFrame({
        "probe": ["clean", "noise", "noise", "clean", "noise", "noise"], "intensity": ["none", 1, 5] * 2,
        "accuracy": [0.8, 0.6, 0.4, 0.81, 0.7, 0.5], "run": [runs[0]] * 3 + [runs[1]] * 3}))
    _write(root, RELATIVE.tables.reexamine, pd.DataFrame({
        "model": ["fastnet"], "seed": [0], "variant": ["label_smoothing"], "mistakes": [50], "variant_correct": [0.2],
        "same_wrong_class": [0.7], "baseline_confidence": [0.95], "variant_prob_baseline_class": [0.6],
        "variant_prob_true": [0.2], "gradcam_spearman": [0.81]}))


def test_variant_rules_compare_each_variant_with_its_baseline(tmp_path: Path) -> None:
    _variants_run(tmp_path)
    findings = _findings(tmp_path, "variant_effects", "reexamination")
    text = _text(findings)
    # Each change sits next to its own metric (the old text put the accuracy change after the stress-probe one).
    assert ("fastnet with label_smoothing instead of the baseline: accuracy 80.00% -> 81.00% (+1.00 pp), ECE 0.050 -> "
            "0.020 (-0.030), mCE 1.000 -> 0.950 (-0.050) and mean accuracy under the stress probes 50.00% -> 60.00% "
            "(+10.00 pp).") in text
    assert "patch" not in text
    assert ("On fastnet's 50 most confident baseline mistakes (mean confidence 95.00%), label_smoothing predicts the "
            "true class for 20.00%, repeats the baseline's wrong class for 70.00% and gives that class 60.00% on "
            "average; its Grad-CAM rank-correlates 0.81 with the baseline's.") in text
    assert all(f.section == "variants" for f in findings)
    (accuracy,) = _findings(tmp_path, "accuracy_ranking")
    assert "fastnet (label_smoothing) has the highest test accuracy (81.00%)" in accuracy.text
    assert "(patch)" not in accuracy.text and "across 2 models" in accuracy.text
    report = write_report(tmp_path)[1].read_text()
    assert "Training variants" in report and "Now correct (%)" in report


def test_stress_probe_rule(tmp_path: Path) -> None:
    _later_stages(tmp_path)
    (finding,) = _findings(tmp_path, "stress_probe_sensitivity")
    assert finding.source == "tables/stress_colour.csv" and finding.kind == "weakness"
    assert ("Probe grayscale: accuracy moves most for fastnet, from 80.00% (condition colour) to 60.00% "
            "(condition gray), a 20.00 pp gap; least for vgg_small (5.00 pp)") in finding.text


def test_layerwise_rules(tmp_path: Path) -> None:
    _later_stages(tmp_path)
    text = _text(_findings(tmp_path, "layerwise_cka", "layerwise_edges"))
    assert "CKA drops most between depth 1 and 2 (0.900 -> 0.600, -0.300); it is lowest at depth 3 (0.500)" in text
    assert "edge alignment peaks at depth 1 (0.700 clean, 0.300 noisy)" in text
    assert "high-frequency energy most at depth 1 (3.20x clean)" in text


def test_overall_ranking_reports_ties_and_trade_offs(tmp_path: Path) -> None:
    _minimal_run(tmp_path)
    text = _text(_findings(tmp_path, "overall_ranking"))
    # fastnet: best accuracy and interpretability, worst ECE; vgg_small the opposite.
    assert "fastnet has the best mean rank (1.33) over accuracy, calibration and interpretability" in text
    assert "Trade-off: fastnet ranks first on accuracy and interpretability but last of 2 on calibration" in text


def test_critical_reflection_says_what_was_not_measured(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.calibration, _calibration())
    reflections = {r.tag: r for r in critical_reflection(run_rules(RunTables(tmp_path)))}
    assert reflections["bias"].findings == () and "did not measure bias" in reflections["bias"].summary
    reliability = reflections["reliability"]
    assert reliability.findings and reliability.findings[0].kind == "weakness"
    assert "measured findings on reliability" in reliability.summary


# -- rendering --------------------------------------------------------------------------------


VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Balance(HTMLParser):
    """Checks that every opened tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _check_html(path: Path) -> _Balance:
    text = path.read_text(encoding="utf-8")
    ET.fromstring(text.split("\n", 1)[1])  # well-formed XML after the doctype line
    parser = _Balance()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    assert "http://" not in text and "https://" not in text
    for _, name, value in parser.attributes:
        if name == "href":  # relative paths inside the run directory or anchors, never a scheme or host
            assert not value.startswith("//") and not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", value)
        if name == "src":
            assert value.startswith("data:image/png;base64,")
    return parser


def _markdown_links(path: Path) -> list[str]:
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")) if not link.startswith("#")]


def test_write_report_on_a_minimal_run(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    html_path, md_path = write_report(root)
    parser = _check_html(html_path)
    section_ids = {value for tag, name, value in parser.attributes if tag == "section" and name == "id"}
    assert {"setup", "comparison", "calibration", "explanations", "final", "xai_methods", "reflection"} <= section_ids
    assert section_ids.isdisjoint({"robustness", "stress", "layerwise"})  # no data, no section
    images = [v for tag, name, v in parser.attributes if tag == "img" and name == "src"]
    assert len(images) >= 13  # 5 per-model figures x 2 models, 3 run figures, the final comparison
    links = _markdown_links(md_path)
    assert links and all((root / link).is_file() for link in links)
    assert "Wall time per stage (latest run of each; 2 cores, 2 torch threads)" in md_path.read_text(encoding="utf-8")
    for created in ("findings", "final_ranking", "xai_methods", "setup", "explain_quality_by_method"):
        assert RunLayout(root).tables.csv(created).is_file()
    assert RunLayout(root).figures.png("final_comparison").is_file()
    findings = pd.read_csv(RunLayout(root).tables.findings)
    assert {"section", "rule", "kind", "tags", "text", "source", "numbers"} <= set(findings.columns)
    markdown = md_path.read_text(encoding="utf-8")
    assert "## 1. Summary" in markdown and "## 2. Setup" in markdown and "[tables/calibration.csv](tables/calibration.csv)" in markdown
    assert "This run did not measure bias" in markdown


def test_later_stage_sections_light_up_when_their_tables_exist(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _later_stages(root)
    _write(root, RELATIVE.tables.xai_benchmark, _benchmark())
    _write(root, RELATIVE.tables.csv("stress_sweep"), pd.DataFrame({"run": RUNS[0], "probe": "blur", "intensity": range(30),
                                                          "accuracy": [0.9 - 0.01 * i for i in range(30)]}))
    html_path, md_path = write_report(root)
    parser = _check_html(html_path)
    section_ids = {value for tag, name, value in parser.attributes if tag == "section" and name == "id"}
    assert {"robustness", "stress", "layerwise"} <= section_ids
    links = _markdown_links(md_path)
    assert "figures/robustness_accuracy.png" in links and "tables/robustness_families.csv" in links
    assert all((root / link).is_file() for link in links)
    markdown = md_path.read_text(encoding="utf-8")
    assert "Shortcut detected on fastnet" in markdown
    assert "**Planted patch: benchmark against the control models (Top-K overlap)**" in markdown
    compact = re.sub(r" {2,}", " ", markdown)  # Markdown tables pad their cells
    assert "| fastnet (patch) | gradcam | 0.500 | 0.300 | 0.200 [0.120, 0.280] | no | no | 2 |" in compact
    assert "| baseline_colour | 0.800 | 0.800 | 0.000 [0.000, 0.000] | yes | (baseline) | 4 |" in compact
    assert "Showing 25 of 30 rows. CSV: [tables/stress_sweep.csv]" in markdown  # long tables are cut, CSV linked
    assert "from 90.00% (intensity 0) to 61.00% (intensity 29)" in markdown


def test_a_100_class_recall_table_shows_the_worst_and_best_classes_and_links_the_full_csv(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "wide")
    classes = [f"class_{i:03d}" for i in range(100)]
    recall = {name: (37 * i) % 100 / 100 for i, name in enumerate(classes)}  # a shuffled ramp
    for run, shift in zip(RUNS, (0.0, 0.002)):
        _write(root, RELATIVE.model(run).eval.per_class,
               pd.DataFrame({"class": classes, "recall": [recall[name] + shift for name in classes]}))
    html_path, md_path = write_report(root)
    markdown = md_path.read_text(encoding="utf-8")
    table = markdown.split("**Recall per class (%)**")[1].split("CSV:")[0]
    by_recall = sorted(classes, key=recall.get)
    assert re.findall(r"class_\d{3}", table) == by_recall[:12] + by_recall[-12:]
    note = "Showing the 12 lowest and 12 highest of 100 rows by mean recall over models."
    assert f"{note} CSV: [tables/per_class_recall.csv]" in markdown and note in html_path.read_text(encoding="utf-8")
    assert len(pd.read_csv(RunLayout(root).tables.per_class_recall)) == 100


def test_write_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(XaiquestError, match="not a run directory"):
        write_report(tmp_path)


# -- the run's own models, and what is missing (issue 13.1) --------------------------------------


def _recorded(root: Path, **manifest: object) -> None:
    """Record in the manifest what a pipeline run records: the config's model ids and their finished training."""
    layout = RunLayout(root)
    record = json.loads(layout.manifest.read_text())
    record |= {"runs": list(RUNS), "units": {f"train/{run}": {"fingerprint": "x"} for run in RUNS}} | manifest
    layout.manifest.write_text(json.dumps(record))


def test_a_model_folder_left_from_an_older_config_is_not_in_the_report(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _recorded(root)
    old = RELATIVE.model("fastnet__mixup__s1")  # trained by an earlier config of the same experiment
    _write(root, old.train_record, {"model": "fastnet", "variant": "mixup", "seed": 1, "epochs": 9, "train_time_s": 3.0})
    _write(root, old.eval.metrics, {"accuracy": 0.99, "num_samples": 100})
    _write(root, old.eval.per_class, pd.DataFrame({"class": ["cat"], "recall": [0.5]}))
    _png(root, old.curves)
    _, md_path = write_report(root)
    markdown = md_path.read_text(encoding="utf-8")
    assert "fastnet__mixup__s1" not in markdown and "mixup" not in markdown and "99.00" not in markdown
    run = RunTables(root)
    assert run.runs == sorted(RUNS)
    assert run.labels(RUNS) == {RUNS[0]: "fastnet", RUNS[1]: "vgg_small"}


def test_a_manifest_without_runs_falls_back_to_the_model_folders(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _write(root, RELATIVE.model("old__baseline__s0").train_record, {"model": "old"})
    assert RunTables(root).runs == sorted([*RUNS, "old__baseline__s0"])


def test_the_report_names_the_tables_of_an_enabled_stage_that_are_missing(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _recorded(root, config={"robustness": {"enabled": True}, "stress": {"enabled": False},
                            "concepts": {"enabled": False}})
    html_path, md_path = write_report(root)
    markdown = md_path.read_text(encoding="utf-8")
    missing = [line for line in markdown.splitlines() if line.startswith("Missing results")]
    assert missing == ["Missing results: tables/robustness_summary.csv, tables/robustness_accuracy.csv are missing: "
                       "the robustness stage (robustness.enabled in the config) has not run or failed; run "
                       "`xaiquest robustness` with this run's config."]
    assert "2 expected results missing (see Setup)" in markdown
    assert "tables/robustness_accuracy.csv are missing" in html_path.read_text(encoding="utf-8")


def test_missing_evaluations_and_untrained_models_are_named(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _recorded(root, runs=[*RUNS, "resnet_small__baseline__s0"],
              config={stage: {"enabled": False} for stage in ("robustness", "explain", "stress", "concepts")})
    RunLayout(root).model(RUNS[1]).eval.metrics.unlink()
    RunLayout(root).tables.calibration.unlink()
    run = RunTables(root)
    assert run.untrained == ["resnet_small__baseline__s0"]
    assert run.missing() == {"evaluate": [f"models/{RUNS[1]}/eval/metrics.json"], "calibrate": ["tables/calibration.csv"]}
    text = " ".join(block.text for block in setup_section(run, []).blocks if isinstance(block, Paragraph))
    assert "1 model of the config (resnet_small__baseline__s0) never finished training; run `xaiquest train`" in text
    assert f"models/{RUNS[1]}/eval/metrics.json is missing: the evaluate stage has not run or failed" in text


def test_layerwise_rules_follow_network_depth_not_the_alphabet(tmp_path: Path) -> None:
    """'stem' sorts after 'stage3' alphabetically; the rules must walk stem -> stage1 -> ... instead."""
    _write(tmp_path, RELATIVE.tables.layerwise, pd.DataFrame({
        "run": [RUNS[0]] * 4, "depth": ["stem", "stage1", "stage2", "stage3"], "depth_index": [0, 1, 2, 3],
        "edge_alignment_clean": [0.1, 0.2, 0.3, 0.4], "edge_alignment_noisy": [0.1, 0.2, 0.3, 0.4],
        "hf_energy_clean": [1.0, 1.0, 1.0, 1.0], "hf_energy_noisy": [1.0, 1.0, 1.0, 1.0],
        "cka_clean_vs_noisy": [0.66, 0.90, 0.92, 0.80]}))
    text = _text(_findings(tmp_path, "layerwise_cka"))
    assert "CKA drops most between depth stage2 and stage3 (0.920 -> 0.800, -0.120); it is lowest at depth stem (0.660)" in text


@pytest.mark.parametrize(("tta", "wording"), [("flip", "flip test-time augmentation"), ("none", "the plain forward pass"),
                                              ("flip_translate", "flip and translate test-time augmentation")])
def test_setup_states_the_prediction_policy_and_the_subsets_behind_each_clean_accuracy(tmp_path: Path, tta: str,
                                                                                      wording: str) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _later_stages(root)
    manifest = json.loads(RunLayout(root).manifest.read_text())
    manifest["config"] |= {"eval": {"tta": tta}, "robustness": {"test_images": 40}, "stress": {"test_images": 500}}
    _write(root, RELATIVE.manifest, manifest)
    setup = setup_section(RunTables(root), [])
    text = " ".join(block.text for block in setup.blocks if isinstance(block, Paragraph))
    assert f"Predictions (eval.tta = {tta}): {wording}" in text
    assert "for every number in this report (accuracy, calibration, robustness, stress) and for the class each " \
           "explanation explains" in text
    assert "The robustness stage's clean accuracy is on 40 stratified test images of Stage 1's 100, under the same policy" in text
    assert "The stress stage's clean accuracy is on 99 stratified test images of Stage 1's 100" in text  # one held back


# -- findings that must stay true (issue 12.5) ---------------------------------------------------


def _chance_run(root: Path) -> Path:
    """fastnet learned nothing (10 % on 10 classes) and is trivially well calibrated; vgg_small learned."""
    _write(root, RELATIVE.tables.calibration, pd.DataFrame({
        "run": list(RUNS), "temperature": [1.299, 1.5], "ece": [0.0008, 0.05], "ece_after_ts": [0.0007, 0.02],
        "accuracy": [0.1, 0.8], "mean_confidence": [0.1005, 0.86]}))
    for run, accuracy in zip(RUNS, (0.1, 0.8)):
        _write(root, RELATIVE.model(run).eval.metrics, {"accuracy": accuracy})
    return root


def test_chance_level_models_are_flagged_and_kept_out_of_strengths(tmp_path: Path) -> None:
    findings = run_rules(RunTables(_chance_run(tmp_path)))
    (flag,) = [f for f in findings if f.rule == "chance_level"]
    assert flag.kind == "weakness" and flag.text.startswith("fastnet (10.00%) is at or near chance level")
    assert not [f for f in findings if f.kind == "strength" and "fastnet" in f.text]
    text = _text(findings)
    assert "fastnet is the best calibrated" not in text and "ECE 0.0008)." not in text
    assert "T = 1.299 > 1: logits softened, although on the test set its confidence already matched its accuracy" in text
    assert "Not counted as a strength: the model is at chance-level accuracy." in text


def test_training_cost_says_when_the_recipes_differ(tmp_path: Path) -> None:
    for run, epochs, seconds in zip(RUNS, (2, 4), (20.0, 60.0)):
        _write(tmp_path, RELATIVE.model(run).train_record, {"epochs": epochs, "train_time_s": seconds})
    (finding,) = _findings(tmp_path, "training_cost")
    assert finding.text.endswith("Their recipes differ (epochs 2 vs 4), so the times are not a like-for-like "
                                 "comparison: per epoch 10.0 s vs 15.0 s.")


def test_a_single_corruption_family_is_not_both_weakest_and_strongest(tmp_path: Path) -> None:
    _write(tmp_path, RELATIVE.tables.robustness_accuracy, pd.DataFrame({
        "model": RUNS[0], "corruption": ["clean", "gaussian_noise"], "severity": [0, 5], "accuracy": [0.5, 0.52]}))
    weakest, drop = _findings(tmp_path, "worst_corruption_family", "severity_drop")
    assert weakest.text == ("fastnet keeps 52.00% mean accuracy over severities 1-5 on noise corruptions, the only "
                            "family measured.")
    assert "noise (+2.00 pp, to 52.00%)" in drop.text and "--" not in drop.text


# -- summary, previews, reflection, wording (issues 11.10 and 12.6) -------------------------------


def _section_html(html_text: str, key: str) -> str:
    return html_text.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]


def test_the_report_opens_with_a_summary_that_links_to_its_sections(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _later_stages(root)
    html_path, md_path = write_report(root)
    parser = _check_html(html_path)
    sections = [value for tag, name, value in parser.attributes if tag == "section" and name == "id"]
    assert sections[0] == "summary"
    summary = _section_html(html_path.read_text(encoding="utf-8"), "summary")
    assert "Shortcut detected on fastnet" in summary and "worst calibrated" in summary
    assert "hardest family" in summary and "fails the cascading-randomisation sanity check" in summary
    targets = re.findall(r'class="section" href="#([^"]+)"', summary)
    assert len(targets) >= 4 and set(targets) <= set(sections)
    anchors = {value for _, name, value in parser.attributes if name == "id"}
    assert all(ref in anchors for ref in re.findall(r'href="#(F\d+)"', summary))
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.index("## 1. Summary") < markdown.index("## 2. Setup")
    assert "→ [7. Stress tests, bias probes and the planted patch](#7-stress-tests-bias-probes-and-the-planted-patch)" in markdown


def _large_figure(path: Path, side: int, seed: int) -> None:
    """A heatmap-like figure: blocks of random colour with a little noise, as hard to compress as real grids."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    noisy = np.clip(blocks.astype(int) + rng.integers(-6, 7, blocks.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noisy).save(path)


def test_html_stays_small_and_every_figure_opens_full_size(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    for i, run in enumerate(RUNS):
        files = RunLayout(root).model(run)
        for figure in (files.explain.grid, files.explain.agreement_figure, files.eval.confusion_figure):
            _large_figure(figure, 1400, i)
    full_size = sum(p.stat().st_size for p in root.rglob("*.png"))
    assert full_size > 6_000_000  # embedding the figures as they are would exceed the limit
    html_path, _ = write_report(root)
    html_text = html_path.read_text(encoding="utf-8")
    assert html_path.stat().st_size < 5_000_000
    figures = re.findall(r'<figure><a href="([^"]+)" title="open full size"><img src="data:image/png;base64,([^"]+)"',
                         html_text)
    assert len(figures) == html_text.count("<img ")
    for path, data in figures:
        assert (root / path).is_file()
        with Image.open(io.BytesIO(base64.b64decode(data))) as preview:
            assert preview.width <= 1100
    grids = _section_html(html_text, "explanations")
    assert 'class="gallery cols-1"' in grids.split("Explanation grids per model", 1)[1][:200]


def test_last_updated_is_when_the_report_was_written(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    manifest = json.loads(RunLayout(root).manifest.read_text())
    _write(root, RELATIVE.manifest, {**manifest, "updated": "2020-01-01T00:00:00"})
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    markdown = write_report(root)[1].read_text(encoding="utf-8")
    stamp = re.search(r"last updated (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", markdown)
    assert stamp and "2020-01-01" not in markdown
    assert datetime.strptime(stamp[1], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc) >= before


def test_the_reflection_cites_findings_instead_of_repeating_them(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    _later_stages(root)
    html_path, _ = write_report(root)
    reflection = _section_html(html_path.read_text(encoding="utf-8"), "reflection")
    findings = pd.read_csv(RunLayout(root).tables.findings)
    assert not [text for text in findings["text"] if html.escape(text, quote=True) in reflection]
    cited = set(re.findall(r'href="#(F\d+)"', reflection))
    tagged = set(findings.loc[findings["tags"].notna(), "ref"])
    assert cited == tagged  # every finding on bias, reliability or generalisation is cited, nothing else
    assert "A model follows a planted shortcut" in reflection


@pytest.mark.parametrize("document", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_no_internal_source_document_numbers_in_user_facing_text(document: str) -> None:
    path = ROOT / document if document == "README.md" else ROOT / "docs" / document
    assert not re.search(r"\bseeds? 0\d\d\b", path.read_text(encoding="utf-8"), re.IGNORECASE)


def test_the_report_names_the_layer_each_cam_used(tmp_path: Path) -> None:
    root = _minimal_run(tmp_path / "tiny")
    quality = _quality().assign(layer=lambda t: t["method"].map({"gradcam": "stage3"}))
    _write(root, RELATIVE.tables.explain_quality, quality)
    markdown = write_report(root)[1].read_text(encoding="utf-8")
    assert "**Layer each CAM method explained**" in markdown
    assert re.search(r"\| fastnet\s+\| stage3\s+\| gradcam\s+\|", markdown)
    _write(root, RELATIVE.tables.explain_quality, _quality())  # a run from before the layer was recorded
    assert "explained each model's last feature depth (the default)" in write_report(root)[1].read_text(encoding="utf-8")


def test_the_reflection_page_cites_findings_by_rules_that_exist() -> None:
    text = (ROOT / "docs" / "trustworthy-ai.md").read_text(encoding="utf-8")
    cited = {rule for block in re.findall(r"\*Findings: ([^*]+)\*", text) for rule in re.findall(r"`(\w+)`", block)}
    assert len(cited) >= 10 and cited <= set(RULES)
