"""The dashboard for one model and no run (``xaiquest dashboard --model NAME``): its session, its page and the CLI's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.dashboard.model_session import ModelSession, open_model
from xaiquest.dashboard.session import DEFAULT_LAYER
from xaiquest.dashboard.views import overlay, quality_table
from xaiquest.data import Normalisation
from xaiquest.errors import ConfigError
from xaiquest.explain.single import explain_images
from xaiquest.models import build_model

SIZE = 64


def _image(path, size=(50, 40), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def tv_model(tmp_path_factory):
    """A 3-class tv:resnet18 state_dict, its class names and a folder of two images (one in a subfolder)."""
    root = tmp_path_factory.mktemp("byo")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), root / "net.pt")
    (root / "classes.txt").write_text("cat\ndog\nowl\n")
    _image(root / "images" / "a.png")
    _image(root / "images" / "more" / "b.jpg", (64, 64), seed=1)
    (root / "images" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def session(tv_model) -> ModelSession:
    return open_model("tv:resnet18", tv_model / "net.pt", tv_model / "classes.txt", SIZE, tv_model / "images", None)


def test_the_image_folder_is_listed_by_relative_path_without_other_files(session):
    choices, files = session.image_choices()
    assert files == 2 and [label for label, _ in choices] == ["a.png", "more/b.jpg"]
    assert session.image(choices[1][1]).shape == (3, SIZE, SIZE)
    assert session.layers()[0] == DEFAULT_LAYER and "stage4" in session.layers()


def test_top_classes_are_five_or_fewer_probabilities_of_the_class_file(session):
    top = session.top_classes("file:0")
    assert set(top) == {"cat", "dog", "owl"}
    assert sum(top.values()) == pytest.approx(1, abs=1e-5)
    assert list(top.values()) == sorted(top.values(), reverse=True)


def test_the_page_shows_the_numbers_explain_image_writes_for_the_same_file(session, tv_model, tmp_path):
    shown = session.explain("file:0", "gradcam")
    written = explain_images([tv_model / "images" / "a.png"], session.loaded, ["gradcam"], None, tmp_path)
    row = written.iloc[0]
    assert shown.layer == row["layer"] == "stage4"
    assert session.classes[shown.target] == row["class"]
    assert (shown.deletion_auc, shown.insertion_auc) == pytest.approx((row["deletion_auc"], row["insertion_auc"]))
    assert shown.heatmap.shape == (SIZE, SIZE) and shown.tko is None


def test_explanations_are_cached_and_input_attributions_ignore_the_layer(session):
    first = session.explain("file:1", "saliency", "stage2")
    hits = session.cache_hits()
    assert session.explain("file:1", "saliency") is first and session.cache_hits() == hits + 1
    assert first.layer is None
    cam = session.explain("file:1", "gradcam", "stage2")
    assert cam.layer == "stage2"
    table = quality_table([first, cam], session.classes)
    assert list(table["method"]) == ["saliency", "gradcam"] and set(table["explained class"]) <= set(session.classes)
    assert overlay(session.image("file:1"), cam.heatmap).shape == (192, 192, 3)


def test_an_upload_heads_the_list_and_unknown_inputs_are_named(session, tmp_path):
    label, image_id = session.add_upload(_image(tmp_path / "up.png", (90, 30)))
    assert session.image_choices()[0][0] == (label, image_id)
    assert session.image(image_id).shape == (3, SIZE, SIZE)
    with pytest.raises(ConfigError, match="unknown image"):
        session.image("file:7")
    with pytest.raises(ConfigError, match="unknown explanation method 'gradcan'"):
        session.explain(image_id, "gradcan")


def test_a_zoo_model_with_its_weights_file_and_normalisation_is_explained(tmp_path):
    weights = tmp_path / "zoo.pt"
    torch.manual_seed(0)
    torch.save(build_model("resnet_small", 4, image_size=32).state_dict(), weights)
    zoo = open_model("resnet_small", weights, None, None, None, Normalisation((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert zoo.classes == ("class 0", "class 1", "class 2", "class 3") and zoo.image_choices() == ([], 0)
    _, image_id = zoo.add_upload(_image(tmp_path / "x.png"))
    explanation = zoo.explain(image_id, "layercam")
    assert explanation.heatmap.shape == (32, 32) and 0 <= explanation.deletion_auc <= 1


def test_the_page_has_the_elements_the_run_page_has_and_serves_no_files(session, monkeypatch):
    gr = pytest.importorskip("gradio")
    from xaiquest.dashboard import app as page_module

    page = page_module.build_model_app(session)
    ids = {block.elem_id for block in page.blocks.values()}
    assert {"image", "upload", "layer", "methods", "explain", "input-image", "prediction-a", "heatmaps", "quality",
            "message"} <= ids
    shown, top, gallery, quality, message = page_module._explain_model(session, "file:0", ["gradcam", "saliency"],
                                                                       DEFAULT_LAYER)
    assert shown.shape == (192, 192, 3) and set(top) == {"cat", "dog", "owl"} and message == ""
    assert len(gallery["value"]) == 2 and isinstance(quality, pd.DataFrame) and len(quality) == 2
    assert page_module._explain_model(session, "file:0", [], DEFAULT_LAYER)[-1] == "tick at least one explainer"
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    page_module.serve(session, 7999, block=True)
    assert launched["allowed_paths"] == [] and launched["share"] is False


def _one_line_error(arguments, monkeypatch) -> str:
    """Invoke the CLI, failing the test instead of serving if no error stops it; return the error line."""
    from xaiquest.dashboard import app as page_module

    monkeypatch.setattr(page_module, "serve", lambda *a, **k: pytest.fail("the dashboard started serving"))
    result = CliRunner().invoke(app, ["dashboard", *map(str, arguments)])
    assert result.exit_code == 2, result.output
    message = result.output[result.output.index("error:"):].strip()
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("arguments", "expected"), [
    ([], "pass a run directory"),
    (["runs/x", "--model", "tv:resnet18"], "not both or neither"),
    (["runs/x", "--weights", "net.pt"], "--weights goes with --model"),
    (["--model", "tv:resnet18", "--data", "somewhere"], "--data goes with a run directory"),
])
def test_the_dashboard_takes_a_run_or_a_model_with_its_own_options(arguments, expected, monkeypatch):
    assert expected in _one_line_error(arguments, monkeypatch)


def test_bad_model_inputs_end_with_explain_images_one_line_errors(tv_model, tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    two = tmp_path / "two.txt"
    two.write_text("cat\ndog\n")
    model = ["--model", "tv:resnet18", "--weights", tv_model / "net.pt"]
    assert "2 names but the weights classify into 3 classes" in _one_line_error([*model, "--classes", two], monkeypatch)
    assert "tv:resnet34" in _one_line_error(["--model", "tv:resnet34", "--weights", tv_model / "net.pt"], monkeypatch)
    assert "is not a folder" in _one_line_error([*model, "--images", tv_model / "classes.txt"], monkeypatch)
    assert "pass --mean and --std" in _one_line_error(["--model", "resnet_small", "--classes", two], monkeypatch)
