"""The guided-backpropagation rule at every elementwise activation, not only at ``nn.ReLU``.

Springenberg et al. (2015) let only positive gradients flow back through each ReLU. Captum's
``GuidedBackprop`` implements this with backward hooks on ``nn.ReLU`` modules, so through GELU
(FastNet), SiLU/Hardswish (MobileNetV3, EfficientNet), ReLU6 (MobileNetV2, a ``hardtanh``) or a
functional ``F.relu`` the plain gradient passes and the method silently becomes ``saliency``.
Here a ``TorchFunctionMode`` sees every activation *function* call during the forward pass,
whatever module or functional code makes it, and routes its input through an identity whose
backward clamps the gradient to >= 0: the gradient reaching the activation's input is
``max(0, act'(x) * g)``, which on ``nn.ReLU`` is exactly Captum's rule. An activation module whose
forward makes no such call (e.g. ``nn.Softsign``) is refused by name rather than passed through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from xaiquest.errors import ConfigError

GUIDED_FUNCTIONS = frozenset({
    "relu", "relu6", "gelu", "silu", "hardswish", "leaky_relu", "elu", "selu", "celu", "mish", "softplus",
    "hardtanh", "prelu", "rrelu", "threshold", "sigmoid", "hardsigmoid", "tanh",
})
"""Names of the elementwise activation functions (``torch.*``, ``F.*`` and ``Tensor`` methods alike)."""

NOT_ACTIVATIONS = (nn.MultiheadAttention, nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d)
"""Classes in ``torch.nn.modules.activation`` that are not elementwise activations."""


class PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only the positive part of the gradient through."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.clamp_min(0)


class GuidedActivations(TorchFunctionMode):
    """Inside this mode every elementwise activation's input gradient is clamped to >= 0."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name.endswith("_") and name[:-1] in GUIDED_FUNCTIONS:
            raise ConfigError(f"guided backprop cannot guide the in-place activation {name}(); use its out-of-place form")
        if name in GUIDED_FUNCTIONS and args and isinstance(args[0], torch.Tensor):
            self.calls += 1
            kwargs.pop("inplace", None)  # F.relu(x, inplace=True) et al.: the guided input is a fresh tensor
            return func(PositiveGradient.apply(args[0]), *args[1:], **kwargs)
        return func(*args, **kwargs)


def is_activation_module(module: nn.Module) -> bool:
    return type(module).__module__ == nn.modules.activation.__name__ and not isinstance(module, NOT_ACTIVATIONS)


@contextmanager
def guided(model: nn.Module) -> Iterator[GuidedActivations]:
    """The guided rule for forward passes run inside; refuses activations it cannot guide.

    Raises ``ConfigError`` naming the first activation module whose forward called no known
    activation function, or when the forward pass met no activation at all.
    """
    mode = GuidedActivations()
    unguided: list[str] = []

    names = {module: name for name, module in model.named_modules() if is_activation_module(module)}
    calls_before: dict[nn.Module, int] = {}

    def check(module: nn.Module) -> None:
        if mode.calls == calls_before[module]:
            unguided.append(f"{type(module).__name__} ({names[module]})")

    handles = [
        handle
        for module in names
        for handle in (
            module.register_forward_pre_hook(lambda m, _i: calls_before.__setitem__(m, mode.calls)),
            module.register_forward_hook(lambda m, _i, _o: check(m)),
        )
    ]
    try:
        with mode:
            yield mode
    finally:
        for handle in handles:
            handle.remove()
    if unguided:
        raise ConfigError(f"guided backprop cannot apply its rule at {unguided[0]}; supported: {', '.join(sorted(GUIDED_FUNCTIONS))}")
    if mode.calls == 0:
        raise ConfigError(f"guided backprop found no elementwise activation in {type(model).__name__}; use saliency")


def guided_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[N,C,H,W]`` input gradients of the target logits with the guided rule at every activation."""
    inputs = images.requires_grad_()
    with guided(model):
        logits = model(inputs)
    (gradient,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), inputs)
    return gradient
