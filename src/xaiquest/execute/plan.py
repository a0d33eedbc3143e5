"""The audit as a DAG of units, from each stage's own declaration of its units and their inputs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from xaiquest.config import ExperimentConfig
from xaiquest.units import UnitSpec


def audit_units(config: ExperimentConfig, stages: Sequence[str], declarations: Mapping[str, str]) -> list[UnitSpec]:
    """Every unit of ``stages`` (in stage order) that an executor can run on its own, from each stage's
    ``module:function`` declaration; a stage without one (compare, report) only has a run-level tail.

    A unit's input that belongs to a stage outside ``stages`` is dropped from its ``needs``: such a
    stage is not run now, so the unit reads what that stage left in the run (or fails saying so)."""
    units: list[UnitSpec] = []
    for stage in stages:
        if stage in declarations:
            module, function = declarations[stage].split(":")
            units.extend(getattr(importlib.import_module(module), function)(config))
    planned = {unit.name for unit in units}
    return [UnitSpec(unit.stage, unit.name, tuple(need for need in unit.needs if need in planned)) for unit in units]
