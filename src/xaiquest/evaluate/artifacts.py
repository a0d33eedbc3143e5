"""Writing one model's Stage-1 evaluation to its folder (:class:`~xaiquest.layout.EvalFiles`).

Every file is written atomically (temp file in the same directory, then ``os.replace``) so an
interrupted run never leaves a truncated artifact that a later stage would trust.
Figures are drawn on bare ``Figure`` objects (Agg rendering, no pyplot state), which keeps this
safe in headless and multi-threaded runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xaiquest.errors import DataError
from xaiquest.figures import save_figure
from xaiquest.layout import EvalFiles
from xaiquest.metrics.classification import ClassificationMetrics
from xaiquest.store import atomic_write_text


def write_evaluation(
    metrics: ClassificationMetrics,
    mistakes: pd.DataFrame,
    classes: Sequence[str],
    files: EvalFiles,
    title: str = "Confusion matrix",
) -> None:
    """Write the metrics, per-class table, confusion matrix (table and figure) and most confident mistakes."""
    classes = list(classes)
    if metrics.confusion.shape != (len(classes), len(classes)):
        raise DataError(
            f"{len(classes)} class names given for a {metrics.confusion.shape} confusion matrix"
        )
    atomic_write_text(files.metrics, json.dumps(metrics.to_dict(), indent=2) + "\n")
    atomic_write_text(files.per_class, metrics.per_class.to_csv())
    confusion = pd.DataFrame(
        metrics.confusion, index=pd.Index(classes, name="true"), columns=classes
    )
    atomic_write_text(files.confusion, confusion.to_csv())
    save_figure(
        confusion_figure(metrics.confusion, classes, f"{title} (accuracy {metrics.accuracy:.2%})"),
        files.confusion_figure,
    )
    atomic_write_text(files.misclassified, _named_mistakes(mistakes, classes).to_csv(index=False))


ANNOTATED_CLASSES = 20
"""Up to this many classes every cell shows its count; past it the colours alone (counts: confusion.csv)."""
MAX_TICK_LABELS = 50
"""At most this many class names per axis: past it every k-th class is named, in small type."""
MAX_SIDE_INCHES = 14.0
"""The matrix's side stops growing here (reached at 20 classes), so 100 classes still make a viewable PNG."""


def confusion_figure(confusion: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Heatmap coloured by row-normalised rate (per-class recall view), annotated with counts up to
    ANNOTATED_CLASSES classes; bounded in size with thinned class names for many classes."""
    counts = np.asarray(confusion)
    row_totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    size = min(MAX_SIDE_INCHES, max(4.0, 0.6 * len(classes) + 2.0))
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    if len(classes) <= ANNOTATED_CLASSES:
        for (row, col), count in np.ndenumerate(counts):
            ax.text(
                col, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if rates[row, col] > 0.5 else "black",
            )
    step = -(-len(classes) // MAX_TICK_LABELS)
    ticks = np.arange(0, len(classes), step)
    names = [classes[i] for i in ticks]
    small = {} if len(classes) <= ANNOTATED_CLASSES else {"fontsize": 6}
    ax.set_xticks(ticks, labels=names, rotation=90 if small else 45, ha="right", rotation_mode="anchor", **small)
    ax.set_yticks(ticks, labels=names, **small)
    named = "" if step == 1 else f" (one class in {step} named)"
    ax.set_xlabel(f"predicted{named}")
    ax.set_ylabel(f"true{named}")
    ax.set_title(title)
    return fig


def _named_mistakes(mistakes: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Add readable class names next to the integer labels later stages index by."""
    names = np.asarray(classes, dtype=object)
    return mistakes.assign(
        true_class=names[mistakes["true"].to_numpy(dtype=np.int64)],
        predicted_class=names[mistakes["predicted"].to_numpy(dtype=np.int64)],
    )
