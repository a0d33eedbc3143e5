"""The shape every zoo model shares: stem -> stage1..stageN -> head.

Later stages address "the same depth" across architectures by these names (e.g. Grad-CAM at
``stage2``), so every family, and the torchvision adapter, exposes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaiquest.errors import ConfigError, UnknownNameError


def classifier_head(in_channels: int, num_classes: int, pool: str = "avg") -> nn.Sequential:
    """Global pooling + linear layer; the pooling choice is part of a recipe, not of the family."""
    pooling = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
    return nn.Sequential(pooling, nn.Flatten(), nn.Linear(in_channels, num_classes))


class ZooModel(nn.Module):
    """A classifier made of named depths; ``forward`` is just their composition."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def classifier(self) -> nn.Module:
        return self.head

    def named_depths(self) -> dict[str, nn.Module]:
        """Feature-map producing depths, shallow to deep: ``stem``, ``stage1`` … ``stageN``."""
        depths: dict[str, nn.Module] = {"stem": self.stem}
        depths.update({f"stage{i + 1}": stage for i, stage in enumerate(self.stages)})
        return depths


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """A named depth (``stage2``) or a dotted module path (``stages.1.0.conv1``) -> module."""
    depths = named_depths(model)
    if name in depths:
        return depths[name]
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    raise UnknownNameError(
        f"unknown layer {name!r}; use a named depth ({', '.join(depths)}) "
        "or a module path such as "
        + ", ".join(repr(n) for n in list(modules)[1:4])
    )


DEPTH_OVERRIDE = "depth_override_paths"
"""Attribute holding a user's ``{depth name: module path}``, which replaces a model's own depths."""


def override_depths(model: nn.Module, paths: dict[str, str]) -> nn.Module:
    """Name ``model``'s depths by module path (a config's ``depths:``), checking each path exists."""
    modules = dict(model.named_modules())
    unknown = [path for path in paths.values() if path not in modules or not path]
    if unknown:
        raise UnknownNameError(
            f"depths: no module {unknown[0]!r} in {type(model).__name__}; module paths look like "
            + ", ".join(repr(n) for n in list(modules)[1:5])
        )
    setattr(model, DEPTH_OVERRIDE, dict(paths))
    return model


def named_depths(model: nn.Module) -> dict[str, nn.Module]:
    """The named depths of any zoo or adapted model (a user's override first)."""
    paths = getattr(model, DEPTH_OVERRIDE, None)
    if paths is not None:
        return {name: model.get_submodule(path) for name, path in paths.items()}
    getter = getattr(model, "named_depths", None)
    if getter is None:
        raise UnknownNameError(f"{type(model).__name__} exposes no named depths")
    return getter()


def classifier(model: nn.Module) -> nn.Module:
    """The module that turns features into class scores (a zoo model's head, a library model's last
    top-level module): what a linear probe trains and a fine-tune keeps at the full learning rate."""
    getter = getattr(model, "classifier", None)
    if not callable(getter):
        raise ConfigError(f"{type(model).__name__} has no known classifier to train apart from its backbone; "
                          "drop freeze_backbone and backbone_lr_scale for this model")
    module: nn.Module = getter()
    return module


def last_depth(model: nn.Module) -> str:
    """The deepest feature depth, the usual target layer for CAM methods."""
    return list(named_depths(model))[-1]


def check_layers_reachable(model: nn.Module, purpose: str) -> None:
    """Layer methods read activations through forward hooks: a model whose hooks never run (a
    TorchScript module) refuses ``purpose`` up front instead of failing inside a library, or
    silently computing something else."""
    reason = getattr(model, "layers_unreachable", None)
    if reason:
        raise ConfigError(f"{purpose} works through the model's layers, but {reason}")
