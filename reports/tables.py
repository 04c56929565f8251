"""One leaderboard section per (dataset, split): the results table with intervals and
significance marks against the best baseline, its legend, and the hyperparameter table.

Rendering only: every statistic comes from the statistics file (``reports.statistics``,
``python -m reports statistics``), computed there once for every report:

- each cell of a per-user metric is the record's mean (for a stochastic model the mean over
  seeds, ``± sd`` over seeds with ``ddof=1`` when it ran more than one seed) with the file's
  95% BCa bootstrap interval of the mean over users. List metrics such as ``coverage@10``
  describe the whole recommendation list and have no per-user values: they show the plain value;
- the reference ``(ref)`` is the file's best baseline of the split; ``▲`` / ``▼`` mark the
  file's verdict "better" / "worse" of a model against it (two-sided paired Wilcoxon
  signed-rank test over users, Holm within the split's metric column); no mark, none found.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tabulate import tabulate

from reports.markdown import markdown_text
from reports.statistics import CONFIDENCE, Entry, Statistics, has_values, metric_value  # noqa: F401  (re-exported)

FAMILY_ORDER = ("baseline", "neural")
BETTER, WORSE, REFERENCE = "▲", "▼", "(ref)"
MARKS = {"better": BETTER, "worse": WORSE}
LOWER_IS_BETTER = frozenset({"gini"})  # exposure Gini: 0 spreads exposure evenly over the catalogue
NO_BEST = frozenset({"popularity"})  # average popularity of the lists: descriptive, no better direction
BOLD_LEGEND = ("Bold: the best value of each metric column at the shown precision (highest; lowest for gini; "
               "none for popularity).")


@dataclass(frozen=True)
class SplitTable:
    """What one split's tables show (every export format renders this): rows in table order,
    the metrics with comparisons, the reference (the file's best baseline), the significance
    marks ``{(model, metric): mark}``, the size of each metric's Holm family
    ``{metric: comparisons}``, and each "ok" model's bootstrap intervals ``{metric: (low, high)}``."""

    dataset: str
    protocol: str
    sampled: bool
    notes: list[str]
    ordered: list[Entry]
    tested: list[str]
    reference: str | None
    marks: dict[tuple[str, str], str]
    family_sizes: dict[str, int]
    intervals: dict[str, dict[str, tuple[float, float]]]

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.protocol}{' (sampled)' if self.sampled else ''}"

    @property
    def n_comparisons(self) -> int:
        return sum(self.family_sizes.values())


def split_table(dataset: str, protocol: str, entries: Sequence[Entry], statistics: Statistics) -> SplitTable:
    """Rows of one split with the file's reference, marks and intervals."""
    metrics = list(statistics.metrics)
    found = statistics.split(dataset, protocol)
    ok = [e for e in entries if e.ok]
    notes = sorted({f"{e.record.get('n_users')} test users" for e in ok} |
                   {f"metric version {e.record.get('metric_version')}" for e in ok if e.record.get("metric_version")})
    ordered = sorted(entries, key=lambda e: row_order(e, metrics[0]))
    tested = found.tested(metrics)
    marks = {(model, metric): MARKS[c.verdict] for metric in tested
             for model, c in found.comparisons[metric].items() if c.verdict in MARKS}
    intervals = {model: {m: (ci.low, ci.high) for m, ci in columns.items() if ci.finite}
                 for model, columns in found.intervals.items()}
    return SplitTable(dataset, protocol, any(bool(e.record.get("sampled")) for e in entries), notes, ordered,
                      tested, found.reference, marks, {m: found.family_size(m) for m in tested}, intervals)


def split_section(dataset: str, protocol: str, entries: Sequence[Entry], statistics: Statistics, *,
                  bold_best: bool = False) -> list[str]:
    """Markdown lines of one split: heading, notes, results table, legend, hyperparameters.
    ``bold_best`` sets each metric column's best value (:func:`best_values`) in bold."""
    return section_lines(split_table(dataset, protocol, entries, statistics), statistics, bold_best=bold_best)


