"""``python -m reports tables``: each split's results table as Markdown, LaTeX and CSV.

One set of files per (dataset, split), ``<out_dir>/<dataset>__<split>.{md,tex,csv}``, all
rendered from one :class:`reports.tables.SplitTable` over the statistics file
(``reports/statistics.json``), so the three formats show the same reference, marks and
intervals as the leaderboard, the verdicts and the page:

- ``.md``: the leaderboard's section of that split, with the best value of each metric
  column in bold (:func:`reports.tables.best_values`);
- ``.tex``: a ``tabular`` for papers (needs ``\\usepackage{booktabs,amssymb}``): booktabs
  rules, one block per model family (baselines, then neural models) separated by a
  ``\\midrule``, each cell the mean (``± sd`` over seeds when several), the best per column in
  ``\\textbf{}``, ``$^{\\blacktriangle}$`` / ``$^{\\blacktriangledown}$`` for a significant
  difference from the reference; the intervals are left to the Markdown and CSV files to keep
  the table within a page; the legend travels as ``%`` comments;
- ``.csv``: one row per model in table order; per metric ``<m>`` (mean), ``<m>_sd``,
  ``<m>_ci_low``, ``<m>_ci_high`` and ``<m>_marker`` (``better`` / ``worse`` / empty), then the
  tuning trials, seeds and seconds. Numbers are written at full precision.

The output folder is replaced as a whole (``common.atomic.atomic_directory``): no stale
file of a split that has no results any more.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from common.atomic import atomic_directory
from reports.statistics import DEFAULT_FILE, Statistics, entries_by_split, read_statistics
from reports.tables import (BETTER, REFERENCE, WORSE, Entry, SplitTable, best_values, is_best, legend_lines,
                            metric_value, section_lines, seeds_cell, split_table, trials_cell)

HELP = "write each split's results table as Markdown, LaTeX and CSV"
MARKER_WORDS = {BETTER: "better", WORSE: "worse"}
LATEX_MARKERS = {BETTER: r"$^{\blacktriangle}$", WORSE: r"$^{\blacktriangledown}$"}
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIALS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help=f"the statistics of these results (python -m reports statistics; default {DEFAULT_FILE})")
    parser.add_argument("--out-dir", type=Path, default=Path("reports/tables"))


def run(args: argparse.Namespace) -> int:
    entries, statistics = read_statistics(args.statistics, args.results_root)
    groups = entries_by_split(entries)
    with atomic_directory(args.out_dir) as staging:
        for (dataset, protocol), group in groups.items():
            table = split_table(dataset, protocol, group, statistics)
            for suffix, text in render_all(table, statistics).items():
                (staging / f"{file_stem(dataset, protocol)}.{suffix}").write_text(text)
    print(f"wrote {3 * len(groups)} tables of {len(groups)} splits to {args.out_dir}")
    return 0


def file_stem(dataset: str, protocol: str) -> str:
    return f"{dataset}__{protocol}"


def render_all(table: SplitTable, statistics: Statistics) -> dict[str, str]:
    return {"md": markdown_table(table, statistics), "tex": latex_table(table, statistics),
            "csv": csv_table(table, list(statistics.metrics))}


def markdown_table(table: SplitTable, statistics: Statistics) -> str:
    return "\n".join(section_lines(table, statistics, bold_best=True)).rstrip("\n") + "\n"


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell: the ten special characters escaped in one pass."""
    return _LATEX_PATTERN.sub(lambda found: _LATEX_SPECIALS[found.group()], str(text))


