"""The CLI end to end on tiny data: a full smoke audit, skip-on-rerun, and one clear error per bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthetic import class_coloured_split, write_image_folder
from xaiquest.cli import app
from xaiquest.layout import RunLayout
from xaiquest.stress.benchmark import BASELINES, BENCHMARK_COLUMNS


def _config(tmp_path, **extra: str) -> str:
    lines = {
        "name": "tiny", "profile": "smoke", "models": "[fastnet, resnet_small]",
        "data": f"{{val_size: 20, train_subset: null, test_subset: null, cache_dir: {tmp_path / 'cache'}}}",
        "train": "{epochs: 2, batch_size: 32, lr: 0.2, tensorboard: false}",
        **extra,
    }
    file = tmp_path / "tiny.yaml"
    file.write_text("".join(f"{key}: {value}\n" for key, value in lines.items()))
    return str(file)


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.audit
def test_smoke_audit_runs_end_to_end_and_a_rerun_skips_finished_work(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    root = runs / "tiny"
    layout = RunLayout(root)
    manifest = json.loads(layout.manifest.read_text())
    assert set(manifest["units"]) == {f"{stage}/{m}__baseline__s0" for stage in ("train", "evaluate", "calibrate", "explain", "stress",
                                                                                        "concepts")
                                      for m in ("fastnet", "resnet_small")} | {"robustness", "concepts/probes"}
    for model in ("fastnet", "resnet_small"):
        files = layout.model(f"{model}__baseline__s0")
        for artifact in (files.weights, files.train_record, files.history, files.curves, files.eval.metrics,
                         files.eval.confusion_figure, files.eval.confusion, files.eval.per_class, files.eval.misclassified,
                         files.calibration.summary, files.calibration.figure,
                         files.explain.grid, files.explain.quality, files.explain.agreement_figure, files.explain.maps):
            assert artifact.exists(), artifact
        assert not files.checkpoint.exists()
    tables = layout.tables
    table = tables.comparison.read_text()
    assert "fastnet" in table and "resnet_small" in table and "ece_after_ts_mean" in table
    assert layout.figures.png("reliability_overlay").exists()
    for artifact in (tables.robustness_summary, tables.robustness_accuracy, tables.explain_quality, tables.final_ranking,
                     tables.concepts_summary, tables.concepts_tcav, tables.concepts_tcav_untrained, tables.concepts_detectors):
        assert artifact.exists(), artifact
    untrained = pd.read_csv(tables.concepts_tcav_untrained)  # one untrained copy per architecture, as long as the trained table
    assert sorted(untrained["architecture"].unique()) == ["fastnet", "resnet_small"]
    assert len(untrained) == len(pd.read_csv(tables.concepts_tcav))
    assert layout.report_html.exists() and layout.report_markdown.exists()
    quality = tables.explain_quality.read_text()
    assert all(method in quality for method in ("gradcam", "eigencam", "fusioncam", "integrated_gradients"))
    layers = pd.read_csv(tables.explain_quality).set_index(["run", "method"])["layer"]
    assert layers.loc[("fastnet__baseline__s0", "gradcam")] == "stage3"  # the last depth, named in the report
    assert pd.isna(layers.loc[("fastnet__baseline__s0", "integrated_gradients")])
    report = layout.report_markdown.read_text()
    assert "**Layer each CAM method explained**" in report
    assert "Missing results" not in report  # every enabled stage ran, so no table may be reported missing
    assert layout.report_html.stat().st_size < 5_000_000
    # the output is not a terminal here: the plan, one line per epoch and per finished unit, with elapsed time and ETA
    assert "plan: train 2 models, evaluate 2, calibrate 2, robustness 2, explain 2, stress 2, concepts 2" in result.output
    assert "train: 2 models to train, about " in result.output  # the up-front estimate from timed steps
    assert "train: fastnet__baseline__s0 epoch 1/2 val " in result.output
    assert "ETA" in result.output and "evaluate: 1/2 fastnet__baseline__s0 test accuracy" in result.output
    assert "━" not in result.output  # no progress bars in a log: they repeated the lines above, cut at 80 columns
    first_model = layout.model("fastnet__baseline__s0").weights.stat().st_mtime_ns

    again = _invoke("run", _config(tmp_path), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert again.exit_code == 0, again.output
    assert "train: all 2 models already done, skipping" in again.output
    assert layout.model("fastnet__baseline__s0").weights.stat().st_mtime_ns == first_model
    assert "plan: train 2 models (2 done)" in again.output


def _assert_clean_failure(result, message: str, runs) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not runs.exists(), "a failed run must not leave a run directory behind"


def test_progress_bars_print_nothing_when_the_output_is_not_a_terminal() -> None:
    """A log gets the stages' one line per epoch and per unit; the bars' final states would repeat them."""
    import contextlib
    import io

    from xaiquest.console import progress_bar

    log = io.StringIO()
    with contextlib.redirect_stderr(log), progress_bar() as progress:
        task = progress.add_task("fastnet__baseline__s0 ep 1/1", total=3)
        progress.advance(task, 3)
    assert log.getvalue() == ""


def test_unknown_model_is_one_clear_error(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path, models="[resnet_nope]"), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    _assert_clean_failure(result, "unknown model 'resnet_nope'; available:", runs)


def test_misspelled_config_key_is_named(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path, trian="{epochs: 1}"), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    _assert_clean_failure(result, "'trian' is not allowed", runs)


def test_one_class_data_is_rejected_before_anything_is_written(tmp_path):
    one = write_image_folder(tmp_path / "one", class_coloured_split(3, 0, num_classes=1), class_coloured_split(1, 1, num_classes=1))
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path), "--data", str(one), "--runs-dir", str(runs))
    _assert_clean_failure(result, "at least 2 class folders", runs)


def test_corrupt_image_is_named(tmp_path):
    root = write_image_folder(tmp_path / "data", class_coloured_split(3, 0), class_coloured_split(1, 1))
    broken = next((root / "train" / "cat").iterdir())
    broken.write_bytes(b"not an image")
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path), "--data", str(root), "--runs-dir", str(runs))
    _assert_clean_failure(result, broken.name, runs)


def test_missing_data_offline_says_how_to_pass_it(tmp_path, monkeypatch):
    monkeypatch.delenv("XAIQUEST_DATA", raising=False)
    runs = tmp_path / "runs"
    config = _config(tmp_path, data=f"{{download: false, cache_dir: {tmp_path / 'empty'}}}")
    result = _invoke("run", config, "--runs-dir", str(runs))
    _assert_clean_failure(result, "--data", runs)


@pytest.mark.parametrize(("extra", "message"), [
    ({"explain": "{layer: stage9}"}, "config field 'explain.layer': unknown layer 'stage9'; use a named depth"),
    ({"robustness": "{corruptions: [fog2]}"}, "config field 'robustness.corruptions': unknown corruption 'fog2'"),
    ({"robustness": "{baseline: resnet99}"}, "config field 'robustness.baseline': 'resnet99' is not one of"),
    ({"variants": "{baseline: {}, patched: {patch: {target_class: 12}}}"},
     "config field 'variants.patched.patch.target_class': 12 is not a class index of the data (0..9)"),
])
def test_a_late_failing_config_mistake_stops_the_run_before_training(tmp_path, tiny_cifar, extra, message):
    runs = tmp_path / "runs"
    result = _invoke("run", _config(tmp_path, **extra), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    _assert_clean_failure(result, message, runs)
    assert "train:" not in result.output, "the check must come before any training"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], "one error line naming the field"


@pytest.mark.parametrize(("section", "value", "message"), [
    ("explain", "{methods: [gradcam, gradcam9]}", "config field 'explain.methods': unknown explanation method 'gradcam9'"),
    ("stress", "{focus_methods: [nope]}", "config field 'stress.focus_methods': unknown explanation method 'nope'"),
    ("stress", "{probes: [grayscale, greyscale]}", "config field 'stress.probes': unknown stress probe 'greyscale'"),
    ("models", "[fastnet, resnet_nope]", "config field 'models': unknown model 'resnet_nope'"),
])
def test_every_registry_name_is_checked_by_the_same_check(tmp_path, tiny_cifar, section, value, message):
    runs = tmp_path / "runs"
    result = _invoke("train", _config(tmp_path, **{section: value}), "--data", str(tiny_cifar), "--runs-dir", str(runs))
    _assert_clean_failure(result, message, runs)


def test_list_models_names_every_family():
    result = _invoke("list", "models")
    assert result.exit_code == 0
    for name in ("fastnet", "resnet_small", "vgg_small", "densenet_small", "mobilenetv2_small", "tv:"):
        assert name in result.output


@pytest.mark.audit
def test_a_planted_patch_variant_is_trained_then_probed_for_reliance_and_localisation(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    config = _config(
        tmp_path, models="[fastnet]", variants="{baseline: {}, patch: {patch: {target_class: 0, fraction: 1.0}}}",
        robustness="{enabled: false}", explain="{enabled: false, methods: [gradcam, saliency]}",
    )
    result = _invoke("run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    tables = RunLayout(runs / "tiny").tables
    reliance = pd.read_csv(tables.patch_reliance).set_index("run")
    assert set(reliance.index) == {"fastnet__baseline__s0", "fastnet__patch__s0"}
    assert reliance.loc["fastnet__patch__s0", "trained_with_patch"]
    assert reliance.loc["fastnet__patch__s0", "baseline_attack_success"] == reliance.loc["fastnet__baseline__s0", "attack_success"]
    localisation = pd.read_csv(tables.patch_localisation)
    assert set(localisation["method"]) == {"gradcam", "saliency"}
    assert localisation["tko"].between(0, 1).all() and localisation["win_rate"].sum() == pytest.approx(1.0)
    probes = pd.read_csv(tables.stress_probes)
    assert {"occlusion_centre", "channel_permutation", "noise", "background_swap", "clean"} <= set(probes["probe"])
    assert tables.layerwise.exists() and tables.csv("stress_focus").exists()


@pytest.mark.audit
def test_a_patch_model_is_benchmarked_against_its_control_twin_and_the_report_says_which_maps_survive(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    config = _config(
        tmp_path, models="[fastnet]",
        variants="{baseline: {}, patch: {patch: {target_class: 0}}, patch_control: {patch: {target_class: 0, control: true}}}",
        robustness="{enabled: false}", explain="{enabled: false, methods: [gradcam, saliency]}",
        stress="{variants: [baseline], probes: [noise]}", concepts="{enabled: false}", seeds="[0, 1]",
    )
    result = _invoke("run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    layout = RunLayout(runs / "tiny")
    benchmark = pd.read_csv(layout.tables.xai_benchmark)
    assert list(benchmark.columns) == [*BENCHMARK_COLUMNS, "control_run", "run"]
    assert set(benchmark["run"]) == {"fastnet__patch__s0", "fastnet__patch__s1"}
    assert set(benchmark["control_run"]) == {"fastnet__patch_control__s0", "fastnet__patch_control__s1"}
    assert set(benchmark["method"]) == {"gradcam", "saliency", *BASELINES.names()} and len(benchmark) == 2 * 6 * 3
    pooled = pd.read_csv(layout.tables.xai_benchmark_pooled)
    assert len(pooled) == 6 * 3 and (pooled["seeds"] == 2).all() and set(pooled["variant"]) == {"patch"}
    assert pooled.loc[pooled["kind"] == "method", "win_rate"].groupby(pooled["metric"]).sum().round(6).eq(1).all()
    pairs = pd.read_csv(layout.tables.xai_benchmark_pairs)
    assert len(pairs) == 3 and set(pairs[["method", "other"]].iloc[0]) == {"gradcam", "saliency"}
    assert (benchmark["contrast_low"] <= benchmark["contrast"]).all() and (benchmark["contrast"] <= benchmark["contrast_high"]).all()
    assert benchmark.loc[benchmark["kind"] == "method", "beats_baselines"].notna().all()
    reliance = pd.read_csv(layout.tables.patch_reliance).set_index("run")
    assert reliance.loc["fastnet__patch_control__s0", "control"] and not reliance.loc["fastnet__patch__s0", "control"]
    records = {v: json.loads(layout.model(f"fastnet__{v}__s0").train_record.read_text()) for v in ("patch", "patch_control")}
    assert records["patch_control"]["patch"]["control"] is True and "control" not in records["patch"]["patch"]
    assert not layout.model("fastnet__patch_control__s0").stress.patch_localisation.exists()  # scored inside the benchmark
    report = layout.report_markdown.read_text()
    assert "Planted patch: benchmark against the control models (Top-K overlap)" in report
    assert "Planted patch: benchmark pooled over seeds (Top-K overlap)" in report
    sensitivity = pd.read_csv(layout.tables.patch_sensitivity)
    assert set(sensitivity["run"]) == {"fastnet__patch__s0", "fastnet__patch__s1"}
    assert set(zip(sensitivity["explained"], sensitivity["post"])) == {(e, p) for e in ("predicted", "target")
                                                                       for p in ("raw", "abs", "relu")}
    assert "Planted patch: the ranking under other explained outputs and post-processing" in report
    assert layout.model("fastnet__patch__s0").stress.patch_contrast.exists()
    assert "Planted patch: maps on the reliant model and on its control twin" in report
    assert "the control model fastnet (patch_control, s0)" in report  # a finding says which maps survive it


@pytest.mark.audit
def test_patch_variants_of_several_settings_are_each_probed_with_their_own_patch_in_a_salience_sweep(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    config = _config(
        tmp_path, models="[fastnet]",
        variants="{baseline: {}, magenta: {patch: {target_class: 0}}, grey: {patch: {target_class: 0, colour: [128, 128, 128], size: 5}}}",
        robustness="{enabled: false}", explain="{enabled: false, methods: [gradcam, saliency]}",
        stress="{variants: [baseline], probes: [noise]}", concepts="{enabled: false}",
    )
    result = _invoke("run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    layout = RunLayout(runs / "tiny")
    sweep = pd.read_csv(layout.tables.salience_sweep)
    assert set(sweep["run"]) == {"fastnet__magenta__s0", "fastnet__grey__s0"} and set(sweep["method"]) == {"gradcam", "saliency"}
    settings = sweep.drop_duplicates("run").set_index("run")["patch"]
    assert settings.to_dict() == {"fastnet__magenta__s0": "rgb(255, 0, 255), 3 px at 32 px, fixed",
                                  "fastnet__grey__s0": "rgb(128, 128, 128), 5 px at 32 px, fixed"}
    assert sweep["contrast"].isna().all()  # no control twins in this run
    probed = pd.read_csv(layout.tables.patch_reliance).set_index("run")["probed_patch"]
    assert probed["fastnet__grey__s0"] == settings["fastnet__grey__s0"]  # each model probed with its own patch
    assert probed["fastnet__baseline__s0"] == settings["fastnet__magenta__s0"]  # a baseline: the run's first patch
    assert "Planted patch: salience sweep (patch colour, size and position)" in layout.report_markdown.read_text()


@pytest.mark.audit
def test_variants_are_selected_per_model_and_stage_and_re_examined_on_the_baselines_mistakes(tmp_path, tiny_cifar):
    runs = tmp_path / "runs"
    config = _config(
        tmp_path, models="[fastnet, {name: resnet_small, variants: [baseline]}]",
        variants="{baseline: {}, label_smoothing: {label_smoothing: 0.1}, patch: {patch: {target_class: 0, fraction: 1.0}}}",
        robustness="{variants: [baseline, label_smoothing]}",
        explain="{methods: [gradcam, saliency], variants: [baseline], reexamine: 2}",
        stress="{variants: [baseline, label_smoothing], probes: [noise]}",
    )
    result = _invoke("run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    layout = RunLayout(runs / "tiny")
    units = set(json.loads(layout.manifest.read_text())["units"])
    fast = [f"fastnet__{v}__s0" for v in ("baseline", "label_smoothing", "patch")]
    assert {u for u in units if u.startswith("train/")} == {f"train/{k}" for k in [*fast, "resnet_small__baseline__s0"]}
    assert {u for u in units if u.startswith("explain/")} == {
        "explain/fastnet__baseline__s0", "explain/resnet_small__baseline__s0", "explain/reexamine/fastnet__label_smoothing__s0"}
    assert set(pd.read_csv(layout.tables.robustness_accuracy)["model"]) == {
        "fastnet__baseline__s0", "fastnet__label_smoothing__s0", "resnet_small__baseline__s0"}
    stress = {k: layout.model(k).stress for k in fast}
    assert stress["fastnet__patch__s0"].patch.exists() and not stress["fastnet__patch__s0"].probes.exists()
    assert stress["fastnet__label_smoothing__s0"].probes.exists()
    assert not stress["fastnet__label_smoothing__s0"].patch.exists()
    mistakes = pd.read_csv(layout.model("fastnet__baseline__s0").eval.misclassified)
    assert len(mistakes) > 0
    reexamined = layout.model("fastnet__label_smoothing__s0").explain
    per_image = pd.read_csv(reexamined.reexamine)
    assert per_image["index"].tolist() == mistakes["index"].tolist()
    assert (per_image["baseline_predicted"] == mistakes["predicted"]).all()
    assert reexamined.reexamine_figure.exists()
    summary = pd.read_csv(layout.tables.reexamine)
    assert summary[["model", "variant"]].values.tolist() == [["fastnet", "label_smoothing"]]
    assert summary.loc[0, "mistakes"] == len(mistakes)
    assert summary.loc[0, "variant_correct"] == pytest.approx((per_image["variant_predicted"] == per_image["true"]).mean())
    report = layout.report_markdown.read_text()
    assert "Training variants" in report and "fastnet with label_smoothing instead of the baseline" in report
    assert "most confident baseline mistakes" in report
