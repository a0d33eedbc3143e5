"""Gradient attributions through Captum (imported on first use), reduced to one map per image.

Channel reduction: gradients are per colour channel and their sign says which way a small
change moves the logit, not whether the pixel matters, so maps are the sum of absolute values
over channels. Integrated Gradients is the exception: it is additive (completeness, the map sums
to F(x) - F(baseline)), so its map is the signed channel sum, which keeps that property.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from xaiquest.data.augment import active_normalisation
from xaiquest.explainers.guided import guided_gradients
from xaiquest.explainers.registry import Info, register_explainer, seeded
from xaiquest.data.pixels import CIFAR_PIXELS, rows_per_batch
from xaiquest.models import resolve_layer

def pixel_range() -> float:
    """Width of the [0, 1] pixel range in normalised units (mean over channels, about 4.0 on
    CIFAR-10): the "input range" SmoothGrad's noise level is a fraction of. Fixed by the dataset's
    statistics, not the batch's own range, so a map does not depend on which images share its batch."""
    std = active_normalisation().std
    return sum(1 / s for s in std) / len(std)


def abs_channel_sum(attributions: torch.Tensor) -> torch.Tensor:
    """``[N,C,H,W]`` -> ``[N,H,W]``: how much each pixel matters, whatever the direction."""
    return attributions.detach().abs().sum(dim=1)


@contextmanager
def quiet_captum() -> Iterator[None]:
    """Captum warns on every call that it set ``requires_grad`` on the input; expected here (the
    input is our copy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        yield


@register_explainer("saliency", "gradient", uses_layer=False)
def saliency(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: None, info: Info
) -> torch.Tensor:
    """Saliency (Simonyan et al. 2014): absolute input gradient of the target logit."""
    from captum.attr import Saliency

    with quiet_captum():
        return abs_channel_sum(Saliency(model).attribute(images, target=targets, abs=True))


NOISE_BATCH = 32
"""Noisy copies of each image per forward pass in SmoothGrad."""


@register_explainer("smoothgrad", "gradient", uses_layer=False)
def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: None,
    info: Info,
    nt_samples: int = 128,
    noise_level: float = 0.10,
    seed: int = 0,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): input gradients averaged over Gaussian-noised copies.

    As in the paper, signed gradients are averaged and the absolute value is taken afterwards;
    the noise std is ``noise_level`` times the pixel range, the low end of the paper's 10-20 %.
    128 samples at that level make the maps repeatable (two seeds' maps correlate at Spearman
    0.81 on the quick profile's FastNet; 0.47 with 16 samples at 15 %: docs/explanation-quality.md).
    Noisy copies run :data:`NOISE_BATCH` per image at a time, so memory does not grow with the count.
    """
    from captum.attr import NoiseTunnel, Saliency

    tunnel = NoiseTunnel(Saliency(model))
    with quiet_captum(), seeded(seed):
        attributions = tunnel.attribute(
            images, nt_type="smoothgrad", nt_samples=nt_samples, nt_samples_batch_size=min(nt_samples, NOISE_BATCH),
            stdevs=noise_level * pixel_range(), target=targets, abs=False,
        )
    return abs_channel_sum(attributions)


IG_PIXELS = 256 * CIFAR_PIXELS
"""Most pixels in one Integrated Gradients pass: the default internal batch at 32 px, unchanged there."""


@register_explainer("integrated_gradients", "gradient", uses_layer=False)
def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: None,
    info: Info,
    n_steps: int = 32,
    internal_batch_size: int = 256,
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from the mean image; signed channel sum.

    The baseline is zero in normalised space, i.e. the dataset's mean colour, the neutral input
    the network was trained around. ``info["delta"]`` receives the convergence delta per image,
    sum(attributions) - (F(x) - F(baseline)): large values mean ``n_steps`` is too small.
    ``internal_batch_size`` interpolated images go through each backward pass, but never more pixels than
    256 CIFAR images hold (:data:`IG_PIXELS`): at 224 px that is 5 images, and a ResNet-18 on 8 images then
    peaks at 1.0 GiB instead of 6.3 GiB. It changes how the work is split, not the result.
    """
    from captum.attr import IntegratedGradients

    rows = rows_per_batch(internal_batch_size, images, pixels=IG_PIXELS)
    method = IntegratedGradients(model)
    attributions, deltas = [], []
    with quiet_captum():
        for start in range(0, len(images), rows):  # Captum batches at least all of a call's images together
            part = images[start : start + rows]
            attribution, delta = method.attribute(
                part, baselines=torch.zeros_like(part), target=targets[start : start + rows], n_steps=n_steps,
                internal_batch_size=rows, return_convergence_delta=True,
            )
            attributions.append(attribution.detach().sum(dim=1))
            deltas.append(delta.detach().float().cpu())
    info["delta"] = torch.cat(deltas)
    return torch.cat(attributions)


@register_explainer("guided_backprop", "gradient", uses_layer=False, sees_modules=True)
def guided_backprop(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: None, info: Info
) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al. 2015): only positive gradients pass each activation.

    The rule is applied at every elementwise activation (GELU, SiLU, Hardswish, ReLU6, ...), not
    only at ``nn.ReLU`` as Captum does (``guided.py``); on ReLU networks it equals Captum's.
    """
    return abs_channel_sum(guided_gradients(model, images, targets))


@register_explainer("guided_gradcam", "gradient", uses_layer=True)
def guided_gradcam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: str, info: Info
) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times the layer's upsampled Grad-CAM.

    Captum's ``GuidedGradCam`` computation with our guided rule: Grad-CAM (ReLU'd, unscaled) is
    upsampled bilinearly like the CAM family (Captum's default is nearest).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    with quiet_captum():
        cam = LayerGradCam(model, resolve_layer(model, layer)).attribute(images, target=targets, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam.detach(), tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return abs_channel_sum(guided_gradients(model, images, targets) * cam)
