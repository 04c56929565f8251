"""Study parity of P3alpha and RP3beta on the SpectralCF authors' ML-1M split (TOIS suite).

Not collected by pytest. Run from the repository root, after preparing the dataset::

    RECAUDIT_MIRROR=../shared/data python -m datasets fetch movielens-1m-spectralcf
    python -m datasets prepare movielens-1m-spectralcf
    python tests/benchmarks/bench_tois_graph.py [--before REV] [--no-before]

Fits on the prepared ``data/prepared/movielens-1m-spectralcf/given/spectralcf/train.parquet``
(the authors' whole training file, as the study fitted its final models) and ranks all items
for every user with a test item of ``test.parquet``, training items excluded (history =
exclude = train), with :func:`protocols.evaluation.evaluate`: recall@20, recall@100, MAP@20.

Models, at the study's selected hyperparameters for "Movielens 1M original" (TOIS additional
material, Tables 42 and 43):

- P3alpha topK 332, alpha 1.0075, normalize_similarity True;
- RP3beta topK 537, alpha 0.7551, beta 0.5412, normalize_similarity False;
- sanity anchors: TopPopular, ItemKNN CF cosine (topK 615, shrink 0, normalize, TF-IDF) and
  EASE^R (l2 292), which matched the study before this change.

The graph models run three times: ``before`` is ``baselines/graph.py`` as of git revision
``--before`` (default: the commit before the study-faithful variants, loaded from ``git show``
into a throwaway module, so the work tree is never touched), then the current code with
``variant="tois"`` (the default) and ``variant="paper"``.

``--others`` adds the other baselines whose study-code choices were checked against ours, at
the study's settings for this split: UserKNN CF cosine (topK 365, shrink 0, normalize, TF-IDF),
PureSVD (15 factors), iALS (22 factors, reg 1e-5, 75 epochs; the study's log confidence
1 + 1.7077 ln(1 + r / 0.001) is, on binary data, our linear confidence with alpha
1.7077 ln 1001 = 11.80) and SLIM ElasticNet (topK 747, l1_ratio 7.37e-5, alpha 0.0371; about
three minutes).

The study's numbers (last three columns) are Table 32 ("Experimental results for the
SpectralCF method for the Movielens 1M original dataset") of
``DL_Evaluation_TOIS_Additional_material.pdf`` in the study's repository
(MaurizioFD/RecSys2019_DeepLearning_Evaluation): REC@20, REC@100, MAP@20.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DATASET = ROOT / "data" / "prepared" / "movielens-1m-spectralcf"
SPLIT = DATASET / "given" / "spectralcf"
CUTOFFS = [20, 100]
# The commit before the study-faithful P3alpha/RP3beta variants.
DEFAULT_BEFORE = "eebe0ea"

P3ALPHA = {"topk": 332, "alpha": 1.0075, "normalize_similarity": True}
RP3BETA = {"topk": 537, "alpha": 0.7551, "beta": 0.5412, "normalize_similarity": False}

# TOIS additional material, Table 32 (Movielens 1M original split): REC@20, REC@100, MAP@20.
STUDY = {
    "TopPopular": (0.0382, 0.2286, 0.0065),
    "ItemKNN CF cosine": (0.0676, 0.2326, 0.0143),
    "P3alpha": (0.1218, 0.3583, 0.0256),
    "RP3beta": (0.0916, 0.3171, 0.0192),
    "EASE^R": (0.0956, 0.2651, 0.0212),
    "UserKNN CF cosine": (0.0917, 0.2868, 0.0193),
    "PureSVD": (0.0828, 0.2472, 0.0172),
    "iALS": (0.0868, 0.2621, 0.0188),
    "SLIM ElasticNet": (0.0915, 0.2692, 0.0205),
}
OTHERS = [
    ("UserKNN CF cosine", "userknn-cosine",
     {"topk": 365, "shrink": 0, "normalize": True, "feature_weighting": "tfidf"}),
    ("PureSVD", "puresvd", {"factors": 15}),
    ("iALS", "ials", {"factors": 22, "alpha": 1.7077 * float(np.log(1001.0)), "reg": 1e-5, "epochs": 75}),
    ("SLIM ElasticNet", "slim", {"topk": 747, "l1_ratio": 7.37e-5, "alpha": 0.0371}),
]


def load_split():
    from protocols.evaluation import RankingTask, interaction_matrix

    if not (SPLIT / "train.parquet").exists():
        sys.exit(f"{SPLIT} is missing: run `python -m datasets fetch movielens-1m-spectralcf` and "
                 "`python -m datasets prepare movielens-1m-spectralcf` first (RECAUDIT_MIRROR set)")
    n_users = len(pd.read_parquet(DATASET / "users.parquet"))
    n_items = len(pd.read_parquet(DATASET / "items.parquet"))
    train = interaction_matrix([pd.read_parquet(SPLIT / "train.parquet")], n_users, n_items)
    test = interaction_matrix([pd.read_parquet(SPLIT / "test.parquet")], n_users, n_items)
    users = np.flatnonzero(np.diff(test.indptr))
    task = RankingTask(users=users, history=train[users], truth=test[users], exclude=train[users])
    return train, task


def graph_module_at(revision: str) -> types.ModuleType:
    """``baselines/graph.py`` as of ``revision``, as a module whose classes are not registered."""
    import protocols.registry as registry

    registry.load_model_packages()  # import every model module before ``register`` is stubbed
    source = subprocess.run(["git", "show", f"{revision}:baselines/graph.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"graph_at_{revision}")
    original = registry.register
    registry.register = lambda name: (lambda cls: cls)
    try:
        exec(compile(source, f"{revision}:baselines/graph.py", "exec"), module.__dict__)
    finally:
        registry.register = original
    return module


def measure(model, train, task) -> tuple[float, float, float, float]:
    from protocols.evaluation import evaluate

    start = time.perf_counter()
    model.fit(train)
    result = evaluate(model, task, CUTOFFS, metrics=["recall", "map"])
    s = result.summary
    return s["recall@20"], s["recall@100"], s["map@20"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' graph.py")
    parser.add_argument("--no-before", action="store_true", help="skip the old graph.py")
    parser.add_argument("--others", action="store_true", help="also UserKNN, PureSVD, iALS and SLIM")
    args = parser.parse_args()

    from protocols.registry import make_model

    train, task = load_split()
    print(f"movielens-1m-spectralcf/given (authors' files): {train.shape[0]} users x {train.shape[1]} items, "
          f"{train.nnz} training interactions, {len(task.users)} test users; full ranking, train excluded\n")

    runs = [("TopPopular", "current", lambda: make_model("pop")),
            ("ItemKNN CF cosine", "current", lambda: make_model(
                "itemknn-cosine", {"topk": 615, "shrink": 0, "normalize": True, "feature_weighting": "tfidf"})),
            ("EASE^R", "current", lambda: make_model("ease", {"l2": 292.0}))]
    if not args.no_before:
        old = graph_module_at(args.before)
        runs += [("P3alpha", f"before ({args.before})", lambda: old.P3alpha(**P3ALPHA)),
                 ("RP3beta", f"before ({args.before})", lambda: old.RP3beta(**RP3BETA))]
    for variant in ("tois", "paper"):
        runs += [("P3alpha", f"variant={variant}", lambda v=variant: make_model("p3alpha", {**P3ALPHA, "variant": v})),
                 ("RP3beta", f"variant={variant}", lambda v=variant: make_model("rp3beta", {**RP3BETA, "variant": v}))]
    if args.others:
        runs += [(label, "current", lambda n=name, p=params: make_model(n, p)) for label, name, params in OTHERS]

    header = (f"{'model':<18} {'code':<20} {'R@20':>7} {'R@100':>7} {'MAP@20':>7}   "
              f"{'study R@20':>10} {'R@100':>7} {'MAP@20':>7}   {'seconds':>7}")
    print(header)
    print("-" * len(header))
    for label, code, build in runs:
        recall20, recall100, map20, seconds = measure(build(), train, task)
        study = STUDY[label]
        print(f"{label:<18} {code:<20} {recall20:7.4f} {recall100:7.4f} {map20:7.4f}   "
              f"{study[0]:10.4f} {study[1]:7.4f} {study[2]:7.4f}   {seconds:7.1f}", flush=True)
    print("\nstudy: TOIS additional material (DL_Evaluation_TOIS_Additional_material.pdf, "
          "MaurizioFD/RecSys2019_DeepLearning_Evaluation), Table 32, Movielens 1M original split")


if __name__ == "__main__":
    main()
