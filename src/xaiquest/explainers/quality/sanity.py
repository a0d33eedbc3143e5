"""Model-randomisation sanity check (Adebayo et al. 2018): an explanation must depend on the weights.

Layers are re-initialised cumulatively from the output down; after each step the maps are
recomputed and compared with the trained model's. A method whose maps barely change is
explaining the input (edges, colours), not the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.errors import UnknownNameError
from xaiquest.explainers.quality.agreement import spearman
from xaiquest.explainers.quality.faithfulness import gaussian_kernel
from xaiquest.models.base import ZooModel

ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
"""``explain_fn(model, images, targets) -> maps [N,H,W]``."""

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
"""Wang et al. (2004)'s gaussian window; shrunk (odd) for maps smaller than it."""


def ssim(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity per image, ``[N]``, of ``[N,H,W]`` maps each min-max scaled to [0, 1].

    Scaling per map makes SSIM compare the *pattern*, not the attribution units, which differ
    between a trained and a randomised model. Valid (unpadded) gaussian window, C1 = 0.01²,
    C2 = 0.03² for the data range 1. Identical maps (constant ones included) score exactly 1.
    """
    if maps_a.ndim != 3 or maps_a.shape != maps_b.shape:
        raise ValueError(f"expected two [N,H,W] maps of one shape, got {tuple(maps_a.shape)} and {tuple(maps_b.shape)}")
    a, b = unit_range(maps_a)[:, None], unit_range(maps_b)[:, None]
    size = min(SSIM_WINDOW, *maps_a.shape[1:])
    radius = (size - 1) // 2
    kernel = gaussian_kernel(SSIM_SIGMA, radius, a.device).to(a.dtype)
    window = (kernel[:, None] * kernel[None, :])[None, None]

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window)

    mean_a, mean_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mean_a**2
    var_b = local_mean(b * b) - mean_b**2
    covariance = local_mean(a * b) - mean_a * mean_b
    c1, c2 = 0.01**2, 0.03**2
    similarity = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return similarity.flatten(1).mean(1)


SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"spearman": spearman, "ssim": ssim}


def cascading_randomisation(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    explain_fn: ExplainFn,
    similarity: Sequence[str] = ("spearman", "ssim"),
    seed: int = 0,
) -> pd.DataFrame:
    """Similarity of ``|maps|`` to the original ones as layers are randomised cumulatively, head first.

    Works on a deep copy (the caller's model is never touched), in eval mode. Rows: ``step`` 0
    (``layer`` "none": the untouched copy), then one per randomised block; one column per
    similarity, the mean over images. ``explain_fn`` is called once for the original maps and once
    per row; step 0 shows a sampling method's own run-to-run noise only if ``explain_fn`` draws
    new randomness on each call (a new seed per call, as the explain stage passes): with a fixed
    seed it reads exactly 1.
    """
    unknown = [name for name in similarity if name not in SIMILARITIES]
    if unknown:
        raise UnknownNameError(f"unknown similarity {unknown}; use {', '.join(SIMILARITIES)}")
    work = copy.deepcopy(model).eval()
    original = explain_fn(work, images, targets).detach().abs()

    def row(step: int, layer: str) -> dict[str, object]:
        maps = explain_fn(work, images, targets).detach().abs()
        return {"step": step, "layer": layer} | {
            name: SIMILARITIES[name](original, maps).nanmean().item() for name in similarity
        }

    rows = [row(0, "none")]
    for step, (name, block) in enumerate(randomisation_order(work), start=1):
        randomise_(block, seed + step)
        rows.append(row(step, name))
    return pd.DataFrame(rows)


def sanity_flag(table: pd.DataFrame, threshold: float = 0.5, measures: Sequence[str] | None = None) -> bool:
    """True (the method fails the check) when, with every layer randomised, every measure still exceeds ``threshold``.

    The last row is the fully random model. Requiring *all* measures (default: every similarity
    column of ``table``) guards against one measure's floor: Spearman of absolute input
    gradients stays near 0.6 between unrelated random FastNets (border and pooling structure
    the architecture imposes), while their SSIM falls to about 0.1.
    """
    measures = [name for name in SIMILARITIES if name in table.columns] if measures is None else list(measures)
    missing = [name for name in measures if name not in table.columns]
    if missing or not measures:
        raise UnknownNameError(f"table has no similarity column {missing}; it has {', '.join(map(str, table.columns))}")
    final = table.sort_values("step").iloc[-1]
    return bool((final[measures] > threshold).all())


def randomisation_order(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Blocks from output to input: ``head``, ``stageN`` … ``stage1``, ``stem`` for zoo models.

    Other models: their parameterised top-level children in reverse order, looking through
    wrappers with a single such child (e.g. the torchvision adapter's ``net``).
    """
    if isinstance(model, ZooModel):
        return [("head", model.head), *reversed(model.named_depths().items())]
    prefix, children = "", parameterised_children(model)
    while len(children) == 1 and not list(model.parameters(recurse=False)):
        name, model = children[0]
        prefix, children = f"{prefix}{name}.", parameterised_children(model)
    return [(prefix + name, child) for name, child in reversed(children)]


def parameterised_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, child) for name, child in module.named_children() if any(True for _ in child.parameters())]


@torch.no_grad()
def randomise_(block: nn.Module, seed: int) -> None:
    """Re-initialise every layer of ``block`` in place, reproducibly, leaving the global RNG as it was.

    Layers with ``reset_parameters`` (conv, linear, norm - which also resets BatchNorm's running
    statistics) use their default initialisation; other parameters are drawn from a normal with
    their own standard deviation (1 if they have none), so activation scales stay comparable.
    """
    cuda_devices = sorted({p.device.index for p in block.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        for layer in block.modules():
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for parameter in layer.parameters(recurse=False):
                spread = parameter.std().item() if parameter.numel() > 1 else 0.0
                parameter.normal_(0.0, spread if spread > 0 else 1.0)


def unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map min-max scaled to [0, 1]; a constant map becomes all zeros."""
    low = maps.amin((1, 2), keepdim=True)
    span = maps.amax((1, 2), keepdim=True) - low
    return (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny)
