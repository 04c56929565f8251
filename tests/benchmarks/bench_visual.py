"""Seconds per VBPR and CuratorNet epoch and VisRank scoring time on ml-latest-small with poster features.

Not collected by pytest. Run from the repository root::

    python tests/benchmarks/bench_visual.py [--epochs 3] [--threads 2] [--device cpu] [--synthetic]

Reads the prepared ``data/prepared/ml-latest-small`` interactions and the poster feature set
``data/features/ml-latest-small/efficientnet-lite0`` when both exist (make them with
``python -m datasets fetch ml-latest-small && python -m datasets prepare ml-latest-small &&
python -m datasets features ml-latest-small --extractor efficientnet-lite0``); otherwise, or
with ``--synthetic``, a synthetic stand-in of the same shape: 610 users, 9,724 items, 100,836
interactions, 1280-d non-negative features present for 5,559 items.

VBPR trains with its defaults (K = K' = 20, batch 1024, Adam) for ``--epochs`` epochs; the
fastest epoch is reported (the first also pays one-time set-up), with the seconds to score
every user over every item. VisRank is fitted once per aggregate and scores every user (its
training history) over every item. CuratorNet trains ``--epochs`` epochs on the triples of its
six guidelines (``--curatornet-samples`` per guideline, the suite's 5,000 by default; the
one-time clustering and sampling is timed apart) and again on as many uniform triples.
``--threads`` sets torch's CPU threads for scoring (VBPR
trains on ``VBPR.training_threads`` threads) and BLAS's through the environment (set before
numpy loads). The machine load (``uptime``) is printed: timings on a shared machine vary.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PREPARED = ROOT / "data" / "prepared" / "ml-latest-small"
FEATURES = ROOT / "data" / "features" / "ml-latest-small" / "efficientnet-lite0"
SHAPE = {"users": 610, "items": 9_724, "interactions": 100_836, "dim": 1280, "with_image": 5_559}


def real_data():
    """(TrainingData, description) of ml-latest-small with its poster features, or None."""
    if not ((PREPARED / "meta.json").exists() and (FEATURES / "meta.json").exists()):
        return None
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from datasets.item_data import TrainingData, read_feature_set

    from protocols.evaluation import interaction_times

    frame = pd.read_parquet(PREPARED / "interactions.parquet", columns=["user", "item", "timestamp"])
    features = read_feature_set(FEATURES)
    n_users = int(frame["user"].max()) + 1
    train = sp.csr_matrix((np.ones(len(frame), np.float32), (frame["user"], frame["item"])),
                          shape=(n_users, features.n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    items = pd.read_parquet(PREPARED / "items.parquet")
    return TrainingData(train, item_features={features.key: features}, items=items,
                        timestamps=interaction_times([frame], n_users, features.n_items)), \
        f"ml-latest-small, {features.key} posters"


def synthetic_data(seed: int = 0):
    """A stand-in of ml-latest-small's shape: skewed users and items, sparse non-negative
    features (like pooled ReLU6 activations) for the items that have a poster."""
    import numpy as np
    import scipy.sparse as sp

    from datasets.item_data import TrainingData, make_feature_set

    rng = np.random.default_rng(seed)
    user_weight = rng.lognormal(0, 1.0, SHAPE["users"])
    item_weight = rng.lognormal(0, 1.5, SHAPE["items"])
    users = rng.choice(SHAPE["users"], SHAPE["interactions"] * 3, p=user_weight / user_weight.sum())
    items = rng.choice(SHAPE["items"], SHAPE["interactions"] * 3, p=item_weight / item_weight.sum())
    _, first = np.unique(users * SHAPE["items"] + items, return_index=True)
    keep = np.sort(first)[:SHAPE["interactions"]]  # the first distinct pairs drawn
    train = sp.csr_matrix((np.ones(len(keep), np.float32), (users[keep], items[keep])),
                          shape=(SHAPE["users"], SHAPE["items"]))
    values = np.clip(rng.normal(0.1, 0.5, (SHAPE["items"], SHAPE["dim"])), 0, 6).astype(np.float32)
    present = np.zeros(SHAPE["items"], bool)
    present[rng.choice(SHAPE["items"], SHAPE["with_image"], replace=False)] = True
    key = "synthetic-posters@000000000000"
    return TrainingData(train, item_features={key: make_feature_set(key, values, present)}), \
        f"synthetic stand-in ({train.nnz:,} interactions), {SHAPE['dim']}-d features"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="VBPR's device: cpu, cuda or auto")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic stand-in even if the data exist")
    parser.add_argument("--curatornet-samples", type=int, default=5000)
    args = parser.parse_args(argv)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy as np
    import torch

    from baselines.visrank import AGGREGATES, VisRank
    from neural.curatornet import CuratorNet
    from neural.vbpr import VBPR
    from tests.benchmarks._common import peak_rss_mb

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    loaded = None if args.synthetic else real_data()
    data, description = loaded if loaded is not None else synthetic_data()
    train = data.interactions
    features = next(iter(data.item_features.values()))
    print(f"{description}: {train.shape[0]} users x {train.shape[1]} items, {train.nnz:,} interactions, "
          f"{features.dim}-d features for {int(features.present.sum()):,} items (loaded in "
          f"{time.perf_counter() - started:.1f} s); torch {torch.__version__}, {args.threads} thread(s)")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    users = np.flatnonzero(np.diff(train.indptr) > 0)

    model = VBPR(epochs=args.epochs, device=args.device, seed=0)
    fit_started = time.perf_counter()
    model.fit(data)
    fit_seconds = time.perf_counter() - fit_started
    epochs = [record["seconds"] for record in model.history_]
    score_started = time.perf_counter()
    model.score(users, train[users])
    vbpr_score = time.perf_counter() - score_started
    print(f"vbpr (K = K' = 20, batch 1024, {model.device_}, {VBPR.training_threads} training thread(s)): "
          f"{min(epochs):.2f} s/epoch (first {epochs[0]:.2f} s, all {', '.join(f'{s:.2f}' for s in epochs)}); "
          f"fit {fit_seconds:.1f} s; score all users {vbpr_score:.2f} s; loss {model.history_[0]['loss']:.4f} -> "
          f"{model.history_[-1]['loss']:.4f}", flush=True)

    for aggregate in AGGREGATES:
        visrank = VisRank(aggregate=aggregate, k=5)
        fit_started = time.perf_counter()
        visrank.fit(data)
        fit_seconds = time.perf_counter() - fit_started
        score_started = time.perf_counter()
        visrank.score(users, train[users])
        score_seconds = time.perf_counter() - score_started
        print(f"visrank ({aggregate}): fit {fit_seconds:.2f} s, score all users {score_seconds:.2f} s", flush=True)

    for sampling in ("guidelines", "uniform"):
        artist = "genres" if data.items is not None else None  # the suite's stand-in for an artist
        curatornet = CuratorNet(sampling=sampling, samples_per_guideline=args.curatornet_samples, epochs=args.epochs,
                                artist=artist, device=args.device, seed=0)
        fit_started = time.perf_counter()
        curatornet.fit(data)
        fit_seconds = time.perf_counter() - fit_started
        epochs = [record["seconds"] for record in curatornet.history_]
        score_started = time.perf_counter()
        curatornet.score(users, train[users])
        score_seconds = time.perf_counter() - score_started
        print(f"curatornet ({sampling}, {curatornet.n_triples_:,} triples {curatornet.triples_per_guideline_}): "
              f"{min(epochs):.2f} s/epoch (all {', '.join(f'{s:.2f}' for s in epochs)}); fit {fit_seconds:.1f} s "
              f"(set-up {fit_seconds - sum(epochs):.1f} s); score all users {score_seconds:.2f} s", flush=True)
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
