"""Figures used by several stages, one module per domain (calibration, robustness, training, heatmaps).

Bare ``Figure`` objects (Agg rendering, no pyplot state), so drawing is safe headless and in threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from xaiquest.store import atomic_target

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(fig: Figure, path: Path, dpi: int = 150) -> None:
    """Save ``fig`` as PNG atomically (the temp name has no .png suffix, so the format is explicit)."""
    with atomic_target(path) as temp:
        fig.savefig(temp, format="png", dpi=dpi, bbox_inches="tight")
