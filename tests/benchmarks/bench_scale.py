"""Time and peak memory at the papers' shapes: synthetic data as large as ML-20M and MSD.

Not collected by pytest. Run from the repository root::

    python tests/benchmarks/bench_scale.py [--shape ml20m|msd|small] [--steps split ease ...]
        [--cache /tmp/recaudit-scale]

Shapes (users x items, interactions): ``ml20m`` 136,677 x 20,108, 10M (Mult-VAE's ML-20M after
its filters); ``msd`` 571,355 x 41,140, 34M (its MSD); ``catalogue`` 500,000 x 1,000,000, 2M
(where a dense Gram matrix cannot exist); ``small`` a 20,000 x 3,000 stand-in that runs in seconds. Interactions are drawn with Zipf-like item popularity (exponent 0.8) and
log-normal user activity, duplicates removed, so the Gram matrix is as dense as real data's.

Steps, each in its own process so that its peak RSS is its own: ``split`` (the ``strong``
protocol, 10,000 validation and 10,000 test users; 50,000 for MSD), ``ease`` (l2 = 500),
``sansa`` (when registered), ``rp3beta``, ``multvae`` (one epoch), ``evaluate`` (EASE's scores
for every test user, full ranking, recall@20/50 and NDCG@100, in blocks). The EASE goal of the
issue: fit under 2 minutes on 2 cores. The machine load (``uptime``) is printed with the numbers.
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

SHAPES = {
    "small": {"users": 20_000, "items": 3_000, "interactions": 1_000_000, "heldout": 2_000},
    "ml20m": {"users": 136_677, "items": 20_108, "interactions": 10_000_000, "heldout": 10_000},
    "msd": {"users": 571_355, "items": 41_140, "interactions": 34_000_000, "heldout": 50_000},
    # A million-item catalogue: a dense Gram matrix would need 4 TB (float32); EASE must refuse.
    "catalogue": {"users": 500_000, "items": 1_000_000, "interactions": 2_000_000, "heldout": 10_000},
}
STEPS = ["split", "ease", "sansa", "rp3beta", "multvae", "evaluate"]
MODEL_PARAMS = {
    "ease": ("ease", {"l2": 500.0}),
    "sansa": ("sansa", {}),
    "rp3beta": ("rp3beta", {}),
    "multvae": ("multvae", {"epochs": 1}),
}
CUTOFFS = [20, 50, 100]


def synthetic_interactions(shape: dict, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of about ``shape['interactions']`` distinct pairs, vectorised."""
    rng = np.random.default_rng(seed)
    n_users, n_items, wanted = shape["users"], shape["items"], shape["interactions"]
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = np.maximum(1, np.round(activity / activity.sum() * wanted * 1.08)).astype(np.int64)
    counts = np.minimum(counts, min(n_items // 2, 5_000))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = rng.choice(n_items, size=len(users), p=popularity)
    keys = np.unique(users * n_items + items)
    return (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)


def _cache_file(cache: Path, shape_name: str) -> Path:
    return cache / shape_name / "split.npz"


def _matrix(users, items, n_users, n_items):
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))


def step_split(shape_name: str, cache: Path) -> dict:
    import pandas as pd

    from datasets.canonical import PreparedData
    from protocols.splits import make_split

    shape = SHAPES[shape_name]
    users, items = synthetic_interactions(shape)
    frame = pd.DataFrame({"user": users, "item": items, "rating": np.ones(len(users), np.float32),
                          "timestamp": np.zeros(len(users), np.int64)})
    data = PreparedData(name=f"synthetic-{shape_name}", interactions=frame, n_users=shape["users"],
                        n_items=shape["items"], users=pd.DataFrame({"user": np.arange(shape["users"])}),
                        items=pd.DataFrame({"item": np.arange(shape["items"])}))
    started = time.perf_counter()
    split = make_split(data, "strong", seed=0, params={"heldout_users": shape["heldout"]})
    seconds = time.perf_counter() - started
    target = _cache_file(cache, shape_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{part}_{column}": getattr(split, part)[column].to_numpy(np.int32)
              for part in ("train", "test_input", "test") for column in ("user", "item")}
    np.savez(target, n_users=shape["users"], n_items=shape["items"], **arrays)
    return {"seconds": seconds, "detail": f"{len(users):,} interactions; train {len(split.train):,}, "
                                          f"test users {split.test['user'].nunique():,}"}


def _load(cache: Path, shape_name: str):
    stored = np.load(_cache_file(cache, shape_name))
    n_users, n_items = int(stored["n_users"]), int(stored["n_items"])
    parts = {part: _matrix(stored[f"{part}_user"], stored[f"{part}_item"], n_users, n_items)
             for part in ("train", "test_input", "test")}
    return parts


def _fitted(name: str, train):
    from protocols.registry import make_model

    registered, params = MODEL_PARAMS[name]
    return make_model(registered, params).fit(train)


def step_model(name: str, shape_name: str, cache: Path) -> dict:
    parts = _load(cache, shape_name)
    started = time.perf_counter()
    _fitted(name, parts["train"])
    return {"seconds": time.perf_counter() - started, "detail": f"train nnz {parts['train'].nnz:,}"}


def step_evaluate(shape_name: str, cache: Path) -> dict:
    from protocols.evaluation import RankingTask, evaluate

    parts = _load(cache, shape_name)
    model = _fitted("ease", parts["train"])
    users = np.flatnonzero(np.diff(parts["test"].indptr) > 0)
    history = parts["test_input"][users]
    task = RankingTask(users=users, history=history, truth=parts["test"][users], exclude=history)
    started = time.perf_counter()
    result = evaluate(model, task, CUTOFFS, metrics=["recall", "ndcg"])
    return {"seconds": time.perf_counter() - started,
            "detail": f"{len(users):,} users; recall@20 {result.summary['recall@20']:.4f}, "
                      f"ndcg@100 {result.summary['ndcg@100']:.4f} (EASE fit not counted)"}


def worker(step: str, shape_name: str, cache: Path) -> None:
    import resource

    if step == "split":
        outcome = step_split(shape_name, cache)
    elif step == "evaluate":
        outcome = step_evaluate(shape_name, cache)
    else:
        outcome = step_model(step, shape_name, cache)
    outcome["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(outcome), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml20m")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/recaudit-scale"))
    parser.add_argument("--worker", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.shape, args.cache)
        return
    from protocols.registry import registered_models

    shape = SHAPES[args.shape]
    print(f"shape {args.shape}: {shape['users']:,} users x {shape['items']:,} items, "
          f"~{shape['interactions']:,} interactions; load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'step':<10} {'seconds':>9} {'peak MB':>9}  detail")
    steps = [s for s in STEPS if s in args.steps]
    if "split" not in steps and not _cache_file(args.cache, args.shape).exists():
        steps.insert(0, "split")
    for step in steps:
        if step in MODEL_PARAMS and MODEL_PARAMS[step][0] not in registered_models():
            print(f"{step:<10} {'-':>9} {'-':>9}  not registered")
            continue
        completed = subprocess.run([sys.executable, __file__, "--worker", step, "--shape", args.shape,
                                    "--cache", str(args.cache)], capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
        if completed.returncode != 0 or not lines:
            last = (completed.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"{step:<10} {'failed':>9} {'-':>9}  exit {completed.returncode}: {last}")
            continue
        outcome = json.loads(lines[-1][len("RESULT "):])
        print(f"{step:<10} {outcome['seconds']:>9.1f} {outcome['peak_mb']:>9.0f}  {outcome['detail']}", flush=True)


if __name__ == "__main__":
    main()
