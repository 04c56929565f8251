"""``python -m reports site``: the leaderboard as one self-contained HTML page.

The page holds what ``python -m reports build`` writes -- per (dataset, split) the results
table (baselines, then neural models; means with bootstrap intervals, ``± sd`` over seeds,
significance marks against the best baseline, tuning trials, seeds and seconds), its legend
and the hyperparameters, built by the same ``reports.tables`` functions -- plus the verdict
table (``reports.verdicts.verdict_table``, the rows ``reports/verdicts.md`` shows) and every
plot under ``reports/plots`` (PNG, else SVG): a split's figures (``reports.plots`` names them
``<dataset>__<split>__<figure>``) under its table, the others in a last section. Every mark,
interval and verdict comes from the statistics file (``reports/statistics.json``), so the page
agrees with the leaderboard and the verdicts by construction; no report file is parsed back.

One file, opened straight from disk: CSS and the sorting script are inline
(``site_template.html``), plots are ``data:`` URIs, nothing is fetched from elsewhere. A click
on a column header sorts that table (a metric by its mean; see the template's script), the
header's ``aria-sort`` says how. Text from result and plot files is escaped. Like the
leaderboard the page depends only on its inputs (no clock, no absolute path unless given one,
sorted file order), so the same inputs give the same bytes.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from importlib import resources
from pathlib import Path

import pandas as pd

from common.atomic import atomic_file
from reports.site_html import (ASCENDING, DESCENDING, Cell, Column, find_plots, inferred_table, plot_figure,
                               sortable_table, text_cell)
from reports.statistics import DEFAULT_FILE, Statistics, entries_by_split, read_statistics
from reports.tables import (BETTER, BOLD_LEGEND, REFERENCE, WORSE, Entry, SplitTable, best_values, budget_note,
                            hyperparameter_row, is_best, legend_lines, metric_value, seconds, seeds_cell,
                            split_table, trials_cell)
from reports.verdicts import HEADERS as VERDICT_HEADERS
from reports.verdicts import NO_NEURAL, display_row, summary_lines, verdict_table

HELP = "build the leaderboard as one self-contained HTML page (sortable tables, verdicts, plots)"
TITLE = "RecAudit leaderboard"
TEMPLATE = "site_template.html"
BODY_MARK = "@@BODY@@"
PLOT_NAME_SEPARATOR = "__"  # reports.plots names a split's figure <dataset>__<split>__<figure>
MARK_TITLES = {BETTER: "significantly better than the reference", WORSE: "significantly worse than the reference"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help=f"the statistics of these results (python -m reports statistics; default {DEFAULT_FILE})")
    parser.add_argument("--plots-dir", type=Path, default=Path("reports/plots"),
                        help="PNG/SVG plots to embed (default: reports/plots; none when absent)")
    parser.add_argument("--out", type=Path, default=Path("reports/site/index.html"))


def run(args: argparse.Namespace) -> int:
    entries, statistics = read_statistics(args.statistics, args.results_root)
    page = build_site(entries, statistics, plots_dir=args.plots_dir)
    with atomic_file(args.out) as handle:
        handle.write(page.encode("utf-8"))
    print(f"wrote {args.out} from {len(entries)} result files")
    return 0


def build_site(entries: Sequence[Entry], statistics: Statistics, plots_dir: Path | None = None) -> str:
    """The whole page as a string."""
    metrics = list(statistics.metrics)
    if not metrics:
        raise ValueError("the site needs at least one metric label")
    groups = entries_by_split(list(entries))
    anchors = unique_anchors([f"split-{dataset}-{protocol}" for dataset, protocol in groups])
    plots = find_plots(plots_dir) if plots_dir is not None else {}
    sections = [verdicts_section(verdict_table(groups, statistics), statistics)]
    contents = [("verdicts", "Verdicts")]
    for anchor, ((dataset, protocol), split_entries) in zip(anchors, groups.items()):
        prefix = f"{dataset}{PLOT_NAME_SEPARATOR}{protocol}{PLOT_NAME_SEPARATOR}"
        figures = {name[len(prefix):]: plots.pop(name) for name in list(plots) if name.startswith(prefix)}
        table = split_table(dataset, protocol, split_entries, statistics)
        sections.append(split_html(anchor, table, statistics, figures))
        contents.append((anchor, f"{dataset} / {protocol}"))
    if not groups:
        sections.append('<p class="note">No result files yet: run <code>dvc repro</code> or '
                        "<code>python -m protocols evaluate</code>.</p>")
    sections.append(plots_section(plots_dir, plots))
    contents.append(("plots", "Plots"))
    digest = statistics.inputs_sha256
    source = f" (inputs sha256 {escape(digest[:16])})" if digest else ""
    links = "".join(f'<li><a href="#{escape(anchor)}">{escape(label)}</a></li>' for anchor, label in contents)
    budget = budget_note(entries)
    budget_html = f'<p class="note"><strong>{escape(budget)}</strong></p>\n' if budget else ""
    header = (f"<header>\n<h1>{escape(TITLE)}</h1>\n<p class=\"note\">Built by <code>python -m reports site</code> "
              f"from {len(entries)} result files{source}. Rows: baselines, then neural models, each sorted by "
              f"{escape(metrics[0])}; click a column header to sort its table by that column, click again to "
              f"reverse.</p>\n{budget_html}<nav aria-label=\"Contents\"><ul>{links}</ul></nav>\n</header>")
    body = header + "\n<main>\n" + "\n".join(sections) + "\n</main>"
    return fill_template(body)


def fill_template(body: str) -> str:
    template = resources.files("reports").joinpath(TEMPLATE).read_text(encoding="utf-8")
    before, after = template.split(BODY_MARK)  # exactly one mark; the body is never rescanned
    return before.replace("@@TITLE@@", escape(TITLE)) + body + after


def unique_anchors(names: Sequence[str]) -> list[str]:
    """HTML ids from free text: lower-case letters, digits and dashes; a repeated id gets
    ``-2``, ``-3``, ..."""
    anchors, seen = [], defaultdict(int)
    for name in names:
        base = slug(name)
        seen[base] += 1
        anchors.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return anchors


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "section"


def split_html(anchor: str, table: SplitTable, statistics: Statistics, figures: dict[str, Path] | None = None) -> str:
    """One split's section: the table of ``reports.tables.split_table`` (the leaderboard's),
    each metric's best value in bold, then the split's ``figures`` (``{caption: file}``)."""
    metrics = list(statistics.metrics)
    best = best_values(table.ordered, metrics)
    columns = [Column("#", numeric=True), Column("family"), Column("model"),
               *[Column(m, numeric=True, first=DESCENDING) for m in metrics],
               Column("trials", numeric=True, first=DESCENDING), Column("seeds", numeric=True, first=DESCENDING),
               Column("fit s", numeric=True, first=ASCENDING), Column("eval s", numeric=True, first=ASCENDING)]
    rows = [result_cells(rank, e, metrics, table, best) for rank, e in enumerate(table.ordered, start=1)]
    classes = [f"family-{slug(e.family)}" + ("" if e.ok else " unsupported") for e in table.ordered]
    results = sortable_table(f"table-{anchor}", columns, rows, classes, sorted_by=0,
                             caption="Click a column header to sort; # restores the leaderboard's order.")
    legend = legend_lines(table, statistics) + [BOLD_LEGEND]
    hyper = inferred_table(f"hyper-{anchor}", ["model", "trials", "best validation", "seeds", "hyperparameters"],
                           [hyperparameter_row(e) for e in table.ordered])
    note = f'<p class="note">{escape(", ".join(table.notes))}.</p>\n' if table.notes else ""
    shown = "".join(plot_figure(path, caption) for caption, path in (figures or {}).items())
    legend_html = "".join(f"<p>{escape(line)}</p>" for line in legend)
    return (f'<section class="split" id="{escape(anchor)}">\n<h2>{escape(table.title)}</h2>\n{note}{results}\n'
            f'<div class="legend">{legend_html}</div>\n<details><summary>Hyperparameters: '
            f"{escape(table.title)}</summary>\n{hyper}\n</details>\n{shown}</section>")


def result_cells(rank: int, entry: Entry, metrics: list[str], table: SplitTable, best: dict[str, float]) -> list[Cell]:
    """One row of a results table; each metric cell sorts by the record's mean."""
    record = entry.record
    model = escape(entry.model)
    if entry.model == table.reference:
        model += f' <span class="ref">{escape(REFERENCE)}</span>'
    head = [Cell(str(rank), rank), text_cell(entry.family), Cell(model, entry.model)]
    trials = Cell(escape(trials_cell(record)), float((record.get("tuning") or {}).get("trials_run") or 0))
    if not entry.ok:
        reason = record.get("reason") or "unsupported"
        return [*head, Cell(escape(f"n/a ({reason})")), *[Cell("n/a")] * (len(metrics) - 1), trials, Cell(""),
                Cell(""), Cell("")]
    several = len(record.get("seeds") or []) > 1
    intervals = table.intervals.get(entry.model, {})
    cells = [metric_cell(entry, label, several, intervals, table.marks, is_best(entry, label, best))
             for label in metrics]
    seeds = seeds_cell(record, count=True)
    return [*head, *cells, trials, Cell(escape(seeds), float(seeds) if seeds.isdigit() else None),
            *[Cell(escape(seconds(record.get(key))), _number(record.get(key))) for key in ("fit_seconds",
                                                                                         "eval_seconds")]]


