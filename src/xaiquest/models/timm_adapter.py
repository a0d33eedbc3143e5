"""Any timm CNN classifier as a zoo model (``timm:<name>``), when the optional extra is installed.

timm is imported only when a ``timm:`` model is built or checked, so configs without one never pay
for it. Networks are created with ``pretrained=False`` (timm would download its weights, and these
machines are offline: bring weights with ``weights:`` or ``init:``) and a classifier sized to the
data's classes, then adapted exactly like torchvision's (``models/adapter.py``): the same
small-image stem rule below 64 px and the same depth discovery, since timm's families share no
stage naming either.
"""

from __future__ import annotations

from types import ModuleType

from xaiquest.errors import ConfigError
from xaiquest.models.adapter import AdaptedModel, adapt, unknown_name

PREFIX = "timm:"
INSTALL = "pip install 'xaiquest[timm]'"


def build_timm(name: str, num_classes: int, pretrained: bool = False, image_size: int = 32) -> AdaptedModel:
    """A timm CNN by name (a pretrained tag such as ``resnet10t.c3_in1k`` names the same architecture)."""
    timm = import_timm(name)
    if pretrained:
        raise ConfigError(f"{PREFIX}{name}: pretrained: true reads torchvision's cache only; start a timm model from "
                          "a state_dict file with init: FILE")
    check_name(name, timm)
    net = timm.create_model(name, pretrained=False, num_classes=num_classes)
    return adapt(net, PREFIX + name, image_size)


def import_timm(name: str) -> ModuleType:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"{PREFIX}{name} needs timm, an optional extra: {INSTALL}") from None
    return timm


def check_name(name: str, timm: ModuleType | None = None) -> None:
    """Known to timm (tags after a dot name weights, not architectures); unknown names list the closest."""
    timm = timm or import_timm(name)
    names = timm.list_models()
    if name.split(".", 1)[0] not in names:
        raise unknown_name("timm", PREFIX, name, names, "timm.list_models()")
