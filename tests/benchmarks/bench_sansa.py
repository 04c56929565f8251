"""SANSA on synthetic catalogues: fit seconds, memory, and agreement with EASE.

Not collected by pytest. Run from the repository root::

    python tests/benchmarks/bench_sansa.py [--shapes clustered-2k powerlaw-5k ...] [--ease-max-items 10000]
        [--factorizers exact icf] [--factor-density 0.02] [--scale-cache /tmp/recaudit-scale]

Each shape is a seeded synthetic users x items matrix with few interactions per item:

- ``clustered-N``: N items in clusters of 50, each user takes 5 items of one cluster (2 users per
  item on average), each pick replaced by a random item with a small probability (links
  between clusters; the fill-in of the exact factor grows with it);
- ``powerlaw-N``: 2N users take 5 items each, item popularity ~ 1/rank (a long tail and a dense
  core of popular items);
- ``scale-ml20m``, ``scale-catalogue``: the training part of ``bench_scale.py``'s cached splits
  (136,677 x 20,108 with 8.4M training interactions, a Gram matrix 65% dense; 500,000 x 1,000,000
  with 2.1M), read from ``--scale-cache`` (run ``bench_scale.py --steps split`` first).

``--factorizers`` chooses SANSA's factorisers: ``exact`` (SuperLU, then pruned; l2 = 100) and
``icf`` (the authors' incomplete Cholesky on the column-scaled Gram matrix; l2 = 20 on that
scale, the authors' Amazon Books value); ``--factor-density`` overrides the 2% default (a
million items at 2% would be 2*10^10 factor entries).

Every fit runs in its own process (peak RSS is its own, read right after the fit; SuperLU's and
METIS's working memory is outside Python's allocator, so the traced peak misses it and RSS does
not). For each shape and factoriser it fits SANSA at its defaults (factor density 2% unless
``--factor-density``, inverse at the factor's density, 1 scan, 10 fine-tuning steps) and,
where EASE fits (``--ease-max-items``),
SANSA at full density (no pruning, 30 fine-tuning steps) and EASE (float32), then compares the
scores of 500 users: the largest absolute difference from EASE, and the share of EASE's top 20
(training items excluded) that SANSA also ranks in its top 20. ICF's model is EASE on the
column-scaled data with its own l2 even at full density (see ``baselines/sansa.py``), so its
difference from EASE is not expected to vanish. The machine load is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import peak_rss_mb  # noqa: E402

SHAPES = {
    "clustered-2k": ("clustered", 2_000, 0.05),
    "powerlaw-5k": ("powerlaw", 5_000, 1.0),
    "clustered-10k": ("clustered", 10_000, 0.02),
    "clustered-20k": ("clustered", 20_000, 0.01),
    "powerlaw-20k": ("powerlaw", 20_000, 1.0),
    "scale-ml20m": ("scale", 20_108, "ml20m"),
    "scale-catalogue": ("scale", 1_000_000, "catalogue"),
}
L2 = 100.0
ICF_L2 = 20.0  # on the scaled Gram matrix (diagonal <= 1): the authors' Amazon Books setting
FULL = {"factor_density": 1.0, "inverse_density": 1.0, "finetune_steps": 30}
SETTINGS = {
    "sansa": ("sansa", {"l2": L2}),
    "sansa-full": ("sansa", {"l2": L2, **FULL}),
    "sansa-icf": ("sansa", {"l2": ICF_L2, "factorizer": "icf"}),
    "sansa-icf-full": ("sansa", {"l2": ICF_L2, "factorizer": "icf", **FULL}),
    "ease": ("ease", {"l2": L2}),
}
SCALE_CACHE = Path("/tmp/recaudit-scale")
SAMPLE_USERS = 500
TOP = 20


def make_matrix(shape: str, cache: Path = SCALE_CACHE) -> sp.csr_matrix:
    kind, n_items, knob = SHAPES[shape]
    if kind == "scale":
        stored = np.load(cache / knob / "split.npz")
        users, items = stored["train_user"], stored["train_item"]
        return sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                             shape=(int(stored["n_users"]), int(stored["n_items"])))
    rng = np.random.default_rng(0)
    per_user = 5
    if kind == "clustered":
        n_users = 2 * n_items // per_user
        items = rng.integers(0, n_items // 50, n_users)[:, None] * 50 + rng.integers(0, 50, (n_users, per_user))
        anywhere = rng.random(items.shape) < knob
        items[anywhere] = rng.integers(0, n_items, int(anywhere.sum()))
    else:
        n_users = 2 * n_items
        popularity = 1.0 / np.arange(1, n_items + 1) ** knob
        items = rng.choice(n_items, size=(n_users, per_user), p=popularity / popularity.sum())
    rows = np.repeat(np.arange(n_users), per_user)
    matrix = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, items.ravel())), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    return matrix


def sample_users(matrix: sp.csr_matrix) -> np.ndarray:
    return np.random.default_rng(1).choice(matrix.shape[0], size=min(SAMPLE_USERS, matrix.shape[0]), replace=False)


def run_one(shape: str, setting: str, scores_path: str, density: str, cache: str) -> dict:
    """Fit one setting on one shape in this process; save the sample users' scores."""
    from protocols.registry import make_model

    matrix = make_matrix(shape, Path(cache))
    name, params = SETTINGS[setting]
    if density != "default" and "factor_density" not in params and name == "sansa":
        params = {**params, "factor_density": float(density)}
    model = make_model(name, params)
    rss_before = peak_rss_mb()
    # The scale shapes are not compared with EASE: neither traced (tracing every allocation
    # slows the fit: 361 s against 229 s untraced on the million-item catalogue) nor scored (500
    # users' dense scores over a million items are 2 GB, more than the fit's own peak).
    scale = SHAPES[shape][0] == "scale"
    traced = False
    if not scale:
        tracemalloc.start()
    start = time.perf_counter()
    model.fit(matrix)
    seconds = time.perf_counter() - start
    rss_fit = peak_rss_mb()
    if not scale:
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        users = sample_users(matrix)
        np.save(scores_path, model.score(users, matrix[users]))
    record = {"shape": shape, "setting": setting, "items": matrix.shape[1], "users": matrix.shape[0],
              "nnz": int(matrix.nnz), "fit_s": seconds, "traced_mb": traced, "rss_mb": rss_fit,
              "rss_before_mb": rss_before}
    if name == "sansa":
        record.update(gram_nnz=model.gram_nnz_, exact_factor_nnz=model.exact_factor_nnz_, factor_nnz=model.factor_nnz_,
                      stored_nnz=int(model.encoder_.nnz + model.decoder_.nnz), residual=model.inverse_residual_,
                      density=model.factor_density, shift=model.icf_shift_)
    return record


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _megabytes(value) -> str:
    return "-" if value is False else f"{value:.0f}"


