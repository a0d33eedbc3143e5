"""Render a :class:`Report` as ``report.md`` and a self-contained ``report.html``.

The HTML opens offline from a single file: figures are embedded as base64 PNG previews (scaled
to the width they are shown at and reduced to 256 colours, so the page stays small) that link to
the full-size PNG in the run directory; the CSS is inline and nothing points outside the run
directory (links go to its CSVs and PNGs, relative).
It is also well-formed XML (void tags closed, no named entities), so a test can parse it
strictly. The Markdown carries the same content with figures linked by relative path.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from PIL import Image

from xaiquest.figures import save_figure
from xaiquest.layout import RELATIVE, RunLayout
from xaiquest.report.findings import Finding
from xaiquest.report.blocks import Block, FigureBlock, FindingList, Gallery, Paragraph, Report, Section, TableBlock
from xaiquest.store import atomic_write_text

MAX_ROWS = 25
"""Longer tables show their first rows (or, ranked, their lowest and highest) and link the full CSV."""
FINDINGS = RELATIVE.tables.findings.as_posix()
NUMERIC_TEXT = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?( ± [\d.]+)?$")
PAGE_WIDTH = 1100
"""Pixels of the page's content column: embedded previews are no wider than they are shown."""
PREVIEW_COLOURS = 256
FINDING_REF = re.compile(r"\bF\d+\b")

Titles = Mapping[str, tuple[int, str]]
"""Section key -> (number, title), for links from the summary to the sections."""


def write_report_files(report: Report, root: Path) -> tuple[Path, Path]:
    """Write the tables and figures the report computed, ``tables/findings.csv``, then the two reports."""
    root = Path(root)
    for block in _all_blocks(report):
        if isinstance(block, TableBlock) and block.data is not None:
            atomic_write_text(root / block.source, block.data.to_csv(index=False))
        elif isinstance(block, FigureBlock) and block.figure is not None:
            save_figure(block.figure, root / block.path)
    atomic_write_text(root / FINDINGS, findings_table(report.findings).to_csv(index=False))
    layout = RunLayout(root)
    html_path, md_path = layout.report_html, layout.report_markdown
    atomic_write_text(md_path, render_markdown(report))
    atomic_write_text(html_path, render_html(report, root))
    return html_path, md_path


def findings_table(findings: tuple[Finding, ...]) -> pd.DataFrame:
    """Every finding as a row; ``numbers`` as JSON so the values a sentence quotes stay machine-readable."""
    rows = [{"ref": f.ref, "section": f.section, "rule": f.rule, "kind": f.kind, "tags": ";".join(f.tags),
             "text": f.text, "source": f.source, "numbers": json.dumps({k: float(v) for k, v in f.numbers.items()})}
            for f in findings]
    return pd.DataFrame(rows, columns=["ref", "section", "rule", "kind", "tags", "text", "source", "numbers"])


def _all_blocks(report: Report) -> Iterator[Block]:
    for section in report.sections:
        for block in section.blocks:
            yield block
            if isinstance(block, Gallery):
                yield from block.figures


def _column_text(values: pd.Series) -> list[str]:
    """A column as text with one precision for all its numbers, so they line up.

    Whole-number float columns (ints with gaps) print as ints; otherwise 1 decimal from 100 up,
    2 from 10 up, else 4 (scientific for a nonzero value below 0.001). NaN prints empty.
    """
    if not is_numeric_dtype(values) or is_bool_dtype(values) or values.isna().all():
        return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    present = values.dropna()
    if (present == present.round()).all():
        return ["" if pd.isna(v) else str(int(v)) for v in values]
    largest = present.abs().max()
    digits = 1 if largest >= 100 else 2 if largest >= 10 else 4
    return ["" if pd.isna(v) else f"{v:.2e}" if digits == 4 and 0 < abs(v) < 0.001 else f"{v:.{digits}f}"
            for v in values]


def _cells(block: TableBlock) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, the shown rows as text, and which columns are numeric (right-aligned)."""
    shown = _shown_rows(block)[0]
    columns = [_column_text(shown.iloc[:, i]) for i in range(shown.shape[1])]
    numeric = [any(column) and all(not cell or NUMERIC_TEXT.match(cell) for cell in column) for column in columns]
    rows = [list(row) for row in zip(*columns)]
    return [str(c) for c in shown.columns], rows, numeric


def _shown_rows(block: TableBlock) -> tuple[pd.DataFrame, str]:
    """The rows shown and the note saying which: all up to MAX_ROWS; past it, with a ranking, the
    MAX_ROWS // 2 lowest and highest scores (100 classes show their extremes), else the first MAX_ROWS."""
    frame, total, half = block.display, len(block.display), MAX_ROWS // 2
    if total <= MAX_ROWS:
        return frame, ""
    ranking = block.ranking
    order = [] if ranking is None else ranking.scores.reset_index(drop=True).dropna().sort_values(kind="stable").index
    if ranking is not None and len(order) > 2 * half:
        return (frame.iloc[[*order[:half], *order[-half:]]],
                f"Showing the {half} lowest and {half} highest of {total} rows by {ranking.by}. ")
    return frame.head(MAX_ROWS), f"Showing {MAX_ROWS} of {total} rows. "


def _table_note(block: TableBlock) -> str:
    return _shown_rows(block)[1]


# --------------------------------------------------------------------------------------------
# Markdown


def section_titles(report: Report) -> dict[str, tuple[int, str]]:
    return {s.key: (i, s.title) for i, s in enumerate(report.sections, 1)}


def render_markdown(report: Report) -> str:
    titles = section_titles(report)
    lines = [f"# {report.title}", "", " · ".join(report.meta), "", "## Contents", ""]
    lines += [f"{i}. [{s.title}](#{_slug(f'{i}. {s.title}')})" for i, s in enumerate(report.sections, 1)]
    for i, section in enumerate(report.sections, 1):
        lines += ["", f"## {i}. {section.title}", "", section.intro]
        for block in section.blocks:
            lines += ["", *_markdown_block(block, titles)]
    return "\n".join(lines) + "\n"


def _slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _markdown_block(block: Block, titles: Titles) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, TableBlock):
        headers, rows, numeric = _cells(block)
        escaped = [[cell.replace("|", "\\|") for cell in row] for row in [headers, *rows]]
        table = pd.DataFrame(escaped[1:], columns=escaped[0]).to_markdown(
            index=False, disable_numparse=True, colalign=["right" if n else "left" for n in numeric])
        links = ", ".join(f"[{p}]({p})" for p in (block.source, *block.see_also))
        return [f"**{block.title}**", "", table, "", f"*{_table_note(block)}CSV: {links}*"]
    if isinstance(block, FigureBlock):
        return [f"[![{block.caption}]({block.path})]({block.path})", "", f"*{block.caption}*"]
    if isinstance(block, Gallery):
        lines = [f"**{block.title}**", ""]
        for figure in block.figures:
            lines += [f"[![{figure.caption}]({figure.path})]({figure.path})", f"*{figure.caption}*", ""]
        return lines[:-1]
    lines = [f"### {block.title}", ""] + ([block.intro, ""] if block.intro else [])
    return lines + [f"- **{f.ref} {f.kind}**: {f.text} ([{f.source}]({f.source}))" + _markdown_section_link(f, block, titles)
                    for f in block.findings]


def _markdown_section_link(finding: Finding, block: FindingList, titles: Titles) -> str:
    if not block.linked or finding.section not in titles:
        return ""
    number, title = titles[finding.section]
    return f" → [{number}. {title}](#{_slug(f'{number}. {title}')})"


# --------------------------------------------------------------------------------------------
# HTML

CSS = """
:root { --fg: #1c2330; --muted: #5b6475; --line: #d8dde6; --soft: #f4f6f9; --accent: #2f5d9e; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
.page { max-width: 1100px; margin: 0 auto; padding: 2.2rem 1.6rem 5rem; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0 0 .3rem; }
h2 { font-size: 1.45rem; margin: 3rem 0 .6rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.8rem 0 .5rem; }
p { margin: .5rem 0; }
a { color: var(--accent); }
.meta, .note, figcaption { color: var(--muted); }
.meta { margin-bottom: 1.4rem; }
.intro { font-size: 1.02rem; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: .7rem 1.4rem; }
nav.toc h2 { font-size: 1.05rem; margin: .2rem 0; border: 0; padding: 0; }
nav.toc ol { columns: 2; column-gap: 2.5rem; margin: .3rem 0; padding-left: 1.4rem; }
.table-title { font-weight: 600; margin: 1.4rem 0 .3rem; }
.table-wrap { overflow-x: auto; margin: .3rem 0; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .84rem; font-variant-numeric: tabular-nums; }
th, td { padding: .32rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; vertical-align: bottom; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:last-child td { border-bottom: 0; }
.note { font-size: .82rem; margin: .2rem 0 1rem; }
figure { margin: 1.2rem 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; border: 1px solid var(--line);
  border-radius: 4px; cursor: zoom-in; }
figcaption { font-size: .84rem; text-align: center; margin-top: .35rem; }
.gallery { display: grid; gap: 1rem 1.4rem; align-items: start; }
.gallery figure { margin: .4rem 0; }
.cols-1 { grid-template-columns: minmax(0, 1fr); }
.cols-2 { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.cols-3 { grid-template-columns: repeat(3, minmax(0, 1fr)); }
ul.findings { list-style: none; padding-left: 0; }
ul.findings li { display: flex; gap: .7rem; align-items: baseline; margin: .5rem 0; }
.kind { flex: 0 0 5.4rem; text-align: center; font-size: .68rem; font-weight: 700; letter-spacing: .05em;
  text-transform: uppercase; padding: .08rem .3rem; border-radius: 3px; }
.kind.strength { background: #e2f3e7; color: #1d6a39; }
.kind.weakness { background: #fbe6e4; color: #9a2b22; }
.kind.note { background: #e7edf7; color: #2d4d84; }
.ref { flex: 0 0 2.6rem; font-size: .78rem; font-weight: 700; color: var(--muted); }
ul.findings li:target { background: #fff7d6; }
a.section { font-size: .84rem; white-space: nowrap; margin-left: .4rem; }
#summary ul.findings { font-size: 1.04rem; }
a.source { font-size: .78rem; color: var(--muted); margin-left: .3rem; overflow-wrap: anywhere; }
@media (max-width: 760px) { .cols-2, .cols-3 { grid-template-columns: minmax(0, 1fr); } nav.toc ol { columns: 1; } }
@media print { .page { max-width: none; } figure, table { break-inside: avoid; } }
"""


def render_html(report: Report, root: Path) -> str:
    """The whole report as one offline HTML page; figures are read from ``root`` and embedded as previews."""
    titles = section_titles(report)
    toc = "".join(f'<li><a href="#{s.key}">{_e(s.title)}</a></li>' for s in report.sections)
    body = "".join(_html_section(i, s, Path(root), titles) for i, s in enumerate(report.sections, 1))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8" /><meta name="viewport" content="width=device-width, '
        f'initial-scale=1" /><title>{_e(report.title)}</title><style>{CSS}</style></head>\n'
        f'<body><div class="page"><header><h1>{_e(report.title)}</h1>'
        f'<p class="meta">{_e(" · ".join(report.meta))}</p></header>\n'
        f'<nav class="toc"><h2>Contents</h2><ol>{toc}</ol></nav>\n<main>{body}</main></div></body></html>\n'
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _link(path: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f'<a{attribute} href="{_e(path)}">{_e(path)}</a>'


def _html_section(number: int, section: Section, root: Path, titles: Titles) -> str:
    blocks = "\n".join(_html_block(block, root, titles) for block in section.blocks)
    return (f'\n<section id="{section.key}"><h2>{number}. {_e(section.title)}</h2>'
            f'<p class="intro">{_e(section.intro)}</p>\n{blocks}</section>')


def _html_block(block: Block, root: Path, titles: Titles) -> str:
    if isinstance(block, Paragraph):
        text = _e(block.text)
        return f"<p>{FINDING_REF.sub(_ref_link, text) if block.cites else text}</p>"
    if isinstance(block, TableBlock):
        return _html_table(block)
    if isinstance(block, FigureBlock):
        return _html_figure(block, root)
    if isinstance(block, Gallery):
        figures = "".join(_html_figure(f, root, PAGE_WIDTH // block.columns) for f in block.figures)
        return (f'<h3>{_e(block.title)}</h3><div class="gallery cols-{block.columns}">{figures}</div>')
    return _html_findings(block, titles)


def _ref_link(match: re.Match[str]) -> str:
    return f'<a href="#{match[0]}">{match[0]}</a>'



def _html_table(block: TableBlock) -> str:
    headers, rows, numeric = _cells(block)

    def cls(i: int) -> str:
        return ' class="num"' if numeric[i] else ""

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_e(c)}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    links = ", ".join(_link(p) for p in (block.source, *block.see_also))
    return (f'<p class="table-title">{_e(block.title)}</p><div class="table-wrap"><table><thead><tr>{head}</tr>'
            f'</thead><tbody>{body}</tbody></table></div><p class="note">{_e(_table_note(block))}CSV: {links}</p>')


def preview_png(path: Path, width: int = PAGE_WIDTH) -> bytes:
    """The figure as shown on the page: at most ``width`` px wide and 256 colours (plots barely change;
    the page stays a few MB). The full-size PNG stays in the run directory, one click away."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(PREVIEW_COLOURS, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG")
    return buffer.getvalue()


def _html_figure(block: FigureBlock, root: Path, width: int = PAGE_WIDTH) -> str:
    data = base64.b64encode(preview_png(root / block.path, width)).decode("ascii")
    return (f'<figure><a href="{_e(block.path)}" title="open full size"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(block.caption)}" /></a><figcaption>{_e(block.caption)} (click to enlarge; full size: '
            f"{_link(block.path)})</figcaption></figure>")


def _html_findings(block: FindingList, titles: Titles) -> str:
    intro = f"<p>{_e(block.intro)}</p>" if block.intro else ""
    items = "".join(_html_finding(f, block, titles) for f in block.findings)
    return f'<h3>{_e(block.title)}</h3>{intro}' + (f'<ul class="findings">{items}</ul>' if items else "")


def _html_finding(finding: Finding, block: FindingList, titles: Titles) -> str:
    """A numbered finding: in its own section it carries the anchor (``#F12``); the summary links to it."""
    anchor = f' id="{finding.ref}"' if finding.ref and not block.linked else ""
    ref = f'<span class="ref"><a href="#{finding.ref}">{finding.ref}</a></span>' if finding.ref else ""
    return (f'<li{anchor}>{ref}<span class="kind {finding.kind}">{finding.kind}</span><span>{_e(finding.text)}'
            f'{_link(finding.source, "source")}{_html_section_link(finding, block, titles)}</span></li>')


def _html_section_link(finding: Finding, block: FindingList, titles: Titles) -> str:
    if not block.linked or finding.section not in titles:
        return ""
    number, title = titles[finding.section]
    return f'<a class="section" href="#{finding.section}">→ {number}. {_e(title)}</a>'

