"""The report's building blocks: the content types a section holds, and the helpers every section
builder uses to assemble them (a table as shown, a run figure, a gallery of per-model figures).
The renderer formats these; the builders in ``sections`` and ``analysis`` only describe content."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from matplotlib.figure import Figure

from xaiquest.layout import RELATIVE
from xaiquest.report.findings import Finding, RunTables


@dataclass(frozen=True)
class Ranking:
    """A score per row of a table (aligned with its rows) and what it is, e.g. "mean recall"."""

    scores: pd.Series
    by: str


@dataclass(frozen=True)
class TableBlock:
    """A table as shown (``display``) and the CSV it comes from (``source``, linked).

    ``data`` is set when the report computed the table: the renderer writes it to ``source``.
    A table too long to read shows its first rows, or with a ``ranking`` its lowest- and
    highest-scoring rows (the worst and best classes, say); the note links the full CSV.
    """

    title: str
    display: pd.DataFrame
    source: str
    data: pd.DataFrame | None = None
    see_also: tuple[str, ...] = ()
    ranking: Ranking | None = None


@dataclass(frozen=True)
class FigureBlock:
    """A PNG under the run directory; ``figure`` is set when the report draws it (saved to ``path``)."""

    path: str
    caption: str
    figure: Figure | None = None


@dataclass(frozen=True)
class Gallery:
    """Related figures side by side (one per model, say), ``columns`` to a row."""

    title: str
    figures: tuple[FigureBlock, ...]
    columns: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Text; with ``cites`` its finding numbers (``F12``) become links to the findings."""

    text: str
    cites: bool = False


@dataclass(frozen=True)
class FindingList:
    """Findings with their numbers; with ``linked`` each also links to the section that states it (the summary)."""

    title: str
    intro: str
    findings: tuple[Finding, ...]
    linked: bool = False


Block = TableBlock | FigureBlock | Gallery | Paragraph | FindingList


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    meta: tuple[str, ...]
    sections: tuple[Section, ...]
    findings: tuple[Finding, ...]


SectionBuilder = Callable[[RunTables, list[Finding]], Section | None]


def section_of(key: str, title: str, intro: str, blocks: Iterable[Block | None],
               findings: list[Finding]) -> Section | None:
    """The section with its findings appended; None when it has neither content nor findings."""
    content = [b for b in blocks if b is not None]
    own = tuple(f for f in findings if f.section == key)
    if not content and not own:
        return None
    if own:
        content.append(FindingList("Findings", "", own))
    return Section(key, title, intro, tuple(content))


def display(frame: pd.DataFrame, columns: Mapping[str, str], percent: Iterable[str] = ()) -> pd.DataFrame:
    """The listed columns that exist, renamed to their headers; ``percent`` columns as 0-100 with 2 decimals."""
    shown = frame[[c for c in columns if c in frame]].copy()
    for column in percent:
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{100 * v:.2f}")
    return shown.rename(columns=dict(columns))


def run_figure(run: RunTables, name: str, caption: str) -> FigureBlock | None:
    """The run figure ``name`` (under ``figures/``), if a stage drew it."""
    path = RELATIVE.figures.png(name).as_posix()
    return FigureBlock(path, caption) if (run.root / path).is_file() else None


def model_gallery(run: RunTables, title: str, file: Path, caption: str, columns: int = 2) -> Gallery | None:
    """One figure per model (``file`` of :data:`MODEL_RELATIVE`), captioned with the model's label."""
    labels = run.labels(run.runs)
    paths = {r: run.model_file(r, file.as_posix()) for r in run.runs}
    figures = tuple(FigureBlock(path, f"{labels[r]}: {caption}") for r, path in paths.items() if (run.root / path).is_file())
    return Gallery(title, figures, columns) if figures else None


def files_gallery(run: RunTables, title: str, prefix: str, columns: int = 1) -> Gallery | None:
    """Every run figure whose name starts with ``prefix``, captioned with its name."""
    figures = tuple(FigureBlock(path, PurePosixPath(path).stem.replace("_", " "))
                    for path in run.files(RELATIVE.figures.pattern(prefix).as_posix()))
    return Gallery(title, figures, columns) if figures else None
