"""Every zoo model (and the torchvision and timm adapters) honours the named-depth contract on 32x32 inputs."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.models import build_model, describe_models, model_names, named_depths, resolve_layer

STANDARD_SIZES = {"densenet121", "fastnet_wide", "mobilenetv2", "resnet18", "vgg16_bn"}
"""Slow to run on 2 CPU cores: checked with one eval forward of 2 images only."""


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32).contiguous(memory_format=torch.channels_last)


def depth_shapes(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Size], torch.Tensor]:
    """Output shape of every named depth (via forward hooks) and the logits."""
    shapes: dict[str, torch.Size] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape))
        for name, module in named_depths(model).items()
    ]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, logits


def assert_depth_contract(shapes: dict[str, torch.Size]) -> None:
    names = list(shapes)
    assert names == ["stem"] + [f"stage{i}" for i in range(1, len(names))] and len(names) >= 3
    assert all(len(shape) == 4 for shape in shapes.values())
    areas = [shape[-2] * shape[-1] for shape in shapes.values()]
    assert areas == sorted(areas, reverse=True) and areas[-1] > 1


def assert_resolves(model: nn.Module) -> None:
    """Depth names and dotted module paths resolve; anything else fails listing the depths."""
    depths = named_depths(model)
    assert all(resolve_layer(model, name) is module for name, module in depths.items())
    path, module = list(model.named_modules())[-1]
    assert "." in path and resolve_layer(model, path) is module
    with pytest.raises(UnknownNameError, match=", ".join(depths)):
        resolve_layer(model, "stage99")


def test_names_cover_every_family() -> None:
    expected = {"resnet20", "resnet_small", "resnet18", "vgg_small", "vgg16_bn", "densenet_small"}
    expected |= {"densenet121", "mobilenetv2_small", "mobilenetv2", "fastnet"}
    assert expected <= set(model_names())


@pytest.mark.parametrize("name", sorted(set(model_names()) - STANDARD_SIZES))
def test_small_model_contract(name: str) -> None:
    model = build_model(name, 10).to(memory_format=torch.channels_last)
    shapes, logits = depth_shapes(model.train(), images())
    assert logits.shape == (2, 10)
    assert_depth_contract(shapes)
    assert_resolves(model)
    logits.sum().backward()
    with torch.no_grad():
        assert model.eval()(images()).shape == (2, 10)
    assert build_model(name, num_classes=7)(images()).shape == (2, 7)


@pytest.mark.parametrize("name", ["fastnet", "fastnet_m"])
def test_fastnet_grid_covers_the_whole_image(name: str) -> None:
    """32 -> 16 -> 8 -> 4 exactly, and the last stage sees the bottom-right pixel (CAMs need both)."""
    model = build_model(name, 10).eval()
    x = images(1).requires_grad_(True)
    shapes, _ = depth_shapes(model, x)
    assert [shape[-1] for shape in shapes.values()] == [32, 16, 8, 4]
    named_depths(model)["stage3"](model.stages[1](model.stages[0](model.stem(x)))).sum().backward()
    assert x.grad[0, :, -1, -1].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(STANDARD_SIZES))
def test_standard_model_contract(name: str) -> None:
    model = build_model(name, 10).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        shapes, logits = depth_shapes(model, images())
    assert logits.shape == (2, 10)
    assert_depth_contract(shapes)
    assert_resolves(model)


def test_resolve_layer() -> None:
    model = build_model("resnet20", 10)
    assert resolve_layer(model, "stage2") is model.stages[1]
    assert resolve_layer(model, "stages.1.0.conv1") is model.stages[1][0].conv1
    with pytest.raises(UnknownNameError, match="stem, stage1, stage2, stage3"):
        resolve_layer(model, "stage9")


@pytest.mark.parametrize("name", ["tv:resnet18", "tv:mobilenet_v3_small", "timm:resnet10t"])
def test_library_adapters(name: str) -> None:
    model = build_model(name, 10).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        shapes, logits = depth_shapes(model, images())
    assert logits.shape == (2, 10)
    assert_depth_contract(shapes)
    assert shapes["stem"][-2:] == (32, 32)  # stride-1 stem, no max-pool
    assert_resolves(model)


def test_torchvision_resnet_depths_are_its_layers() -> None:
    model = build_model("tv:resnet18", num_classes=7)
    assert model.depth_paths == {
        "stem": "maxpool",
        "stage1": "layer1",
        "stage2": "layer2",
        "stage3": "layer3",
        "stage4": "layer4",
    }
    assert resolve_layer(model, "net.layer4.1.conv2") is model.net.layer4[1].conv2
    with torch.no_grad():
        assert model.eval()(images()).shape == (2, 7)


def test_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match="resnet20"):
        build_model("resnet21", 10)
    with pytest.raises(UnknownNameError, match="tv:resnet50"):
        build_model("tv:resnet5", 10)
    with pytest.raises(ConfigError, match="transformer"):
        build_model("tv:vit_b_16", 10)
    with pytest.raises(ConfigError, match="pretrained"):
        build_model("resnet20", 10, pretrained=True)


def test_describe_models() -> None:
    rows = {name: (params, description) for name, params, description in describe_models()}
    assert set(model_names()) < set(rows) and {"tv:<name>", "timm:<name>"} <= set(rows)
    params, description = rows["resnet20"]
    assert params is not None and 0.25e6 < params < 0.3e6
    assert description.startswith("ResNet-20")


def test_timm_resnet_depths_are_its_layers_and_its_stem_is_timms_own_from_64_px() -> None:
    import timm

    model = build_model("timm:resnet10t", 10)
    stages = {name: path for name, path in model.depth_paths.items() if name != "stem"}
    assert stages == {"stage1": "layer1", "stage2": "layer2", "stage3": "layer3", "stage4": "layer4"}
    # its deep stem (three convs, then a max-pool) ends inside itself: discovery stops at the second conv
    assert model.depth_paths["stem"] == "conv1.2"
    large = build_model("timm:resnet10t", 10, image_size=64)  # from 64 px: timm's own network
    own = timm.create_model("resnet10t", num_classes=10)
    assert {k: v.shape for k, v in large.net.state_dict().items()} == {k: v.shape for k, v in own.state_dict().items()}
    assert large.net.conv1[0].stride == (2, 2) and not isinstance(large.net.maxpool, nn.Identity)


def test_timm_depths_fall_where_timm_reports_its_feature_stages() -> None:
    """A second family (MobileNetV3: no max-pool, SE blocks, inverted residuals) checked against timm's own
    ``feature_info``: each discovered depth has the channels and resolution of one of timm's feature stages."""
    model = build_model("timm:mobilenetv3_small_050", 5, image_size=64).eval()
    with torch.no_grad():
        shapes, _ = depth_shapes(model, torch.randn(1, 3, 64, 64))
    discovered = [(shape[1], shape[-1]) for shape in shapes.values()]
    assert discovered == [(info["num_chs"], 64 // info["reduction"]) for info in model.net.feature_info]


def test_gradcam_explains_a_timm_model_as_the_library_does_on_the_bare_network() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from xaiquest.explainers import explain

    model = build_model("timm:resnet10t", 3).eval()
    x, targets = images(), torch.tensor([0, 2])
    maps = explain("gradcam", model, x, targets)  # at the last named depth, stage4
    with GradCAM(model=model.net, target_layers=[model.net.layer4]) as cam:
        direct = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(int(t)) for t in targets])
    assert maps.shape == (2, 32, 32)
    torch.testing.assert_close(maps, torch.from_numpy(direct), rtol=1e-4, atol=1e-5)


def test_timm_names_are_checked_and_a_missing_timm_names_the_extra(monkeypatch) -> None:
    with pytest.raises(UnknownNameError, match="timm:resnet10t"):
        build_model("timm:resnet10x", 10)
    with pytest.raises(ConfigError, match="no convolutional stages"):
        build_model("timm:vit_tiny_patch16_224", 10, image_size=224)
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ConfigError, match=r"timm:resnet10t needs timm, an optional extra: pip install 'xaiquest\[timm\]'"):
        build_model("timm:resnet10t", 10)
