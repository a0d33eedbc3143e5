"""Every explainer runs on the zoo, agrees with its library, honours its axioms and leaves the model as it was."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, GuidedGradCam
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.explainers import describe_explainers, explain, explainer_names
from xaiquest.explainers.own import forward_capturing
from xaiquest.models import build_model, last_depth, resolve_layer

METHODS = explainer_names()
INPUT_GRADIENT_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "guided_backprop")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def images(n: int = 2) -> torch.Tensor:
    """Smooth random images (upsampled 8x8 noise): SLIC finds real superpixels in them."""
    return F.interpolate(torch.randn(n, 3, 8, 8), size=32, mode="bilinear", align_corners=False)


def targets(n: int = 2) -> torch.Tensor:
    return torch.arange(1, n + 1)


def hooks(model: nn.Module) -> list[str]:
    """Modules that still carry any forward/backward (pre-)hook."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return [name for name, m in model.named_modules() if any(getattr(m, kind) for kind in kinds)]


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything an explainer could leave changed: values, grads, flags, modules."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [p.grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "modules": list(model.modules()),
    }


def assert_unchanged(model: nn.Module, before: dict[str, object]) -> None:
    after = snapshot(model)
    assert hooks(model) == []
    assert after["state"].keys() == before["state"].keys()
    assert all(torch.equal(after["state"][k], v) for k, v in before["state"].items())
    assert after["requires_grad"] == before["requires_grad"]
    assert all(a is b for a, b in zip(after["grad"], before["grad"]))
    for key in ("training", "inplace", "modules"):
        assert after[key] == before[key], key


def caller_state(model: nn.Module) -> nn.Module:
    """A model as a training loop might hand it over: train mode, part frozen, a stored grad."""
    model.train()
    for p in model.stem.parameters():
        p.requires_grad_(False)
    head = list(model.head.parameters())[0]
    head.grad = torch.ones_like(head)
    return model


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model_name", ["fastnet", "resnet_small"])
def test_every_method_maps_and_leaves_model_untouched(model_name: str, method: str) -> None:
    model = caller_state(build_model(model_name, 10))
    before = snapshot(model)
    maps = explain(method, model, images(), targets())
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert torch.isfinite(maps).all()
    assert_unchanged(model, before)


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "guided_gradcam", "fusioncam"])
@pytest.mark.parametrize("model_name", ["vgg_small", "densenet_small", "mobilenetv2_small"])
def test_other_families(model_name: str, method: str) -> None:
    model = build_model(model_name, 10)
    maps = explain(method, model, images(), targets())
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
    assert hooks(model) == []


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop", "fusioncam"])
def test_torchvision_model_with_inplace_shared_relus(method: str) -> None:
    """torchvision's ResNet calls one ``ReLU(inplace=True)`` twice per block."""
    model = build_model("tv:resnet18", 10)
    before = snapshot(model)
    maps = explain(method, model, images(), targets())
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    assert_unchanged(model, before)


def test_inplace_relu_does_not_corrupt_hooked_activations() -> None:
    """A ReLU(inplace=True) after the hooked layer would overwrite the activations the CAM reads."""
    model, x, y = build_model("tv:resnet18", 10).eval(), images(), targets()
    ours = explain("gradcam", model, x, y, layer="net.layer1.0.bn1")
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    with GradCAM(model=model, target_layers=[resolve_layer(model, "net.layer1.0.bn1")]) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])
    torch.testing.assert_close(ours, torch.from_numpy(reference), atol=1e-5, rtol=1e-4)


def test_gradcam_equals_pytorch_grad_cam() -> None:
    model, x, y = build_model("resnet_small", 10).eval(), images(3), targets(3)
    ours = explain("gradcam", model, x, y, layer="stage2")
    with GradCAM(model=model, target_layers=[resolve_layer(model, "stage2")]) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])
    torch.testing.assert_close(ours, torch.from_numpy(reference), atol=1e-5, rtol=1e-4)


