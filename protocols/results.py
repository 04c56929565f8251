"""Result files: what ``python -m protocols evaluate`` writes and the reports read.

One folder per (dataset, split, model), ``<results_root>/<dataset>/<split name>/<model>/``, holding

- ``metrics.json``: the record (keys in :data:`RECORD_KEYS`; ``metrics`` maps lower-case
  labels such as ``ndcg@10`` to means over the evaluated users). ``status`` is ``"ok"``;
  ``"unsupported"`` with a short ``reason`` (shown by the leaderboard) and the full
  ``detail`` when the model cannot run on that split (its declared requirements are not
  met). ``model`` is the params label, ``model_class`` the registered model it runs,
  ``features`` the key of the item feature set it read (content models); ``family`` is the
  model class's ("baseline" or "neural"); ``tuning`` is null for untuned defaults, else the
  tuning study's ``status``, ``trials_run``, ``trials_budget``, ``budget``,
  ``validation_metric`` and ``best_value``;
- ``per_user.parquet``: one row per evaluated user (empty when unsupported), for the
  significance tests;
- ``seeds/<seed>/{metrics.json,per_user.parquet}``: one complete run per seed of a
  stochastic model (``seeds/`` is empty for a deterministic model or a refused run).

Seeds: ``seeds`` lists the seeds whose runs the record summarises -- ``[null]`` for a
deterministic model (one run, nothing to seed), ``[s, s+1, ..., s+S-1]`` for a stochastic
one, ``[]`` when nothing ran (unsupported). For a stochastic model the top-level ``metrics``
are means over the seeds, ``metrics_std`` their standard deviations (``ddof=1``; null for a
single seed), ``per_user.parquet`` each user's mean over the seeds, ``seed`` the first seed,
and ``fit_seconds`` / ``eval_seconds`` the mean per seed.

:func:`write_run` builds the whole folder beside its destination and renames it into place
(``metrics.json`` written last), so a ``metrics.json`` always describes a complete run and
no seed of an older run survives.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from common.atomic import atomic_directory, atomic_file
from common.errors import RecAuditError

METRICS_FILE = "metrics.json"
PER_USER_FILE = "per_user.parquet"
SEEDS_DIR = "seeds"
RECORD_KEYS = ("dataset", "protocol", "model", "family", "params", "seed", "seeds", "sampled", "metric_version",
               "metrics", "metrics_std", "tuning", "n_users", "fit_seconds", "eval_seconds", "peak_rss_mb",
               "status")
TUNING_KEYS = ("status", "trials_run", "trials_budget", "budget",
               "validation_metric", "best_value")
UNSUPPORTED = "unsupported"  # the protocol refused the model
STATUSES = ("ok", UNSUPPORTED)


def result_dir(results_root: Path | str, dataset: str, protocol: str, model: str) -> Path:
    return Path(results_root) / dataset / protocol / model


def short_reason(message: str) -> str:
    """The leaderboard's few words for a refusal: the first parenthesised phrase of the
    error message (``"... (needs user embeddings); use ..."``), else its first clause."""
    found = re.search(r"\(([^()]+)\)", message)
    if found:
        return found.group(1)
    return message.split(";")[0].strip()


def write_result(folder: Path | str, record: dict, per_user: pd.DataFrame) -> Path:
    """Write ``per_user.parquet`` then ``metrics.json`` into ``folder``; returns the json path."""
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"result record lacks keys {missing}")
    folder = Path(folder)
    with atomic_file(folder / PER_USER_FILE) as handle:
        per_user.to_parquet(handle, index=False)
    with atomic_file(folder / METRICS_FILE, mode="w") as handle:
        handle.write(json.dumps(_json_safe(record), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return folder / METRICS_FILE


def write_run(folder: Path | str, record: dict, per_user: pd.DataFrame,
              seed_runs: Sequence[tuple[dict, pd.DataFrame]] = ()) -> Path:
    """Replace ``folder`` by a complete result: ``seeds/<seed>/`` for each of ``seed_runs``
    (record, per-user frame), then ``per_user.parquet``, then ``metrics.json``. Built in a
    staging folder renamed into place; returns the json path."""
    for seed_record, _ in seed_runs:
        if not isinstance(seed_record.get("seed"), int):
            raise ValueError(f"a seed run needs an integer seed, got {seed_record.get('seed')!r}")
    folder = Path(folder)
    with atomic_directory(folder) as staging:
        (staging / SEEDS_DIR).mkdir()
        for seed_record, seed_per_user in seed_runs:
            write_result(staging / SEEDS_DIR / str(seed_record["seed"]), seed_record, seed_per_user)
        write_result(staging, record, per_user)
    return folder / METRICS_FILE


def read_record(path: Path | str) -> dict:
    """Read and check one ``metrics.json``; malformed files raise a one-line RecAuditError."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecAuditError(f"cannot read result file {path} ({error}); rerun `python -m protocols evaluate`")
    if not isinstance(record, dict):
        raise RecAuditError(f"result file {path} must hold a JSON object; rerun `python -m protocols evaluate`")
    missing = [key for key in ("dataset", "protocol", "model", "status") if key not in record]
    if missing:
        raise RecAuditError(f"result file {path} lacks keys {missing}; rerun `python -m protocols evaluate`")
    if record["status"] not in STATUSES:
        raise RecAuditError(f"result file {path} has unknown status {record['status']!r}; "
                            f"expected one of {', '.join(STATUSES)}")
    if record["status"] == "ok" and not isinstance(record.get("metrics"), dict):
        raise RecAuditError(f"result file {path} has no 'metrics' mapping; rerun `python -m protocols evaluate`")
    return record


def find_result_files(results_root: Path | str) -> list[Path]:
    """Every ``<dataset>/<split>/<model>/metrics.json`` under ``results_root`` in a fixed
    (sorted) order: the per-seed files below them and staging folders (``.name...``) are not
    results of their own."""
    paths = Path(results_root).glob(f"*/*/*/{METRICS_FILE}")
    return sorted(path for path in paths
                  if not any(part.startswith(".") for part in path.relative_to(results_root).parts))


def seed_result_files(folder: Path | str) -> list[Path]:
    """The per-seed ``metrics.json`` files of one result folder, ordered by seed."""
    paths = [path for path in (Path(folder) / SEEDS_DIR).glob(f"*/{METRICS_FILE}")
             if path.parent.name.lstrip("-").isdigit()]
    return sorted(paths, key=lambda path: int(path.parent.name))


def read_per_user(folder: Path | str) -> pd.DataFrame:
    """The ``per_user.parquet`` of one result folder; missing or unreadable -> one-line RecAuditError."""
    path = Path(folder) / PER_USER_FILE
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RecAuditError(f"cannot read per-user results {path} ({first_line}); "
                            "rerun `python -m protocols evaluate`") from None
    if "user" not in frame.columns:
        raise RecAuditError(f"per-user results {path} have no 'user' column; rerun `python -m protocols evaluate`")
    return frame


def read_results(results_root: Path | str) -> list[dict]:
    return [read_record(path) for path in find_result_files(results_root)]


def _json_safe(value):
    """Plain JSON types; NaN (a metric undefined for every user) becomes null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