def top_overlap(scores: np.ndarray, reference: np.ndarray, seen: sp.csr_matrix) -> float:
    mask = seen.toarray() > 0
    ours, theirs = np.where(mask, -np.inf, scores), np.where(mask, -np.inf, reference)
    top_ours = np.argpartition(-ours, TOP, axis=1)[:, :TOP]
    top_theirs = np.argpartition(-theirs, TOP, axis=1)[:, :TOP]
    return float(np.mean([len(np.intersect1d(a, b)) / TOP for a, b in zip(top_ours, top_theirs)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--ease-max-items", type=int, default=10_000)
    parser.add_argument("--factorizers", nargs="+", choices=["exact", "icf"], default=["exact"])
    parser.add_argument("--factor-density", default="default",
                        help="SANSA's factor_density for the non-full settings (default: the model's, 0.02)")
    parser.add_argument("--scale-cache", default=str(SCALE_CACHE))
    parser.add_argument("--one", nargs=5, metavar=("SHAPE", "SETTING", "SCORES", "DENSITY", "CACHE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    header = ("| shape | users | items | nnz | Gram nnz | exact L nnz | factor nnz | stored nnz (W^T + Z) | setting | "
              "density | ICF shift | fit s | peak RSS MB | traced MB | residual | max abs diff vs EASE | "
              "top-20 overlap with EASE |")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, l2={L2} (exact, EASE), "
          f"{ICF_L2} (icf, scaled Gram)")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    with tempfile.TemporaryDirectory() as folder:
        for shape in args.shapes:
            small = SHAPES[shape][1] <= args.ease_max_items
            settings = []
            for factorizer in args.factorizers:
                base = "sansa" if factorizer == "exact" else "sansa-icf"
                settings += [base, f"{base}-full"] if small else [base]
            settings += ["ease"] if small else []
            records, scores = {}, {}
            for setting in settings:
                path = str(Path(folder) / f"{shape}-{setting}.npy")
                started = time.perf_counter()
                done = subprocess.run([sys.executable, __file__, "--one", shape, setting, path, args.factor_density,
                                       args.scale_cache], env=env, cwd=ROOT, capture_output=True, text=True)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                    print(f"| {shape} | {setting} failed after {time.perf_counter() - started:.0f} s "
                          f"(exit {done.returncode}): {last} |", flush=True)
                    continue
                records[setting] = json.loads(done.stdout.strip().splitlines()[-1])
                if Path(path).exists():
                    scores[setting] = np.load(path)
            matrix = make_matrix(shape, Path(args.scale_cache)) if "ease" in scores else None
            for setting, record in records.items():
                if setting == "ease":
                    continue
                difference = overlap = "-"
                if matrix is not None:
                    users = sample_users(matrix)
                    difference = f"{np.abs(scores[setting] - scores['ease']).max():.2e}"
                    overlap = f"{top_overlap(scores[setting], scores['ease'], matrix[users]):.3f}"
                shift = "-" if record["shift"] is None else f"{record['shift']:g}"
                print(f"| {shape} | {record['users']:,} | {record['items']:,} | {record['nnz']:,} | "
                      f"{record['gram_nnz']:,} | {_count(record['exact_factor_nnz'])} | {record['factor_nnz']:,} | "
                      f"{record['stored_nnz']:,} | {setting} | {record['density']:g} | {shift} | "
                      f"{record['fit_s']:.1f} | {record['rss_mb']:.0f} | {_megabytes(record['traced_mb'])} | "
                      f"{record['residual']:.1e} | {difference} | {overlap} |")
            if "ease" in records:
                record = records["ease"]
                print(f"| {shape} | {record['users']:,} | {record['items']:,} | {record['nnz']:,} | - | - | - | "
                      f"{record['items'] ** 2:,} (dense B) | ease | 1 | - | {record['fit_s']:.1f} | "
                      f"{record['rss_mb']:.0f} | {record['traced_mb']:.0f} | - | 0 | 1.000 |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