class SmoothNet(nn.Module):
    """Conv-GELU-avgpool-linear: smooth everywhere, so IG converges with few steps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.gelu(self.conv(x)).mean(dim=(2, 3)))


def test_integrated_gradients_completeness() -> None:
    model, x, y = SmoothNet(), images(4), targets(4)
    info: dict[str, torch.Tensor] = {}
    maps = explain("integrated_gradients", model, x, y, info=info, n_steps=32)
    with torch.no_grad():
        difference = model(x)[torch.arange(4), y] - model(torch.zeros_like(x))[torch.arange(4), y]
    assert info["delta"].shape == (4,)
    assert (info["delta"].abs() < 0.05 * difference.abs()).all()
    torch.testing.assert_close(maps.sum(dim=(1, 2)), difference, rtol=0.05, atol=0.0)


def test_integrated_gradients_delta_is_the_completeness_gap() -> None:
    """On a non-smooth zoo model too, the recorded delta is sum(map) - (F(x) - F(baseline))."""
    model, x, y = build_model("fastnet", 10).eval(), images(), targets()
    info: dict[str, torch.Tensor] = {}
    maps = explain("integrated_gradients", model, x, y, info=info)
    with torch.no_grad():
        difference = model(x)[torch.arange(2), y] - model(torch.zeros_like(x))[torch.arange(2), y]
    torch.testing.assert_close(maps.sum(dim=(1, 2)) - difference, info["delta"], atol=1e-6, rtol=1e-3)


def test_integrated_gradients_batches_fewer_rows_of_larger_images_with_the_same_maps() -> None:
    """At 128 px one pass holds at most 16 interpolated images (the pixels of 256 at 32 px), without changing the
    maps or the deltas: large images must not hold 256 interpolated copies' activations at once."""
    from captum.attr import IntegratedGradients

    model = build_model("fastnet", 10).eval()
    x, y = torch.randn(5, 3, 128, 128, generator=torch.Generator().manual_seed(0)), targets(5)
    rows: list[int] = []
    model.register_forward_pre_hook(lambda _module, inputs: rows.append(len(inputs[0])))
    info: dict[str, torch.Tensor] = {}
    maps = explain("integrated_gradients", model, x, y, info=info, n_steps=8)
    assert max(rows) <= 16
    whole, delta = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=y, n_steps=8,
                                                        internal_batch_size=40, return_convergence_delta=True)
    torch.testing.assert_close(maps, whole.sum(dim=1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(info["delta"], delta.float(), atol=1e-5, rtol=1e-4)


class LeftHalfNet(nn.Module):
    """Logits that depend only on the left 16 columns of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x[..., :16])).flatten(1))


@pytest.mark.parametrize("method", [*INPUT_GRADIENT_METHODS, "occlusion"])
def test_ignored_input_gets_no_attribution(method: str) -> None:
    maps = explain(method, LeftHalfNet(), images(), targets()).abs()
    # occlusion windows are 8 wide at stride 4: pixels 16-19 share a window with the left half
    ignored = 20 if method == "occlusion" else 16
    # occlusion differences two forward passes whose batched matmuls may round differently (~1e-8)
    tolerance = 1e-6 * maps.amax().item() if method == "occlusion" else 0.0
    assert (maps[..., ignored:] <= tolerance).all()
    assert (maps[..., :16].sum(dim=(1, 2)) > 0).all()


def test_layer_selection_changes_cams() -> None:
    model, x, y = build_model("resnet_small", 10), images(), targets()
    shallow = explain("gradcam", model, x, y, layer="stage1")
    deep = explain("gradcam", model, x, y, layer="stage3")
    assert not torch.allclose(shallow, deep, atol=1e-3)
    torch.testing.assert_close(explain("gradcam", model, x, y), deep)  # default = last depth
    module_path = explain("gradcam", model, x, y, layer="stages.2")
    torch.testing.assert_close(module_path, deep)


def test_unknown_names_list_the_options() -> None:
    model, x, y = build_model("fastnet", 10), images(), targets()
    with pytest.raises(UnknownNameError) as error:
        explain("gradcamm", model, x, y)
    assert all(name in str(error.value) for name in METHODS)
    with pytest.raises(UnknownNameError, match="stem, stage1, stage2, stage3"):
        explain("gradcam", model, x, y, layer="stage9")
    with pytest.raises(UnknownNameError, match="stem, stage1, stage2, stage3"):
        explain("fusioncam", model, x, y, layer="stage9")
    with pytest.raises(ConfigError, match="n_steps=32"):
        explain("integrated_gradients", model, x, y, n_step=64)
    assert hooks(model) == []


def test_sampling_methods_are_seeded_and_keep_the_global_rng() -> None:
    model, x, y = build_model("resnet_small", 10), images(), targets()
    torch.manual_seed(1)
    first = explain("smoothgrad", model, x, y, nt_samples=4)
    after_explain = torch.rand(1)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after_explain)
    assert torch.equal(explain("smoothgrad", model, x, y, nt_samples=4), first)
    assert not torch.equal(explain("smoothgrad", model, x, y, nt_samples=4, seed=1), first)


def test_fusioncam_fuses_the_depths_it_is_given() -> None:
    model, x, y = build_model("resnet_small", 10), images(), targets()
    single = explain("fusioncam", model, x, y, levels=1)
    layercam = layer_cam_reference(model, x, y, "stage3")
    torch.testing.assert_close(single, layercam, atol=1e-5, rtol=1e-4)
    fused = explain("fusioncam", model, x, y, levels=2)
    assert not torch.allclose(fused, single, atol=1e-3)
    with pytest.raises(ConfigError, match="named depths"):
        explain("fusioncam", model, x, y, layer="stages.2.0.conv1")


def layer_cam_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str) -> torch.Tensor:
    """Layer-CAM by hand, bilinear upsampling, scaled to max 1 (FusionCAM with one depth)."""
    captured: list[torch.Tensor] = []
    handle = resolve_layer(model, layer).register_forward_hook(lambda _m, _i, out: captured.append(out))
    logits = model.eval()(x)
    handle.remove()
    (gradient,) = torch.autograd.grad(logits[torch.arange(len(y)), y].sum(), captured)
    cam = F.relu((F.relu(gradient) * captured[0]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[:, 0].detach()
    return cam / cam.amax(dim=(1, 2), keepdim=True)


def test_describe_explainers() -> None:
    rows = {name: (family, uses_layer, text) for name, family, uses_layer, text in describe_explainers()}
    assert set(rows) == set(METHODS) and len(METHODS) == 17
    assert {family for family, _, _ in rows.values()} == {"cam", "gradient", "perturbation", "ours"}
    assert rows["gradcam"][1] and not rows["saliency"][1] and all(text for *_, text in rows.values())


def test_guided_backprop_and_guided_gradcam_equal_captums_on_a_relu_network() -> None:
    model, x, y = build_model("resnet_small", 10).eval(), images(3), targets(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backprop = GuidedBackprop(model).attribute(x.clone(), target=y).abs().sum(1)
        guided_cam = GuidedGradCam(model, resolve_layer(model, "stage2")).attribute(
            x.clone(), target=y, interpolate_mode="bilinear"
        ).abs().sum(1)
    torch.testing.assert_close(explain("guided_backprop", model, x, y), backprop)
    torch.testing.assert_close(explain("guided_gradcam", model, x, y, layer="stage2"), guided_cam)


@pytest.mark.parametrize("model_name", ["fastnet", "mobilenetv2_small", "tv:mobilenet_v3_small"])
def test_guided_rule_applies_beyond_relu(model_name: str) -> None:
    """GELU (FastNet), ReLU6 (MobileNetV2), Hardswish (MobileNetV3): Captum leaves the plain gradient there."""
    model, x, y = build_model(model_name, 10).eval(), images(), targets()
    saliency = explain("saliency", model, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain_cam = GuidedGradCam(model, resolve_layer(model, last_depth(model)))
        plain_guided_cam = plain_cam.attribute(x.clone(), target=y, interpolate_mode="bilinear").abs().sum(1)
    for guided, plain in ((explain("guided_backprop", model, x, y), saliency),
                          (explain("guided_gradcam", model, x, y), plain_guided_cam)):
        assert (guided - plain).abs().sum() > 0.1 * plain.abs().sum()


class SiLUNet(nn.Module):
    """Conv-SiLU twice, then a linear head; ``activation`` swaps the second nonlinearity."""

    def __init__(self, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.activation = activation
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        features = self.activation(features) if self.activation is not None else F.relu(features, inplace=True)
        return self.fc(features.mean(dim=(2, 3)))


def test_guided_rule_matches_a_hand_written_guided_backward_and_refuses_what_it_cannot_guide() -> None:
    x, y = images(), targets()
    model = SiLUNet().eval()
    inputs = x.clone().requires_grad_()
    first = model.body[0](inputs)
    hidden = F.silu(first)
    second = model.body[2](hidden)
    logits = model.fc(F.relu(second).mean(dim=(2, 3)))
    score = logits[torch.arange(2), y].sum()
    (g_relu,) = torch.autograd.grad(score, second, retain_graph=True)
    g_relu = (g_relu * (second > 0)).clamp_min(0)  # guided ReLU (functional, with inplace=True)
    (g_hidden,) = torch.autograd.grad(second, hidden, g_relu, retain_graph=True)
    (g_silu,) = torch.autograd.grad(hidden, first, g_hidden, retain_graph=True)
    (g_input,) = torch.autograd.grad(first, inputs, g_silu.clamp_min(0))
    torch.testing.assert_close(explain("guided_backprop", model, x, y), g_input.abs().sum(1), atol=1e-6, rtol=1e-4)
    with pytest.raises(ConfigError, match=r"Softsign \(activation\)"):
        explain("guided_backprop", SiLUNet(nn.Softsign()), x, y)
    with pytest.raises(ConfigError, match="no elementwise activation"):
        explain("guided_backprop", nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), x, y)


class TinyCamNet(nn.Module):
    """Conv-ReLU (the explained layer, 4 channels at 8x8) then pooled linear head: a net small enough to loop over."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4))
        self.fc = nn.Linear(4, 3)

    def named_depths(self) -> dict[str, nn.Module]:
        return {"features": self.features}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def score_cam_by_the_formula(model: nn.Module, x: torch.Tensor, y: torch.Tensor, paper: bool) -> torch.Tensor:
    """Score-CAM one image and one channel at a time: the paper's weights, or pytorch-grad-cam's."""
    maps = []
    for image, target in zip(x, y):
        activations = model.features(image[None])[0]
        weights = []
        for channel in activations:
            mask = F.interpolate(channel[None, None], size=(32, 32), mode="bilinear", align_corners=not paper)[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            logits = model(image[None] * mask)[0]
            baseline = model(torch.zeros_like(image[None]))[0].softmax(0)[target]
            weights.append(logits.softmax(0)[target] - baseline if paper else logits[target])
        weights = torch.stack(weights) if paper else torch.stack(weights).softmax(0)
        cam = (weights[:, None, None] * activations).sum(0).clamp_min(0)
        cam = F.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
        maps.append((cam - cam.min()) / (cam.max() - cam.min()))
    return torch.stack(maps).detach()


def test_scorecam_paper_follows_the_papers_formula_and_the_library_softmaxes_logits_over_channels() -> None:
    model, x, y = TinyCamNet().eval(), images(3), torch.tensor([0, 1, 2])
    paper = explain("scorecam_paper", model, x, y, layer="features")
    torch.testing.assert_close(paper, score_cam_by_the_formula(model, x, y, paper=True), atol=1e-5, rtol=1e-4)
    library = explain("scorecam", model, x, y, layer="features")
    torch.testing.assert_close(library, score_cam_by_the_formula(model, x, y, paper=False), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(paper, library, atol=1e-2)


def test_fusioncam_docs_state_the_last_depth_grids_the_models_have() -> None:
    """The motivation rests on how coarse the last depth is; the docs must give the real sizes."""
    docs = (Path(__file__).parents[1] / "docs" / "explainers.md").read_text()
    motivation = docs[docs.index("**Motivation.**") : docs.index("**Method.**")]
    for name in ("fastnet", "resnet_small", "vgg_small", "densenet_small", "mobilenetv2_small"):
        model = build_model(name, 10).eval()
        _, (last,) = forward_capturing(model, images(1), [resolve_layer(model, last_depth(model))])
        assert tuple(last.shape[-2:]) == (4, 4) and name in motivation
    assert "4x4" in motivation and "3x3" not in motivation
