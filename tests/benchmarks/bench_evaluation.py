"""Evaluator benchmark (a script, not a test): ``python tests/benchmarks/bench_evaluation.py``.

1. ML-1M's shape (6,040 users x 3,706 items, ML-1M's density split 80/20 into history and
   truth), precomputed dense random scores so that no model time is counted: every metric
   at cutoffs 5, 10, 20, 50, 100, full ranking and sampled (1 truth + 99 negatives).
2. ML-20M's shape (138,000 users x 20,000 items, ML-20M's density): scores made per batch by
   a cheap rank-16 product, to show the evaluation stays in bounded memory; prints the time
   and the peak resident memory above the baseline taken once the task is built.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere without installing

from protocols import evaluation as E  # noqa: E402
from protocols.metrics import training_popularity  # noqa: E402

CUTOFFS = [5, 10, 20, 50, 100]
ML1M_DENSITY = 1_000_209 / (6040 * 3706)
ML20M_DENSITY = 20_000_263 / (138_493 * 26_744)


def random_interactions(rng, n_users: int, n_items: int, density: float) -> sp.csr_matrix:
    """Binary CSR with about ``density`` of the cells set, every user with at least one item."""
    n = int(n_users * n_items * density)
    users = np.concatenate([np.arange(n_users), rng.integers(0, n_users, n)])
    items = rng.integers(0, n_items, len(users))
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    return matrix


def split_history_truth(rng, matrix: sp.csr_matrix, truth_fraction: float = 0.2):
    coo = matrix.tocoo()
    is_truth = rng.random(coo.nnz) < truth_fraction
    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=matrix.shape)
    return part(~is_truth), part(is_truth)


class PeakRss:
    """Samples this process's resident memory every few milliseconds in a thread."""

    def __init__(self, interval: float = 0.005):
        self.process, self.interval = psutil.Process(), interval

    def __enter__(self):
        self.baseline = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def above_baseline_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def timed(function, repeats: int) -> tuple[list[tuple[float, float]], object]:
    """(wall seconds, CPU seconds of this process) of each run, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        times.append((time.perf_counter() - start, time.process_time() - start_cpu))
    return times, result


def bench_ml1m(repeats: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    n_users, n_items = 6040, 3706
    history, truth = split_history_truth(rng, random_interactions(rng, n_users, n_items, ML1M_DENSITY))
    scores = rng.random((n_users, n_items), dtype=np.float32)
    popularity = training_popularity(history)
    task = E.RankingTask(users=np.arange(n_users), history=history, truth=truth, exclude=history)
    rows = []
    with PeakRss() as memory:
        times, result = timed(lambda: E.evaluate_scores(lambda users, _: scores[users], task, CUTOFFS,
                                                         item_popularity=popularity), repeats)
    rows.append(("ML-1M shape, full ranking, all metrics", n_users, n_items, times, memory.above_baseline_mb,
                 len(result.summary), result.summary["ndcg@10"]))

    # leave-one-out: one truth item and 99 negatives per user
    truth_items = rng.integers(0, n_items, n_users)
    candidates = np.column_stack([truth_items, rng.integers(0, n_items, (n_users, 99))])
    for column in range(1, 100):  # re-draw negatives that hit the truth item
        clash = candidates[:, column] == truth_items
        candidates[clash, column] = (truth_items[clash] + column) % n_items
    one_truth = sp.csr_matrix((np.ones(n_users, np.float32), (np.arange(n_users), truth_items)),
                              shape=(n_users, n_items))
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    sampled = E.RankingTask(users=np.arange(n_users), history=empty, truth=one_truth, exclude=empty,
                            candidates=candidates)
    with PeakRss() as memory:
        times, result = timed(lambda: E.evaluate_scores(lambda users, _: scores[users], sampled, CUTOFFS,
                                                         item_popularity=popularity), repeats)
    rows.append(("ML-1M shape, sampled 1 + 99, all metrics", n_users, 100, times, memory.above_baseline_mb,
                 len(result.summary), result.summary["ndcg@10"]))
    return rows


def bench_ml20m(batch_size: int | None) -> list[tuple]:
    rng = np.random.default_rng(1)
    n_users, n_items = 138_000, 20_000
    history, truth = split_history_truth(rng, random_interactions(rng, n_users, n_items, ML20M_DENSITY))
    user_factors = rng.standard_normal((n_users, 16), dtype=np.float32)
    item_factors = rng.standard_normal((16, n_items), dtype=np.float32)
    task = E.RankingTask(users=np.arange(n_users), history=history, truth=truth, exclude=history)
    popularity = training_popularity(history)
    users_per_batch = batch_size or E.DEFAULT_MAX_BATCH_ENTRIES // n_items
    print(f"ML-20M shape: {history.nnz:,} history and {truth.nnz:,} truth interactions; "
          f"{users_per_batch} users per batch = {users_per_batch * n_items * 4 / 2**20:.0f} MB of float32 scores",
          flush=True)
    with PeakRss() as memory:
        times, result = timed(lambda: E.evaluate_scores(lambda users, _: user_factors[users] @ item_factors, task,
                                                         CUTOFFS, batch_size=batch_size,
                                                         item_popularity=popularity), 1)
    return [("ML-20M shape, full ranking, all metrics", n_users, n_items, times, memory.above_baseline_mb,
             len(result.summary), result.summary["ndcg@10"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of the ML-1M cases (default 5)")
    parser.add_argument("--skip-large", action="store_true", help="skip the ML-20M case")
    parser.add_argument("--batch-size", type=int, default=None, help="users per batch for ML-20M")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
          flush=True)
    rows = bench_ml1m(args.repeats)
    if not args.skip_large:
        rows += bench_ml20m(args.batch_size)
    print(f"{'case':42s} {'users':>7s} {'items':>6s} {'wall min':>8s} {'wall med':>8s} {'cpu min':>8s} "
          f"{'peak MB':>8s} {'labels':>6s} {'ndcg@10':>8s}")
    for case, n_users, width, times, peak, n_labels, ndcg in rows:
        wall, cpu = np.array(times).T
        print(f"{case:42s} {n_users:7d} {width:6d} {wall.min():8.3f} {np.median(wall):8.3f} {cpu.min():8.3f} "
              f"{peak:8.0f} {n_labels:6d} {ndcg:8.4f}")
    print("cpu: CPU seconds of this process (numpy may use several threads; wall is what counts)")
    print("peak MB: resident memory above the level before the evaluation (sampled every 5 ms)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
