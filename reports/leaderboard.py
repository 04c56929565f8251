"""``python -m reports build``: the leaderboard, one Markdown section per dataset and split.

Rendered from the result records (``results/<dataset>/<split>/<model>/metrics.json``:
means, ``± sd`` over seeds, tuning trials, seeds, seconds, hyperparameters) and the statistics
file (``reports/statistics.json``, written once by ``python -m reports statistics``: the
bootstrap intervals, the reference, the significance marks and their Holm families). Nothing
is resampled or tested here; a statistics file computed from other results is refused. Per
split: a results table (baselines, then neural models), its legend and the chosen
hyperparameters (``reports.tables``). The output depends on nothing else (no clock, no file
order, no absolute path), so the same inputs give the same bytes and DVC can cache the report.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from common.atomic import atomic_file
from reports.statistics import (DEFAULT_FILE, Entry, Statistics, entries_by_split, inputs_digest,  # noqa: F401
                                read_entries, read_entry, read_statistics, report_settings)
from reports.tables import budget_note, split_section

HELP = "build the leaderboard (Markdown) from the result files and the statistics file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help="the statistics of these results (python -m reports statistics; "
                             f"default {DEFAULT_FILE})")
    parser.add_argument("--out", type=Path, default=Path("reports/leaderboard.md"))


def run(args: argparse.Namespace) -> int:
    entries, statistics = read_statistics(args.statistics, args.results_root)
    text = build_leaderboard(entries, statistics)
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    print(f"wrote {args.out} from {len(entries)} result files")
    return 0


def build_leaderboard(entries: Sequence[Entry], statistics: Statistics) -> str:
    metrics = list(statistics.metrics)
    if not metrics:
        raise ValueError("the leaderboard needs at least one metric label")
    groups = entries_by_split(entries)
    digest = statistics.inputs_sha256
    source = f" (inputs sha256 {digest[:16]})" if digest else ""
    lines = ["# RecAudit leaderboard", "",
             f"Built by `python -m reports build` from {len(entries)} result files{source}. "
             f"Rows: baselines, then neural models, each sorted by {metrics[0]}; the legend under each "
             "table says how its intervals and marks were computed (`reports/statistics.json`).", ""]
    note = budget_note(entries)
    if note:
        lines += [f"**{note}**", ""]
    for (dataset, protocol), group in groups.items():
        lines += split_section(dataset, protocol, group, statistics)
    return "\n".join(lines).rstrip("\n") + "\n"
