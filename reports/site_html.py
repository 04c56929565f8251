"""HTML pieces of the leaderboard page (``reports.site``): sortable tables and embedded plots.

Every text that comes from a file (model names, parameters, verdicts, plot names) passes
through :func:`html.escape` before it enters the page; nothing is inserted as markup, and no
report file is parsed back (the verdicts come from ``reports.verdicts.verdict_table``).
Plots are embedded as ``data:`` URIs inside ``<img>`` (PNG or SVG): an SVG shown through
``<img>`` runs no script and loads nothing, so the page stays self-contained.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

PLOT_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}  # preferred first when both exist
ASCENDING, DESCENDING = "ascending", "descending"
LONG_TEXT = 40  # characters: longer text cells may wrap, shorter ones stay on one line
LEADING_NUMBER = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class Column:
    """A table header: numeric columns sort by number, ``first`` is the direction of the
    first click (a metric shows its largest values first)."""

    label: str
    numeric: bool = False
    first: str = ASCENDING


@dataclass(frozen=True)
class Cell:
    """``html`` is already escaped markup; ``sort`` the key the page sorts by (None: no value,
    always last); ``css`` extra classes of the cell."""

    html: str
    sort: float | str | None = None
    css: str = ""


def text_cell(text: str, sort: float | str | None = None) -> Cell:
    return Cell(escape(text), text if sort is None else sort)


def sortable_table(table_id: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
                   row_classes: Sequence[str] | None = None, caption: str = "",
                   sorted_by: int | None = None) -> str:
    """A ``<table class="sortable">``: each row carries its original position (``data-order``)
    so that ties and missing values keep the page's order; ``sorted_by`` marks the column
    the rows already follow (ascending)."""
    head = []
    for index, column in enumerate(columns):
        state = ASCENDING if index == sorted_by else "none"
        kind = "number" if column.numeric else "text"
        head.append(f'<th scope="col" class="{kind}" data-type="{kind}" data-first="{column.first}" '
                    f'aria-sort="{state}"><button type="button">{escape(column.label)}</button></th>')
    body = []
    for order, row in enumerate(rows):
        css = f' class="{escape(row_classes[order])}"' if row_classes else ""
        cells = "".join(_cell_html(cell, column) for cell, column in zip(row, columns))
        body.append(f'<tr data-order="{order}"{css}>{cells}</tr>')
    caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table class="sortable" id="{escape(table_id)}">{caption_html}\n'
            f'<thead><tr>{"".join(head)}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody></table></div>")


def _cell_html(cell: Cell, column: Column) -> str:
    if cell.sort is None:
        key = ""
    elif isinstance(cell.sort, float):
        key = repr(cell.sort)  # shortest exact form: same bytes on every run
    else:
        key = str(cell.sort)
    kind = "number" if column.numeric else ("long" if len(key) > LONG_TEXT else "")
    css = " ".join(name for name in (kind, cell.css) if name)
    attribute = f' class="{escape(css)}"' if css else ""
    return f'<td{attribute} data-sort="{escape(key)}">{cell.html}</td>'


def inferred_table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    """A sortable table of plain strings (escaped): a column is numeric when every cell that holds
    something other than ``-`` / ``n/a`` starts with a number (``17/20``, ``0.31 [0.2, 0.4]``),
    and sorts by that leading number."""
    width = len(headers)
    rows = [list(row[:width]) + [""] * (width - len(row)) for row in rows]
    numeric = [_numeric_column([row[i] for row in rows]) for i in range(width)]
    columns = [Column(label, is_number, DESCENDING if is_number else ASCENDING)
               for label, is_number in zip(headers, numeric)]
    cells = [[Cell(escape(value), _leading_number(value) if numeric[i] else value)
              for i, value in enumerate(row)] for row in rows]
    return sortable_table(table_id, columns, cells, caption=caption)


def _numeric_column(values: Sequence[str]) -> bool:
    filled = [v for v in values if not _placeholder(v)]
    return bool(filled) and all(_leading_number(v) is not None for v in filled)


def _placeholder(value: str) -> bool:
    text = value.strip().lower()
    return text in ("", "-", "–", "nan", "none") or text.startswith("n/a")


def _leading_number(value: str) -> float | None:
    found = LEADING_NUMBER.match(value)
    return float(found.group(1)) if found and not _placeholder(value) else None


def find_plots(plots_dir: Path) -> dict[str, Path]:
    """``{name: file}`` for the plots under ``plots_dir`` (any depth), the name being the path
    relative to it without suffix, in name order; a plot written as both PNG and SVG is shown
    as PNG (smaller in a page of many figures)."""
    if not plots_dir.is_dir():
        return {}
    found = {}
    for suffix in reversed(PLOT_TYPES):  # the preferred type last, so it wins
        for path in plots_dir.rglob(f"*{suffix}"):
            relative = path.relative_to(plots_dir)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                found[relative.with_suffix("").as_posix()] = path
    return {name: found[name] for name in sorted(found)}


def plot_figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:{PLOT_TYPES[path.suffix]};base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")
