"""``xaiquest explain-image``: any model on image files, with its class names and faithfulness scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

from xaiquest.cli import app


def _image(path, size=(50, 40)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_explain_image_writes_figure_json_and_csv_with_the_class_names(tmp_path):
    weights = tmp_path / "net.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\nowl\n")
    files = [_image(tmp_path / "a.png"), _image(tmp_path / "b.jpg", (64, 64))]
    result = CliRunner().invoke(app, ["explain-image", *map(str, files), "--model", "tv:resnet18", "--weights",
                                      str(weights), "--classes", str(classes), "--methods", "gradcam,saliency",
                                      "--image-size", "64", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "explanations.csv")
    assert len(table) == 4 and set(table["method"]) == {"gradcam", "saliency"}
    assert set(table["class"]) <= {"cat", "dog", "owl"}
    assert table[["deletion_auc", "insertion_auc"]].notna().all().all()
    assert table["deletion_auc"].between(0, 1).all()
    assert len(json.loads((tmp_path / "out" / "explanations.json").read_text())) == 4
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "b.png").is_file()


def test_a_classes_file_with_the_wrong_count_is_one_line_and_exit_2(tmp_path):
    weights = tmp_path / "net.pt"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\n")
    result = CliRunner().invoke(app, ["explain-image", str(_image(tmp_path / "a.png")), "--model", "tv:resnet18",
                                      "--weights", str(weights), "--classes", str(classes), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    message = result.output[result.output.index("error:"):].strip()
    assert "\n" not in message and "2 names" in message and "3 classes" in message
    assert not (tmp_path / "o").exists()
