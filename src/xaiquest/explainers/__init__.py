"""Explanation methods behind one call: ``explain(method, model, images, targets, layer)`` -> ``[N,H,W]``.

CAMs come from pytorch-grad-cam, gradient and perturbation attributions from Captum, and
FusionCAM is ours; see ``docs/explainers.md`` for the methods, their options and their costs.
"""

from xaiquest.explainers import cam, gradients, own, perturbation  # noqa: F401  (registers)
from xaiquest.explainers.registry import (
    EXPLAINERS,
    Explainer,
    Info,
    describe_explainers,
    explain,
    explainer_options,
    method_defaults,
)

__all__ = [
    "EXPLAINERS",
    "Explainer",
    "Info",
    "describe_explainers",
    "explain",
    "explainer_names",
    "explainer_options",
    "method_defaults",
]


def explainer_names() -> list[str]:
    """Every registered method, sorted."""
    return EXPLAINERS.names()