def metric_cell(entry: Entry, label: str, several: bool, intervals: dict, marks: dict, best: bool) -> Cell:
    value = metric_value(entry.record, label)
    if value is None:
        return Cell("-")
    parts = [f'<span class="mean">{value:.4f}</span>']
    spread = _number((entry.record.get("metrics_std") or {}).get(label)) if several else None
    if spread is not None:
        parts.append(f'<span class="sd">± {spread:.4f}</span>')
    mark = marks.get((entry.model, label))
    if mark:
        kind = "better" if mark == BETTER else "worse"
        parts.append(f'<span class="mark {kind}" title="{escape(MARK_TITLES[mark])}">{escape(mark)}</span>')
    if label in intervals:
        low, high = intervals[label]
        parts.append(f'<span class="ci">[{low:.4f}, {high:.4f}]</span>')
    return Cell(" ".join(parts), value, "best" if best else "")


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def verdicts_section(table: pd.DataFrame, statistics: Statistics) -> str:
    """The verdict table (``reports.verdicts``: the rows of ``reports/verdicts.md``) as a sortable table."""
    if table.empty:
        content = '<p class="note">No result files yet: no verdicts.</p>'
    elif (table["verdict"] == NO_NEURAL).all():
        content = ('<p class="note">No neural results yet: the verdicts compare neural models with the baselines '
                   "once they have run.</p>")
    else:
        metric = statistics.metrics[0]
        lines = summary_lines(table, statistics)
        headers = [header.format(metric=metric) for header in VERDICT_HEADERS]
        rows = [display_row(row) for row in table.itertuples()]
        content = "".join(f'<p class="note">{escape(line)}</p>' for line in lines) + "\n" + \
            inferred_table("verdicts-table", headers, rows)
    return f'<section id="verdicts">\n<h2>Verdicts</h2>\n{content}\n</section>'


def plots_section(plots_dir: Path | None, plots: dict[str, Path]) -> str:
    """The plots that belong to no split's section (``plots``: ``{name: file}``)."""
    if plots:
        content = "\n".join(plot_figure(path, name) for name, path in plots.items())
    elif plots_dir is not None and plots_dir.is_dir():
        content = '<p class="note">Every plot is shown in its split\'s section.</p>'
    else:
        where = f" in <code>{escape(plots_dir.as_posix())}</code>" if plots_dir is not None else ""
        content = f'<p class="note">No plots yet{where}: run <code>python -m reports plots</code>.</p>'
    return f'<section id="plots">\n<h2>Plots</h2>\n{content}\n</section>'
