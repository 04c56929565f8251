"""``python -m reports verdicts``: is each neural method better than the best tuned baseline?

The question of Ferrari Dacrema et al. (TOIS 39(2), 2021, Tables 3-12), asked of every split
at once. For each split (``results/<dataset>/<split>/``) and each neural method evaluated on
it (every record whose ``family`` is not ``"baseline"``):

- the reference is the best baseline of that split (``family == "baseline"``, highest mean on
  the first report metric ``reports.metrics[0]``, ties by name: the leaderboard's ``(ref)``,
  :func:`reports.tables.best_baseline`); every baseline went through the same tuning as the
  neural methods, which is what makes it "tuned";
- the neural method is compared with it by the two-sided paired Wilcoxon signed-rank test over
  users on that metric (``protocols.statistics.compare_to_reference``), with a 95% BCa
  bootstrap interval of the mean per-user difference ``neural - baseline``;
- the p-values of **the whole verdict table** (every neural method on every split) are
  Holm-adjusted as one family (``protocols.statistics.apply_holm``, ``reports.alpha``): the
  table makes one claim per row, so the family-wise error rate is controlled over all of them;
- verdict: "significantly better" / "significantly worse" when the adjusted p-value is at
  most alpha (by the sign of the rank-biserial effect), else "not different".

Rows without a test say why: "no neural method evaluated" (one line for a split without any
neural result), "not run (reason)" for a neural method the split refused, "no baseline" when
the split has no baseline with per-user values. Writes Markdown (``--out``) and CSV
(``--csv``, default beside it); the same inputs give the same bytes.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from common.atomic import atomic_file
from protocols.results import find_result_files
from protocols.statistics import apply_holm, compare_to_reference
from reports.leaderboard import entries_by_split, inputs_digest, read_entry, report_settings
from reports.markdown import markdown_text
from reports.tables import CONFIDENCE, TEST, Entry, StatisticsSettings, best_baseline, has_values, metric_value

HELP = "neural methods against the best tuned baseline of every split (Markdown + CSV)"
BETTER, WORSE, SAME = "significantly better", "significantly worse", "not different"
NO_NEURAL, NO_BASELINE, NOT_RUN = "no neural method evaluated", "no baseline", "not run"
VERDICT_WORDS = {"better": BETTER, "worse": WORSE, "not different": SAME}
COLUMNS = ("dataset", "split", "model", "reference", "metric", "mean", "reference_mean", "mean_difference",
           "difference_ci_low", "difference_ci_high", "n_users", "p_value", "p_holm", "effect_size", "verdict",
           "note")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("reports/verdicts.md"))
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE",
                        help="the table as CSV (default: --out with suffix .csv)")
    parser.add_argument("--params-yaml", type=Path, default=None, metavar="FILE",
                        help="reads seed and reports.{metrics,alpha,n_resamples} (default: params.yaml when present)")


def run(args: argparse.Namespace) -> int:
    metrics, settings = report_settings(args.params_yaml)
    paths = find_result_files(args.results_root)
    groups = entries_by_split([read_entry(path) for path in paths])
    table = verdict_table(groups, metrics[0], settings)
    text = verdicts_markdown(table, metrics[0], settings, len(paths), inputs_digest(args.results_root, paths))
    csv_path = args.csv or args.out.with_suffix(".csv")
    with atomic_file(args.out, mode="w") as handle:
        handle.write(text)
    with atomic_file(csv_path, mode="w") as handle:
        handle.write(table.to_csv(index=False, lineterminator="\n"))
    tested = table["p_holm"].notna().sum()
    print(f"wrote {args.out} and {csv_path}: {tested} comparisons over {len(groups)} splits")
    return 0


def verdict_table(groups: Mapping[tuple[str, str], Sequence[Entry]], metric: str,
                  settings: StatisticsSettings) -> pd.DataFrame:
    """One row per (split, neural method), or one "no neural method evaluated" row per split
    without any; columns :data:`COLUMNS`, rows by dataset, split and model. ``p_holm`` is
    adjusted over every tested row of the table."""
    frames = []
    for (dataset, protocol), entries in groups.items():
        frames.append(split_rows(dataset, protocol, entries, metric, settings))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    tested = table["p_value"].notna()
    if tested.any():
        adjusted = apply_holm(table.loc[tested, ["p_value", "effect_size"]].astype(float), settings.alpha)
        table.loc[tested, "p_holm"] = adjusted["p_holm"].to_numpy()
        table.loc[tested, "verdict"] = [VERDICT_WORDS[v] for v in adjusted["verdict"]]
    return table.reset_index(drop=True)


def split_rows(dataset: str, protocol: str, entries: Sequence[Entry], metric: str,
               settings: StatisticsSettings) -> pd.DataFrame:
    ok = [e for e in entries if e.ok]
    baselines = [e for e in ok if e.family == "baseline" and has_values(e, metric)]
    reference = best_baseline(baselines, metric)
    reference_mean = next((metric_value(e.record, metric) for e in baselines if e.model == reference), None)
    # Every method under test is a candidate, whatever its family; only baselines are references.
    neural = sorted((e for e in entries if e.family != "baseline"), key=lambda e: e.model)
    base = {"dataset": dataset, "split": protocol, "reference": reference or "", "metric": metric,
            "reference_mean": reference_mean}
    if not neural:
        return rows_frame([base | {"model": "", "verdict": NO_NEURAL}])
    rows, tested = [], []
    for entry in neural:
        row = base | {"model": entry.model, "mean": metric_value(entry.record, metric) if entry.ok else None}
        if not entry.ok:
            rows.append(row | {"verdict": NOT_RUN, "note": entry.record.get("reason") or "unsupported"})
        elif not has_values(entry, metric):
            rows.append(row | {"verdict": NOT_RUN, "note": f"no per-user {metric} values"})
        elif reference is None:
            rows.append(row | {"verdict": NO_BASELINE, "note": f"no baseline with per-user {metric} values"})
        else:
            tested.append(entry)
    if tested:
        rows += compared_rows(base, tested, [e for e in baselines if e.model == reference][0], metric, settings)
    return rows_frame(sorted(rows, key=lambda row: row["model"]))


def compared_rows(base: dict, tested: Sequence[Entry], reference: Entry, metric: str,
                  settings: StatisticsSettings) -> list[dict]:
    """The paired comparisons of one split (Holm comes later, over the whole table)."""
    per_user = {reference.model: reference.per_user} | {e.model: e.per_user for e in tested}
    comparison = compare_to_reference(per_user, reference.model, metric, alpha=settings.alpha, test=TEST,
                                      seed=settings.seed, n_resamples=settings.n_resamples,
                                      confidence=CONFIDENCE)
    return [base | {"model": row.model, "mean": row.mean, "reference_mean": row.reference_mean,
                    "mean_difference": row.mean_difference, "difference_ci_low": row.difference_ci_low,
                    "difference_ci_high": row.difference_ci_high, "n_users": row.n_users,
                    "p_value": row.p_value, "effect_size": row.effect_size, "verdict": "", "note": ""}
            for row in comparison.itertuples()]


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


def verdicts_markdown(table: pd.DataFrame, metric: str, settings: StatisticsSettings, n_files: int,
                      digest: str | None = None) -> str:
    n_tested = int(table["p_holm"].notna().sum())
    metric = markdown_text(metric)  # names below are escaped (reports.markdown): they come from the results
    counts = {word: int((table["verdict"] == word).sum()) for word in (BETTER, SAME, WORSE)}
    source = f" (inputs sha256 {digest[:16]})" if digest else ""
    family = f"all {n_tested} comparisons of this table" if n_tested else "all comparisons of this table (none yet)"
    lines = ["# RecAudit verdicts: neural methods against the best tuned baseline", "",
             f"Built by `python -m reports verdicts` from {n_files} result files{source}. Per split, each neural "
             f"method against the best baseline on {metric} (the leaderboard's reference): two-sided paired "
             f"Wilcoxon signed-rank test over users, Holm correction over {family}, alpha {settings.alpha:g}; "
             f"difference = neural - baseline with its {CONFIDENCE:.0%} BCa "
             f"bootstrap interval ({settings.n_resamples} resamples, seed {settings.seed}).", ""]
    if n_tested:
        lines += [f"Of {n_tested} comparisons: {counts[BETTER]} {BETTER}, {counts[SAME]} {SAME}, "
                  f"{counts[WORSE]} {WORSE}.", ""]
    elif len(table) and (table["verdict"] == NO_NEURAL).all():
        lines += ["No neural method has been evaluated yet: every split below has baselines only.", ""]
    headers = ["dataset", "split", "neural method", "best baseline", f"{metric} neural", f"{metric} baseline",
               "difference [95% CI]", "p (Holm)", "verdict"]
    rows = [markdown_row(row) for row in table.itertuples()]
    if not rows:
        rows = [["-", "-", "-", "-", "-", "-", "", "", "no result files"]]
    lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                          colalign=("left", "left", "left", "left", "right", "right", "right", "right", "left")))
    return "\n".join(lines) + "\n"


def markdown_row(row) -> list[str]:
    verdict = row.verdict
    if verdict == NOT_RUN or (verdict == NO_BASELINE and row.note):
        verdict = f"{verdict} ({row.note})"
    difference = ""
    if np.isfinite(row.mean_difference):
        difference = f"{row.mean_difference:+.4f} [{row.difference_ci_low:+.4f}, {row.difference_ci_high:+.4f}]"
    return [markdown_text(row.dataset), markdown_text(row.split), markdown_text(row.model or "-"),
            markdown_text(row.reference or "-"), number(row.mean), number(row.reference_mean), difference,
            p_value_cell(row.p_holm), markdown_text(verdict)]


def number(value) -> str:
    return f"{value:.4f}" if value is not None and np.isfinite(value) else "-"


def p_value_cell(value) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"
