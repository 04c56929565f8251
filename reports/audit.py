"""The claims audit: every number a paper reports (``reports.claims``) against our
reproduction under the same protocol, and against the best tuned baseline.

Per claim (``metric`` of ``model`` on split ``protocol``, reported value ``r``):

- **Reproduction**: the record ``<results_root>/<protocol>/<model>/metrics.json`` gives our
  mean ``m`` (for a stochastic model the mean over seeds, with the sd over seeds, ``ddof=1``,
  from ``metrics_std``); the statistics file (``reports/statistics.json``) gives the 95% BCa
  bootstrap interval ``[lo, hi]`` of the mean over users. Only for a claim metric that is not a
  report metric (``reports.metrics``), which the file does not cover, the audit draws that
  interval itself from ``per_user.parquet`` with the file's settings (the one bootstrap,
  ``protocols.bootstrap.bootstrap_mean_ci``, same resamples and seed). Verdict "reproduced"
  when ``|m - r| <= tolerance * r`` (``audit.tolerance``, default 0.05: papers round to three
  or four digits and tuning budgets differ, so a 5% relative gap is within what a faithful
  re-run may land on) **or**
  ``lo <= r <= hi`` (on a small test set our own sampling error can exceed 5%, and a value we
  cannot tell apart from ours is not refuted); otherwise "not reproduced", whichever side
  ``m`` falls on.
- **Not comparable**: a claim flagged ``not_comparable`` in its claims file (its number was
  computed under a protocol we do not reproduce, e.g. an evaluation that counted training items
  as hits) gets the verdict "not comparable" whatever our mean: the reproduction is shown for the
  record (or the not-run reasons), never judged against the reported value.
- **Progress**: the statistics file's comparison of the model with its split's reference, the
  best tuned baseline of every report (``reports.statistics.REFERENCE_RULE``), on the claim's
  metric: two-sided paired Wilcoxon signed-rank test over users, Holm-adjusted within the
  split's metric column (the one family of every report). "progress confirmed" when the file's
  verdict is "better", "not confirmed" when not different or worse. No check (and a note why)
  when the model is the reference itself, the file has no comparison for it (the reason it
  gives), or the metric is not a report metric.
- **Not run**: a claim without an "ok" result is listed with every reason that applies (the
  dataset not in the registry, the model not registered, raw files missing from the mirror,
  the split not in ``params.yaml``, the model refused the split, the metric not evaluated,
  or simply no result file yet): never dropped.

The report depends only on the claims, the result files and their statistics file,
``params.yaml`` and what the registries and the mirror hold (no clock, no absolute path), so the same inputs give the
same bytes.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_file
from common.errors import RecAuditError
from protocols.bootstrap import DEFAULT_RESAMPLES, bootstrap_mean_ci
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.results import METRICS_FILE, read_per_user, read_record, short_reason
from reports.claims import CLAIMS_DIR, Claim, PaperClaims, load_claims
from reports.statistics import (CONFIDENCE, DEFAULT_FILE, INTERVAL_METHOD, Statistics, StatisticsSettings,
                                read_statistics)

HELP = "audit the papers' claims (reports/claims) against our results (Markdown)"
DEFAULT_TOLERANCE = 0.05
NO_STATISTICS = Statistics((), StatisticsSettings(), "", 0, {})  # no result files: nothing to look up
REPRODUCED, NOT_REPRODUCED, NOT_RUN, NO_REPORTED_VALUE = "reproduced", "not reproduced", "not run", "no reported value"
NOT_COMPARABLE = "not comparable"
CONFIRMED, NOT_CONFIRMED = "progress confirmed", "not confirmed"


@dataclass(frozen=True)
class AuditSettings:
    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = 0.05
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0


@dataclass(frozen=True)
class Availability:
    """What RecAudit holds today: registered datasets and models, the split keys of
    ``params.yaml``, per registered dataset the raw files missing from the mirror, what a
    download of it weighs and from where, the private ones, and the paper suite (of
    ``paper_suites:``) that defines each split not yet in the pipeline."""

    datasets: frozenset[str]
    models: frozenset[str]
    splits: frozenset[str]
    mirror_missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    downloads: Mapping[str, str] = field(default_factory=dict)
    private: Mapping[str, str] = field(default_factory=dict)
    paper_suite_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls, params: dict, datasets: Iterable[str], mirror: Path | None) -> Availability:
        """From the registries, ``params`` and the mirror (checked for ``datasets`` only;
        no mirror, no check)."""
        from datasets.registry import registered_datasets
        from protocols.registry import registered_models

        registered = registered_datasets()
        missing = {}
        if mirror is not None:
            for name in sorted(set(datasets) & set(registered)):
                absent = tuple(f.name for f in registered[name].files if not (mirror / f.mirror).is_file())
                if absent:
                    missing[name] = absent
        from datasets.registry import download_size

        splits = params.get("splits") or {}
        downloads, private = {}, {}
        for name in sorted(set(datasets) & set(registered)):
            spec = registered[name]
            if spec.unavailable is not None:
                private[name] = spec.unavailable.splitlines()[0]
            else:
                sources = spec.downloads()
                where = sources[0].url if sources else "the registry"
                downloads[name] = f"{download_size(spec, mirror)} from {where}"
        paper_suite_of = {split: suite_name for suite_name, suite in (params.get("paper_suites") or {}).items()
                          for split in (suite.get("splits") or {})}
        return cls(frozenset(registered), frozenset(registered_models()), frozenset(splits), missing, downloads,
                   private, paper_suite_of)


@dataclass(frozen=True)
class Reproduction:
    mean: float
    ci_low: float  # NaN without per-user values
    ci_high: float
    std: float | None  # over seeds; None for one seed
    n_seeds: int


@dataclass(frozen=True)
class ProgressCheck:
    baseline: str
    baseline_mean: float
    mean_difference: float  # model - baseline, over the users both cover
    p_value: float
    p_holm: float
    verdict: str


@dataclass(frozen=True)
class ClaimAudit:
    claim: Claim
    verdict: str
    reason: str = ""  # why not run (also for a not-comparable claim without a result)
    reproduction: Reproduction | None = None
    progress: ProgressCheck | None = None
    progress_note: str = ""  # why no progress check


def reproduction_verdict(reported: float | None, mean: float, ci_low: float, ci_high: float,
                         tolerance: float) -> str:
    """"reproduced" when ``|mean - reported| <= tolerance * |reported|`` or the reported value
    lies in our interval ``[ci_low, ci_high]`` (a NaN interval never contains it)."""
    if reported is None:
        return NO_REPORTED_VALUE
    slack = 1e-12 * max(1.0, abs(reported))  # the boundary case 0.95 * r must not hinge on rounding
    if abs(mean - reported) <= tolerance * abs(reported) + slack or ci_low <= reported <= ci_high:
        return REPRODUCED
    return NOT_REPRODUCED


class ResultIndex:
    """Result records and per-user frames read once each, by (split key, model)."""

    def __init__(self, results_root: Path | str):
        self.root = Path(results_root)
        self._records: dict[tuple[str, str], dict | None] = {}
        self._per_user: dict[tuple[str, str], pd.DataFrame] = {}

    def record(self, protocol: str, model: str) -> dict | None:
        key = (protocol, model)
        if key not in self._records:
            path = self.root / protocol / model / METRICS_FILE
            self._records[key] = read_record(path) if path.is_file() else None
        return self._records[key]

    def per_user(self, protocol: str, model: str) -> pd.DataFrame:
        key = (protocol, model)
        if key not in self._per_user:
            self._per_user[key] = read_per_user(self.root / protocol / model)
        return self._per_user[key]

    def models(self, protocol: str) -> list[str]:
        folder = self.root / protocol
        return sorted(path.parent.name for path in folder.glob(f"*/{METRICS_FILE}")
                      if not path.parent.name.startswith("."))


def metric_value(record: dict, label: str) -> float | None:
    value = (record.get("metrics") or {}).get(label)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def not_run_reasons(claim: Claim, available: Availability, record: dict | None) -> list[str]:
    """Why ``claim`` has no usable result (empty: it has one). A result file is the
    evidence: once it exists, only its own status and metrics matter."""
    if record is not None:
        if record["status"] != "ok":
            why = record.get("reason") or short_reason(str(record.get("detail") or "unsupported"))
            return [f"{claim.result_label} refused split {claim.protocol} ({why})"]
        if metric_value(record, claim.metric) is None:
            return [f"metric {claim.metric} not in the result of {claim.result_label} on {claim.protocol}"]
        return []
    reasons = []
    if claim.dataset not in available.datasets:
        reasons.append(f"dataset {claim.dataset} not in the registry")
    if claim.model not in available.models:
        reasons.append(f"model {claim.model} not registered")
    if claim.dataset in available.private:
        reasons.append(f"dataset {claim.dataset} is private ({available.private[claim.dataset]})")
    elif claim.dataset in available.datasets:
        absent = available.mirror_missing.get(claim.dataset, ())
        if absent:
            more = f" (and {len(absent) - 1} more files)" if len(absent) > 1 else ""
            reasons.append(f"data not downloaded: {claim.dataset}/{absent[0]}{more} missing from the mirror; "
                           f"download {available.downloads.get(claim.dataset, 'size unknown')}")
        if claim.protocol in available.paper_suite_of and claim.protocol not in available.splits:
            suite = available.paper_suite_of[claim.protocol]
            if not absent:
                reasons.append(f"data not downloaded: {claim.dataset}, "
                               f"{available.downloads.get(claim.dataset, 'size unknown')}")
            reasons.append(f"split {claim.protocol} is in the paper suite {suite}: "
                           f"`python -m protocols enable-suite {suite}` then `dvc repro`")
        elif claim.protocol not in available.splits:
            reasons.append(f"split {claim.protocol} not in params.yaml")
    return reasons or [f"no result file for split {claim.protocol}, model {claim.result_label}"]


def reproduce(claim: Claim, record: dict, results: ResultIndex, settings: AuditSettings,
              statistics: Statistics = NO_STATISTICS) -> Reproduction:
    mean = metric_value(record, claim.metric)
    low = high = float("nan")
    if claim.metric in statistics.metrics:  # the statistics file covers it: its interval
        interval = statistics.split(record["dataset"], record["protocol"]).intervals.get(claim.result_label, {}).get(
            claim.metric)
        if interval is not None and interval.finite:
            low, high = interval.low, interval.high
    else:  # not a report metric: the audit's own interval, drawn as the statistics stage draws its own
        frame = results.per_user(claim.protocol, claim.result_label)
        if claim.metric in frame.columns and len(frame):
            values = frame[claim.metric].to_numpy(dtype=np.float64, na_value=np.nan)
            interval = bootstrap_mean_ci(values, confidence=CONFIDENCE, n_resamples=settings.n_resamples,
                                         seed=settings.seed, method=INTERVAL_METHOD)
            low, high = interval.low, interval.high
    seeds = [s for s in (record.get("seeds") or []) if s is not None]
    spread = (record.get("metrics_std") or {}).get(claim.metric) if len(seeds) > 1 else None
    std = float(spread) if spread is not None and math.isfinite(float(spread)) else None
    return Reproduction(mean, low, high, std, max(len(seeds), 1))


def progress_check(claim: Claim, record: dict, results: ResultIndex,
                   statistics: Statistics) -> tuple[ProgressCheck | None, str]:
    """(the statistics file's comparison of the claim's model with its split's reference on
    the claim's metric, or None and why not)."""
    found = statistics.split(record["dataset"], record["protocol"])
    if claim.metric not in statistics.metrics:
        return None, (f"no progress check: {claim.metric} is not a report metric (reports.metrics), the only ones "
                      "reports/statistics.json tests")
    if found.reference is None:
        return None, f"no baseline result with per-user {statistics.metrics[0]} on this split"
    if found.reference == claim.result_label:
        return None, f"{claim.result_label} is this split's best baseline, the reference of the comparisons"
    comparison = found.comparison(claim.result_label, claim.metric)
    if comparison is None:
        reason = found.not_compared.get(claim.metric, {}).get(claim.result_label)
        return None, reason or f"no per-user {claim.metric} values for {claim.result_label}"
    baseline_mean = metric_value(results.record(claim.protocol, found.reference), claim.metric)
    return ProgressCheck(found.reference, baseline_mean, _number(comparison.mean_difference),
                         _number(comparison.p_value), _number(comparison.p_holm),
                         CONFIRMED if comparison.verdict == "better" else NOT_CONFIRMED), ""


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def audit_paper(paper: PaperClaims, results: ResultIndex, available: Availability, settings: AuditSettings,
                statistics: Statistics = NO_STATISTICS) -> list[ClaimAudit]:
    """One :class:`ClaimAudit` per claim, in the file's order; intervals, best baseline and
    progress test come from ``statistics`` (the statistics file of ``results``)."""
    audits: list[ClaimAudit] = []
    for claim in paper.claims:
        record = results.record(claim.protocol, claim.result_label)
        reasons = not_run_reasons(claim, available, record)
        if reasons:
            audits.append(ClaimAudit(claim, NOT_COMPARABLE if claim.not_comparable else NOT_RUN,
                                     reason="; ".join(reasons)))
            continue
        found = reproduce(claim, record, results, settings, statistics)
        verdict = NOT_COMPARABLE if claim.not_comparable else reproduction_verdict(
            claim.reported, found.mean, found.ci_low, found.ci_high, settings.tolerance)
        check, note = progress_check(claim, record, results, statistics)
        audits.append(ClaimAudit(claim, verdict, reproduction=found, progress=check, progress_note=note))
    return audits


def _replace(audit: ClaimAudit, **changes) -> ClaimAudit:
    return ClaimAudit(**{**audit.__dict__, **changes})


# ---------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paper", nargs="?", default=None,
                        help="one paper (claims file stem, e.g. ncf); default: every paper")
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help=f"the statistics of these results (python -m reports statistics; default {DEFAULT_FILE})")
    parser.add_argument("--out", type=Path, default=Path("reports/audit.md"))
    parser.add_argument("--params-yaml", type=Path, default=None, metavar="FILE",
                        help="reads splits and audit.tolerance (default: params.yaml when present)")
    parser.add_argument("--claims-dir", type=Path, default=CLAIMS_DIR, help="the claims registry folder")


