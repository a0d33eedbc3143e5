"""Class activation maps through pytorch-grad-cam (``pytorch_grad_cam``).

Every CAM here is the library's own output: ReLU'd, bilinearly resized to the input (OpenCV) and
min-max scaled to [0, 1] per image. The CAM objects hook the target layer; the hooks are released
in a ``finally`` rather than through the library's context manager, whose ``__exit__`` swallows
``IndexError``. pytorch-grad-cam (which pulls in scikit-learn) is imported on first use, so
registering the methods, and checking a config's method names, stays cheap.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.explainers.own import forward_capturing
from xaiquest.explainers.registry import ExplainFn, Info, register_explainer
from xaiquest.models import resolve_layer

if TYPE_CHECKING:
    from pytorch_grad_cam.base_cam import BaseCAM

CPU_BATCH_SIZE = 128
"""Masked/ablated copies per forward for Score-CAM and Ablation-CAM: one forward per image for a
128-channel layer. The batch size only groups forwards (eval-mode BN), so results do not change."""


def cam_maps(
    cam_class: type[BaseCAM],
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    configure: dict[str, Any] | None = None,
    **constructor: Any,
) -> torch.Tensor:
    """Run ``cam_class`` on the whole batch at ``layer``; ``configure`` sets attributes after init."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = cam_class(model=model, target_layers=[resolve_layer(model, layer)], **constructor)
    try:
        for name, value in (configure or {}).items():
            setattr(cam, name, value)
        # The input requires grad so the hooked activations do even though parameters are frozen.
        maps = cam(input_tensor=images.requires_grad_(), targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()
    return torch.from_numpy(maps)


@contextmanager
def silent_progress() -> Iterator[None]:
    """Score-CAM and Ablation-CAM draw a tqdm bar per image; an audit of 1,000 images needs none."""
    from pytorch_grad_cam import ablation_cam, score_cam

    quiet = SimpleNamespace(tqdm=lambda iterable, **_: iterable)
    with mock.patch.object(score_cam, "tqdm", quiet), mock.patch.object(ablation_cam, "tqdm", quiet):
        yield


@functools.cache
def zero_ablation_class() -> type[nn.Module]:
    """The library's ablation layer, ablating a channel by zeroing it (Desai & Ramaswamy, WACV 2020).

    The library zeroes only when the batch minimum is exactly 0 and otherwise writes
    ``min - 1e7``; GELU/BN outputs (FastNet, DenseNet) are slightly negative, so that would push
    the network far off its input distribution instead of removing one channel.
    """
    from pytorch_grad_cam.ablation_layer import AblationLayer

    class ZeroAblation(AblationLayer):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            output = self.activations
            for i in range(output.size(0)):
                output[i, self.indices[i], :] = 0
            return output

    return ZeroAblation


LIBRARY_CAMS: dict[str, tuple[str, str]] = {
    "gradcam": ("GradCAM", "Grad-CAM (Selvaraju et al. 2017): activations weighted by their spatially averaged gradients."),
    "gradcampp": ("GradCAMPlusPlus", "Grad-CAM++ (Chattopadhyay et al. 2018): higher-order gradient weights, better for several instances."),
    "xgradcam": ("XGradCAM", "XGrad-CAM (Fu et al. 2020): activation-normalised gradient weights chosen to satisfy two axioms."),
    "layercam": ("LayerCAM", "Layer-CAM (Jiang et al. 2021): per-location positive-gradient weights, usable at shallow layers."),
    "hirescam": ("HiResCAM", "HiResCAM (Draelos & Carin 2020): element-wise gradient x activation, faithful for avg-pool heads."),
    "eigencam": ("EigenCAM", "Eigen-CAM (Muhammad & Yeasin 2020): first principal component of the activations; class-agnostic."),
}
"""CAMs used exactly as the library ships them: name -> (class name in ``pytorch_grad_cam``, description)."""


def library_class(name: str) -> type[BaseCAM]:
    cam_class: type[BaseCAM] = getattr(importlib.import_module("pytorch_grad_cam"), name)
    return cam_class


def _library_cam(class_name: str, description: str) -> ExplainFn:
    def compute(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: str, info: Info) -> torch.Tensor:
        return cam_maps(library_class(class_name), model, images, targets, layer)

    compute.__doc__ = description
    return compute


for _name, (_class_name, _description) in LIBRARY_CAMS.items():
    register_explainer(_name, "cam", uses_layer=True)(_library_cam(_class_name, _description))


@register_explainer("scorecam", "cam", uses_layer=True)
def scorecam(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    info: Info,
    batch_size: int = CPU_BATCH_SIZE,
) -> torch.Tensor:
    """Score-CAM as pytorch-grad-cam computes it: weights = softmax over channels of the masked inputs' target logits.

    The paper's weights are the increase in target-class probability over a baseline input
    (``scorecam_paper``); the library instead softmaxes the raw target logits across channels.
    """
    with silent_progress():
        # ScoreCAM takes no batch_size argument; it reads the attribute when present (default 16).
        return cam_maps(library_class("ScoreCAM"), model, images, targets, layer, configure={"batch_size": batch_size})


@register_explainer("scorecam_paper", "cam", uses_layer=True)
@torch.no_grad()
def scorecam_paper(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    info: Info,
    batch_size: int = CPU_BATCH_SIZE,
) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020) by the paper's formula: weights = increase in target probability over the baseline.

    Channel ``k``'s activation map is upsampled bilinearly and min-max scaled to a [0, 1] mask
    ``H_k``; its weight is ``softmax(f(X * H_k))_c - softmax(f(X_b))_c`` with the baseline ``X_b``
    the mean image (zeros in normalised space, which masking also fades towards); a constant
    channel carries no location and gets weight 0. The map is ``ReLU(sum_k w_k A_k)``, resized
    bilinearly and min-max scaled, as the library's CAMs end up.
    """
    _, (activations,) = forward_capturing(model, images, [resolve_layer(model, layer)])
    activations = activations.detach()
    count, channels = activations.shape[:2]
    masks, varies = _min_max(F.interpolate(activations, size=images.shape[-2:], mode="bilinear", align_corners=False))
    baseline = model(torch.zeros_like(images[:1])).softmax(1)[0, targets]
    # one flat queue of (image, channel) pairs, masked chunk by chunk: no loop over images, bounded memory
    pairs = torch.arange(count * channels)
    weights = torch.cat([
        model(images[chunk // channels] * masks.flatten(0, 1)[chunk, None]).softmax(1)[
            torch.arange(len(chunk)), targets[chunk // channels]]
        for chunk in pairs.split(batch_size)
    ]).view(count, channels) - baseline[:, None]
    weights = torch.where(varies.flatten(1), weights, 0.0)
    cam = (weights[:, :, None, None] * activations).sum(1, keepdim=True).clamp_min(0)
    cam, _ = _min_max(F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False))
    return cam[:, 0]


def _min_max(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N,C,H,W]`` maps scaled to [0, 1] per map, and which maps vary at all (a constant map scales to 0)."""
    low, high = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    return (maps - low) / (high - low).clamp_min(torch.finfo(maps.dtype).tiny), high > low


@register_explainer("ablationcam", "cam", uses_layer=True)
def ablationcam(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    info: Info,
    batch_size: int = CPU_BATCH_SIZE,
) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy 2020): channel weights = relative score drop when it is zeroed."""
    from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

    target_layer, ablation = resolve_layer(model, layer), zero_ablation_class()()
    try:
        with silent_progress():
            return cam_maps(library_class("AblationCAM"), model, images, targets, layer, ablation_layer=ablation,
                            batch_size=batch_size)
    finally:
        # The library swaps the layer for the ablation layer and back only on success.
        replace_layer_recursive(model, ablation, target_layer)
