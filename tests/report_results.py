"""Synthetic result folders for the report tests (tables, verdicts, plots): 30 users whose
per-user values are chosen so that every paired Wilcoxon outcome is known in advance."""
from __future__ import annotations

import numpy as np
import pandas as pd

from protocols.results import result_dir, short_reason, write_run

N_USERS = 30
USERS = np.arange(N_USERS)
SEED = 42
BASE = (USERS % 7) / 10  # mean 0.2833: (4 * 2.1 + 0.1 + 0.2) / 30
REFERENCE = BASE + 0.1  # the best baseline of every synthetic split, mean 0.3833
STEP = 0.05 + (USERS % 3) / 100  # mean 0.06; positive for every user: a decisive Wilcoxon test


def slightly_better(reference: np.ndarray = REFERENCE) -> np.ndarray:
    """``reference`` plus differences 1..30 thousandths, the 16 smallest negative: no ties,
    no zeros, so the two-sided Wilcoxon p-value is exact, 0.0473 (significant alone at 0.05,
    not once Holm doubles it as the third smallest of four p-values)."""
    signed = np.arange(1, N_USERS + 1) / 1000
    signed[:16] *= -1
    return reference + signed


def record(dataset: str, protocol: str, model: str, metrics: dict, **overrides) -> dict:
    base = dict(dataset=dataset, protocol=protocol, model=model, family="baseline", params={}, seed=None,
                seeds=[None], sampled=False, metric_version="1", metrics=metrics, metrics_std=None, tuning=None,
                n_users=N_USERS, fit_seconds=1.25, eval_seconds=0.04, peak_rss_mb=100.0, status="ok")
    base.update(overrides)
    return base


def write_model(root, protocol: str, model: str, ndcg: np.ndarray, coverage: float = 0.1, dataset: str = "ml",
                **overrides) -> None:
    """A result whose ndcg@10 mean is the mean of its per-user values; ndcg@5 and ndcg@20
    are 0.8x and 1.2x that mean (for the cutoff figure)."""
    per_user = pd.DataFrame({"user": USERS, "ndcg@10": ndcg})
    mean = float(np.mean(ndcg))
    metrics = {"ndcg@5": 0.8 * mean, "ndcg@10": mean, "ndcg@20": 1.2 * mean, "coverage@10": coverage}
    write_run(result_dir(root, dataset, protocol, model), record(dataset, protocol, model, metrics, **overrides),
              per_user)


def write_unsupported(root, protocol: str, model: str, message: str, dataset: str = "ml",
                      family: str = "neural") -> None:
    write_run(result_dir(root, dataset, protocol, model),
              record(dataset, protocol, model, {}, family=family, status="unsupported", metric_version=None,
                     reason=short_reason(message), n_users=0, fit_seconds=None, eval_seconds=None, seeds=[]),
              pd.DataFrame({"user": pd.Series([], dtype="int64")}))


def write_statistics(root, params, out=None):
    """``python -m reports statistics`` over ``root`` with ``params``: the file every report reads."""
    from pathlib import Path

    from reports.__main__ import main

    out = Path(out) if out is not None else Path(root).parent / "statistics.json"
    assert main(["statistics", "--results-root", str(root), "--out", str(out), "--params-yaml", str(params)]) == 0
    return out


def write_params(path, metrics: str = "[ndcg@10, coverage@10]", n_resamples: int = 200):
    path.write_text(f"seed: {SEED}\nreports:\n  metrics: {metrics}\n  n_resamples: {n_resamples}\n")
    return path


def write_split_folder(folder, n_items: int = 12) -> None:
    """A split folder with only what the popularity card reads: train and test interactions,
    item ``i`` seen ``i + 1`` times in train and ``(i + 1) // 2`` times in test."""
    folder.mkdir(parents=True, exist_ok=True)
    train_items = np.repeat(np.arange(n_items), np.arange(1, n_items + 1))
    test_items = np.repeat(np.arange(n_items), (np.arange(1, n_items + 1)) // 2)
    for name, items in (("train", train_items), ("test", test_items)):
        pd.DataFrame({"user": np.arange(len(items)) % N_USERS, "item": items}).to_parquet(
            folder / f"{name}.parquet", index=False)