def run(args: argparse.Namespace) -> int:
    from datasets.fetch import mirror_root
    from reports.audit_markdown import render_audit

    _, statistics = read_statistics(args.statistics, args.results_root)
    params, settings = audit_settings(args.params_yaml, statistics)
    papers = load_claims(args.claims_dir, args.paper)
    datasets = {claim.dataset for paper in papers for claim in paper.claims}
    available = Availability.current(params, datasets, mirror_root())
    results = ResultIndex(args.results_root)
    audited = [(paper, audit_paper(paper, results, available, settings, statistics)) for paper in papers]
    text = render_audit(audited, settings, statistics)
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    n_claims = sum(len(audits) for _, audits in audited)
    n_run = sum(a.reproduction is not None for _, audits in audited for a in audits)
    papers_word = "paper" if len(papers) == 1 else "papers"
    print(f"wrote {args.out}: {n_claims} claims of {len(papers)} {papers_word}, {n_run} with a result")
    return 0


def audit_settings(params_path: Path | None, statistics: Statistics | None = None) -> tuple[dict, AuditSettings]:
    """(params, settings): ``audit.tolerance`` (default :data:`DEFAULT_TOLERANCE`) in ``[0, 1)``
    from ``params.yaml``; alpha, resamples and seed those of the statistics file."""
    statistical = {} if statistics is None else {
        "alpha": statistics.settings.alpha, "n_resamples": statistics.settings.n_resamples,
        "seed": statistics.settings.seed}
    if params_path is None and not DEFAULT_PARAMS.exists():
        return {}, AuditSettings(**statistical)
    path = params_path or DEFAULT_PARAMS
    params = load_params(path)
    section = params.get("audit") or {}
    if not isinstance(section, dict):
        raise RecAuditError(f"{path}: audit must be a mapping such as {{tolerance: {DEFAULT_TOLERANCE}}}")
    tolerance = section.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise RecAuditError(f"{path}: audit.tolerance must be a relative difference in [0, 1), got {tolerance!r}; "
                            f"use e.g. {DEFAULT_TOLERANCE}")
    return params, AuditSettings(float(tolerance), **statistical)
