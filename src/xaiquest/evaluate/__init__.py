"""Stage-1 evaluation outputs: per-model artifacts and the cross-model comparison."""

from xaiquest.evaluate.artifacts import plot_training_curves, write_evaluation
from xaiquest.evaluate.compare import comparison_table, write_comparison

__all__ = ["comparison_table", "plot_training_curves", "write_comparison", "write_evaluation"]
