"""Model registry: ``@MODELS.register("name")`` on a ``(num_classes) -> nn.Module`` factory."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from xaiquest.registry import Registry

ModelFactory = Callable[[int], nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
