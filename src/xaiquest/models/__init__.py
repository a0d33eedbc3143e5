"""Model zoo: CIFAR-adapted families with shared named depths, plus any torchvision or timm CNN."""

from __future__ import annotations

import torch
from torch import nn

from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.models import densenet, fastnet, mobilenet, resnet, vgg  # noqa: F401  (registers)
from xaiquest.models.base import ZooModel, classifier, last_depth, named_depths, override_depths, resolve_layer
from xaiquest.models.registry import MODELS
from xaiquest.models.timm_adapter import PREFIX as TIMM_PREFIX
from xaiquest.models.timm_adapter import build_timm
from xaiquest.models.torchvision_adapter import PREFIX as TORCHVISION_PREFIX
from xaiquest.models.torchvision_adapter import build_torchvision

LIBRARY_PREFIXES = (TORCHVISION_PREFIX, TIMM_PREFIX)
"""Models a library builds: their layers depend on the image size (the small-image stem)."""

__all__ = [
    "LIBRARY_PREFIXES",
    "MODELS",
    "TIMM_PREFIX",
    "TORCHVISION_PREFIX",
    "ZooModel",
    "build_model",
    "classifier",
    "describe_models",
    "last_depth",
    "model_names",
    "named_depths",
    "override_depths",
    "resolve_layer",
]


def build_model(name: str, num_classes: int, pretrained: bool = False, image_size: int = 32) -> nn.Module:
    """A registered model, any torchvision CNN as ``tv:<name>`` or any timm CNN as ``timm:<name>`` (with
    timm installed); unknown names list the options.

    ``pretrained`` loads torchvision's ImageNet weights from the local torch cache; zoo models have none.
    ``image_size`` decides whether a library model's stem is adapted to small images.
    """
    if name.startswith(TORCHVISION_PREFIX):
        return build_torchvision(name.removeprefix(TORCHVISION_PREFIX), num_classes, pretrained, image_size)
    if name.startswith(TIMM_PREFIX):
        return build_timm(name.removeprefix(TIMM_PREFIX), num_classes, pretrained, image_size)
    if pretrained:
        raise ConfigError(f"{name!r} has no pretrained weights; only {TORCHVISION_PREFIX}<name> models do")
    try:
        factory = MODELS.get(name)
    except UnknownNameError as error:
        raise UnknownNameError(
            f"{error}; or any torchvision CNN as {TORCHVISION_PREFIX}<name>, any timm CNN as {TIMM_PREFIX}<name>"
        ) from None
    return factory(num_classes)


def model_names() -> list[str]:
    """Registered zoo models (library ones are reachable through the ``tv:`` and ``timm:`` prefixes)."""
    return MODELS.names()


def describe_models() -> list[tuple[str, int | None, str]]:
    """(name, parameters at 10 classes, factory docstring's first line) per model, then ``tv:`` and ``timm:``."""
    rows: list[tuple[str, int | None, str]] = [
        (name, count_parameters(name), (MODELS.get(name).__doc__ or "").strip().splitlines()[0]) for name in MODELS
    ]
    rows.append(
        (f"{TORCHVISION_PREFIX}<name>", None, "Any torchvision CNN (e.g. tv:resnet50), stem adapted to 32x32 inputs.")
    )
    rows.append(
        (f"{TIMM_PREFIX}<name>", None, "Any timm CNN (e.g. timm:resnet10t; extra: xaiquest[timm]), stem adapted likewise.")
    )
    return rows


def count_parameters(name: str) -> int:
    """Built on the meta device: counting needs shapes, not memory or initialisation time."""
    with torch.device("meta"):
        model = MODELS.get(name)(10)
    return sum(p.numel() for p in model.parameters())
