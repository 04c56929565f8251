"""Stochastic models are run over several seeds: summaries across seeds, and per-user means
across seeds for the paired tests of :mod:`protocols.statistics`.

The spread across seeds measures the model's own randomness (initialisation, sampling), not
the uncertainty of the test population; the bootstrap over users measures the latter.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from common.errors import RecAuditError


def aggregate_seeds(records: Sequence[dict]) -> dict:
    """Summarise several seeds' ``metrics.json`` records of one (dataset, split, model).

    Returns ``{"dataset", "protocol", "model", "seeds", "n", "n_users", "mean", "std"}``:
    ``seeds`` sorted, ``mean`` and ``std`` (``ddof=1``) map each metric label to a float.
    A metric that is null (undefined) in any seed is NaN in both; ``std`` is NaN for a
    single seed. Records must agree on dataset, split, model, status "ok", parameters other
    than the seed, metric labels, number of users and metric version, and carry distinct seeds.
    """
    if not records:
        raise RecAuditError("aggregate_seeds needs at least one result record")
    first = records[0]
    where = f"{first.get('dataset')}/{first.get('protocol')}/{first.get('model')}"
    for key in ("dataset", "protocol", "model"):
        values = sorted({str(record.get(key)) for record in records})
        if len(values) > 1:
            raise RecAuditError(f"cannot average seeds across different {key}s ({', '.join(values)}); "
                                "pass the records of one dataset, split and model")
    if any(record.get("status") != "ok" for record in records):
        raise RecAuditError(f"{where}: cannot average seeds of runs whose status is not 'ok'; "
                            "drop the unsupported records first")
    seeds = [record.get("seed") for record in records]
    if any(not isinstance(seed, int) or isinstance(seed, bool) for seed in seeds) or len(set(seeds)) < len(seeds):
        raise RecAuditError(f"{where}: seeds must be distinct integers, got {seeds}; "
                            "rerun `python -m protocols evaluate --seed N` once per seed")
    for key, describe in (("params", _params_without_seed), ("metrics", lambda m: sorted(m or {})),
                          ("n_users", lambda n: n), ("metric_version", lambda v: v)):
        distinct = {repr(describe(record.get(key))) for record in records}
        if len(distinct) > 1:
            raise RecAuditError(f"{where}: the seeds' records differ in {key} ({' vs '.join(sorted(distinct))}); "
                                "re-evaluate every seed with the same settings")
    order = np.argsort(seeds, kind="stable")
    labels = sorted(first["metrics"])
    table = np.array([[_as_float(records[i]["metrics"][label]) for label in labels] for i in order],
                     dtype=np.float64).reshape(len(records), len(labels))
    means = table.mean(axis=0)
    stds = table.std(axis=0, ddof=1) if len(records) > 1 else np.full(len(labels), np.nan)
    return {"dataset": first["dataset"], "protocol": first["protocol"], "model": first["model"],
            "seeds": [int(seeds[i]) for i in order], "n": len(records), "n_users": first.get("n_users"),
            "mean": {label: float(v) for label, v in zip(labels, means)},
            "std": {label: float(v) for label, v in zip(labels, stds)}}


def _params_without_seed(params) -> dict:
    return {key: value for key, value in sorted((params or {}).items()) if key != "seed"}


def _as_float(value) -> float:
    """Result files store an undefined metric as null."""
    return math.nan if value is None else float(value)


def mean_per_user_over_seeds(per_user_frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Average each user's metric values across seeds (same users and columns in every
    frame). A value that is NaN in any seed stays NaN. Rows come out sorted by user."""
    if not per_user_frames:
        raise RecAuditError("mean_per_user_over_seeds needs at least one per-user frame")
    columns = [c for c in per_user_frames[0].columns if c != "user"]
    stacked, users = [], None
    for position, frame in enumerate(per_user_frames):
        if "user" not in frame.columns or sorted(c for c in frame.columns if c != "user") != sorted(columns):
            raise RecAuditError(f"per-user frame {position} has columns {list(frame.columns)}, expected user + "
                                f"{columns}; re-evaluate every seed with the same metrics")
        order = np.argsort(frame["user"].to_numpy(), kind="stable")
        frame_users = frame["user"].to_numpy()[order]
        if len(np.unique(frame_users)) != len(frame_users):
            raise RecAuditError(f"per-user frame {position} lists some user twice; "
                                "rerun `python -m protocols evaluate`")
        if users is None:
            users = frame_users
        elif not np.array_equal(users, frame_users):
            raise RecAuditError(f"per-user frame {position} covers other users than frame 0; "
                                "every seed must be evaluated on the same split")
        stacked.append(frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)[order])
    means = np.mean(np.stack(stacked), axis=0)
    result = pd.DataFrame(means, columns=columns)
    result.insert(0, "user", users)
    return result
