"""Metrics computed from model outputs."""

from xaiquest.metrics.classification import (
    ClassificationMetrics,
    classification_metrics,
    top_confident_mistakes,
)

__all__ = ["ClassificationMetrics", "classification_metrics", "top_confident_mistakes"]