def section_lines(table: SplitTable, statistics: Statistics, *, bold_best: bool = False) -> list[str]:
    """The Markdown section of an already built :class:`SplitTable`; every name in it
    (models, families, reasons, parameters, metrics, dataset and split) is escaped
    (:func:`reports.markdown.markdown_text`)."""
    metrics = list(statistics.metrics)
    rows = [result_row(e, metrics, table.intervals.get(e.model, {}), table.marks, table.reference)
            for e in table.ordered]
    if bold_best:
        best = best_values(table.ordered, metrics)
        for entry, row in zip(table.ordered, rows):
            for column, label in enumerate(metrics, start=2):
                if is_best(entry, label, best):
                    row[column] = bold_value_cell(row[column], "**", "**")
    headers = ["family", "model", *map(markdown_text, metrics), "trials", "seeds", "fit s", "eval s"]
    rendered = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                        colalign=("left", "left", *["right"] * (len(metrics) + 4)))
    legend = legend_lines(table, statistics, escape=markdown_text)
    if bold_best:
        legend.append(BOLD_LEGEND)
    hyper = tabulate([[markdown_text(cell) for cell in hyperparameter_row(e)] for e in table.ordered],
                     tablefmt="github", disable_numparse=True,
                     headers=["model", "trials", "best validation", "seeds", "hyperparameters"])
    title = markdown_text(table.title)
    notes = [markdown_text(", ".join(table.notes)) + ".", ""] if table.notes else []
    return [f"## {title}", "", *notes, rendered, "", *legend, "", f"### Hyperparameters: {title}", "", hyper, ""]


def best_values(entries: Sequence[Entry], metrics: list[str]) -> dict[str, float]:
    """``{metric: best value}`` over the "ok" entries, at the table's precision (4 decimals,
    so that ties as shown are all best): the highest, the lowest for :data:`LOWER_IS_BETTER`
    metrics, none for :data:`NO_BEST` metrics (descriptive, neither direction is better)."""
    best = {}
    for label in metrics:
        family = label.split("@")[0]
        if family in NO_BEST:
            continue
        values = [round(v, 4) for e in entries if e.ok and (v := metric_value(e.record, label)) is not None]
        if values:
            best[label] = min(values) if family in LOWER_IS_BETTER else max(values)
    return best


def is_best(entry: Entry, label: str, best: dict[str, float]) -> bool:
    value = metric_value(entry.record, label) if entry.ok else None
    return value is not None and label in best and round(value, 4) == best[label]


def bold_value_cell(cell: str, opening: str, closing: str) -> str:
    """Wrap the leading number of a result cell (``0.4372 [0.42, 0.45] ▼``) in bold markers."""
    head, _, rest = cell.partition(" ")
    return f"{opening}{head}{closing}{' ' + rest if rest else ''}"


def row_order(entry: Entry, first_metric: str) -> tuple:
    """Baselines, then neural models, then any other family; within one, best first on the
    first metric, unsupported runs and missing values last, ties by model name."""
    family = entry.family
    group = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
    value = metric_value(entry.record, first_metric) if entry.ok else None
    return group, family, value is None, -(value or 0.0), entry.model


def result_row(entry: Entry, metrics: list[str], intervals: dict, marks: dict, reference: str | None) -> list[str]:
    """One Markdown row of the results table (names escaped)."""
    record = entry.record
    name = markdown_text(entry.model) + (f" {REFERENCE}" if entry.model == reference else "")
    family = markdown_text(entry.family)
    if not entry.ok:
        reason = markdown_text(record.get("reason") or "unsupported")
        return [family, name, f"n/a ({reason})", *["n/a"] * (len(metrics) - 1), trials_cell(record), "",
                "", ""]
    several = len(record.get("seeds") or []) > 1
    cells = []
    for label in metrics:
        value = metric_value(record, label)
        if value is None:
            cells.append("-")
            continue
        cell = f"{value:.4f}"
        spread = (record.get("metrics_std") or {}).get(label) if several else None
        if spread is not None and math.isfinite(float(spread)):
            cell += f" ± {float(spread):.4f}"
        if label in intervals:
            low, high = intervals[label]
            cell += f" [{low:.4f}, {high:.4f}]"
        mark = marks.get((entry.model, label))
        cells.append(f"{cell} {mark}" if mark else cell)
    return [family, name, *cells, trials_cell(record), seeds_cell(record, count=True),
            seconds(record.get("fit_seconds")), seconds(record.get("eval_seconds"))]


