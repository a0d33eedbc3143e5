"""One call shape for every explainer: ``explain(method, model, images, targets, layer)`` -> maps.

Each method is a function registered with ``@register_explainer``; it receives the model already
prepared by :func:`explaining` (eval mode, frozen parameters, no in-place activations), so the
methods themselves only call their library and reduce its output to one ``[H, W]`` map per image.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from xaiquest.errors import ConfigError
from xaiquest.models import last_depth
from xaiquest.models.base import check_layers_reachable
from xaiquest.registry import Registry

Family = Literal["cam", "gradient", "perturbation", "ours"]

Info = dict[str, torch.Tensor]
"""Per-image extras a method reports besides its maps, e.g. ``{"delta": tensor [N]}``."""

ExplainFn = Callable[..., torch.Tensor]
"""``(model, images [N,3,H,W], targets [N], layer, info, **options) -> maps [N,H,W]``.

``layer`` is a named depth or module path for layer-based methods and ``None`` otherwise; ``info``
is a dict the method may fill with per-image extras (e.g. ``delta``); the keyword parameters after
these five are the method's options, with their defaults.
"""


@dataclass(frozen=True)
class Explainer:
    """A registered method and the metadata reports and the CLI show."""

    name: str
    family: Family
    uses_layer: bool
    description: str
    compute: ExplainFn
    sees_modules: bool = False
    """Works by watching the model's modules or functions run (hooks, a ``TorchFunctionMode``), which a
    TorchScript model's compiled forward hides (no hooks, no Python calls), even without a layer."""

    @property
    def needs_eager_forward(self) -> bool:
        """Cannot run on a TorchScript model: it reads a layer or watches the forward pass."""
        return self.uses_layer or self.sees_modules


EXPLAINERS: Registry[Explainer] = Registry("explanation method")

COMMON_PARAMETERS = ("model", "images", "targets", "layer", "info")
"""Every ``ExplainFn`` starts with these; its remaining keyword parameters are its options."""


def register_explainer(name: str, family: Family, uses_layer: bool,
                       sees_modules: bool = False) -> Callable[[ExplainFn], ExplainFn]:
    """Register ``fn`` under ``name``; its docstring's first line is the description."""

    def decorator(fn: ExplainFn) -> ExplainFn:
        description = (fn.__doc__ or "").strip().splitlines()[0]
        if tuple(inspect.signature(fn).parameters)[: len(COMMON_PARAMETERS)] != COMMON_PARAMETERS:
            raise TypeError(f"explainer {name!r} must take {', '.join(COMMON_PARAMETERS)} first")
        EXPLAINERS.register(name)(Explainer(name, family, uses_layer, description, fn, sees_modules))
        return fn

    return decorator


def explain(
    method: str,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: str | None = None,
    info: Info | None = None,
    **options: Any,
) -> torch.Tensor:
    """Maps ``[N, H, W]`` (float32, CPU) explaining ``targets`` for normalised ``images``.

    ``layer`` (a named depth such as ``stage2`` or a module path) defaults to the model's last
    depth for layer-based methods and is ignored by input-attribution methods. Pass a dict as
    ``info`` to receive per-image extras (Integrated Gradients stores ``info["delta"]``).
    ``options`` are the method's own (see ``explainer_options``); unknown ones are an error.
    CAMs are >= 0 and scaled to [0, 1] per image; gradient maps are the sum of absolute values
    over channels (Integrated Gradients: the signed sum); perturbation maps are signed.
    The model is left exactly as it was: mode, parameters, ``requires_grad``, ``.grad``, hooks.
    """
    explainer = EXPLAINERS.get(method)
    check_batch(images, targets)
    check_options(explainer, options)
    if explainer.needs_eager_forward:
        check_layers_reachable(model, method)
    if explainer.uses_layer:
        layer = layer or last_depth(model)
    with explaining(model):
        maps = explainer.compute(
            model, input_copy(images), targets.to(images.device, torch.long), layer if explainer.uses_layer else None,
            {} if info is None else info, **options,
        )
    return maps.detach().float().cpu()


def explained_layer(method: str, model: nn.Module, layer: str | None) -> str | None:
    """The layer ``explain`` uses for ``method`` (None for input-attribution methods), so results can name it."""
    return (layer or last_depth(model)) if EXPLAINERS.get(method).uses_layer else None


def describe_explainers() -> list[tuple[str, Family, bool, str]]:
    """(name, family, uses a layer, one-line description) per registered method."""
    return [(e.name, e.family, e.uses_layer, e.description) for e in map(EXPLAINERS.get, EXPLAINERS)]


def explainer_options(explainer: Explainer) -> dict[str, Any]:
    """The method's options and their defaults: its parameters after the common five."""
    parameters = list(inspect.signature(explainer.compute).parameters.values())[len(COMMON_PARAMETERS) :]
    return {p.name: p.default for p in parameters}


def method_defaults(methods: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each method's options with their defaults, for unit fingerprints: maps made before a default
    changed (SmoothGrad's samples, say) are redone instead of passing for the new method."""
    return {method: explainer_options(EXPLAINERS.get(method)) for method in sorted(set(methods))}


def seed_option(method: str, seed: int) -> dict[str, int]:
    """``{"seed": seed}`` for a sampling method (one with a ``seed`` option), ``{}`` for a deterministic one."""
    return {"seed": seed} if "seed" in explainer_options(EXPLAINERS.get(method)) else {}


def check_options(explainer: Explainer, options: dict[str, Any]) -> None:
    """A misspelled option must fail, not silently fall back to the default."""
    known = explainer_options(explainer)
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise ConfigError(f"{explainer.name} has no option {', '.join(unknown)}; its options: {accepted}")


def check_batch(images: torch.Tensor, targets: torch.Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ConfigError(f"images must be [N,3,H,W] normalised floats, got shape {tuple(images.shape)}")
    if targets.shape != (len(images),):
        raise ConfigError(f"targets must be [N]={len(images)} class indices, got shape {tuple(targets.shape)}")


def input_copy(images: torch.Tensor) -> torch.Tensor:
    """A float copy outside inference mode, so autograd can use it even if the caller's can't."""
    with torch.inference_mode(False):
        return images.detach().float().clone()


@contextmanager
def explaining(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters and out-of-place activations for the duration of a call.

    Frozen parameters: explanations need gradients w.r.t. inputs or activations only, so weight
    gradients would be wasted work, and libraries that call ``model.zero_grad()`` would wipe the
    caller's ``.grad``; both are saved and restored. In-place activations (torchvision's
    ``ReLU(inplace=True)``) would overwrite a hooked layer's output: Grad-CAM at a BN layer that
    such a ReLU follows would silently read the post-ReLU values.
    """
    modes = {module: module.training for module in model.modules()}
    # a scripted activation's inplace is a compiled constant, and no hook reads a scripted layer anyway
    inplace = [m for m in model.modules()
               if getattr(m, "inplace", False) is True and not isinstance(m, torch.jit.ScriptModule)]
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    try:
        model.eval()
        for module in inplace:
            module.inplace = False  # type: ignore[assignment]
        for p in params:
            p.requires_grad_(False)
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for module, training in modes.items():
            module.training = training
        for module in inplace:
            module.inplace = True  # type: ignore[assignment]
        for p, (requires_grad, grad) in zip(params, saved):
            p.requires_grad_(requires_grad)
            p.grad = grad


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Reproducible sampling (SmoothGrad noise, LIME samples) without disturbing the caller's RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield
