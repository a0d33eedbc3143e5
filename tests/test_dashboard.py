"""The dashboard's logic without a browser: reopening a run, image filters, stresses, cached explanations, uploads."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.config import PatchConfig
from xaiquest.dashboard.session import (
    DEFAULT_LAYER,
    FILTERS,
    MAX_UPLOAD_BYTES,
    NO_STRESS,
    PATCH,
    Dashboard,
    Stress,
    UploadError,
    apply_stress,
    load_upload,
    open_run,
    stress_choices,
)
from xaiquest.dashboard.views import overlay, quality_table
from xaiquest.errors import ConfigError, XaiquestError
from xaiquest.layout import RunLayout

@pytest.fixture(scope="module")
def dashboard(smoke_run) -> Dashboard:
    return Dashboard(open_run(smoke_run))


def test_a_run_is_reopened_with_its_trained_models_and_test_split(dashboard, smoke_models):
    assert dashboard.model_ids() == list(smoke_models)
    assert len(dashboard.run.data.test) == 60
    assert dashboard.layers(list(smoke_models))[0] == DEFAULT_LAYER
    assert "stage1" in dashboard.layers(list(smoke_models))


def test_a_missing_run_directory_is_one_clear_error(tmp_path):
    with pytest.raises(XaiquestError, match="not a run directory"):
        open_run(tmp_path / "nowhere")
    result = CliRunner().invoke(app, ["dashboard", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "not a run directory" in result.output


def test_data_that_moved_is_passed_with_data_and_a_wrong_path_is_named(smoke_run, tiny_cifar, tmp_path):
    with pytest.raises(XaiquestError, match="does not exist"):
        open_run(smoke_run, data=tmp_path / "moved")
    assert len(open_run(smoke_run, data=tiny_cifar).data.test) == 60


def test_a_run_whose_config_fails_the_name_check_is_refused_like_the_pipeline_refuses_it(smoke_run, tmp_path):
    copy = RunLayout(tmp_path / "tiny")
    copy.root.mkdir()
    manifest = json.loads(RunLayout(smoke_run).manifest.read_text())
    manifest["config"]["explain"]["layer"] = "stage9"
    copy.manifest.write_text(json.dumps(manifest))
    copy.models.symlink_to(RunLayout(smoke_run).models)
    with pytest.raises(ConfigError, match="config field 'explain.layer': unknown layer 'stage9'"):
        open_run(copy.root)


def test_a_model_folder_left_from_an_older_config_is_not_offered(smoke_run, smoke_models, tmp_path):
    """The model list is the config's models that finished training, not whatever folders exist."""
    layout = RunLayout(tmp_path / "tiny")
    layout.models.mkdir(parents=True)
    shutil.copy(RunLayout(smoke_run).manifest, layout.manifest)
    for model in smoke_models:
        layout.model(model).folder.symlink_to(RunLayout(smoke_run).model(model).folder)
    shutil.copytree(RunLayout(smoke_run).model(smoke_models[0]).folder, layout.model("fastnet__mixup__s1").folder)
    assert Dashboard(open_run(layout.root)).model_ids() == list(smoke_models)


def test_without_gradio_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    result = CliRunner().invoke(app, ["dashboard", str(tmp_path)])
    assert result.exit_code == 2
    assert "needs gradio" in result.output and "pip install gradio" in result.output


def test_filters_split_the_test_set_by_the_models_predictions(dashboard, smoke_models):
    counts = {which: dashboard.list_images(smoke_models[1], "all", which)[1] for which in FILTERS}
    assert counts["correct"] + counts["misclassified"] == counts["all"] == 60
    failures, _ = dashboard.list_images(smoke_models[1], "all", "confident failure")
    mistakes = {image_id for _, image_id in dashboard.list_images(smoke_models[1], "all", "misclassified")[0]}
    assert {image_id for _, image_id in failures} <= mistakes
    cats, matches = dashboard.list_images(smoke_models[1], "cat", "all")
    assert matches == 6 and all(" cat → " in label for label, _ in cats)


@pytest.mark.parametrize("kind", stress_choices())
def test_every_stress_yields_a_uint8_image_and_only_the_patch_a_mask(dashboard, kind):
    image, mask = dashboard.stressed("test:0", Stress(kind, 3))
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    if kind == PATCH:
        assert mask is not None and int(mask.sum()) == 9  # level = the patch's side in pixels at 32 px
    else:
        assert mask is None
    if kind == NO_STRESS:
        assert torch.equal(image, dashboard.image("test:0"))


