"""A TorchScript file (``torch.jit.save``) as an audited model, for a network whose class the user
cannot ship: loaded on the CPU with ``torch.jit.load``, never trained, fingerprinted by its bytes.

Gradients flow through a scripted module, so input-attribution methods (saliency, Integrated
Gradients, perturbations) run on it. Layer methods do not: its compiled ``forward`` calls its
submodules inside TorchScript, and torch refuses the Python forward hooks through which CAMs, TCAV,
dissection and the layer-wise view read activations ("register_forward_hook is not supported on
ScriptModules"; tests/test_bring_your_own.py checks that this still holds), so such a model has no
named depths and those methods are refused in one line. torch deprecates TorchScript (a
FutureWarning on every load); the user chose the format, so the warning is not repeated to them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from xaiquest.errors import ConfigError

UNREACHABLE_LAYERS = (
    "a TorchScript model takes no Python forward hooks, so no layer's activations can be read; "
    "use input-attribution methods (saliency, integrated_gradients, ...) or bring a state_dict as weights:"
)


class ScriptedModel(nn.Module):
    """A loaded TorchScript module; its state_dict is the scripted module's, under ``net.``."""

    layers_unreachable = UNREACHABLE_LAYERS

    def __init__(self, net: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def named_depths(self) -> dict[str, nn.Module]:
        raise ConfigError(f"no named depths: {UNREACHABLE_LAYERS}")


def load_torchscript(path: str | Path) -> ScriptedModel:
    """The module a ``torch.jit.save`` file holds, on the CPU; anything else is one actionable line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"TorchScript file {path} does not exist; fix the model's torchscript: path")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        reason = " ".join(str(error).split())[:160]
        raise ConfigError(f"{path} is not a TorchScript file ({reason}); save one with torch.jit.script(model).save(FILE), "
                          "or give a state_dict as weights:") from None
    return ScriptedModel(net)


def check_outputs(model: nn.Module, path: str, num_classes: int, image_size: int) -> None:
    """The scripted classifier must take the data's images and output one logit per class folder."""
    try:
        with torch.no_grad():
            shape = tuple(model.eval()(torch.zeros(1, 3, image_size, image_size)).shape)
    except Exception as error:  # noqa: BLE001 - whatever the compiled forward raises means it does not fit
        reason = " ".join(str(error).split())[-160:]
        raise ConfigError(f"TorchScript model {path} does not run on 1x3x{image_size}x{image_size} inputs ({reason}); "
                          "set data.image_size to the size it expects") from None
    if shape != (1, num_classes):
        raise ConfigError(f"TorchScript model {path} outputs shape {list(shape)} for one image, but the data has "
                          f"{num_classes} classes; it must output [N, {num_classes}] logits")
