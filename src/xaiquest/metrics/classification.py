"""Stage-1 classification metrics computed from a model's predicted probabilities.

Everything is derived from one ``probs``/``labels`` pair so that accuracy, the per-class view,
the confusion matrix and the most confident mistakes always describe the same predictions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from xaiquest.errors import DataError

ArrayLike = torch.Tensor | np.ndarray

MISTAKE_COLUMNS = ("index", "true", "predicted", "confidence", "true_class_prob")


@dataclass(frozen=True)
class ClassificationMetrics:
    """Scalar summaries plus the per-class table and confusion matrix they come from.

    Macro precision/recall/F1 average over classes that occur in the labels or the
    predictions (torchmetrics' convention); macro AUC averages over classes whose
    one-vs-rest AUC is defined (both positives and negatives present).
    """

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_auc: float
    num_samples: int
    per_class: pd.DataFrame
    """Indexed by class name; columns precision, recall, f1, support, auc (NaN if undefined)."""
    confusion: np.ndarray
    """int64 [C, C]; rows are true classes, columns predicted classes."""

    @property
    def classes(self) -> list[str]:
        return list(self.per_class.index)

    def to_dict(self) -> dict[str, float | int | None]:
        """Flat, JSON-safe scalars; an undefined value (NaN) becomes ``None`` (JSON ``null``)."""
        scalars = {
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "macro_auc": self.macro_auc,
        }
        flat: dict[str, float | int | None] = {
            name: None if math.isnan(value) else value for name, value in scalars.items()
        }
        flat["num_samples"] = self.num_samples
        return flat


def classification_metrics(
    probs: ArrayLike, labels: ArrayLike, classes: Sequence[str]
) -> ClassificationMetrics:
    """All Stage-1 metrics of one model on one split, from probabilities ``[N, C]`` and labels ``[N]``."""
    probs_t, labels_t = _validated(probs, labels, len(classes))
    num_classes = len(classes)
    common = {"num_classes": num_classes, "validate_args": False}

    per_class = pd.DataFrame(
        {
            "precision": multiclass_precision(probs_t, labels_t, average="none", zero_division=0, **common),
            "recall": multiclass_recall(probs_t, labels_t, average="none", zero_division=0, **common),
            "f1": multiclass_f1_score(probs_t, labels_t, average="none", zero_division=0, **common),
            "support": torch.bincount(labels_t, minlength=num_classes),
            "auc": _per_class_auc(probs_t, labels_t),
        },
        index=pd.Index(list(classes), name="class"),
    )
    macro = {"average": "macro", "zero_division": 0, **common}
    return ClassificationMetrics(
        accuracy=multiclass_accuracy(probs_t, labels_t, average="micro", **common).item(),
        macro_precision=multiclass_precision(probs_t, labels_t, **macro).item(),
        macro_recall=multiclass_recall(probs_t, labels_t, **macro).item(),
        macro_f1=multiclass_f1_score(probs_t, labels_t, **macro).item(),
        macro_auc=_nanmean(per_class["auc"].to_numpy()),
        num_samples=len(labels_t),
        per_class=per_class,
        confusion=multiclass_confusion_matrix(probs_t, labels_t, **common).numpy().astype(np.int64),
    )


def top_confident_mistakes(probs: ArrayLike, labels: ArrayLike, k: int) -> pd.DataFrame:
    """The ``k`` wrong predictions the model was surest of, most confident first.

    ``index`` is the sample's position in the evaluated split so later stages can fetch the
    image; ties in confidence keep split order.
    """
    if k < 0:
        raise DataError(f"k must be >= 0 mistakes, got {k}")
    probs_t, labels_t = _validated(probs, labels, num_classes=None)
    confidence, predicted = probs_t.max(dim=1)
    wrong = torch.nonzero(predicted != labels_t).squeeze(1)
    order = torch.argsort(confidence[wrong], descending=True, stable=True)[:k]
    picked = wrong[order]
    return pd.DataFrame(
        {
            "index": picked.numpy(),
            "true": labels_t[picked].numpy(),
            "predicted": predicted[picked].numpy(),
            "confidence": confidence[picked].numpy(),
            "true_class_prob": probs_t[picked, labels_t[picked]].numpy(),
        },
        columns=list(MISTAKE_COLUMNS),
    )


def _per_class_auc(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """One-vs-rest AUC per class; NaN where a class has no positives or no negatives.

    torchmetrics reports such classes as 0 (and warns), which would drag the macro mean down.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*samples in targets.*")
        auc = multiclass_auroc(
            probs, labels, num_classes=probs.shape[1], average="none", validate_args=False
        ).numpy().astype(np.float64)
    positives = torch.bincount(labels, minlength=probs.shape[1]).numpy()
    defined = (positives > 0) & (positives < len(labels))
    return np.where(defined, auc, np.nan)


def _nanmean(values: np.ndarray) -> float:
    """Mean over defined values, NaN (without a warning) when none is defined."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _validated(
    probs: ArrayLike, labels: ArrayLike, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU float/int64 tensors of matching shapes, or a DataError naming the mismatch."""
    probs_t = torch.as_tensor(probs).detach().cpu()
    labels_t = torch.as_tensor(labels).detach().cpu()
    if probs_t.ndim != 2 or not probs_t.is_floating_point():
        raise DataError(f"probs must be a float [N, C] array, got {probs_t.dtype} {tuple(probs_t.shape)}")
    if labels_t.ndim != 1 or labels_t.is_floating_point() or labels_t.is_complex():
        raise DataError(f"labels must be an integer [N] array, got {labels_t.dtype} {tuple(labels_t.shape)}")
    if len(labels_t) != len(probs_t) or len(labels_t) == 0:
        raise DataError(
            f"probs has {len(probs_t)} rows but labels has {len(labels_t)}; need the same non-zero count"
        )
    if num_classes is not None and probs_t.shape[1] != num_classes:
        raise DataError(f"probs has {probs_t.shape[1]} columns but {num_classes} class names were given")
    labels_t = labels_t.long()
    if labels_t.min() < 0 or labels_t.max() >= probs_t.shape[1]:
        raise DataError(f"labels must lie in [0, {probs_t.shape[1] - 1}], got {labels_t.min()}..{labels_t.max()}")
    return probs_t.float(), labels_t