def test_the_patch_stress_scales_its_level_with_the_image_like_the_planted_patch():
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    _, mask = apply_stress(image, Stress(PATCH, 3), PatchConfig(size=1))
    assert mask is not None and int(mask.sum()) == 36 and mask[56:62, 56:62].all()


def test_explanations_carry_quality_numbers_and_are_cached(dashboard, smoke_models):
    clean = dashboard.explain(smoke_models[0], "test:1", Stress(), "gradcam")
    assert clean.heatmap.shape == (32, 32) and clean.layer == "stage3" and clean.tko is None
    assert 0 <= clean.deletion_auc <= 1 and 0 <= clean.insertion_auc <= 1
    hits = dashboard.cache_hits()
    assert dashboard.explain(smoke_models[0], "test:1", Stress(), "gradcam", "stage3") is clean  # default layer = last depth
    assert dashboard.cache_hits() == hits + 1
    patched = dashboard.explain(smoke_models[0], "test:1", Stress(PATCH, 4), "eigencam", "stage1")
    assert patched.layer == "stage1" and 0 <= patched.tko <= 1
    saliency = dashboard.explain(smoke_models[0], "test:1", Stress(), "saliency", "stage1")
    assert saliency.layer is None  # input attributions ignore the layer, so it is not part of their cache key
    table = quality_table([clean, patched, saliency], dashboard.classes)
    assert list(table["method"]) == ["gradcam", "eigencam", "saliency"]
    assert overlay(dashboard.image("test:1"), clean.heatmap).shape == (192, 192, 3)


def test_predictions_are_probabilities_over_the_runs_classes(dashboard, smoke_models):
    prediction = dashboard.predict(smoke_models[1], "test:2", Stress("fog", 5))
    assert set(prediction.probabilities) == set(dashboard.classes)
    assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-4)


def test_an_accepted_upload_is_explained_like_a_test_image(dashboard, tmp_path, smoke_models):
    picture = tmp_path / "grey.png"
    Image.new("LA", (100, 60), (90, 255)).save(picture)
    label, image_id = dashboard.add_upload(picture)
    assert (label, image_id) in dashboard.uploads()
    assert dashboard.image(image_id).shape == (3, 32, 32)
    assert dashboard.true_label(image_id) is None
    assert dashboard.explain(smoke_models[0], image_id, Stress("contrast", 2), "layercam").heatmap.shape == (32, 32)


def test_bad_uploads_are_refused_with_the_reason(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UploadError, match="not an image"):
        load_upload(text)
    huge = tmp_path / "huge.png"
    Image.new("L", (4100, 4100)).save(huge)
    with pytest.raises(UploadError, match="4100x4100 pixels"):
        load_upload(huge)
    deep = tmp_path / "deep.png"
    Image.new("I;16", (32, 32)).save(deep)
    with pytest.raises(UploadError, match="mode I"):
        load_upload(deep)
    heavy = tmp_path / "heavy.jpg"
    with heavy.open("wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UploadError, match="MB"):
        load_upload(heavy)


def test_unknown_images_and_models_are_named(dashboard):
    with pytest.raises(XaiquestError, match="unknown image"):
        dashboard.image("test:99999")
    with pytest.raises(XaiquestError, match="unknown model"):
        dashboard.model("vgg_small__baseline__s0")


def test_the_report_tab_shows_floats_rounded():
    from xaiquest.dashboard.views import rounded

    table = pd.DataFrame({"run": ["a", "b"], "ece": [0.1234567890123456, 0.5], "n": [3, 4]})
    shown = rounded(table)
    assert shown["ece"].tolist() == [0.1235, 0.5] and shown["n"].tolist() == [3, 4] and shown["run"].tolist() == ["a", "b"]


def test_galleries_show_whole_figures_that_open_full_size_and_captions_wrap(dashboard, monkeypatch):
    gr = pytest.importorskip("gradio")
    from xaiquest.dashboard import app as page_module

    page = page_module.build_app(dashboard)
    galleries = {b.elem_id: b for b in page.blocks.values() if isinstance(b, gr.Gallery)}
    for name in ("heatmaps", "report-figures"):
        assert galleries[name].object_fit == "contain" and galleries[name].allow_preview
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    page_module.serve(dashboard, 7999, block=True)
    assert launched["quiet"] is True and launched["share"] is False  # no "set share=True" hint for a CLI user
    assert "#heatmaps .caption-label" in launched["css"] and "white-space: normal" in launched["css"]
