"""Fit and full-ranking evaluation seconds, and peak memory, of the linear and factorisation baselines.

Not collected by pytest. Run from the repository root::

    RECAUDIT_MIRROR=../shared/data python tests/benchmarks/bench_linear.py [--repeat 1]
        [--models ease puresvd ...] [--ease-items 20000]

Reads ``$RECAUDIT_MIRROR/movielens-1m/lcfn-split/{train,test}.txt`` (one line per user:
``user item item ...``), fits each model on train and, when ``protocols.evaluation`` is
importable, evaluates full ranking of test (history = train, cutoffs 5, 10, 20, 50, 100).
Each model runs in its own process so that its peak RSS is its own. ``--ease-items N`` also
fits EASE on a synthetic N-item matrix to show the float32 in-place inverse's memory (one
N x N array: 1.6 GB at 20,000 items; minutes of CPU). The machine load (``uptime``) is
printed with the numbers: timings on a shared machine vary.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import load_movielens, peak_rss_mb, synthetic_binary  # noqa: E402

CUTOFFS = [5, 10, 20, 50, 100]
# (registered name, parameters, target seconds for fit + evaluation on 2 cores)
MODELS = {
    "ease": ("ease", {"l2": 500.0}, 2.0),
    "puresvd": ("puresvd", {"factors": 50}, 3.0),
    "ials-cg": ("ials", {"factors": 64, "epochs": 15, "solver": "cg"}, 30.0),
    "ials-cholesky": ("ials", {"factors": 64, "epochs": 15, "solver": "cholesky"}, 30.0),
    "slim": ("slim", {"alpha": 0.01, "l1_ratio": 0.1, "topk": 100}, 60.0),
    "slim-near-ridge": ("slim", {"alpha": 0.001, "l1_ratio": 1e-5, "topk": 100}, 60.0),
}


def run_model(label: str, repeat: int) -> dict:
    from protocols.registry import make_model

    name, params, target = MODELS[label]
    train, test = load_movielens()
    try:
        from protocols.evaluation import RankingTask, evaluate
    except ImportError:
        evaluate = None
    users = np.flatnonzero(np.diff(test.indptr))
    record = {"model": label, "params": params, "target_s": target, "fit_s": [], "eval_s": [],
              "rss_before_mb": peak_rss_mb()}
    for _ in range(repeat):
        model = make_model(name, params)
        start = time.perf_counter()
        model.fit(train)
        record["fit_s"].append(time.perf_counter() - start)
        if evaluate is not None:
            task = RankingTask(users=users, history=train[users], truth=test[users], exclude=train[users])
            start = time.perf_counter()
            result = evaluate(model, task, CUTOFFS, metrics=["recall", "ndcg"])
            record["eval_s"].append(time.perf_counter() - start)
            record["recall@20"] = result.summary["recall@20"]
            record["ndcg@20"] = result.summary["ndcg@20"]
    record["peak_rss_mb"] = peak_rss_mb()
    return record


def run_large_ease(n_items: int) -> dict:
    from baselines.ease import EASE

    rng = np.random.default_rng(0)
    n_users, n_interactions = 5 * n_items, 40 * n_items
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=n_interactions, p=popularity / popularity.sum())
    train = synthetic_binary(rng.integers(n_users, size=n_interactions), items, n_users, n_items)
    rss_data = peak_rss_mb()
    start = time.perf_counter()
    EASE(l2=500.0).fit(train)
    return {"model": f"ease, synthetic {n_users} x {n_items}, {train.nnz} nnz", "params": {}, "target_s": None,
            "fit_s": [time.perf_counter() - start], "eval_s": [], "rss_before_mb": rss_data,
            "peak_rss_mb": peak_rss_mb(), "one_matrix_mb": n_items * n_items * 4 / 2**20}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def child(args: list[str]) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if output.returncode != 0:
        return {"model": args[-1], "error": output.stderr.strip().splitlines()[-1:]}
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fits (and evaluations) per model; min is shown")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ease-items", type=int, help="also fit EASE on a synthetic matrix with this many items")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--large-ease", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_model(args.one, args.repeat)))
        return
    if args.large_ease:
        print(json.dumps(run_large_ease(args.large_ease)))
        return

    print(f"load before: {uptime()}")
    records = []
    for label in args.models:
        records.append(child(["--repeat", str(args.repeat), "--one", label]))
        print(f"  {label} done; load: {uptime()}", flush=True)
    if args.ease_items:
        records.append(child(["--large-ease", str(args.ease_items)]))
    print(f"load after:  {uptime()}")
    header = (f"{'model':<44} {'fit s':>7} {'eval s':>7} {'total s':>8} {'target s':>9} {'RSS start MB':>13} "
              f"{'peak RSS MB':>12} {'recall@20':>10} {'ndcg@20':>8}")
    print(header)
    print("-" * len(header))
    for record in records:
        if "error" in record:
            print(f"{record['model']:<44} error: {record['error']}")
            continue
        fit = min(record["fit_s"])
        evaluation = min(record["eval_s"]) if record["eval_s"] else float("nan")
        target = record["target_s"] if record["target_s"] is not None else float("nan")
        print(f"{record['model']:<44} {fit:7.2f} {evaluation:7.2f} {fit + evaluation:8.2f} {target:9.0f} "
              f"{record['rss_before_mb']:13.0f} {record['peak_rss_mb']:12.0f} "
              f"{record.get('recall@20', float('nan')):10.4f} {record.get('ndcg@20', float('nan')):8.4f}")
        if "one_matrix_mb" in record:
            print(f"{'':<44} (one items x items float32 matrix is {record['one_matrix_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
