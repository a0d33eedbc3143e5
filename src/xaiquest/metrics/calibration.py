"""Calibration metrics: how far a model's confidence is from how often it is right.

All functions are batched over samples and compute in float64 on the CPU, so sums over tens of
thousands of samples and the log of tiny probabilities stay exact enough to compare models.

Equal-width binning follows Guo et al. (2017): bins ``(lo, hi]`` over ``[0, 1]`` (the first
closed at 0), weighted by their share of samples, so a saturated confidence of exactly 1.0 lands
in the top bin. torchmetrics' ``multiclass_calibration_error`` uses ``[lo, hi)`` plus an extra
bin for exactly 1.0; the two agree unless a confidence lies exactly on a bin edge or equals 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from xaiquest.errors import DataError

ArrayLike = torch.Tensor | np.ndarray

DEFAULT_BINS = 15

RELIABILITY_COLUMNS = ("lo", "hi", "count", "confidence", "accuracy", "gap")


class ClasswiseECE(NamedTuple):
    """Classwise ECE (Kull et al. 2019): the mean over classes, and each class's one-vs-rest ECE."""

    mean: float
    per_class: torch.Tensor
    """float64 ``[C]``."""


class _Bins(NamedTuple):
    """Per-bin sample count, mean predicted probability and observed frequency (0 in empty bins)."""

    count: torch.Tensor
    confidence: torch.Tensor
    frequency: torch.Tensor


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE: the sample-weighted mean |accuracy - confidence| over equal-width bins."""
    return _weighted_gap(_top_label_bins(probs, labels, n_bins))


def maximum_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label MCE: the worst |accuracy - confidence| over non-empty equal-width bins."""
    bins = _top_label_bins(probs, labels, n_bins)
    return (bins.confidence - bins.frequency).abs()[bins.count > 0].max().item()


