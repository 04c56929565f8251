"""``python -m reports build``: the leaderboard, one Markdown section per dataset and split.

Built only from the result folders ``results/<dataset>/<split>/<model>/`` (their
``metrics.json`` and ``per_user.parquet``, ``protocols.results``): per split a results table
(baselines, then neural models; means with bootstrap intervals, ``± sd`` over seeds, marks of
a significant difference from the best baseline, tuning trials and seconds), its legend, and
the chosen hyperparameters (``reports.tables``). The output depends on nothing else (no
clock, no file order, no absolute path; the bootstrap is seeded by ``params.yaml``'s
``seed``), so the same results give the same bytes and DVC can cache the report.

``params.yaml`` keys read: ``seed``; ``reports.metrics`` (columns, the first one sorts and
picks the reference), ``reports.alpha`` (default 0.05) and ``reports.n_resamples`` (default
1000: the bootstrap of a table of 20 models x 6,000 users then takes a few seconds).
"""
from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path

from common.atomic import atomic_file
from common.errors import RecAuditError
from protocols.bootstrap import check_bootstrap_settings
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.results import PER_USER_FILE, find_result_files, read_per_user, read_record
from reports.tables import Entry, StatisticsSettings, budget_note, split_section

HELP = "build the leaderboard (Markdown) from the result files"
DEFAULT_METRICS = ("ndcg@10", "recall@20", "hr@10", "precision@10", "coverage@10")
DEFAULT_ALPHA = 0.05
DEFAULT_RESAMPLES = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("reports/leaderboard.md"))
    parser.add_argument("--params-yaml", type=Path, default=None, metavar="FILE",
                        help="reads seed and reports.{metrics,alpha,n_resamples} (default: params.yaml when present)")


def run(args: argparse.Namespace) -> int:
    metrics, settings = report_settings(args.params_yaml)
    paths = find_result_files(args.results_root)
    entries = [read_entry(path) for path in paths]
    digest = inputs_digest(args.results_root, paths)
    text = build_leaderboard(entries, metrics, digest, settings)
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    print(f"wrote {args.out} from {len(entries)} result files")
    return 0


def report_settings(params_path: Path | None) -> tuple[list[str], StatisticsSettings]:
    """(report metrics, statistics settings) from ``params.yaml`` (defaults without one)."""
    if params_path is None:
        if not DEFAULT_PARAMS.exists():
            return list(DEFAULT_METRICS), StatisticsSettings(0, DEFAULT_ALPHA, DEFAULT_RESAMPLES)
        params_path = DEFAULT_PARAMS
    params = load_params(params_path)
    section = params.get("reports") or {}
    if not isinstance(section, dict):
        raise RecAuditError(f"{params_path}: reports must be a mapping with metrics, alpha and n_resamples")
    metrics = section.get("metrics") or list(DEFAULT_METRICS)
    if not isinstance(metrics, list):
        raise RecAuditError(f"{params_path}: reports.metrics must be a list of labels such as ndcg@10, "
                            f"got {metrics!r}")
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecAuditError(f"{params_path}: seed must be an integer, got {seed!r}")
    alpha = section.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise RecAuditError(f"{params_path}: reports.alpha must lie strictly between 0 and 1, got {alpha!r}")
    n_resamples = section.get("n_resamples", DEFAULT_RESAMPLES)
    check_bootstrap_settings(0.95, n_resamples, "bca")
    return [str(m).lower() for m in metrics], StatisticsSettings(seed, float(alpha), int(n_resamples))


def read_entry(path: Path) -> Entry:
    """One result folder; a run with status "ok" needs its per-user values."""
    record = read_record(path)
    per_user = read_per_user(path.parent) if record["status"] == "ok" else None
    return Entry(record, per_user)


def inputs_digest(results_root: Path, paths: list[Path]) -> str:
    """sha256 over the relative paths and bytes of every file the leaderboard reads (each
    folder's ``metrics.json`` and ``per_user.parquet``): names the exact inputs."""
    digest = hashlib.sha256()
    for path in paths:
        for read in (path, path.parent / PER_USER_FILE):
            digest.update(read.relative_to(results_root).as_posix().encode() + b"\0")
            digest.update((read.read_bytes() if read.exists() else b"") + b"\0")
    return digest.hexdigest()


def build_leaderboard(entries: list[Entry], metrics: list[str], digest: str | None = None,
                      settings: StatisticsSettings | None = None) -> str:
    if not metrics:
        raise ValueError("the leaderboard needs at least one metric label")
    settings = settings or StatisticsSettings(0, DEFAULT_ALPHA, DEFAULT_RESAMPLES)
    groups = entries_by_split(entries)
    source = f" (inputs sha256 {digest[:16]})" if digest else ""
    lines = ["# RecAudit leaderboard", "",
             f"Built by `python -m reports build` from {len(entries)} result files{source}. "
             f"Rows: baselines, then neural models, each sorted by {metrics[0]}; the legend under each "
             "table says how its intervals and marks were computed.", ""]
    note = budget_note(entries)
    if note:
        lines += [f"**{note}**", ""]
    for dataset, protocol in groups:
        lines += split_section(dataset, protocol, groups[(dataset, protocol)], metrics, settings)
    return "\n".join(lines).rstrip("\n") + "\n"


def entries_by_split(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """``{(dataset, split name): entries}``, keys in sorted order, entries in their given order."""
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.record["dataset"], entry.record["protocol"])].append(entry)
    return {key: groups[key] for key in sorted(groups)}


def read_entries(results_root: Path) -> list[Entry]:
    """Every result folder under ``results_root`` (``protocols.results.find_result_files`` order)."""
    return [read_entry(path) for path in find_result_files(results_root)]
