"""FusionCAM (ours): Layer-CAMs at consecutive named depths, fused by a geometric mean.

Why: on 32x32 inputs the last depth of every CPU-sized zoo model is a 4x4 grid (resnet20: 8x8,
vgg16_bn: 2x2), so a last-layer CAM can only say which of 16 cells of the image matters. One depth
shallower has 4x the resolution, but its units see small receptive fields and its CAM lights up
edges and texture that are not specific to the class. A geometric mean keeps a location only where both depths agree: the
deep map supplies class-specificity, the shallow map sharpens where inside the deep map's coarse
cells the evidence lies. Layer-CAM weights (positive gradient per location, Jiang et al. 2021)
rather than Grad-CAM's averaged ones, because they stay meaningful at shallow layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.errors import ConfigError
from xaiquest.explainers.registry import Info, register_explainer
from xaiquest.models import named_depths, resolve_layer


def fused_depths(model: nn.Module, layer: str, levels: int) -> list[nn.Module]:
    """``layer`` and the ``levels - 1`` named depths before it, shallow to deep."""
    depths = named_depths(model)
    if layer not in depths:
        resolve_layer(model, layer)  # an unknown name fails here, listing the depths
        raise ConfigError(f"fusioncam fuses named depths; use one of {', '.join(depths)}, not {layer!r}")
    names = list(depths)
    end = names.index(layer) + 1
    if not 1 <= levels <= end:
        raise ConfigError(f"fusioncam at {layer} can fuse 1..{end} depths, not levels={levels}")
    return [depths[name] for name in names[end - levels : end]]


def forward_capturing(
    model: nn.Module, images: torch.Tensor, modules: list[nn.Module]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the outputs of ``modules`` from one forward pass (hooks removed afterwards)."""
    captured: dict[nn.Module, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda m, _i, out: captured.__setitem__(m, out)) for m in modules]
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return logits, [captured[m] for m in modules]


def layer_cam(activation: torch.Tensor, gradient: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Layer-CAM ``[N,H,W]`` upsampled bilinearly to ``size`` and scaled to max 1 per image.

    The geometric mean is indifferent to each map's scale; scaling first only keeps the product
    of several small untrained-model maps from underflowing float32.
    """
    cam = (gradient.clamp_min(0) * activation).sum(dim=1, keepdim=True).clamp_min(0)
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


@register_explainer("fusioncam", "ours", uses_layer=True)
def fusioncam(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    info: Info,
    levels: int = 2,
) -> torch.Tensor:
    """FusionCAM (ours): geometric mean of Layer-CAMs at ``layer`` and the depths just before it.

    One forward and one backward pass for the whole batch and every depth; the result is scaled
    to [0, 1] per image like the other CAMs.
    """
    modules = fused_depths(model, layer, levels)
    logits, activations = forward_capturing(model, images.requires_grad_(), modules)
    score = logits.gather(1, targets[:, None]).sum()
    gradients = torch.autograd.grad(score, activations)
    cams = [layer_cam(a.detach(), g, tuple(images.shape[-2:])) for a, g in zip(activations, gradients)]
    fused = torch.stack(cams).prod(dim=0).pow(1 / len(cams))
    return fused / fused.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
