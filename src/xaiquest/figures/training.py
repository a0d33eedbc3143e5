"""Training curves: loss and accuracy per epoch, drawn by the trainer after every epoch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xaiquest.errors import DataError
from xaiquest.figures import save_figure

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


def plot_training_curves(history: pd.DataFrame, path: Path, title: str) -> None:
    """Loss and accuracy per epoch; validation curves are drawn only where they exist (not NaN)."""
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise DataError(f"training history lacks columns {missing}; expected {list(HISTORY_COLUMNS)}")
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    fig.suptitle(title)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, quantity in ((loss_ax, "loss"), (acc_ax, "acc")):
        for split in ("train", "val"):
            curve = history[["epoch", f"{split}_{quantity}"]].dropna()
            if not curve.empty:
                ax.plot(curve["epoch"], curve[f"{split}_{quantity}"], marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if quantity == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, Path(path))
