"""``python -m reports build``: the leaderboard, one Markdown table per dataset and split.

Built only from ``results/**/metrics.json`` (``protocols.results``). The output depends on
nothing else (no clock, no file order, no absolute path), so the same results give the same
bytes and DVC can cache the report.
"""
from __future__ import annotations

import argparse
import hashlib
import math
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from datasets.atomic import atomic_file
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.results import find_result_files, read_record

HELP = "build the leaderboard (Markdown) from the result files"
DEFAULT_METRICS = ("ndcg@10", "recall@20", "hr@10", "precision@10", "coverage@10")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("reports/leaderboard.md"))
    parser.add_argument("--params-yaml", type=Path, default=None, metavar="FILE",
                        help="reads reports.metrics (default: params.yaml when present)")


def run(args: argparse.Namespace) -> int:
    metrics = report_metrics(args.params_yaml)
    paths = find_result_files(args.results_root)
    records = [read_record(path) for path in paths]
    digest = inputs_digest(args.results_root, paths)
    text = build_leaderboard(records, metrics, digest)
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    print(f"wrote {args.out} from {len(records)} result files")
    return 0


def report_metrics(params_path: Path | None) -> list[str]:
    if params_path is None:
        if not DEFAULT_PARAMS.exists():
            return list(DEFAULT_METRICS)
        params_path = DEFAULT_PARAMS
    section = load_params(params_path).get("reports") or {}
    metrics = section.get("metrics") or list(DEFAULT_METRICS)
    return [str(m).lower() for m in metrics]


def inputs_digest(results_root: Path, paths: list[Path]) -> str:
    """sha256 over the result files' relative paths and bytes: names the exact inputs."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(results_root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_leaderboard(records: list[dict], metrics: list[str], digest: str | None = None) -> str:
    if not metrics:
        raise ValueError("the leaderboard needs at least one metric label")
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["dataset"], record["protocol"])].append(record)
    source = f" (inputs sha256 {digest[:16]})" if digest else ""
    lines = ["# RecAudit leaderboard", "",
             f"Built by `python -m reports build` from {len(records)} result files{source}. "
             f"Models are sorted by {metrics[0]}; times are seconds.", ""]
    for (dataset, protocol) in sorted(groups):
        lines += group_table(dataset, protocol, groups[(dataset, protocol)], metrics)
    return "\n".join(lines).rstrip("\n") + "\n"


def group_table(dataset: str, protocol: str, records: list[dict], metrics: list[str]) -> list[str]:
    sampled = any(r.get("sampled") for r in records)
    heading = f"## {dataset} / {protocol}" + (" (sampled)" if sampled else "")
    ok = [r for r in records if r["status"] == "ok"]
    notes = sorted({f"{r.get('n_users')} test users" for r in ok} |
                   {f"metric version {r.get('metric_version')}" for r in ok if r.get("metric_version")})
    rows = [table_row(r, metrics) for r in sorted(records, key=lambda r: sort_key(r, metrics))]
    table = tabulate(rows, headers=["model", *metrics, "fit s", "eval s"], tablefmt="github",
                     disable_numparse=True, colalign=("left", *["right"] * (len(metrics) + 2)))
    return [heading, "", *([", ".join(notes) + ".", ""] if notes else []), table, ""]


def sort_key(record: dict, metrics: list[str]) -> tuple:
    """Best first; unsupported runs and missing metrics last; ties by model name."""
    value = _metric(record, metrics[0]) if record["status"] == "ok" else None
    return (value is None, -(value or 0.0), record["model"])


def table_row(record: dict, metrics: list[str]) -> list[str]:
    if record["status"] != "ok":
        reason = record.get("reason") or "unsupported"
        return [record["model"], f"n/a ({reason})", *["n/a"] * (len(metrics) - 1), "", ""]
    cells = []
    for label in metrics:
        value = _metric(record, label)
        cells.append("-" if value is None else f"{value:.4f}")
    return [record["model"], *cells, _seconds(record.get("fit_seconds")), _seconds(record.get("eval_seconds"))]


def _metric(record: dict, label: str) -> float | None:
    value = (record.get("metrics") or {}).get(label)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _seconds(value) -> str:
    return "" if value is None else f"{float(value):.2f}"
