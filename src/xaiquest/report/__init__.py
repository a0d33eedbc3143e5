"""The audit report: findings computed from a run's tables, rendered as HTML and Markdown."""

from xaiquest.report.findings import Finding, RunTables, finding_rule, run_rules
from xaiquest.report.sections import build_report
from xaiquest.report.stage import report_stage, write_report

__all__ = ["Finding", "RunTables", "build_report", "finding_rule", "report_stage", "run_rules", "write_report"]