def latex_table(table: SplitTable, statistics: Statistics) -> str:
    metrics = list(statistics.metrics)
    best = best_values(table.ordered, metrics)
    legend = legend_lines(table, statistics)
    header = ["Model", *(latex_escape(m) for m in metrics), "Trials", "Seeds", "Fit s", "Eval s"]
    lines = [f"% {table.title}: RecAudit results table (python -m reports tables).",
             r"% Needs \usepackage{booktabs} and \usepackage{amssymb}. Bold: best per column; "
             r"$^{\blacktriangle}$ / $^{\blacktriangledown}$ as the legend's marks.",
             *(f"% {line}" for line in legend),
             rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", r"\toprule", " & ".join(header) + r" \\",
             r"\midrule"]
    for index, (family, entries) in enumerate(family_blocks(table.ordered)):
        if index:
            lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{len(header)}}}{{l}}{{\textit{{{latex_escape(family)}}}}} \\")
        lines += [latex_row(e, metrics, table, best) + r" \\" for e in entries]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def family_blocks(ordered: Sequence[Entry]) -> list[tuple[str, list[Entry]]]:
    """Consecutive rows of one family (the table order already groups them)."""
    blocks: list[tuple[str, list[Entry]]] = []
    for entry in ordered:
        if blocks and blocks[-1][0] == entry.family:
            blocks[-1][1].append(entry)
        else:
            blocks.append((entry.family, [entry]))
    return blocks


def latex_row(entry: Entry, metrics: list[str], table: SplitTable, best: dict[str, float]) -> str:
    record = entry.record
    name = latex_escape(entry.model) + (f" {REFERENCE}" if entry.model == table.reference else "")
    tail = [latex_escape(trials_cell(record))]
    if not entry.ok:
        reason = latex_escape(f"n/a ({record.get('reason') or 'unsupported'})")
        return " & ".join([name, rf"\multicolumn{{{len(metrics)}}}{{l}}{{{reason}}}", *tail, "", "", ""])
    several = len(record.get("seeds") or []) > 1
    cells = []
    for label in metrics:
        value = metric_value(record, label)
        if value is None:
            cells.append("--")
            continue
        cell = rf"\textbf{{{value:.4f}}}" if is_best(entry, label, best) else f"{value:.4f}"
        spread = sd_of(record, label) if several else None
        if spread is not None:
            cell += rf" $\pm$ {spread:.4f}"
        cells.append(cell + LATEX_MARKERS.get(table.marks.get((entry.model, label)), ""))
    return " & ".join([name, *cells, *tail, seeds_cell(record, count=True), seconds_cell(record, "fit_seconds"),
                       seconds_cell(record, "eval_seconds")])


def csv_table(table: SplitTable, metrics: list[str]) -> str:
    rows = [csv_row(e, metrics, table) for e in table.ordered]
    columns = ["dataset", "split", "family", "model", "status", "reason", "is_reference",
               *(f"{m}{suffix}" for m in metrics for suffix in ("", "_sd", "_ci_low", "_ci_high", "_marker")),
               "trials_run", "trials_budget", "n_seeds", "fit_seconds", "eval_seconds"]
    return pd.DataFrame(rows, columns=columns).to_csv(index=False, lineterminator="\n")


def csv_row(entry: Entry, metrics: list[str], table: SplitTable) -> dict:
    record = entry.record
    tuning = record.get("tuning") or {}
    row = {"dataset": table.dataset, "split": table.protocol, "family": entry.family, "model": entry.model,
           "status": record["status"], "reason": "" if entry.ok else (record.get("reason") or "unsupported"),
           "is_reference": entry.model == table.reference,
           "trials_run": tuning.get("trials_run", 0), "trials_budget": tuning.get("trials_budget", 0),
           "n_seeds": len([s for s in record.get("seeds") or [] if s is not None]) or (1 if entry.ok else 0),
           "fit_seconds": record.get("fit_seconds"), "eval_seconds": record.get("eval_seconds")}
    intervals = table.intervals.get(entry.model, {})
    for label in metrics:
        low, high = intervals.get(label, (None, None))
        row |= {label: metric_value(record, label) if entry.ok else None,
                f"{label}_sd": sd_of(record, label) if entry.ok else None,
                f"{label}_ci_low": low, f"{label}_ci_high": high,
                f"{label}_marker": MARKER_WORDS.get(table.marks.get((entry.model, label)), "")}
    return row


def sd_of(record: dict, label: str) -> float | None:
    """The sd over seeds of a stochastic model run with several seeds, else None."""
    if len(record.get("seeds") or []) < 2:
        return None
    return metric_value({"metrics": record.get("metrics_std") or {}}, label)


def seconds_cell(record: dict, key: str) -> str:
    value = record.get(key)
    return "" if value is None else f"{float(value):.2f}"

