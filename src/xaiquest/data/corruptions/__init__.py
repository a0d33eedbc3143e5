"""Batched CIFAR-10-C corruptions: ``corrupt(images, name, severity, seed)`` for all 19 of the reference.

Importing the package registers every corruption; ``docs/corruptions.md`` lists the parameters
and every place the engine differs from the reference generator.
"""

from __future__ import annotations

from xaiquest.data.corruptions import blur, digital, noise, weather  # noqa: F401  (registration)
from xaiquest.data.corruptions.engine import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
    Corruption,
    corrupt,
    corruption_parameters,
    register_corruption,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "FAMILIES",
    "SEVERITIES",
    "Corruption",
    "corrupt",
    "corruption_parameters",
    "register_corruption",
]
