"""Stage-1 evaluation outputs: per-model artifacts and the cross-model comparison."""

from xaiquest.evaluate.artifacts import write_evaluation
from xaiquest.evaluate.compare import comparison_table, write_comparison

__all__ = ["comparison_table", "write_comparison", "write_evaluation"]
