"""Any torchvision CNN classifier as a zoo model (``tv:<name>``): built by torchvision, optionally
holding its ImageNet weights from the local torch cache, then adapted like every library model
(small-image stem, discovered depths: ``models/adapter.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaiquest.errors import ConfigError
from xaiquest.models.adapter import AdaptedModel, adapt, unknown_name

PREFIX = "tv:"

TRANSFORMER_PREFIXES = ("vit_", "swin_", "maxvit_")
"""Token-based models: their stems are patch embeddings and their maps are not NCHW stages."""


def build_torchvision(name: str, num_classes: int, pretrained: bool = False, image_size: int = 32) -> AdaptedModel:
    """A torchvision CNN by name, randomly initialised unless ``pretrained`` (read from the torch cache)."""
    import torchvision  # imported on first use: it costs more than a second, and most runs need none of it

    check_name(name)
    net = torchvision.models.get_model(name, weights=None, **builder_kwargs(name, num_classes, pretrained))
    if pretrained:
        load_imagenet_weights(net, name)
    return adapt(net, PREFIX + name, image_size)


def cnn_names() -> list[str]:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return [n for n in names if not n.startswith(TRANSFORMER_PREFIXES)]


def check_name(name: str) -> None:
    if name.startswith(TRANSFORMER_PREFIXES):
        raise ConfigError(f"{PREFIX}{name} is a vision transformer; the adapter needs a CNN")
    names = cnn_names()
    if name not in names:
        raise unknown_name("torchvision", PREFIX, name, names, "torchvision.models.list_models()")


def builder_kwargs(name: str, num_classes: int, pretrained: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        # Auxiliary classifiers only help ImageNet training and make train-mode outputs tuples;
        # transform_input converts our normalisation to the one the Google weights expect.
        kwargs.update(aux_logits=False, init_weights=True, transform_input=pretrained)
    return kwargs


def cached_weights_file(name: str) -> Path:
    """Where torch keeps torchvision's default weights of ``name`` once downloaded (the hub cache)."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_imagenet_weights(net: nn.Module, name: str) -> None:
    """Copy torchvision's default weights, read from the local torch cache (never downloaded: these
    machines are offline), into every tensor of matching shape (all but the classifier)."""
    file = cached_weights_file(name)
    if not file.is_file():
        import torchvision

        url = torchvision.models.get_model_weights(name).DEFAULT.url
        raise ConfigError(
            f"pretrained: true needs torchvision's weights of {name} in the torch cache; put {file.name} "
            f"(from {url}) into {file.parent} (or set TORCH_HOME)"
        )
    own = net.state_dict()
    loaded = torch.load(file, map_location="cpu", weights_only=True)
    state = {k: v for k, v in loaded.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(state, strict=False)
