"""``python -m reports verdicts``: is each neural method better than the best tuned baseline?

The question of Ferrari Dacrema et al. (TOIS 39(2), 2021, Tables 3-12), asked of every split
at once, rendered from the statistics file (``reports/statistics.json``, ``reports.statistics``):
for each split and each method under test evaluated on it (every record whose ``family`` is not
``"baseline"``), the file's comparison with the split's reference on the first report metric:

- the reference is the best baseline of the split (the leaderboard's ``(ref)``; the rule is
  ``reports.statistics.REFERENCE_RULE``); every baseline went through the same tuning as the
  neural methods, which is what makes it "tuned";
- two-sided paired Wilcoxon signed-rank test over users, 95% BCa bootstrap interval of the mean
  per-user difference ``neural - baseline``;
- Holm's correction within the split's metric column (one family per split and metric: every
  model of the split against the reference, baselines included): the same family, p-value and
  verdict as the leaderboard's mark, the tables and the page;
- verdict: "significantly better" / "significantly worse" when the adjusted p-value is at
  most alpha (by the sign of the rank-biserial effect), else "not different".

Rows without a test say why: "no neural method evaluated" (one line for a split without any
neural result), "not run (reason)" for a neural method the split refused or without per-user
values, "no baseline" when the split has no baseline with per-user values, "not compared
(reason)" when the per-user results cannot be paired with the reference's. Writes Markdown
(``--out``) and CSV (``--csv``, default beside it); the same inputs give the same bytes.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from common.atomic import atomic_file
from reports.markdown import markdown_text
from reports.statistics import CONFIDENCE, DEFAULT_FILE, Entry, Statistics, entries_by_split, read_statistics
from reports.tables import metric_value

HELP = "neural methods against the best tuned baseline of every split (Markdown + CSV)"
BETTER, WORSE, SAME = "significantly better", "significantly worse", "not different"
NO_NEURAL, NO_BASELINE, NOT_RUN, NOT_COMPARED = ("no neural method evaluated", "no baseline", "not run",
                                                 "not compared")
VERDICT_WORDS = {"better": BETTER, "worse": WORSE, "not different": SAME}
COLUMNS = ("dataset", "split", "model", "reference", "metric", "mean", "reference_mean", "mean_difference",
           "difference_ci_low", "difference_ci_high", "n_users", "p_value", "p_holm", "effect_size", "verdict",
           "note")
HEADERS = ("dataset", "split", "neural method", "best baseline", "{metric} neural", "{metric} baseline",
           "difference [95% CI]", "p (Holm)", "verdict")
NAME_CELLS = (0, 1, 2, 3, 8)  # cells holding names or words (escaped in Markdown), the others numbers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help=f"the statistics of these results (python -m reports statistics; default {DEFAULT_FILE})")
    parser.add_argument("--out", type=Path, default=Path("reports/verdicts.md"))
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE",
                        help="the table as CSV (default: --out with suffix .csv)")


def run(args: argparse.Namespace) -> int:
    entries, statistics = read_statistics(args.statistics, args.results_root)
    groups = entries_by_split(entries)
    table = verdict_table(groups, statistics)
    text = verdicts_markdown(table, statistics)
    csv_path = args.csv or args.out.with_suffix(".csv")
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    with atomic_file(csv_path, mode="w") as handle:
        handle.write(table.to_csv(index=False, lineterminator="\n"))
    tested = table["p_holm"].notna().sum()
    print(f"wrote {args.out} and {csv_path}: {tested} comparisons over {len(groups)} splits")
    return 0


def verdict_table(groups: Mapping[tuple[str, str], Sequence[Entry]], statistics: Statistics) -> pd.DataFrame:
    """One row per (split, neural method), or one "no neural method evaluated" row per split
    without any; columns :data:`COLUMNS`, rows by dataset, split and model; every number and
    verdict is the statistics file's."""
    frames = [split_rows(dataset, protocol, entries, statistics) for (dataset, protocol), entries in groups.items()]
    table = pd.concat(frames, ignore_index=True) if frames else rows_frame([])
    return table.reset_index(drop=True)


