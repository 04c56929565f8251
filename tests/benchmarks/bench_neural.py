"""Seconds per training epoch of the neural models on MovieLens-1M (LCFN split), CPU.

Not collected by pytest. Run from the repository root::

    RECAUDIT_MIRROR=../shared/data python tests/benchmarks/bench_neural.py [--epochs 2] [--threads 2]
        [--only multvae neumf]

Reads ``$RECAUDIT_MIRROR/movielens-1m/lcfn-split/train.txt`` (one line per user:
``user item item ...``), fits each model with its paper's batch settings for ``--epochs``
epochs and reports the fastest epoch (the first one also pays one-time set-up), epochs per
second, and the seconds to score every user over every item. Targets: one Mult-VAE epoch
under 1 s and one NeuMF epoch under 30 s on 2 cores. ``--threads`` sets torch's CPU
threads; NCF and BPR-MF train on one thread regardless (``training_threads = 1``: their
batches are too small to split). The machine load (``uptime``) is printed with the
numbers: timings on a shared machine vary.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODELS = {  # paper settings for the batch and the network sizes
    "multvae": ("multvae", {"batch_size": 500}, 1.0),
    "multdae": ("multdae", {"batch_size": 500}, None),
    "neumf": ("neumf", {"batch_size": 256, "negatives": 4, "factors": 8, "mlp_layers": 3}, 30.0),
    "gmf": ("gmf", {"batch_size": 256, "negatives": 4, "factors": 8}, None),
    "bprmf": ("bprmf", {"batch_size": 1024, "factors": 64}, None),
    "cdae": ("cdae", {"batch_size": 256, "hidden": 50, "negatives": 5}, None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), default=None)
    args = parser.parse_args(argv)
    mirror = os.environ.get("RECAUDIT_MIRROR")
    if not mirror:
        print("RECAUDIT_MIRROR is not set; point it at the data mirror (../shared/data)", file=sys.stderr)
        return 2
    import torch

    from protocols.registry import get_model_class

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    from tests.mirror_raw import lcfn_matrices

    train, _ = lcfn_matrices(Path(mirror))
    print(f"movielens-1m lcfn train: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} "
          f"interactions (read in {time.perf_counter() - started:.1f} s); torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rows = []
    users = np.arange(train.shape[0])
    for key in args.only or MODELS:
        name, params, target = MODELS[key]
        model = get_model_class(name)(**params, epochs=args.epochs, device="cpu", seed=0)
        fit_started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - fit_started
        epoch_seconds = min(record["seconds"] for record in model.history_)
        score_started = time.perf_counter()
        for start in range(0, len(users), 1000):
            model.score(users[start:start + 1000], train[start:start + 1000])
        score_seconds = time.perf_counter() - score_started
        verdict = "-" if target is None else ("ok" if epoch_seconds < target else "MISSED")
        rows.append((key, str(params), epoch_seconds, 1 / epoch_seconds, fit_seconds, score_seconds,
                     "-" if target is None else f"< {target:g} s {verdict}"))
        print(f"  {key}: {epoch_seconds:.2f} s/epoch", flush=True)
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    header = f"{'model':8} {'s/epoch':>8} {'epochs/s':>9} {'fit s':>7} {'score all s':>11}  {'target':14} settings"
    print(header)
    print("-" * len(header))
    for key, settings, epoch_seconds, rate, fit_seconds, score_seconds, target in rows:
        print(f"{key:8} {epoch_seconds:8.2f} {rate:9.3f} {fit_seconds:7.1f} {score_seconds:11.2f}  {target:14} {settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
