"""Findings: the public entry point of the report's rules (see docs/report.md).

The parts live in their own modules: the run reader (``reader``), the ``Finding`` and rule
registry (``registry``), number formatting (``text``), the tables the report derives
(``derived``), the built-in rules by domain (``rules/``, registered on import here) and the
summary and critical reflection (``reflection``). Importing this module registers every
built-in rule, so ``run_rules`` sees them all.
"""

from xaiquest.report import rules  # noqa: F401  (registers the built-in rules)
from xaiquest.report.derived import (
    CHANCE_MARGIN,
    CRITERIA,
    chance_level_groups,
    final_ranking,
    robustness_families,
    setup_table,
    stress_tables,
    variant_table,
    xai_method_table,
)
from xaiquest.report.reader import (
    CALIBRATION,
    COMPARISON,
    EXPLAIN_QUALITY,
    FINAL_RANKING,
    LAYERWISE,
    PATCH_LOCALISATION,
    PATCH_RELIANCE,
    REEXAMINE,
    ROBUSTNESS_ACCURACY,
    ROBUSTNESS_FAMILIES,
    ROBUSTNESS_SUMMARY,
    SETUP,
    STRESS_PROBES,
    XAI_BENCHMARK,
    XAI_METHODS,
    RunTables,
    comparison_labels,
    group_of,
)
from xaiquest.report.reflection import Reflection, critical_reflection, summary_findings
from xaiquest.report.registry import RULES, TAGS, Finding, Kind, Rule, finding_rule, run_rules
from xaiquest.report.rules.calibration import CONFIDENCE_TOLERANCE
from xaiquest.report.text import as_bool, ms, num, ordinal, pct, plural, pp, signed_pp

__all__ = [
    "CALIBRATION", "CHANCE_MARGIN", "COMPARISON", "CONFIDENCE_TOLERANCE", "CRITERIA", "EXPLAIN_QUALITY",
    "FINAL_RANKING", "LAYERWISE", "PATCH_LOCALISATION", "PATCH_RELIANCE", "REEXAMINE", "ROBUSTNESS_ACCURACY",
    "ROBUSTNESS_FAMILIES", "ROBUSTNESS_SUMMARY", "RULES", "SETUP", "STRESS_PROBES", "TAGS", "XAI_BENCHMARK", "XAI_METHODS",
    "Finding", "Kind", "Reflection", "Rule", "RunTables", "as_bool", "chance_level_groups", "comparison_labels",
    "critical_reflection", "final_ranking", "finding_rule", "group_of", "ms", "num", "ordinal", "pct", "plural",
    "pp", "robustness_families", "run_rules", "setup_table", "signed_pp", "stress_tables", "summary_findings",
    "variant_table", "xai_method_table",
]
