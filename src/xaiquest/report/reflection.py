"""The summary's lead findings and the critical reflection: what the findings imply for trust, per category."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from xaiquest.report.reader import (
    CALIBRATION,
    COMPARISON,
    EXPLAIN_QUALITY,
    LAYERWISE,
    PATCH_RELIANCE,
    ROBUSTNESS_SUMMARY,
    STRESS_TABLES,
)
from xaiquest.report.registry import TAGS, Finding, Kind
from xaiquest.report.text import plural


SUMMARY = (  # (rules tried in order, kinds preferred in order): one finding per entry
    (("chance_level",), ("weakness",)),
    (("overall_ranking", "accuracy_ranking"), ("note",)),
    (("patch_shortcut",), ("weakness", "strength", "note")),
    (("calibration_extremes", "confidence_direction"), ("weakness",)),
    (("hardest_family_overall", "worst_corruption_family"), ("weakness", "note")),
    (("sanity_failures",), ("weakness", "strength")),
)
"""The verdict first: models that learned nothing, the overall ranking, a learned shortcut, miscalibration,
the hardest corruption family and explanation methods failing the sanity check."""


def summary_findings(findings: Iterable[Finding]) -> list[Finding]:
    """The few findings the summary leads with, at most one per ``SUMMARY`` entry."""
    findings = list(findings)
    chosen = []
    for rules, kinds in SUMMARY:
        candidates = [f for rule in rules for kind in kinds for f in findings if f.rule == rule and f.kind == kind]
        if candidates:
            chosen.append(candidates[0])
    return chosen


EVIDENCE = {
    "bias": f"stress probes ({STRESS_TABLES}) or the planted-patch probe ({PATCH_RELIANCE})",
    "reliability": f"calibration ({CALIBRATION}), multi-seed accuracy or explanation sanity checks ({EXPLAIN_QUALITY})",
    "generalisation": f"test accuracy ({COMPARISON}), corruption robustness ({ROBUSTNESS_SUMMARY}) or "
                      f"layer-wise representations ({LAYERWISE})",
}
"""What would have measured each reflection category, quoted when a run lacks it."""


LESSONS: dict[tuple[str, Kind], str] = {
    ("chance_level", "weakness"): "Some models learned next to nothing: every other number about them describes an "
                                  "untrained network, so none of it counts in their favour",
    ("accuracy_noise", "note"): "Accuracy gaps are not all known to exceed seed noise, so rankings by accuracy "
                                "alone are provisional",
    ("calibration_extremes", "weakness"): "Calibration differs between models, so their confidence scores cannot be "
                                          "compared, or read as probabilities, without recalibration",
    ("confidence_direction", "weakness"): "Confidence does not match accuracy for some models: a confidence "
                                          "threshold tuned on one model does not transfer to another",
    ("temperature_scaling", "weakness"): "A single global temperature made some models worse: their miscalibration "
                                         "is not global",
    ("hardest_family_overall", "weakness"): "Accuracy on clean test images overstates accuracy under distribution "
                                            "shift, by an amount that depends on the kind of shift",
    ("corruption_calibration", "weakness"): "Calibration degrades under corruption, so confidence is least "
                                            "trustworthy exactly when the inputs drift",
    ("sanity_failures", "weakness"): "Some explanation methods barely depend on the learned weights: their maps are "
                                     "no evidence of what a model learned",
    ("sanity_failures", "strength"): "Every method passes the randomisation sanity check, which rules out "
                                     "weight-independent maps but not unfaithful ones",
    ("faithfulness_overall", "note"): "Methods differ in faithfulness, so the choice of explainer changes the "
                                      "story an explanation tells",
    ("patch_shortcut", "weakness"): "A model follows a planted shortcut: a good test accuracy does not rule out "
                                    "shortcut learning",
    ("patch_shortcut", "strength"): "No model learned the planted patch at the strength tested; that bounds this "
                                    "shortcut, not shortcuts in general",
    ("stress_probe_sensitivity", "weakness"): "Predictions move with input properties that should not decide the "
                                              "class, the signature of biases learned from the data",
    ("variant_effects", "note"): "Each training variant moves several properties at once, so it has to be judged "
                                 "on all of them, not on accuracy alone",
    ("reexamination", "note"): "Re-examining the baseline's most confident mistakes shows how little (or how much) "
                               "a recipe change repairs the failures that matter most",
    ("layerwise_cka", "note"): "Clean and noisy representations part at specific depths, which locates where "
                               "robustness is lost",
}
"""What a kind of finding implies for trust, stated once and backed by the findings that triggered it."""


@dataclass(frozen=True)
class Reflection:
    """One category: a count, the lessons drawn (each citing its findings by number) and the findings cited."""

    tag: str
    summary: str
    findings: tuple[Finding, ...]
    lessons: tuple[str, ...] = ()


def cite(findings: Iterable[Finding]) -> str:
    """``F3, F7``: findings cited by their report numbers (by rule name before they are numbered)."""
    refs = dict.fromkeys(f.ref or f.rule for f in findings)
    return ", ".join(sorted(refs, key=lambda r: int(r[1:]) if re.fullmatch(r"F\d+", r) else math.inf))


def critical_reflection(findings: Iterable[Finding]) -> list[Reflection]:
    """Per category, what the measurements imply, citing the findings instead of repeating them: the
    reflection argues only from this run's findings, weaknesses first, and says what was not measured."""
    order = {"weakness": 0, "note": 1, "strength": 2}
    findings = list(findings)
    reflections = []
    for tag in TAGS:
        tagged = tuple(sorted((f for f in findings if tag in f.tags), key=lambda f: order[f.kind]))
        if not tagged:
            reflections.append(Reflection(tag, f"This run did not measure {tag}: it has none of {EVIDENCE[tag]}.", ()))
            continue
        weak = sum(f.kind == "weakness" for f in tagged)
        strong = sum(f.kind == "strength" for f in tagged)
        summary = (f"{plural(len(tagged), 'measured finding')} on {tag}: {plural(weak, 'weakness', 'weaknesses')}, "
                   f"{plural(strong, 'strength')}, {plural(len(tagged) - weak - strong, 'note')}.")
        lessons, explained = [], set()
        for f in tagged:
            key = (f.rule, f.kind)
            if key in LESSONS and key not in explained:
                explained.add(key)
                lessons.append(f"{LESSONS[key]} ({cite(g for g in tagged if (g.rule, g.kind) == key)}).")
        rest = [f for f in tagged if (f.rule, f.kind) not in explained]
        if rest:
            lessons.append(f"Also bearing on {tag}: {cite(rest)}.")
        reflections.append(Reflection(tag, summary, tagged, tuple(lessons)))
    return reflections
