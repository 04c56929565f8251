"""Result files: what ``python -m protocols evaluate`` writes and the reports read.

One folder per run, ``<results_root>/<dataset>/<split name>/<model>/``, holding

- ``metrics.json``: the record (keys in :data:`RECORD_KEYS`; ``metrics`` maps lower-case
  labels such as ``ndcg@10`` to means over the evaluated users). ``status`` is ``"ok"``, or
  ``"unsupported"`` with a short ``reason`` (shown by the leaderboard) and the full
  ``detail`` when the model cannot run under the protocol;
- ``per_user.parquet``: one row per evaluated user (empty when unsupported), for the
  significance tests.

``per_user.parquet`` is written before ``metrics.json``, each atomically, so a
``metrics.json`` always describes a complete run.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from datasets.atomic import atomic_file
from datasets.errors import RecAuditError

METRICS_FILE = "metrics.json"
PER_USER_FILE = "per_user.parquet"
RECORD_KEYS = ("dataset", "protocol", "model", "params", "seed", "sampled", "metric_version", "metrics",
               "n_users", "fit_seconds", "eval_seconds", "peak_rss_mb", "status")
STATUSES = ("ok", "unsupported")


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
    """Every ``metrics.json`` under ``results_root``, in a fixed (sorted) order."""
    return sorted(Path(results_root).rglob(METRICS_FILE))


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