def legend_lines(table: SplitTable, statistics: Statistics, escape=str) -> list[str]:
    """The legend under a results table: where its marks and intervals come from. ``escape``
    is applied to the names in it (metrics, the reference)."""
    settings = statistics.settings
    metrics = [escape(m) for m in statistics.metrics]
    level = f"{CONFIDENCE:.0%}"
    lines = []
    if table.reference is None:
        lines.append(f"No significance marks: no baseline with per-user {metrics[0]} values in this table.")
    elif table.n_comparisons == 0:
        lines.append(f"{REFERENCE}: the best baseline on {metrics[0]} ({escape(table.reference)}); no other model to "
                     "compare with it.")
    else:
        families = ", ".join(f"{escape(m)}: {n}" for m, n in table.family_sizes.items())
        lines.append(f"{BETTER} / {WORSE}: significantly better / worse than the reference {REFERENCE}, the best "
                     f"baseline on {metrics[0]} ({escape(table.reference)}): two-sided paired Wilcoxon signed-rank "
                     f"test over users, Holm correction within each metric column of this split (one family per "
                     f"split and metric: every other model against the reference; {families} comparisons), alpha "
                     f"{settings.alpha:g}; no mark: no significant difference.")
    untested = [escape(m) for m in statistics.metrics if m not in table.tested]
    plain = (f" {', '.join(untested)}: not tested, being a list metric (plain value, no interval) or lacking "
             "per-user values." if untested else "")
    lines.append(f"[low, high]: {level} BCa bootstrap interval of the mean over users ({settings.n_resamples} "
                 f"resamples, seed {settings.seed}); ± sd over seeds (ddof 1) for stochastic models run with "
                 f"several seeds.{plain} Trials: tuning trials run / budget (every model of a suite gets the same "
                 "number; training lengths are epochs, never seconds), 0 (defaults) for untuned parameters. "
                 "Times: seconds per run (mean over seeds).")
    return lines


PAPER_TRIALS = 50  # the TOIS study's trials per model (Ferrari Dacrema et al., TOIS 2021)


def budget_note(entries) -> str | None:
    """A plain warning when the baselines were tuned with fewer trials than the TOIS study's 50:
    a baseline tuned briefly can score below the value the literature reports for it."""
    budgets = [int((entry.record.get("tuning") or {}).get("trials_budget") or 0) for entry in entries
               if entry.record.get("family") == "baseline" and entry.record.get("tuning")]
    budgets = [budget for budget in budgets if budget > 1]  # models with nothing to search run one trial
    if not budgets or min(budgets) >= PAPER_TRIALS:
        return None
    return (f"Budget: the baselines here were tuned with {min(budgets)} trials each, against the TOIS study's "
            f"{PAPER_TRIALS}; with so small a budget a tuned baseline can score below the value the literature "
            "reports for it, which flatters the methods it is compared with. `tuning.budget: paper` in "
            "params.yaml gives every model 50 trials.")


def hyperparameter_row(entry: Entry) -> list[str]:
    record = entry.record
    tuning = record.get("tuning") or {}
    best = tuning.get("best_value")
    validation = f"{tuning.get('validation_metric')} = {float(best):.4f}" if best is not None else "-"
    params = {k: v for k, v in sorted((record.get("params") or {}).items()) if k != "seed"}
    listed = ", ".join(f"{k}={format_value(v)}" for k, v in params.items()) or "-"
    return [entry.model, trials_cell(record), validation, seeds_cell(record, count=False), listed]


def trials_cell(record: dict) -> str:
    tuning = record.get("tuning")
    if not tuning:
        return "0 (defaults)"
    return f"{tuning.get('trials_run')}/{tuning.get('trials_budget')}"


def seeds_cell(record: dict, count: bool) -> str:
    """``-`` for a deterministic model; the number of seeds, or their list (``42..46`` when
    consecutive) for a stochastic one."""
    seeds = [s for s in (record.get("seeds") or []) if s is not None]
    if not seeds:
        seed = record.get("seed")
        seeds = [seed] if seed is not None and record["status"] == "ok" else []
    if not seeds:
        return "-"
    if count:
        return str(len(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def seconds(value) -> str:
    return "" if value is None else f"{float(value):.2f}"
