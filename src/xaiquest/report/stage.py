"""Stage: the audit report of a run, ``report.html`` (self-contained) and ``report.md``.

It only reads what earlier stages wrote, so it also works on its own (``write_report``) on any
run directory, finished or partial: sections whose stage did not run stay out of the report.
"""

from __future__ import annotations

from pathlib import Path

import torch

from xaiquest.config import ExperimentConfig
from xaiquest.console import console
from xaiquest.errors import XaiquestError
from xaiquest.layout import RunLayout
from xaiquest.report.findings import RunTables
from xaiquest.report.render import write_report_files
from xaiquest.report.sections import build_report
from xaiquest.runs import AuditData
from xaiquest.store import RunStore


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (plus the tables and figures they add) into ``run_dir``."""
    layout = RunLayout(Path(run_dir))
    if not layout.manifest.is_file() and not layout.models.is_dir():
        raise XaiquestError(f"{layout.root} is not a run directory: it has neither {layout.manifest.name} "
                            f"nor {layout.models.name}/")
    return write_report_files(build_report(RunTables(layout.root)), layout.root)


def report_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    html_path, md_path = write_report(store.root)
    console.print(f"report: wrote {html_path} and {md_path}")
