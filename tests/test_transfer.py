"""Pretrained vs fine-tuned: restricting the data to some classes, the linear probe and the fine-tune
recipes, the refusals, the per-depth comparison with the starting weights, and the transfer stage end to end."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from synthetic import class_coloured_split

from xaiquest.config import DataConfig, TrainConfig, load_config
from xaiquest.errors import ConfigError
from xaiquest.layout import ModelFiles, RunLayout
from xaiquest.models import build_model, classifier, named_depths
from xaiquest.pipeline import run_pipeline
from xaiquest.runs import prepare_data
from xaiquest.train.schedule import build_optimizer
from xaiquest.train.trainer import train_model
from xaiquest.transfer.compare import depth_comparison
from xaiquest.transfer.stage import stage_units
from xaiquest.validation import check_config

SOURCE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET_CLASSES = ["dog", "frog", "horse", "ship", "truck"]


def _data(tiny_cifar: Path, root: Path, **extra: object) -> dict[str, object]:
    return {"source": str(tiny_cifar), "val_size": 10, "train_subset": None, "test_subset": None,
            "cache_dir": str(root / "cache"), **extra}


def test_data_classes_keeps_only_those_classes_in_the_given_order(tiny_cifar, tmp_path):
    every = prepare_data(load_config("smoke", {"data": _data(tiny_cifar, tmp_path, val_size=0)}))
    some = prepare_data(load_config("smoke", {"data": _data(tiny_cifar, tmp_path, val_size=0, classes=["cat", "airplane"])}))
    assert some.classes == ("cat", "airplane")
    for split, full in ((some.train, every.train), (some.test, every.test)):
        assert sorted(split.labels.unique().tolist()) == [0, 1]
        assert torch.equal(split.images[split.labels == 0], full.images[full.labels == every.classes.index("cat")])
        assert torch.equal(split.images[split.labels == 1], full.images[full.labels == every.classes.index("airplane")])
    assert "classes" not in DataConfig().identity()  # runs made before the field keep their fingerprints


def test_an_unknown_class_is_one_line_naming_the_data_s_classes(tiny_cifar, tmp_path):
    config = load_config("smoke", {"data": _data(tiny_cifar, tmp_path, classes=["cat", "cow"])})
    with pytest.raises(ConfigError, match=r"^config field 'data.classes': unknown class 'cow'; the data's classes are "
                                          r"airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck$"):
        prepare_data(config)


def _train(model: torch.nn.Module, cfg: TrainConfig, folder: Path) -> None:
    train = class_coloured_split(8, seed=0, num_classes=5)
    train_model(model, train, class_coloured_split(2, seed=1, num_classes=5), cfg, seed=0, device=torch.device("cpu"),
                files=ModelFiles(folder), fingerprint="test", num_classes=5, from_weights=True)


def test_a_linear_probe_changes_the_classifier_only_and_no_batchnorm_statistic(tmp_path):
    model = build_model("fastnet", 5)
    model.stem.fit(torch.randn(64, 3, 32, 32))  # as a model started from weights holds a fitted stem
    before = {name: value.clone() for name, value in model.state_dict().items()}
    cfg = TrainConfig(freeze_backbone=True, epochs=2, batch_size=8, channels_last=False, tensorboard=False)
    _train(model, cfg, tmp_path)
    after = model.state_dict()
    head = {f"head.{name}" for name in classifier(model).state_dict()}
    moved = sorted(name for name in before if not torch.equal(before[name], after[name]))
    assert moved == sorted(head)  # every backbone weight and BN buffer (running mean, var, count) bit-identical
    assert any("running_mean" in name for name in before)


def test_a_fine_tune_trains_the_backbone_at_the_scaled_learning_rate():
    model = build_model("fastnet", 5)
    optimizer = build_optimizer(model, TrainConfig(lr=0.2, backbone_lr_scale=0.1))
    head = {id(p) for p in classifier(model).parameters()}
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert set(rates) == {id(p) for p in model.parameters()}
    assert {rate for key, rate in rates.items() if key in head} == {0.2}
    assert [rate for key, rate in rates.items() if key not in head] == pytest.approx([0.02] * (len(rates) - len(head)))
    assert len(build_optimizer(model, TrainConfig(lr=0.2)).param_groups) == 2  # other recipes: as before


def test_a_linear_probe_of_random_features_is_refused_in_one_line():
    overrides = {"models": ["fastnet"], "variants": {"baseline": {}, "linear_probe": {"freeze_backbone": True}}}
    with pytest.raises(ConfigError, match=r"model 'fastnet', variant 'linear_probe': freeze_backbone trains only the "
                                          r"classifier on random features; start the model from weights \(init: FILE"):
        load_config("smoke", overrides)
    load_config("smoke", {**overrides, "models": [{"name": "fastnet", "init": "source.pt"}]})


def test_one_model_name_twice_is_allowed_when_the_runs_differ():
    variants = {"baseline": {}, "finetune": {"backbone_lr_scale": 0.1}}
    apart = load_config("smoke", {"variants": variants, "models": [
        {"name": "fastnet", "variants": ["baseline"]}, {"name": "fastnet", "init": "a.pt", "variants": ["finetune"]}]})
    check_config(apart, num_classes=5)
    clash = load_config("smoke", {"variants": variants, "models": ["fastnet", {"name": "fastnet", "init": "a.pt"}]})
    with pytest.raises(ConfigError, match=r"'fastnet' is listed more than once with variant 'baseline', so two runs "
                                          r"would share the folder fastnet__baseline__s0"):
        check_config(clash, num_classes=5)


def test_a_model_agrees_with_itself_and_a_retrained_depth_shows_where_it_moved():
    torch.manual_seed(0)
    model = build_model("fastnet", 5).eval()
    model.stem.fit(torch.randn(64, 3, 32, 32))
    images = class_coloured_split(8, seed=2, num_classes=5).images
    depths = list(named_depths(model))
    same = depth_comparison(model, model, images, depths, topk_frac=0.1)
    assert same[["cka", "map_topk_iou", "map_spearman"]].to_numpy() == pytest.approx(1.0, abs=1e-5)
    moved = copy.deepcopy(model)
    for module in moved.stages[-1].modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    table = depth_comparison(moved, model, images, depths, topk_frac=0.1).set_index("depth")
    assert table.loc[depths[:-1], "cka"].to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert table.loc[depths[-1], "cka"] < 0.99
    assert table.loc[depths[-1], "map_spearman"] < 0.99


def test_no_transfer_unit_without_a_model_started_from_weights():
    assert stage_units(load_config("smoke", {"models": ["fastnet"]})) == []
    config = load_config("smoke", {"models": [{"name": "fastnet", "init": "a.pt"}]})
    assert [unit.name for unit in stage_units(config)] == ["transfer/fastnet__baseline__s0"]


QUICK = {"train": {"epochs": 1, "batch_size": 16, "tensorboard": False}, "robustness": {"enabled": False},
         "explain": {"enabled": False}, "stress": {"enabled": False}, "concepts": {"enabled": False},
         "transfer": {"test_images": 20}}


def test_the_transfer_experiment_runs_end_to_end_and_reports_per_depth(tiny_cifar, tmp_path):
    runs = tmp_path / "runs"
    source = load_config("smoke", {"name": "source", "models": ["fastnet"], "data": _data(
        tiny_cifar, tmp_path, classes=SOURCE_CLASSES), **QUICK})
    run_pipeline(source, runs, ["train"])
    weights = RunLayout(runs / "source").model("fastnet__baseline__s0").weights
    target = load_config("smoke", {
        "name": "target", "data": _data(tiny_cifar, tmp_path, classes=TARGET_CLASSES), **QUICK,
        "variants": {"baseline": {}, "linear_probe": {"freeze_backbone": True}, "finetune": {"backbone_lr_scale": 0.1}},
        "models": [{"name": "fastnet", "variants": ["baseline"]},
                   {"name": "fastnet", "init": str(weights), "variants": ["linear_probe", "finetune"]}]})
    run_pipeline(target, runs, ["train", "evaluate", "calibrate", "transfer", "compare", "report"])
    layout = RunLayout(runs / "target")
    table = pd.read_csv(layout.tables.transfer)
    assert sorted(table["variant"].unique()) == ["finetune", "linear_probe"]  # the from-scratch model has no source
    probe = table[table["variant"] == "linear_probe"]
    assert list(probe["depth"]) == ["stem", "stage1", "stage2", "stage3"]
    assert probe["cka"].to_numpy() == pytest.approx(1.0, abs=1e-5)  # a frozen backbone is its source
    assert (table[table["variant"] == "finetune"]["cka"] < 1 - 1e-4).any()
    report = layout.report_markdown.read_text(encoding="utf-8")
    assert re.search(r"^## \d+\. Transfer$", report, re.M) and "Training moved fastnet (finetune) most at" in report


def test_torchvision_weights_start_an_upscaled_fine_tune(tiny_cifar, tmp_path):
    """The ImageNet path without a download: a tv:resnet18 state_dict in torchvision's own format (1000 classes)
    starts a fine-tune on images upscaled to 64 px, where the network keeps torchvision's stem."""
    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18()
    torch.save(imagenet.state_dict(), tmp_path / "resnet18-imagenet.pth")
    config = load_config("smoke", {
        "name": "tv", "data": _data(tiny_cifar, tmp_path, classes=["cat", "dog"], image_size=64), **QUICK,
        "variants": {"finetune": {"backbone_lr_scale": 0.1}},
        "models": [{"name": "tv:resnet18", "init": str(tmp_path / "resnet18-imagenet.pth")}]})
    run_pipeline(config, tmp_path / "runs", ["train", "transfer"])
    layout = RunLayout(tmp_path / "runs" / "tv")
    trained = torch.load(layout.model("tv-resnet18__finetune__s0").weights)
    assert trained["net.conv1.weight"].shape == imagenet.conv1.weight.shape  # the 7x7 ImageNet stem, not adapted
    table = pd.read_csv(layout.tables.transfer)
    assert table["depth"].tolist()[0] == "stem" and len(table) >= 4
    assert table["cka"].between(-1e-6, 1 + 1e-6).all() and table["map_spearman"].notna().all()
