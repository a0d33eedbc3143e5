"""The one stderr console and progress-bar style every stage reports through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, soft_wrap=True)
"""Soft wrap: a log line is never broken at 80 columns when the output is a file (rich's width there)."""


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """Live bars on a terminal only: in a log, rich would print every bar's last state when the stage ends
    (cut at 80 columns), repeating the one line per epoch and per unit the stages write there."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        yield progress