def adaptive_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE over equal-mass bins (AdaECE, Nguyen & O'Connor 2015; Mukhoti et al. 2020).

    An accurate model puts most samples in the top one or two equal-width bins, so equal-width
    ECE barely resolves where it is over-confident; bins of ``N / n_bins`` samples each (by
    confidence rank, sizes differing by at most one) spread the resolution where the data is.
    """
    _check_bins(n_bins)
    confidence, correct = _top_label(*_checked_probs(probs, labels))
    order = torch.argsort(confidence, stable=True)
    bin_of_rank = torch.arange(len(order)) * n_bins // len(order)
    bin_index = torch.empty_like(order).scatter_(0, order, bin_of_rank)
    return _weighted_gap(_bin_means(confidence, correct, bin_index, n_bins))


def classwise_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> ClasswiseECE:
    """ECE of every class's own predicted probability against "is this class" (one-vs-rest).

    Unlike top-label ECE this also audits the probabilities of non-predicted classes, which
    matter whenever the full distribution is used (e.g. thresholds, expected costs).
    """
    probs_t, labels_t = _checked_probs(probs, labels)
    _check_bins(n_bins)
    num_classes = probs_t.shape[1]
    is_class = F.one_hot(labels_t, num_classes).double()
    # One flat histogram of C * n_bins cells: cell = class * n_bins + bin.
    cell = _equal_width_index(probs_t, n_bins) + torch.arange(num_classes) * n_bins
    bins = _bin_means(probs_t.flatten(), is_class.flatten(), cell.flatten(), num_classes * n_bins)
    gaps = (bins.confidence - bins.frequency).abs().view(num_classes, n_bins)
    per_class = (gaps * bins.count.view(num_classes, n_bins)).sum(dim=1) / len(labels_t)
    return ClasswiseECE(mean=per_class.mean().item(), per_class=per_class)


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean over samples of the squared distance to the one-hot label, summed over classes (range [0, 2])."""
    probs_t, labels_t = _checked_probs(probs, labels)
    one_hot = F.one_hot(labels_t, probs_t.shape[1]).double()
    return (probs_t - one_hot).square().sum(dim=1).mean().item()


def negative_log_likelihood(logits: ArrayLike, labels: ArrayLike) -> float:
    """Mean NLL of the true class, from logits (log-softmax is exact where log(probs) would underflow)."""
    logits_t, labels_t = _checked(logits, labels, "logits")
    return F.cross_entropy(logits_t, labels_t).item()


def reliability_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """The table behind a reliability diagram: one row per equal-width bin, empty bins included.

    ``confidence`` and ``accuracy`` are the bin's means (NaN when empty); ``gap`` is
    confidence - accuracy, positive where the model is over-confident.
    """
    bins = _top_label_bins(probs, labels, n_bins)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    empty = bins.count == 0
    confidence = bins.confidence.masked_fill(empty, math.nan)
    accuracy = bins.frequency.masked_fill(empty, math.nan)
    return pd.DataFrame(
        {
            "lo": edges[:-1].numpy(),
            "hi": edges[1:].numpy(),
            "count": bins.count.numpy().astype(np.int64),
            "confidence": confidence.numpy(),
            "accuracy": accuracy.numpy(),
            "gap": (confidence - accuracy).numpy(),
        },
        columns=list(RELIABILITY_COLUMNS),
    )


def calibration_report(logits: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Every scalar calibration metric of one model on one split, from its logits."""
    logits_t, labels_t = _checked(logits, labels, "logits")
    probs = logits_t.softmax(dim=1)
    confidence, correct = _top_label(probs, labels_t)
    return {
        "ece": expected_calibration_error(probs, labels_t, n_bins),
        "mce": maximum_calibration_error(probs, labels_t, n_bins),
        "adaptive_ece": adaptive_calibration_error(probs, labels_t, n_bins),
        "classwise_ece": classwise_ece(probs, labels_t, n_bins).mean,
        "brier": brier_score(probs, labels_t),
        "nll": negative_log_likelihood(logits_t, labels_t),
        "accuracy": correct.mean().item(),
        "mean_confidence": confidence.mean().item(),
    }


def fit_temperature(
    val_logits: ArrayLike,
    val_labels: ArrayLike,
    min_temperature: float = 0.01,
    max_temperature: float = 100.0,
) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit on validation logits only. The NLL is convex in 1/T (a log-sum-exp of linear functions),
    hence unimodal in log T, so a bounded golden-section search on log T always finds the optimum:
    no learning rate, no divergence. The bounds are reached only on degenerate data (perfectly
    separable logits push T to 0, uninformative ones push it to infinity).
    """
    logits, labels = _checked(val_logits, val_labels, "logits")
    if not 0 < min_temperature < max_temperature:
        raise DataError(f"need 0 < min_temperature < max_temperature, got {min_temperature}, {max_temperature}")

    def nll(log_temperature: float) -> float:
        return F.cross_entropy(logits / math.exp(log_temperature), labels).item()

    best = _golden_section_minimum(nll, math.log(min_temperature), math.log(max_temperature))
    return math.exp(best)


def _golden_section_minimum(f: Callable[[float], float], lo: float, hi: float, tolerance: float = 1e-7) -> float:
    """Argmin of a unimodal ``f`` on ``[lo, hi]``, to within ``tolerance``."""
    shrink = (math.sqrt(5.0) - 1.0) / 2.0
    left, right = hi - shrink * (hi - lo), lo + shrink * (hi - lo)
    f_left, f_right = f(left), f(right)
    while hi - lo > tolerance:
        if f_left <= f_right:  # the minimum is in [lo, right]
            hi, right, f_right = right, left, f_left
            left = hi - shrink * (hi - lo)
            f_left = f(left)
        else:  # the minimum is in [left, hi]
            lo, left, f_left = left, right, f_right
            right = lo + shrink * (hi - lo)
            f_right = f(right)
    return (lo + hi) / 2.0


def _top_label_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int) -> _Bins:
    _check_bins(n_bins)
    confidence, correct = _top_label(*_checked_probs(probs, labels))
    return _bin_means(confidence, correct, _equal_width_index(confidence, n_bins), n_bins)


def _top_label(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence of the predicted class and whether it is right (as 0./1.)."""
    confidence, predicted = probs.max(dim=1)
    return confidence, (predicted == labels).double()


def _equal_width_index(values: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin of each value in ``(lo, hi]`` equal-width bins over [0, 1]; 0 goes to the first bin."""
    inner_edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)[1:-1]
    return torch.bucketize(values, inner_edges, right=False)


def _bin_means(values: torch.Tensor, targets: torch.Tensor, bin_index: torch.Tensor, n_bins: int) -> _Bins:
    count = torch.bincount(bin_index, minlength=n_bins).double()
    safe = count.clamp(min=1.0)
    return _Bins(
        count=count,
        confidence=torch.bincount(bin_index, weights=values, minlength=n_bins) / safe,
        frequency=torch.bincount(bin_index, weights=targets, minlength=n_bins) / safe,
    )


def _weighted_gap(bins: _Bins) -> float:
    return ((bins.confidence - bins.frequency).abs() * bins.count).sum().item() / bins.count.sum().item()


def _check_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}")


def _checked_probs(probs: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    probs_t, labels_t = _checked(probs, labels, "probs")
    if probs_t.min() < 0 or probs_t.max() > 1:
        raise DataError(
            f"probs must lie in [0, 1], got {probs_t.min().item():.3g}..{probs_t.max().item():.3g}; "
            "pass logits through softmax first"
        )
    return probs_t, labels_t


def _checked(values: ArrayLike, labels: ArrayLike, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU float64 ``[N, C]`` values and int64 ``[N]`` labels in range, or a DataError naming the problem."""
    values_t = torch.as_tensor(values).detach().cpu()
    labels_t = torch.as_tensor(labels).detach().cpu()
    if values_t.ndim != 2 or not values_t.is_floating_point():
        raise DataError(f"{name} must be a float [N, C] array, got {values_t.dtype} {tuple(values_t.shape)}")
    if labels_t.ndim != 1 or labels_t.is_floating_point() or labels_t.is_complex():
        raise DataError(f"labels must be an integer [N] array, got {labels_t.dtype} {tuple(labels_t.shape)}")
    if len(labels_t) != len(values_t) or len(labels_t) == 0:
        raise DataError(f"{name} has {len(values_t)} rows but labels has {len(labels_t)}; need the same non-zero count")
    if not torch.isfinite(values_t).all():
        raise DataError(f"{name} contains NaN or infinite values")
    labels_t = labels_t.long()
    if labels_t.min() < 0 or labels_t.max() >= values_t.shape[1]:
        raise DataError(f"labels must lie in [0, {values_t.shape[1] - 1}], got {labels_t.min()}..{labels_t.max()}")
    return values_t.double(), labels_t
