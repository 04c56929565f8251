"""Fit and full-ranking evaluation seconds of the neighbourhood and graph baselines.

Not collected by pytest. Run from the repository root::

    RECAUDIT_MIRROR=../shared/data python tests/benchmarks/bench_knn_graph.py [--repeat 2]

Reads ``$RECAUDIT_MIRROR/movielens-1m/lcfn-split/{train,test}.txt`` (one line per user:
``user item item ...``), fits each model on train and evaluates full ranking of test
(history = train, cutoffs 5, 10, 20, 50, 100). Each model runs in its own process so that
its peak RSS is its own. Then times the similarity builder on a synthetic 20,000-item
matrix to show that memory stays bounded (a dense 20,000^2 float32 matrix is 1.6 GB).
The machine load (``uptime``) is printed with the numbers: timings on a shared machine vary.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import load_movielens, peak_rss_mb, synthetic_binary  # noqa: E402

CUTOFFS = [5, 10, 20, 50, 100]
MODELS = {
    "itemknn": {"similarity": "cosine", "topk": 100, "shrink": 10.0},
    "itemknn-jaccard": {"topk": 100, "shrink": 10.0},
    "userknn": {"similarity": "cosine", "topk": 100, "shrink": 10.0},
    "p3alpha": {"topk": 100, "alpha": 1.0},
    "rp3beta": {"topk": 100, "alpha": 1.0, "beta": 0.6},
    "itemknn-cfcbf": {"topk": 100, "shrink": 10.0, "content_weight": 1.0},
}


def run_model(name: str, repeat: int) -> dict:
    from datasets.item_data import make_feature_set
    from protocols.contract import TrainingData
    from protocols.registry import make_model

    train, test = load_movielens()
    rng = np.random.default_rng(0)
    content = sp.random(train.shape[1], 2000, density=0.005, random_state=rng, dtype=np.float32, format="csr")
    data = TrainingData(train, item_features={"tags": make_feature_set("tags", content)})
    try:
        from protocols.evaluation import RankingTask, evaluate
    except ImportError:
        evaluate = None
    users = np.flatnonzero(np.diff(test.indptr))
    record = {"model": name, "fit_s": [], "eval_s": [], "rss_before_mb": peak_rss_mb()}
    for _ in range(repeat):
        model = make_model(name, MODELS[name])
        start = time.perf_counter()
        model.fit(data)
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


def synthetic_matrix(n_users: int, n_items: int, n_interactions: int, seed: int = 0) -> sp.csr_matrix:
    """Zipf-like item popularity, uniform users."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=n_interactions, p=popularity / popularity.sum())
    users = rng.integers(n_users, size=n_interactions)
    return synthetic_binary(users, items, n_users, n_items)


def run_builder(n_items: int) -> dict:
    from baselines.knn import ItemKNN

    train = synthetic_matrix(n_users=60_000, n_items=n_items, n_interactions=2_000_000)
    rss_data = peak_rss_mb()
    start = time.perf_counter()
    model = ItemKNN(similarity="cosine", topk=100, shrink=10.0).fit(train)
    seconds = time.perf_counter() - start
    return {"model": f"itemknn fit, synthetic {train.shape[0]} x {n_items}, {train.nnz} nnz",
            "fit_s": [seconds], "eval_s": [], "rss_before_mb": rss_data, "peak_rss_mb": peak_rss_mb(),
            "similarity_nnz": int(model.item_similarity_.nnz),
            "dense_similarity_mb": n_items * n_items * 4 / 2**20}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def child(args: list[str]) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if output.returncode != 0:
        return {"model": args[-1], "error": output.stderr.strip().splitlines()[-1:]}
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="fits (and evaluations) per model; min is shown")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--builder-items", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_model(args.one, args.repeat)))
        return
    if args.builder_items:
        print(json.dumps(run_builder(args.builder_items)))
        return

    print(f"load before: {uptime()}")
    records = [child(["--repeat", str(args.repeat), "--one", name]) for name in args.models]
    records.append(child(["--builder-items", "20000"]))
    print(f"load after:  {uptime()}")
    header = (f"{'model':<52} {'fit s':>7} {'eval s':>7} {'total s':>8} {'RSS at start MB':>16} "
              f"{'peak RSS MB':>12} {'recall@20':>10}")
    print(header)
    print("-" * len(header))
    for record in records:
        if "error" in record:
            print(f"{record['model']:<52} error: {record['error']}")
            continue
        fit = min(record["fit_s"])
        evaluation = min(record["eval_s"]) if record["eval_s"] else float("nan")
        recall = record.get("recall@20", float("nan"))
        print(f"{record['model']:<52} {fit:7.2f} {evaluation:7.2f} {fit + evaluation:8.2f} "
              f"{record['rss_before_mb']:16.0f} {record['peak_rss_mb']:12.0f} {recall:10.4f}")
        if "dense_similarity_mb" in record:
            print(f"{'':<52} (data alone {record['rss_before_mb']:.0f} MB; a dense similarity would be "
                  f"{record['dense_similarity_mb']:.0f} MB; kept {record['similarity_nnz']} entries)")


if __name__ == "__main__":
    main()
