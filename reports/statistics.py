"""``python -m reports statistics``: every statistic the reports show, computed once, into one file.

The leaderboard, the tables, the verdicts, the plots, the page and the claims audit read
``reports/statistics.json`` and render it; none of them resamples or tests anything itself.
So a model-baseline pair has one mark everywhere, from one family, one interval, one seed.

What the file holds, per (dataset, split) of the result folders and per report metric
(``params.yaml``'s ``reports.metrics``, with the active suite's overrides):

- **intervals**: for every "ok" run with per-user values of the metric, the mean over users and
  its 95% BCa bootstrap interval (``protocols.bootstrap``: users resampled, ``reports.n_resamples``
  resamples, default :data:`protocols.bootstrap.DEFAULT_RESAMPLES`, seeded by ``params.yaml``'s
  ``seed``; for a stochastic model over each user's mean across seeds). List metrics such as
  ``coverage@10`` have no per-user values and get none.
- **reference**, the best tuned baseline of the split: the "ok" run of family ``baseline`` with
  per-user values of the first report metric and the highest mean of it in its record (the
  test mean, as the leaderboard has always chosen it; every baseline went through the same tuning
  as the other models), ties broken by model name. One reference per split, for every metric.
- **comparisons**: every other "ok" run with per-user values of the metric against the reference,
  paired by user: two-sided Wilcoxon signed-rank test, rank-biserial effect size, BCa interval of
  the mean difference ``model - reference`` (``protocols.statistics.compare_to_reference``).
- **one family per split and metric**: Holm's correction runs over the comparisons of one split
  on one metric (every model of the split against its reference, baselines included). A column
  of a table is one question -- which models differ from the tuned baseline on this metric under
  this protocol -- answered at family-wise error rate ``reports.alpha``; splits are separate
  experiments, so adding a split, a metric or a report never changes another column's verdicts,
  and the strongly dependent metrics of one split (ndcg@10 and hr@10 rank the same lists) do not
  spend the error budget on re-testing one question.
- **verdict** per pair: "better" / "worse" when the Holm-adjusted p-value is at most alpha (by
  the sign of the effect size), else "not different"; a pair that cannot be tested (no per-user
  values, users that differ from the reference's) is listed under ``not_compared`` with the reason.

The file is deterministic (sorted keys, no clock, no path) and names its inputs by the sha256
of every result file it read (:func:`inputs_digest`); a report refuses a statistics file whose
digest is not that of the results it renders (:func:`read_statistics`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_file
from common.errors import RecAuditError
from protocols.bootstrap import DEFAULT_RESAMPLES, bootstrap_columns_ci, check_bootstrap_settings
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.results import PER_USER_FILE, find_result_files, read_per_user, read_record
from protocols.statistics import compare_to_reference, paired_values

HELP = "compute every report statistic once (intervals, tests against the best baseline, verdicts) as JSON"
SCHEMA = "recaudit-statistics/1"
DEFAULT_FILE = Path("reports/statistics.json")
DEFAULT_METRICS = ("ndcg@10", "recall@20", "hr@10", "precision@10", "coverage@10")
DEFAULT_ALPHA = 0.05
CONFIDENCE = 0.95
INTERVAL_METHOD = "bca"
TEST = "wilcoxon"
FAMILY = "split-metric"
FAMILY_TEXT = ("one family per split and metric: every model of the split against its reference on that metric, "
               "baselines included")
REFERENCE_RULE = ("the 'ok' run of family baseline with per-user values of the first report metric and the highest "
                  "record mean of it, ties by model name")
VERDICTS = ("better", "worse", "not different")


# ---------------------------------------------------------------- settings and inputs

@dataclass(frozen=True)
class StatisticsSettings:
    seed: int = 0
    alpha: float = DEFAULT_ALPHA
    n_resamples: int = DEFAULT_RESAMPLES


@dataclass(frozen=True)
class Entry:
    """One result folder: its ``metrics.json`` record and, for a run with status "ok" read
    with its per-user values, its per-user frame."""

    record: dict
    per_user: pd.DataFrame | None = None

    @property
    def model(self) -> str:
        return self.record["model"]

    @property
    def ok(self) -> bool:
        return self.record["status"] == "ok"

    @property
    def family(self) -> str:
        return str(self.record.get("family") or "unknown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--params-yaml", type=Path, default=None, metavar="FILE",
                        help="reads seed and reports.{metrics,alpha,n_resamples} (default: params.yaml when present)")


def run(args: argparse.Namespace) -> int:
    metrics, settings = report_settings(args.params_yaml)
    paths = find_result_files(args.results_root)
    entries = [read_entry(path) for path in paths]
    document = compute_statistics(entries, metrics, settings, inputs_digest(args.results_root, paths))
    with atomic_file(args.out, mode="w") as handle:
        handle.write(statistics_json(document))
    n_tests = sum(len(column["comparisons"]) for split in document["splits"] for column in split["metrics"].values())
    print(f"wrote {args.out}: {n_tests} comparisons over {len(document['splits'])} splits from "
          f"{len(entries)} result files")
    return 0


def report_settings(params_path: Path | None) -> tuple[list[str], StatisticsSettings]:
    """(report metrics, statistics settings) from ``params.yaml`` (defaults without one)."""
    if params_path is None:
        if not DEFAULT_PARAMS.exists():
            return list(DEFAULT_METRICS), StatisticsSettings()
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
    check_bootstrap_settings(CONFIDENCE, n_resamples, INTERVAL_METHOD)
    return [str(m).lower() for m in metrics], StatisticsSettings(seed, float(alpha), int(n_resamples))


def read_entry(path: Path, per_user: bool = True) -> Entry:
    """One result folder; a run with status "ok" needs its per-user values (read unless
    ``per_user`` is False: the renderers need the records only)."""
    record = read_record(path)
    frame = read_per_user(path.parent) if per_user and record["status"] == "ok" else None
    return Entry(record, frame)


def read_entries(results_root: Path, per_user: bool = True) -> list[Entry]:
    """Every result folder under ``results_root`` (``protocols.results.find_result_files`` order)."""
    return [read_entry(path, per_user) for path in find_result_files(results_root)]


def entries_by_split(entries: Sequence[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """``{(dataset, split name): entries}``, keys in sorted order, entries in their given order."""
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.record["dataset"], entry.record["protocol"])].append(entry)
    return {key: groups[key] for key in sorted(groups)}


def inputs_digest(results_root: Path, paths: Sequence[Path]) -> str:
    """sha256 over the relative paths and bytes of every file the reports read (each result
    folder's ``metrics.json`` and ``per_user.parquet``): names the exact inputs."""
    digest = hashlib.sha256()
    for path in paths:
        for read in (path, path.parent / PER_USER_FILE):
            digest.update(read.relative_to(results_root).as_posix().encode() + b"\0")
            digest.update((read.read_bytes() if read.exists() else b"") + b"\0")
    return digest.hexdigest()


def metric_value(record: dict, label: str) -> float | None:
    value = (record.get("metrics") or {}).get(label)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def has_values(entry: Entry, metric: str) -> bool:
    frame = entry.per_user
    return frame is not None and metric in frame.columns and len(frame) > 0


def best_baseline(ok: Sequence[Entry], metric: str) -> str | None:
    """The reference rule (:data:`REFERENCE_RULE`) over the entries given: the baseline with
    the highest record mean of ``metric``, ties by name."""
    candidates = [e for e in ok if e.family == "baseline" and metric_value(e.record, metric) is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (-metric_value(e.record, metric), e.model)).model


# ---------------------------------------------------------------- computing

def compute_statistics(entries: Sequence[Entry], metrics: Sequence[str], settings: StatisticsSettings,
                       digest: str) -> dict:
    """The whole file as a JSON-ready mapping (see the module docstring)."""
    if not metrics:
        raise RecAuditError("the statistics need at least one report metric, e.g. reports.metrics: [ndcg@10]")
    splits = [split_statistics(dataset, protocol, group, list(metrics), settings)
              for (dataset, protocol), group in entries_by_split(entries).items()]
    return {
        "schema": SCHEMA,
        "inputs_sha256": digest,
        "n_result_files": len(entries),
        "settings": {"metrics": list(metrics), "seed": settings.seed, "alpha": settings.alpha,
                     "n_resamples": settings.n_resamples, "confidence": CONFIDENCE, "interval": INTERVAL_METHOD,
                     "test": TEST, "family": FAMILY, "family_rule": FAMILY_TEXT, "reference_metric": metrics[0],
                     "reference_rule": REFERENCE_RULE},
        "splits": splits,
    }


def split_statistics(dataset: str, protocol: str, entries: Sequence[Entry], metrics: list[str],
                     settings: StatisticsSettings) -> dict:
    ok = [e for e in entries if e.ok]
    reference = best_baseline([e for e in ok if has_values(e, metrics[0])], metrics[0])
    by_model = {e.model: e for e in ok}
    columns = {}
    for metric in metrics:
        if not any(has_values(e, metric) for e in ok):
            continue  # a list metric, or not evaluated: nothing to resample or test
        columns[metric] = metric_comparisons(metric, ok, by_model.get(reference), settings)
    intervals = {e.model: entry_intervals(e, metrics, settings) for e in ok if any(has_values(e, m) for m in metrics)}
    return {"dataset": dataset, "split": protocol, "reference": reference, "intervals": intervals, "metrics": columns}


def entry_intervals(entry: Entry, metrics: Sequence[str], settings: StatisticsSettings) -> dict:
    """``{metric: {mean, low, high, n}}`` for one run: its per-user columns resampled together
    (every run gets the same seed, so runs over the same users share their resamples)."""
    columns = [m for m in metrics if has_values(entry, m)]
    matrix = entry.per_user[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    found = bootstrap_columns_ci(matrix, confidence=CONFIDENCE, n_resamples=settings.n_resamples, seed=settings.seed,
                                 method=INTERVAL_METHOD)
    return {m: {"mean": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n} for m, ci in zip(columns, found)}


def metric_comparisons(metric: str, ok: Sequence[Entry], reference: Entry | None,
                       settings: StatisticsSettings) -> dict:
    """One family: every other "ok" run against ``reference`` on ``metric``, Holm within."""
    comparisons, not_compared = [], {}
    if reference is None:
        return {"comparisons": [], "not_compared": {}}
    others = [e for e in ok if e.model != reference.model]
    if not has_values(reference, metric):
        reason = f"the reference {reference.model} has no per-user {metric} values"
        return {"comparisons": [], "not_compared": {e.model: reason for e in others}}
    usable = {}
    for entry in others:
        if not has_values(entry, metric):
            not_compared[entry.model] = f"no per-user {metric} values"
            continue
        try:  # users that differ from the reference's: a stale result, reported rather than fatal
            paired_values(entry.per_user, reference.per_user, metric, names=(entry.model, reference.model))
        except RecAuditError as error:
            not_compared[entry.model] = f"cannot compare with {reference.model}: {error}"
            continue
        usable[entry.model] = entry.per_user
    if usable:
        table = compare_to_reference({reference.model: reference.per_user, **usable}, reference.model, metric,
                                     alpha=settings.alpha, test=TEST, seed=settings.seed,
                                     n_resamples=settings.n_resamples, confidence=CONFIDENCE,
                                     ci_method=INTERVAL_METHOD)
        keep = ("model", "n_users", "mean", "reference_mean", "mean_difference", "difference_ci_low",
                "difference_ci_high", "statistic", "p_value", "p_holm", "effect_size", "effect_size_name", "wins",
                "losses", "ties", "verdict")
        comparisons = [{key: getattr(row, key) for key in keep} for row in table.itertuples()]
    return {"comparisons": comparisons, "not_compared": not_compared}


def statistics_json(document: Mapping) -> str:
    """Sorted keys, numbers in their shortest exact form, NaN and infinities as null."""
    return json.dumps(_json_ready(document), sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def _json_ready(value):
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


# ---------------------------------------------------------------- reading (what the reports use)

@dataclass(frozen=True)
class Interval:
    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def finite(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Comparison:
    """One model against its split's reference on one metric (differences ``model - reference``)."""

    model: str
    reference: str
    metric: str
    n_users: int
    mean: float | None
    reference_mean: float | None
    mean_difference: float | None
    difference_ci_low: float | None
    difference_ci_high: float | None
    statistic: float | None
    p_value: float | None
    p_holm: float | None
    effect_size: float | None
    effect_size_name: str
    wins: int
    losses: int
    ties: int
    verdict: str


@dataclass(frozen=True)
class SplitStatistics:
    dataset: str
    split: str
    reference: str | None = None
    intervals: Mapping[str, Mapping[str, Interval]] = field(default_factory=dict)  # model -> metric -> interval
    comparisons: Mapping[str, Mapping[str, Comparison]] = field(default_factory=dict)  # metric -> model -> test
    not_compared: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # metric -> model -> reason

    def comparison(self, model: str, metric: str) -> Comparison | None:
        return self.comparisons.get(metric, {}).get(model)

    def family_size(self, metric: str) -> int:
        """Comparisons with a p-value in the Holm family of this split and ``metric``."""
        return sum(c.p_value is not None for c in self.comparisons.get(metric, {}).values())

    def tested(self, metrics: Sequence[str]) -> list[str]:
        """The metrics (in the given order) with at least one comparison."""
        return [m for m in metrics if self.comparisons.get(m)]


@dataclass(frozen=True)
class Statistics:
    metrics: tuple[str, ...]
    settings: StatisticsSettings
    inputs_sha256: str
    n_result_files: int
    splits: Mapping[tuple[str, str], SplitStatistics]

    def split(self, dataset: str, protocol: str) -> SplitStatistics:
        return self.splits.get((dataset, protocol)) or SplitStatistics(dataset, protocol)


def parse_statistics(document: Mapping, where: str = "the statistics") -> Statistics:
    """The file's mapping as :class:`Statistics`; a missing field is a one-line error."""
    try:
        if document.get("schema") != SCHEMA:
            raise RecAuditError(f"{where} has schema {document.get('schema')!r}, not {SCHEMA!r}; "
                                "rerun `python -m reports statistics`")
        raw = document["settings"]
        settings = StatisticsSettings(int(raw["seed"]), float(raw["alpha"]), int(raw["n_resamples"]))
        splits = {}
        for split in document["splits"]:
            reference = split["reference"]
            intervals = {model: {metric: Interval(v["mean"], v["low"], v["high"], int(v["n"]))
                                 for metric, v in columns.items()}
                         for model, columns in split["intervals"].items()}
            comparisons, not_compared = {}, {}
            for metric, column in split["metrics"].items():
                comparisons[metric] = {row["model"]: Comparison(reference=reference, metric=metric, **row)
                                       for row in column["comparisons"]}
                not_compared[metric] = dict(column["not_compared"])
            key = (split["dataset"], split["split"])
            splits[key] = SplitStatistics(key[0], key[1], reference, intervals, comparisons, not_compared)
        return Statistics(tuple(raw["metrics"]), settings, str(document["inputs_sha256"]),
                          int(document["n_result_files"]), splits)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise RecAuditError(f"{where} is incomplete or malformed ({type(error).__name__}: {error}); "
                            "rerun `python -m reports statistics`") from None


def load_statistics(path: Path) -> Statistics:
    path = Path(path)
    if not path.is_file():
        raise RecAuditError(f"no statistics file at {path}; run `python -m reports statistics --out {path}` first "
                            "(or `dvc repro statistics`)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecAuditError(f"cannot read {path} ({str(error).splitlines()[0]}); "
                            "rerun `python -m reports statistics`") from None
    if not isinstance(document, dict):
        raise RecAuditError(f"{path} must hold a JSON object; rerun `python -m reports statistics`")
    return parse_statistics(document, str(path))


def read_statistics(path: Path, results_root: Path, per_user: bool = False) -> tuple[list[Entry], Statistics]:
    """The result entries under ``results_root`` (records only unless ``per_user``) and the
    statistics file at ``path``, which must have been computed from exactly these results."""
    statistics = load_statistics(path)
    paths = find_result_files(results_root)
    digest = inputs_digest(results_root, paths)
    if digest != statistics.inputs_sha256:
        raise RecAuditError(f"{path} was computed from other results (inputs sha256 {statistics.inputs_sha256[:16]}, "
                            f"{results_root} now {digest[:16]}); rerun `python -m reports statistics "
                            f"--results-root {results_root} --out {path}`")
    return [read_entry(p, per_user) for p in paths], statistics


def statistics_of(entries: Sequence[Entry], metrics: Sequence[str], settings: StatisticsSettings | None = None,
                  digest: str = "") -> Statistics:
    """Compute and parse in memory (for callers that hold entries with their per-user frames,
    such as the tests and :func:`reports.leaderboard.build_leaderboard` without a file)."""
    document = compute_statistics(entries, metrics, settings or StatisticsSettings(), digest)
    return parse_statistics(json.loads(statistics_json(document)))
