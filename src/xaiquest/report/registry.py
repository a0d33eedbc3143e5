"""Findings and the registry of the rules that compute them.

A rule reads the run's tables through :class:`RunTables` and returns :class:`Finding` objects
whose text quotes the numbers it was computed from and whose ``source`` names the file it
cites. No sentence about results is written in advance: a rule whose tables are missing
returns ``[]``, so the report states only what this run measured and stays silent elsewhere.
Adding an analysis is one ``@finding_rule("name", tags=...)`` function (see docs/report.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from xaiquest.errors import UnknownNameError
from xaiquest.report.derived import chance_level_groups
from xaiquest.report.reader import RunTables, group_of


Kind = Literal["strength", "weakness", "note"]
TAGS = ("bias", "reliability", "generalisation")


@dataclass(frozen=True)
class Finding:
    """One measured statement: ``text`` quotes ``numbers``; ``source`` is the run-relative file it cites."""

    section: str
    text: str
    numbers: Mapping[str, float]
    source: str
    kind: Kind = "note"
    tags: tuple[str, ...] = ()
    rule: str = ""
    subjects: tuple[str, ...] = ()
    """Run or (model, variant) ids the finding judges: a strength about a chance-level model is demoted."""
    ref: str = ""
    """The finding's number in the report (``F12``), set when the report orders its findings."""


RuleFn = Callable[[RunTables], list[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    fn: RuleFn
    tags: tuple[str, ...]


RULES: dict[str, Rule] = {}
"""Registered rules in registration order (the order findings appear within a section)."""


def finding_rule(name: str, tags: Iterable[str] = ()) -> Callable[[RuleFn], RuleFn]:
    """Register a rule; its ``tags`` (bias / reliability / generalisation) feed the critical reflection."""
    tags = tuple(tags)
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise ValueError(f"unknown finding tags {unknown}; available: {', '.join(TAGS)}")

    def decorator(fn: RuleFn) -> RuleFn:
        if name in RULES:
            raise ValueError(f"finding rule {name!r} is registered twice")
        RULES[name] = Rule(name, fn, tags)
        return fn

    return decorator


def run_rules(run: RunTables, names: Iterable[str] | None = None) -> list[Finding]:
    """The findings of every rule (or of ``names``), stamped with the rule's name and default tags;
    strengths about chance-level models are demoted to notes (an untrained model has no strengths)."""
    findings: list[Finding] = []
    near_chance = chance_level_groups(run)
    for name in RULES if names is None else names:
        if name not in RULES:
            raise UnknownNameError(f"unknown finding rule {name!r}; available: {', '.join(RULES)}")
        rule = RULES[name]
        findings += [demote_at_chance(replace(f, rule=name, tags=f.tags or rule.tags), near_chance)
                     for f in rule.fn(run)]
    return findings


def demote_at_chance(finding: Finding, near_chance: set[str]) -> Finding:
    """A strength about a model at chance level becomes a note that says why."""
    if finding.kind != "strength" or not any(group_of(s) in near_chance for s in finding.subjects):
        return finding
    return replace(finding, kind="note",
                   text=finding.text + " Not counted as a strength: the model is at chance-level accuracy.")
