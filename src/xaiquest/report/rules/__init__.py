"""The built-in finding rules, one module per domain; importing the package registers them
(in this order, the order their findings appear within a section)."""

from xaiquest.report.rules import (  # noqa: F401  (registers)
    accuracy,
    calibration,
    robustness,
    explanations,
    stress,
    benchmark,
    layerwise,
    methods,
    ranking,
    concepts,
    transfer,
)
