"""Corruption parameters that follow the image size: CIFAR-10-C's at 32 px, ImageNet-C's from 224 px.

Hendrycks & Dietterich (2019) published two parameter sets: ``make_cifar_c.py`` for 32-px images
(the engine's registered tables) and ``make_imagenet_c.py`` for 224-px crops (below, in the
engine's parameter names; values from hendrycks/robustness, Apache-2.0). A blur radius of 0.3 px or
JPEG quality 80 that is a fair corruption at 32 px is invisible at 224 px, so a dataset of another
size gets parameters in between.

The rule, for an image side ``s``: ``t = clip(log(s / 32) / log(224 / 32), 0, 1)``, the position of
``s`` between the two sizes on a log scale (64 px: t = 0.36; 128 px: t = 0.71). A number is
``(1 - t) * cifar + t * imagenet``, rounded when both are integers; anything else (spatter's liquid,
zoom-blur's factor list), and every parameter of a corruption whose two sets name different
parameters, comes from the nearer set (CIFAR-10-C while t < 0.5). Severities stay aligned: severity
k at any size interpolates the two sets' severity k. One exception: glass blur keeps CIFAR-10-C's
``max_delta`` of 1 at every size, since the engine reproduces the reference's sequential swap loop
as one parallel gather, which is exact only for 1 (ImageNet-C uses 1-4), so at large sizes its
glass blur is milder than ImageNet-C's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

CIFAR_SIZE = 32
IMAGENET_SIZE = 224


def _arange(stop: float, step: float) -> tuple[float, ...]:
    """``np.arange(1, stop, step)`` as the reference evaluates it (its zoom-blur factors)."""
    return tuple(float(f) for f in np.arange(1, stop, step))


def _rows(keys: tuple[str, ...], *values: tuple[Any, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(dict(zip(keys, row)) for row in values)


IMAGENET_C: dict[str, tuple[dict[str, Any], ...]] = {
    "gaussian_noise": _rows(("std",), (0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
    "shot_noise": _rows(("photons",), (60,), (25,), (12,), (5,), (3,)),
    "impulse_noise": _rows(("amount",), (0.03,), (0.06,), (0.09,), (0.17,), (0.27,)),
    "speckle_noise": _rows(("std",), (0.15,), (0.2,), (0.35,), (0.45,), (0.6,)),
    "gaussian_blur": _rows(("sigma",), (1,), (2,), (3,), (4,), (6,)),
    "glass_blur": _rows(("sigma", "max_delta", "iterations"),
                        (0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "defocus_blur": _rows(("radius", "alias_blur"), (3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "motion_blur": _rows(("radius", "sigma"), (10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": _rows(("zoom_factors",), (_arange(1.11, 0.01),), (_arange(1.16, 0.01),), (_arange(1.21, 0.02),),
                       (_arange(1.26, 0.02),), (_arange(1.31, 0.03),)),
    "fog": _rows(("thickness", "decay"), (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "frost": _rows(("image_weight", "frost_weight"), (1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "snow": _rows(("loc", "scale", "zoom", "threshold", "blur_radius", "blur_sigma", "blend"),
                  (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                  (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "spatter": (
        *_rows(("liquid", "loc", "scale", "sigma", "threshold", "intensity"),
               ("water", 0.65, 0.3, 4, 0.69, 0.6), ("water", 0.65, 0.3, 3, 0.68, 0.6), ("water", 0.65, 0.3, 2, 0.68, 0.5)),
        *_rows(("liquid", "loc", "scale", "sigma", "threshold", "mud_sigma"),
               ("mud", 0.65, 0.3, 1, 0.65, 1.5), ("mud", 0.67, 0.4, 1, 0.65, 1.5)),
    ),
    "contrast": _rows(("factor",), (0.4,), (0.3,), (0.2,), (0.1,), (0.05,)),
    "brightness": _rows(("value_shift",), (0.1,), (0.2,), (0.3,), (0.4,), (0.5,)),
    "saturate": _rows(("factor", "shift"), (0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    "jpeg_compression": _rows(("quality",), (25,), (18,), (15,), (10,), (7,)),
    "pixelate": _rows(("factor",), (0.6,), (0.5,), (0.4,), (0.3,), (0.25,)),
    # the reference multiplies by 244 ("should have been 224, but ultimately nothing is incorrect")
    "elastic_transform": _rows(("alpha", "sigma", "affine"), (488, 170.8, 24.4), (488, 19.52, 48.8),
                               (12.2, 2.44, 4.88), (17.08, 2.44, 4.88), (29.28, 2.44, 4.88)),
}


KEPT_AT_CIFAR: frozenset[tuple[str, str]] = frozenset({("glass_blur", "max_delta")})
"""Parameters the engine implements only at their CIFAR-10-C value (see the module docstring)."""


def size_position(size: int) -> float:
    """``t`` of the module docstring: 0 at <= 32 px, 1 at >= 224 px, log-linear in between."""
    ratio = math.log(size / CIFAR_SIZE) / math.log(IMAGENET_SIZE / CIFAR_SIZE)
    return min(1.0, max(0.0, ratio))


def sized_parameters(name: str, severity: int, cifar: Mapping[str, Any], size: int) -> dict[str, Any]:
    """The parameters of ``name`` at ``severity`` for ``size``-px images (``cifar``: its 32-px set)."""
    t = size_position(size)
    if t == 0.0 or name not in IMAGENET_C:
        return dict(cifar)
    imagenet = IMAGENET_C[name][severity - 1]
    if set(imagenet) != set(cifar):
        return dict(cifar if t < 0.5 else imagenet)
    return {key: cifar[key] if (name, key) in KEPT_AT_CIFAR else _between(cifar[key], imagenet[key], t) for key in cifar}


def _between(small: Any, large: Any, t: float) -> Any:
    numbers = (int, float)
    if isinstance(small, numbers) and isinstance(large, numbers) and not isinstance(small, bool):
        value = (1 - t) * small + t * large
        return round(value) if isinstance(small, int) and isinstance(large, int) else value
    return small if t < 0.5 else large
