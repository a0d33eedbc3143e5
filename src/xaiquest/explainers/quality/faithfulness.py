"""Faithfulness: does hiding the pixels a map calls important change the model's prediction?

* Deletion / insertion (Petsiuk et al. 2018): replace pixels with a baseline in map order and
  follow the target-class score; the area under the curve summarises it.
* ROAD (Rong et al. 2022): remove the top (MoRF) or bottom (LeRF) pixels, but fill them by
  noisy linear imputation from their neighbours, so the model sees a plausible image instead
  of a baseline-coloured hole (whose shape alone can leak the class or be out of distribution).

Every variant of every image is one row of a single virtual batch, built chunk by chunk
(``batch_size`` rows at a time) and scored in one forward pass per chunk: no Python loop over
images or steps. The default chunk of 128 is fastest on CPU (cache-sized); raise it on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.errors import UnknownNameError
from xaiquest.explainers.quality.agreement import pixel_ranks

Score = Literal["probability", "logit"]
Baseline = Literal["mean", "blur"]
"""What removed pixels become: the dataset mean colour (a constant), or a blurred copy of the image."""

BLUR_SIGMA_FRACTION = 1 / 8
"""Blur baseline: gaussian sigma as a share of the image side (4 px on CIFAR): colours stay, detail goes."""

CG_CHECK_EVERY = 8
"""Conjugate-gradient steps between convergence checks (each check is one device sync)."""


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int = 16,
    deletion_baseline: Baseline | torch.Tensor = "mean",
    insertion_baseline: Baseline | torch.Tensor = "blur",
    batch_size: int = 128,
    score: Score = "probability",
) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves ``[N, steps+1]`` and their AUCs ``[N]`` over the removed fraction.

    Step ``k`` swaps the ``round(k * H*W / steps)`` top-ranked pixels (all channels): deletion
    replaces them in the image by ``deletion_baseline``; insertion starts from
    ``insertion_baseline`` and puts them back. The defaults are Petsiuk et al.'s (2018): delete to
    a constant (``"mean"``: zeros, i.e. the dataset mean colour after normalisation), insert into a
    blurred copy (``"blur"``); either may also be the other name or a tensor broadcastable to
    ``images``. Lower deletion AUC and higher insertion AUC mean a more faithful map. Keys:
    ``fractions``, ``deletion_curve``, ``insertion_curve``, ``deletion_auc``, ``insertion_auc``.
    """
    check_inputs(images, maps, targets)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n, _, height, width = images.shape
    counts = torch.linspace(0, height * width, steps + 1, device=images.device).round().long()
    deleted, inserted_into = baseline_images(images, deletion_baseline), baseline_images(images, insertion_baseline)
    starts, ends = torch.cat([images, inserted_into]), torch.cat([deleted, images])  # deletion rows, then insertion rows
    ranks = pixel_ranks(maps).view(n, 1, height, width).repeat(2, 1, 1, 1)
    series_targets = targets.repeat(2)

    def build(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        series, step = rows.div(steps + 1, rounding_mode="floor"), rows % (steps + 1)
        swapped = ranks[series] < counts[step].view(-1, 1, 1, 1)
        return torch.where(swapped, ends[series], starts[series]), series_targets[series]

    curves, _ = score_rows(model, build, 2 * n * (steps + 1), batch_size, score, images.device)
    deletion, insertion = curves.view(2, n, steps + 1)
    fractions = counts.to(curves.dtype) / (height * width)
    return {
        "fractions": fractions,
        "deletion_curve": deletion,
        "insertion_curve": insertion,
        "deletion_auc": torch.trapezoid(deletion, fractions, dim=1),
        "insertion_auc": torch.trapezoid(insertion, fractions, dim=1),
    }


def road(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    percentages: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    noise_std: float = 0.01,
    batch_size: int = 128,
    score: Score = "probability",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """ROAD: target score after removing the top (MoRF) / bottom (LeRF) fraction of pixels, imputed.

    Per image: ``original`` score ``[N]``; ``morf_curve``, ``lerf_curve`` ``[N,K]`` scores and
    ``morf_correct``, ``lerf_correct`` ``[N,K]`` (argmax still the target; their mean over images
    is ROAD's accuracy curve); ``morf_drop_area``, ``lerf_drop_area`` ``[N]``: mean drop from the
    original score (trapezoid over the percentages, divided by their span); ``road_gap`` =
    MoRF minus LeRF drop area (higher = more faithful: removing the top pixels hurts, removing
    the bottom ones does not). The imputation noise is seeded, so results repeat for a given
    ``seed`` and ``batch_size``.
    """
    check_inputs(images, maps, targets)
    fractions = torch.tensor(percentages, dtype=torch.float64)
    if len(fractions) < 2 or not ((fractions > 0) & (fractions < 1)).all() or not (fractions.diff() > 0).all():
        raise ValueError(f"percentages must be at least two increasing fractions in (0, 1), got {percentages}")
    n, _, height, width = images.shape
    pixels, k = height * width, len(fractions)
    counts = (fractions * pixels).round().long().to(images.device)
    zeros = torch.zeros(k, dtype=torch.long, device=images.device)
    untouched = torch.zeros(1, dtype=torch.long, device=images.device)
    # column 0 = untouched, then K MoRF columns, then K LeRF columns; rows run column-major so a
    # chunk holds one removal size and its CG solve stops when that size, not the hardest, converges
    top_removed = torch.cat([untouched, counts, zeros])
    bottom_removed = torch.cat([untouched, zeros, counts])
    columns = 2 * k + 1
    ranks = pixel_ranks(maps).view(n, height, width)
    generator = torch.Generator(images.device).manual_seed(seed)

    def build(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        column, image = rows.div(n, rounding_mode="floor"), rows % n
        rank = ranks[image]
        removed = (rank < top_removed[column].view(-1, 1, 1)) | (rank >= pixels - bottom_removed[column].view(-1, 1, 1))
        return noisy_linear_impute(images[image], removed, noise_std, generator), targets[image]

    scores, correct = score_rows(model, build, n * columns, batch_size, score, images.device)
    scores, correct = scores.view(columns, n).T, correct.view(columns, n).T
    original, morf, lerf = scores[:, 0], scores[:, 1 : k + 1], scores[:, k + 1 :]
    fractions = fractions.to(scores)
    span = fractions[-1] - fractions[0]
    morf_area = torch.trapezoid(original[:, None] - morf, fractions, dim=1) / span
    lerf_area = torch.trapezoid(original[:, None] - lerf, fractions, dim=1) / span
    return {
        "fractions": fractions,
        "original": original,
        "morf_curve": morf,
        "lerf_curve": lerf,
        "morf_correct": correct[:, 1 : k + 1],
        "lerf_correct": correct[:, k + 1 :],
        "morf_drop_area": morf_area,
        "lerf_drop_area": lerf_area,
        "road_gap": morf_area - lerf_area,
    }


def noisy_linear_impute(
    images: torch.Tensor, removed: torch.Tensor, noise_std: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """ROAD's noisy linear imputation, batched: removed pixels ``[B,H,W]`` become the linear fill plus noise.

    ROAD builds and factorises one sparse linear system per image (each removed pixel = weighted
    mean of its in-image neighbours, known pixels fixed). That system is symmetric positive
    definite, so here it is solved for the whole batch and all channels at once by
    Jacobi-preconditioned conjugate gradients, with the matrix applied as a 3x3 stencil.
    """
    known = ~removed.view(images.shape[0], 1, *images.shape[2:])
    filled = linear_fill(images, known)
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return torch.where(known, images, filled + noise_std * noise)


def linear_fill(images: torch.Tensor, known: torch.Tensor, tolerance: float = 1e-5) -> torch.Tensor:
    """Solve ``A x = b`` for the unknown pixels (``known`` is ``[B,1,H,W]`` bool) by batched CG.

    ``A x`` = (in-image neighbour weight) * x - (weighted sum of unknown neighbours), ``b`` = weighted
    sum of known neighbours. Iterates until every residual is below ``tolerance`` times the largest
    right-hand side (checked every few steps, one device sync each), at most ``4 * max(H, W)``
    steps - CG needs about the diameter of the largest hole.
    """
    unknown = (~known).to(images.dtype)
    diagonal = weighted_neighbour_sum(torch.ones_like(unknown[:1]))

    def apply_matrix(values: torch.Tensor) -> torch.Tensor:
        return (diagonal * values - weighted_neighbour_sum(values * unknown)) * unknown

    def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum((2, 3), keepdim=True)

    rhs = weighted_neighbour_sum(images * known) * unknown
    solution = torch.zeros_like(images)
    residual = rhs
    direction = residual / diagonal
    residual_dot = batch_dot(residual, direction)
    threshold = tolerance * rhs.abs().amax()
    for step in range(4 * max(images.shape[-2:])):
        if step % CG_CHECK_EVERY == 0 and residual.abs().amax() <= threshold:
            break
        product = apply_matrix(direction)
        curvature = batch_dot(direction, product)
        alpha = torch.where(curvature > 0, residual_dot / curvature.clamp_min(1e-30), 0.0)
        solution = solution + alpha * direction
        residual = residual - alpha * product
        preconditioned = residual / diagonal
        next_dot = batch_dot(residual, preconditioned)
        beta = torch.where(residual_dot > 0, next_dot / residual_dot.clamp_min(1e-30), 0.0)
        direction = preconditioned + beta * direction
        residual_dot = next_dot
    return torch.where(known, images, solution)


def weighted_neighbour_sum(values: torch.Tensor) -> torch.Tensor:
    """ROAD's stencil (1/6 edge, 1/12 corner neighbours, zero outside the image) on ``[B,C,H,W]``.

    The stencil is ``(outer([1,2,1], [1,2,1]) - 4 * centre) / 12``, i.e. separable up to the
    centre, so it is two shifted-slice passes - on CPU several times faster than a grouped conv.
    """
    padded = F.pad(values, (1, 1, 1, 1))
    rows = padded[..., :, :-2] + 2 * padded[..., :, 1:-1] + padded[..., :, 2:]
    block = rows[..., :-2, :] + 2 * rows[..., 1:-1, :] + rows[..., 2:, :]
    return (block - 4 * values) / 12


def baseline_images(images: torch.Tensor, baseline: Baseline | torch.Tensor) -> torch.Tensor:
    """What a removed pixel becomes: a blurred copy, zeros (the normalised mean), or given values."""
    if isinstance(baseline, torch.Tensor):
        return torch.broadcast_to(baseline.to(images), images.shape)
    if baseline == "blur":
        return gaussian_blur(images, BLUR_SIGMA_FRACTION * max(images.shape[-2:]))
    if baseline == "mean":
        return torch.zeros_like(images)
    raise UnknownNameError(f"unknown baseline {baseline!r}; use 'blur', 'mean' or a tensor")


def gaussian_kernel(sigma: float, radius: int, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 1-D gaussian of ``2 * radius + 1`` taps."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable, per-channel gaussian blur with replicated borders (no dark frame at the edges)."""
    radius = max(1, math.ceil(2 * sigma))
    channels = images.shape[1]
    kernel = gaussian_kernel(sigma, radius, images.device).to(images.dtype)
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


@torch.no_grad()
def score_rows(
    model: nn.Module,
    build: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    total: int,
    batch_size: int,
    score: Score,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target score and correctness ``[total]`` of rows built ``batch_size`` at a time by ``build(row_ids)``.

    Rows go in channels-last, the layout the trainer uses (about 1.6x faster convolutions on CPU).
    """
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    scores, correct = [], []
    with evaluating(model):
        for first in range(0, total, batch_size):
            inputs, targets = build(torch.arange(first, min(first + batch_size, total), device=device))
            logits = model(inputs.contiguous(memory_format=torch.channels_last)).float()
            outputs = logits.softmax(1) if score == "probability" else logits
            scores.append(outputs.gather(1, targets[:, None]).squeeze(1))
            correct.append(logits.argmax(1) == targets)
    return torch.cat(scores), torch.cat(correct)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration (BatchNorm/Dropout must not react to perturbed batches), then restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def check_inputs(images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor) -> None:
    if images.ndim != 4 or maps.shape != (images.shape[0], *images.shape[2:]) or targets.shape != images.shape[:1]:
        raise ValueError(
            "expected images [N,C,H,W], maps [N,H,W] and targets [N]; got "
            f"{tuple(images.shape)}, {tuple(maps.shape)} and {tuple(targets.shape)}"
        )
