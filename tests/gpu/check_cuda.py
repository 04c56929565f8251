"""GPU check of the neural models: fit each for 2 epochs on CUDA and on the CPU, compare.

Not collected by pytest (no ``test_`` name; nothing in ``tests/gpu/`` is). Run once on a
machine with CUDA, from the repository root::

    python tests/gpu/check_cuda.py            # about 1-2 minutes on one GPU

Needs only this repository, torch, numpy and scipy. For each model it fits the same
seed on ``cuda`` and on ``cpu`` (2 epochs, synthetic users x items matrix with planted
clusters), and checks that the GPU scores are finite, that their held-out NDCG@10 is close
to the CPU run's (within 0.05, or better) and over twice popularity's, and that a second GPU fit with the same seed
repeats the first (reported, not required: CUDA kernels may sum in varying order). It
also resumes one model from a GPU checkpoint. It prints a table of seconds per epoch on
CPU and GPU and exits with status 1 if a check fails, 2 if CUDA is missing.
``--allow-cpu`` runs the same checks with the CPU standing in for the GPU (to test the
script itself on a machine without one).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SETTINGS = {  # paper-like sizes; 2 epochs each
    "gmf": {"factors": 8, "batch_size": 256, "negatives": 4, "lr": 0.005},
    "mlp": {"factors": 8, "mlp_layers": 3, "batch_size": 256, "negatives": 4, "lr": 0.005},
    "neumf": {"factors": 8, "mlp_layers": 3, "batch_size": 256, "negatives": 4, "lr": 0.005},
    "multvae": {"batch_size": 500, "total_anneal_steps": 20, "lr": 0.003},
    "multdae": {"batch_size": 500, "lr": 0.003},
    "cdae": {"hidden": 50, "batch_size": 256},
    "bprmf": {"factors": 64, "batch_size": 1024, "lr": 0.01},
}
NDCG_TOLERANCE = 0.05


def planted(n_users=3000, n_items=1500, groups=8, seed=0):
    rng = np.random.default_rng(seed)
    user_group, item_group = rng.integers(0, groups, n_users), rng.integers(0, groups, n_items)
    probability = np.where(user_group[:, None] == item_group[None, :], 0.2, 0.01) * rng.uniform(0.5, 1.5, n_items)
    interactions = rng.random((n_users, n_items)) < probability
    held_out = interactions & (rng.random(interactions.shape) < 0.2)
    train = sp.csr_matrix(interactions & ~held_out, dtype=np.float32)
    test = sp.csr_matrix(held_out, dtype=np.float32)
    return train, test


class _Fixed:
    """Scores every item by a fixed vector (popularity, for reference)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float32)

    def score(self, users, history):
        return np.tile(self.values, (len(users), 1))


def model_classes():
    from neural.autoencoders import MultDAE, MultVAE
    from neural.bprmf import BPRMF
    from neural.cdae import CDAE
    from neural.ncf import GMF, MLP, NeuMF

    return {"gmf": GMF, "mlp": MLP, "neumf": NeuMF, "multvae": MultVAE, "multdae": MultDAE,
            "cdae": CDAE, "bprmf": BPRMF}


def fit(cls, params, device, train, seed=0, **extra):
    model = cls(**params, epochs=2, device=device, seed=seed, **extra)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train)
    return model, time.perf_counter() - started, caught


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true", help="let the CPU stand in for CUDA (script test)")
    args = parser.parse_args(argv)
    import torch

    from protocols.contract import ValidationData
    from protocols.early_stopping import validation_value

    def validation_ndcg(model, validation) -> float:
        return validation_value(model, validation, "ndcg@10")

    if torch.cuda.is_available():
        gpu = "cuda"
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    elif args.allow_cpu:
        gpu = "cpu"
        print(f"torch {torch.__version__}: NO CUDA, the CPU stands in for the GPU (--allow-cpu)")
    else:
        print("CUDA is not available (torch.cuda.is_available() is False): nothing to check")
        return 2
    train, test = planted()
    users = np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(test.indptr) > 0))
    validation = ValidationData(users=users, history=train[users], truth=test[users])
    counts = np.asarray(train.sum(axis=0)).ravel()
    popularity = validation_ndcg(_Fixed(counts), validation)
    print(f"synthetic data: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} training "
          f"interactions; CPU threads {torch.get_num_threads()}; popularity ndcg@10 {popularity:.4f}")
    failures, rows = [], []
    for name, cls in model_classes().items():
        params = SETTINGS[name]
        cpu_model, _, _ = fit(cls, params, "cpu", train)
        gpu_model, gpu_fit, caught = fit(cls, params, gpu, train)
        again, _, _ = fit(cls, params, gpu, train)
        gpu_scores = gpu_model.score(users, train[users])
        finite = bool(np.all(np.isfinite(gpu_scores)))
        repeat = bool(np.array_equal(gpu_scores, again.score(users, train[users])))
        cpu_ndcg, gpu_ndcg = validation_ndcg(cpu_model, validation), validation_ndcg(gpu_model, validation)
        cpu_epoch = min(r["seconds"] for r in cpu_model.history_)
        gpu_epoch = min(r["seconds"] for r in gpu_model.history_)
        ok = (finite and gpu_model.device_.startswith(gpu) and gpu_ndcg >= cpu_ndcg - NDCG_TOLERANCE
              and gpu_ndcg > 2 * popularity)
        if not ok:
            failures.append(name)
        rows.append((name, cpu_epoch, gpu_epoch, cpu_ndcg, gpu_ndcg, finite, repeat, len(caught), ok))
        print(f"  {name}: done ({gpu_fit:.1f} s on {gpu_model.device_})", flush=True)

    with tempfile.TemporaryDirectory() as directory:  # resume from a GPU checkpoint
        cls, params = model_classes()["multvae"], SETTINGS["multvae"]
        whole, _, _ = fit(cls, params, gpu, train)
        cls(**params, epochs=1, device=gpu, seed=0, checkpoint_dir=directory).fit(train)
        resumed = cls(**params, epochs=2, device=gpu, seed=0, checkpoint_dir=directory).fit(train)
        difference = float(np.max(np.abs(resumed.score(users, train[users]) - whole.score(users, train[users]))))
        resume_ok = resumed.resumed_from_epoch_ == 1 and difference < 1e-3
        if not resume_ok:
            failures.append("multvae resume")

    header = (f"{'model':8} {'cpu s/epoch':>11} {'gpu s/epoch':>11} {'speedup':>8} {'cpu ndcg@10':>11} "
              f"{'gpu ndcg@10':>11} {'finite':>6} {'gpu repeat':>10} {'warnings':>8}  check")
    print()
    print(header)
    print("-" * len(header))
    for name, cpu_epoch, gpu_epoch, cpu_ndcg, gpu_ndcg, finite, repeat, n_warnings, ok in rows:
        print(f"{name:8} {cpu_epoch:11.3f} {gpu_epoch:11.3f} {cpu_epoch / gpu_epoch:7.1f}x {cpu_ndcg:11.4f} "
              f"{gpu_ndcg:11.4f} {str(finite):>6} {'identical' if repeat else 'differs':>10} {n_warnings:8d}  "
              f"{'ok' if ok else 'FAILED'}")
    print(f"multvae resumed from a {gpu} checkpoint after epoch 1: max |score difference| "
          f"{difference:.2e} vs the uninterrupted run: {'ok' if resume_ok else 'FAILED'}")
    print("RESULT:", "all checks passed" if not failures else f"FAILED: {', '.join(failures)}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