def split_rows(dataset: str, protocol: str, entries: Sequence[Entry], statistics: Statistics) -> pd.DataFrame:
    metric = statistics.metrics[0]
    found = statistics.split(dataset, protocol)
    reference = found.reference
    by_model = {e.model: e for e in entries}
    reference_mean = metric_value(by_model[reference].record, metric) if reference in by_model else None
    # Every method under test is a candidate, whatever its family; only baselines are references.
    neural = sorted((e for e in entries if e.family != "baseline"), key=lambda e: e.model)
    base = {"dataset": dataset, "split": protocol, "reference": reference or "", "metric": metric,
            "reference_mean": reference_mean}
    if not neural:
        return rows_frame([base | {"model": "", "verdict": NO_NEURAL}])
    rows = []
    for entry in neural:
        row = base | {"model": entry.model, "mean": metric_value(entry.record, metric) if entry.ok else None}
        comparison = found.comparison(entry.model, metric)
        reason = found.not_compared.get(metric, {}).get(entry.model, "")
        if not entry.ok:
            rows.append(row | {"verdict": NOT_RUN, "note": entry.record.get("reason") or "unsupported"})
        elif comparison is not None:
            rows.append(row | {"mean": comparison.mean, "reference_mean": comparison.reference_mean,
                               "mean_difference": comparison.mean_difference,
                               "difference_ci_low": comparison.difference_ci_low,
                               "difference_ci_high": comparison.difference_ci_high, "n_users": comparison.n_users,
                               "p_value": comparison.p_value, "p_holm": comparison.p_holm,
                               "effect_size": comparison.effect_size,
                               "verdict": VERDICT_WORDS.get(comparison.verdict, comparison.verdict), "note": ""})
        elif reference is None:
            rows.append(row | {"verdict": NO_BASELINE, "note": f"no baseline with per-user {metric} values"})
        elif reason.startswith("no per-user") or not reason:
            rows.append(row | {"verdict": NOT_RUN, "note": reason or f"no per-user {metric} values"})
        else:
            rows.append(row | {"verdict": NOT_COMPARED, "note": reason})
    return rows_frame(rows)


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows with every column: missing text is "", missing numbers NaN (``n_users``: NA)."""
    text = ("dataset", "split", "model", "reference", "metric", "verdict", "note")
    defaults = {column: "" if column in text else np.nan for column in COLUMNS}
    frame = pd.DataFrame([defaults | {k: v for k, v in row.items() if v is not None} for row in rows],
                         columns=list(COLUMNS))
    numeric = [column for column in COLUMNS if column not in text and column != "n_users"]
    frame[numeric] = frame[numeric].astype("float64")
    frame["n_users"] = frame["n_users"].astype("Int64")
    return frame


def summary_lines(table: pd.DataFrame, statistics: Statistics, escape=str) -> list[str]:
    """The paragraphs above the table (how it was computed, the counts); ``escape`` is applied
    to the metric, the only name in them."""
    metric = escape(statistics.metrics[0])
    settings = statistics.settings
    n_tested = int(table["p_holm"].notna().sum())
    counts = {word: int((table["verdict"] == word).sum()) for word in (BETTER, SAME, WORSE)}
    lines = [f"Per split, each neural method against the best baseline on {metric} (the leaderboard's reference): "
             f"two-sided paired Wilcoxon signed-rank test over users, Holm correction within each split's {metric} "
             "column (one family per split and metric: every model of the split against its reference, baselines "
             f"included, as the leaderboard's marks), alpha {settings.alpha:g}; difference = neural - baseline with "
             f"its {CONFIDENCE:.0%} BCa bootstrap interval ({settings.n_resamples} resamples, seed {settings.seed})."]
    if n_tested:
        lines.append(f"Of {n_tested} comparisons: {counts[BETTER]} {BETTER}, {counts[SAME]} {SAME}, "
                     f"{counts[WORSE]} {WORSE}.")
    elif len(table) and (table["verdict"] == NO_NEURAL).all():
        lines.append("No neural method has been evaluated yet: every split below has baselines only.")
    return lines


def verdicts_markdown(table: pd.DataFrame, statistics: Statistics) -> str:
    metric = markdown_text(statistics.metrics[0])  # names below are escaped (reports.markdown)
    digest = statistics.inputs_sha256
    source = f" (inputs sha256 {digest[:16]})" if digest else ""
    lines = ["# RecAudit verdicts: neural methods against the best tuned baseline", "",
             f"Built by `python -m reports verdicts` from {statistics.n_result_files} result files{source} and their "
             "statistics (`reports/statistics.json`).", ""]
    for line in summary_lines(table, statistics, escape=markdown_text):
        lines += [line, ""]
    headers = [header.format(metric=metric) for header in HEADERS]
    rows = [markdown_row(row) for row in table.itertuples()]
    if not rows:
        rows = [["-", "-", "-", "-", "-", "-", "", "", "no result files"]]
    lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                          colalign=("left", "left", "left", "left", "right", "right", "right", "right", "left")))
    return "\n".join(lines) + "\n"


def display_row(row) -> list[str]:
    """One verdict row as plain text cells (:data:`HEADERS`), names unescaped."""
    verdict = row.verdict
    if verdict in (NOT_RUN, NOT_COMPARED) or (verdict == NO_BASELINE and row.note):
        verdict = f"{verdict} ({row.note})"
    difference = ""
    if np.isfinite(row.mean_difference):
        difference = f"{row.mean_difference:+.4f} [{row.difference_ci_low:+.4f}, {row.difference_ci_high:+.4f}]"
    return [row.dataset, row.split, row.model or "-", row.reference or "-", number(row.mean),
            number(row.reference_mean), difference, p_value_cell(row.p_holm), verdict]


def markdown_row(row) -> list[str]:
    return [markdown_text(cell) if index in NAME_CELLS else cell for index, cell in enumerate(display_row(row))]


def number(value) -> str:
    return f"{value:.4f}" if value is not None and np.isfinite(value) else "-"


def p_value_cell(value) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"
