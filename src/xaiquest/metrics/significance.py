"""Family-wise correction of p-values, shared by every stage that runs many tests at once."""

from __future__ import annotations

import numpy as np


def correct_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """Family-wise corrected p-values: Bonferroni (p * m) or Holm's step-down, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    corrected = np.empty(m)
    corrected[order] = np.minimum(stepped, 1.0)
    return corrected
