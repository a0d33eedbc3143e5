"""Noise corruptions: per-pixel random perturbations, each one elementwise tensor expression."""

from __future__ import annotations

import torch

from xaiquest.data.corruptions.engine import Params, floor_to_uint8, normal, register_corruption, to_unit, uniform


@register_corruption("gaussian_noise", "noise", [{"std": c} for c in (0.04, 0.06, 0.08, 0.09, 0.10)])
def gaussian_noise(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Additive N(0, std) in [0, 1] units, independently per pixel and channel."""
    x = to_unit(images)
    return floor_to_uint8(x + normal(generator, x.shape, 0.0, p["std"]))


@register_corruption("shot_noise", "noise", [{"photons": c} for c in (500, 250, 100, 75, 50)])
def shot_noise(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Poisson photon counts: a value x becomes Poisson(x * photons) / photons.

    ``torch.poisson`` draws a rate-dependent number of random numbers per value, so here an
    image's noise also depends on the content of the images before it in the batch.
    """
    rate = to_unit(images) * p["photons"]
    return floor_to_uint8(torch.poisson(rate, generator=generator) / p["photons"])


@register_corruption("impulse_noise", "noise", [{"amount": c} for c in (0.01, 0.02, 0.03, 0.05, 0.07)])
def impulse_noise(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper as scikit-image's ``random_noise(mode='s&p')``: each value (pixel and channel)
    is replaced with probability ``amount``, by 1 or 0 with equal odds."""
    x = to_unit(images)
    flipped = uniform(generator, x.shape, 0.0, 1.0) < p["amount"]
    salt = (uniform(generator, x.shape, 0.0, 1.0) < 0.5).float()
    return floor_to_uint8(torch.where(flipped, salt, x))


@register_corruption("speckle_noise", "noise", [{"std": c} for c in (0.06, 0.1, 0.12, 0.16, 0.2)])
def speckle_noise(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise: x * (1 + N(0, std))."""
    x = to_unit(images)
    return floor_to_uint8(x + x * normal(generator, x.shape, 0.0, p["std"]))
