"""``python -m reports plots``: the figures of the report, and their data as CSV.

Into ``--out-dir`` (replaced as a whole), per split ``<dataset>__<split>__<figure>.{png,svg}``:

- ``metric_by_cutoff``: the first report metric's family (e.g. ndcg) at every evaluated
  cutoff, one line per model ("ok" runs, from ``metrics.json``);
- ``accuracy_vs_time``: the first report metric against the mean fit seconds per run (log
  axis; runs under the 1 ms resolution of the records are drawn at 1 ms);
- ``per_user``: box plots of the per-user values of the first report metric for the
  :data:`TOP_MODELS` best models (``per_user.parquet``), mean marked;
- ``popularity``: the split card as a picture: per item, interactions in ``train.parquet``
  against interactions in ``test.parquet`` (log-log, +1), with Spearman's rank correlation;
  needs ``<splits_root>/<dataset>/<split>/``, skipped (and said so) when the split is absent;

and once, ``progress.{png,svg}``: each neural method's mean per-user difference to the best
tuned baseline with its 95% bootstrap interval on every split (the verdict table,
``reports.verdicts``, read from the statistics file ``reports/statistics.json``; filled markers
for significant differences after Holm); a figure that says so when no neural method has been
evaluated. Nothing is resampled or tested here.

The figures' data also go to ``metrics_by_cutoff.csv``, ``accuracy_vs_time.csv`` and
``progress.csv`` (long format, one ``split_key`` column ``<dataset>/<split>``), which
``dvc plots show`` renders with the templates of ``reports/plot_templates``.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_directory
from common.errors import RecAuditError
from reports.statistics import DEFAULT_FILE, Statistics, entries_by_split, read_statistics
from reports.tables import Entry, has_values, metric_value, row_order
from reports.verdicts import verdict_table

HELP = "draw the report's figures (PNG + SVG) and write their data as CSV"
TOP_MODELS = 5
SPLIT_FIGURES = ("metric_by_cutoff", "accuracy_vs_time", "per_user", "popularity")
Groups = Mapping[tuple[str, str], Sequence[Entry]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--splits-root", type=Path, default=Path("data/splits"))
    parser.add_argument("--statistics", type=Path, default=DEFAULT_FILE, metavar="FILE",
                        help=f"the statistics of these results (python -m reports statistics; default {DEFAULT_FILE})")
    parser.add_argument("--out-dir", type=Path, default=Path("reports/plots"))


def run(args: argparse.Namespace) -> int:
    from reports import figures  # matplotlib and seaborn load only for this command

    entries, statistics = read_statistics(args.statistics, args.results_root, per_user=True)  # for the box plots
    groups = entries_by_split(entries)
    written, skipped = write_plots(groups, statistics, args.splits_root, args.out_dir, figures)
    for key in skipped:
        print(f"no split folder {args.splits_root / key}: its popularity card is skipped")
    print(f"wrote {written} figures (PNG + SVG) of {len(groups)} splits to {args.out_dir}")
    return 0


def write_plots(groups: Groups, statistics: Statistics, splits_root: Path, out_dir: Path,
                figures) -> tuple[int, list[str]]:
    """Draw every figure into a staging folder that replaces ``out_dir``; returns (figures
    written, split keys without a split folder). The first report metric is drawn."""
    metric = statistics.metrics[0]
    cutoffs, times = cutoff_frame(groups, metric), time_frame(groups, metric)
    progress = progress_frame(verdict_table(groups, statistics))
    written, skipped = 0, []
    with atomic_directory(out_dir) as staging:
        for frame, name in ((cutoffs, "metrics_by_cutoff"), (times, "accuracy_vs_time"), (progress, "progress")):
            (staging / f"{name}.csv").write_text(frame.to_csv(index=False, lineterminator="\n"))
        for (dataset, protocol), entries in groups.items():
            key, stem = f"{dataset}/{protocol}", staging / f"{dataset}__{protocol}"
            written += figures.metric_by_cutoff(cutoffs[cutoffs["split_key"] == key], metric, key,
                                                stem.with_name(f"{stem.name}__metric_by_cutoff"))
            written += figures.accuracy_vs_time(times[times["split_key"] == key], metric, key,
                                                stem.with_name(f"{stem.name}__accuracy_vs_time"))
            written += figures.per_user(per_user_frame(entries, metric), metric, key,
                                        stem.with_name(f"{stem.name}__per_user"))
            popularity = popularity_frame(splits_root / dataset / protocol)
            if popularity is None:
                skipped.append(key)
            else:
                written += figures.popularity(popularity, key, stem.with_name(f"{stem.name}__popularity"))
        written += figures.progress(progress, metric, staging / "progress")
    return written, skipped


def split_key(entry: Entry) -> str:
    return f"{entry.record['dataset']}/{entry.record['protocol']}"


def model_rank(entries: Sequence[Entry], metric: str) -> list[str]:
    """Model names in leaderboard order (baselines, then neural; best first), "ok" runs only:
    fixes the colours and legend order of every figure of a split."""
    return [e.model for e in sorted((e for e in entries if e.ok), key=lambda e: row_order(e, metric))]


def cutoff_frame(groups: Groups, metric: str) -> pd.DataFrame:
    """Long frame (split_key, dataset, split, model, family, rank, metric, cutoff, value) of
    every ``<family>@<k>`` value in the "ok" records, ``family`` that of ``metric``."""
    family = metric.split("@")[0]
    rows = []
    for entries in groups.values():
        for rank, model in enumerate(model_rank(entries, metric)):
            entry = next(e for e in entries if e.model == model)
            for label, value in sorted((entry.record.get("metrics") or {}).items()):
                name, _, cutoff = label.partition("@")
                if name == family and cutoff.isdigit() and metric_value(entry.record, label) is not None:
                    rows.append({"split_key": split_key(entry), "dataset": entry.record["dataset"],
                                 "split": entry.record["protocol"], "model": model, "family": entry.family,
                                 "rank": rank, "metric": family, "cutoff": int(cutoff), "value": float(value)})
    columns = ["split_key", "dataset", "split", "model", "family", "rank", "metric", "cutoff", "value"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["split_key", "rank", "cutoff"], kind="stable").reset_index(drop=True)


def time_frame(groups: Groups, metric: str) -> pd.DataFrame:
    """(split_key, dataset, split, model, family, rank, fit_seconds, eval_seconds, metric,
    value) per "ok" run with a value of ``metric``."""
    rows = []
    for entries in groups.values():
        for rank, model in enumerate(model_rank(entries, metric)):
            entry = next(e for e in entries if e.model == model)
            value = metric_value(entry.record, metric)
            if value is None or entry.record.get("fit_seconds") is None:
                continue
            rows.append({"split_key": split_key(entry), "dataset": entry.record["dataset"],
                         "split": entry.record["protocol"], "model": model, "family": entry.family, "rank": rank,
                         "fit_seconds": float(entry.record["fit_seconds"]),
                         "eval_seconds": float(entry.record.get("eval_seconds") or 0.0), "metric": metric,
                         "value": value})
    columns = ["split_key", "dataset", "split", "model", "family", "rank", "fit_seconds", "eval_seconds", "metric",
               "value"]
    return pd.DataFrame(rows, columns=columns)


def per_user_frame(entries: Sequence[Entry], metric: str, top: int = TOP_MODELS) -> pd.DataFrame:
    """Long frame (model, family, value) of the per-user ``metric`` of the ``top`` models with
    the highest mean (ties by name), best first; NaN users left out."""
    candidates = [e for e in entries if e.ok and has_values(e, metric) and metric_value(e.record, metric) is not None]
    best = sorted(candidates, key=lambda e: (-metric_value(e.record, metric), e.model))[:top]
    frames = [pd.DataFrame({"model": e.model, "family": e.family,
                            "value": e.per_user[metric].to_numpy(dtype=np.float64, na_value=np.nan)})
              for e in best]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "family", "value"])
    return frame[np.isfinite(frame["value"].astype(float))].reset_index(drop=True)


def progress_frame(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The tested rows of the verdict table, with ``split_key`` and ``significant``."""
    tested = verdicts[verdicts["p_holm"].notna()].copy()
    tested.insert(0, "split_key", tested["dataset"] + "/" + tested["split"])
    tested["significant"] = tested["verdict"] != "not different"
    columns = ["split_key", "dataset", "split", "model", "reference", "metric", "mean", "reference_mean",
               "mean_difference", "difference_ci_low", "difference_ci_high", "p_holm", "verdict", "significant"]
    return tested[columns].reset_index(drop=True)


def popularity_frame(split_folder: Path) -> pd.DataFrame | None:
    """Per item seen in train or test: (item, train, test) interaction counts; None when the
    split folder lacks ``train.parquet`` or ``test.parquet``."""
    paths = [split_folder / "train.parquet", split_folder / "test.parquet"]
    if not all(path.exists() for path in paths):
        return None
    try:
        train, test = (pd.read_parquet(path, columns=["item"])["item"] for path in paths)
    except (OSError, ValueError, KeyError) as error:
        raise RecAuditError(f"cannot read the item column of {split_folder} ({str(error).splitlines()[0]}); "
                            "rebuild the split with `python -m protocols split`") from None
    counts = pd.concat([train.value_counts().rename("train"), test.value_counts().rename("test")], axis=1)
    counts = counts.fillna(0).astype("int64").sort_index()
    return counts.rename_axis("item").reset_index()
