"""Study parity of ItemKNN and UserKNN on the SpectralCF authors' ML-1M split (TOIS suite).

Not collected by pytest. Run from the repository root, after preparing the dataset::

    RECAUDIT_MIRROR=../shared/data python -m datasets fetch movielens-1m-spectralcf
    python -m datasets prepare movielens-1m-spectralcf
    python tests/benchmarks/bench_tois_knn.py [--all] [--diagnose] [--before REV] [--no-before]

Same data and evaluation as ``tests/benchmarks/bench_tois_graph.py`` (whose loader and
measurement it reuses): fit on the authors' whole training file, rank all items for every
user with a test item, training items excluded; recall@20, recall@100, MAP@20.

Models at the study's selected hyperparameters for "Movielens 1M original" (TOIS additional
material, Table 42): UserKNN CF cosine (topK 365, shrink 0, normalize, TF-IDF) and ItemKNN CF
cosine (topK 615, shrink 0, normalize, TF-IDF); ``--all`` adds the other similarities of
Table 42 (dice, jaccard, asymmetric, tversky, for both). Each runs as:

- ``before``: ``baselines/knn.py`` and ``baselines/similarity.py`` as of git revision
  ``--before`` (default: the commit before the study-faithful variants), loaded from ``git
  show`` into throwaway modules, so the work tree is never touched;
- ``variant=standard`` and ``variant=tois`` (the default) of the current code;
- ``tois, N=3705``: ``variant="tois"`` on the same interactions laid out on the study's item
  id space. The study read the authors' files with their own item ids, ``0..max id`` (3705
  columns, 473 of them without any interaction), and its TF-IDF's ``N`` is that number of
  columns; our prepared split keeps the 3232 items that occur (``items.parquet`` maps them back
  with ``original_id``).

``--diagnose`` adds, for UserKNN, ``variant="tois"`` with one study choice undone at a time
(own top-K instead of the column orientation; unweighted scores instead of the weighted
training matrix), to show what each contributes.

The study's numbers (last three columns) are Table 32 ("Experimental results for the
SpectralCF method for the Movielens 1M original dataset") of
``DL_Evaluation_TOIS_Additional_material.pdf`` in MaurizioFD/RecSys2019_DeepLearning_Evaluation.
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
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_tois_graph import DATASET, load_split, measure  # noqa: E402

# The commit before the study-faithful KNN variants.
DEFAULT_BEFORE = "7600786"

# TOIS additional material, Table 42, column "Movielens 1M original" (the similarity is the
# model; normalize is only listed where it matters: cosine).
SETTINGS = {
    "UserKNN CF cosine": ("userknn-cosine", {"topk": 365, "shrink": 0, "normalize": True,
                                             "feature_weighting": "tfidf"}),
    "ItemKNN CF cosine": ("itemknn-cosine", {"topk": 615, "shrink": 0, "normalize": True,
                                             "feature_weighting": "tfidf"}),
    "UserKNN CF dice": ("userknn-dice", {"topk": 276, "shrink": 1}),
    "UserKNN CF jaccard": ("userknn-jaccard", {"topk": 337, "shrink": 0}),
    "UserKNN CF asymmetric": ("userknn-asymmetric", {"topk": 369, "shrink": 134, "asymmetric_alpha": 0.6047,
                                                     "feature_weighting": "tfidf"}),
    "UserKNN CF tversky": ("userknn-tversky", {"topk": 377, "shrink": 0, "tversky_alpha": 2.0, "tversky_beta": 2.0}),
    "ItemKNN CF dice": ("itemknn-dice", {"topk": 137, "shrink": 0}),
    "ItemKNN CF jaccard": ("itemknn-jaccard", {"topk": 135, "shrink": 0}),
    "ItemKNN CF asymmetric": ("itemknn-asymmetric", {"topk": 1000, "shrink": 0, "asymmetric_alpha": 0.0466,
                                                     "feature_weighting": "tfidf"}),
    "ItemKNN CF tversky": ("itemknn-tversky", {"topk": 143, "shrink": 0, "tversky_alpha": 0.4521,
                                               "tversky_beta": 2.0}),
}
COSINE_ONLY = ["UserKNN CF cosine", "ItemKNN CF cosine"]

# TOIS additional material, Table 32 (Movielens 1M original split): REC@20, REC@100, MAP@20.
STUDY = {
    "UserKNN CF cosine": (0.0917, 0.2868, 0.0193),
    "UserKNN CF dice": (0.0993, 0.2978, 0.0214),
    "UserKNN CF jaccard": (0.0998, 0.3012, 0.0211),
    "UserKNN CF asymmetric": (0.0982, 0.2943, 0.0214),
    "UserKNN CF tversky": (0.0999, 0.3021, 0.0208),
    "ItemKNN CF cosine": (0.0676, 0.2326, 0.0143),
    "ItemKNN CF dice": (0.0673, 0.2443, 0.0154),
    "ItemKNN CF jaccard": (0.0670, 0.2438, 0.0146),
    "ItemKNN CF asymmetric": (0.0988, 0.3189, 0.0215),
    "ItemKNN CF tversky": (0.0730, 0.2798, 0.0147),
}


def knn_module_at(revision: str) -> types.ModuleType:
    """``baselines/knn.py`` as of ``revision`` (with that revision's ``baselines/similarity.py``),
    as a module whose classes are not registered."""
    import protocols.registry as registry

    registry.load_model_packages()  # import every model module before ``register`` is stubbed

    def source(path: str) -> str:
        return subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout

    similarity_name = f"similarity_at_{revision}"
    similarity = types.ModuleType(similarity_name)
    knn = types.ModuleType(f"knn_at_{revision}")
    original = registry.register
    registry.register = lambda name: (lambda cls: cls)
    sys.modules[similarity_name] = similarity
    try:
        exec(compile(source("baselines/similarity.py"), f"{revision}:baselines/similarity.py", "exec"),
             similarity.__dict__)
        knn_source = source("baselines/knn.py").replace("from baselines.similarity import",
                                                        f"from {similarity_name} import")
        exec(compile(knn_source, f"{revision}:baselines/knn.py", "exec"), knn.__dict__)
    finally:
        registry.register = original
    return knn


def study_item_space(train: sp.csr_matrix, task):
    """The same interactions on the study's item ids (the authors' ids, 0..max id)."""
    from protocols.evaluation import RankingTask

    original = pd.read_parquet(DATASET / "items.parquet")["original_id"].astype(np.int64).to_numpy()
    n_items = int(original.max()) + 1
    layout = sp.csr_matrix((np.ones(len(original), dtype=np.float32), (np.arange(len(original)), original)),
                           shape=(len(original), n_items))

    def move(matrix):
        return sp.csr_matrix(matrix @ layout, dtype=np.float32)

    moved = RankingTask(users=task.users, history=move(task.history), truth=move(task.truth),
                        exclude=move(task.exclude))
    return move(train), moved, n_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' knn.py/similarity.py")
    parser.add_argument("--no-before", action="store_true", help="skip the old code")
    parser.add_argument("--all", action="store_true", help="every similarity of Table 42, not only cosine")
    parser.add_argument("--diagnose", action="store_true", help="UserKNN tois with one study choice undone at a time")
    args = parser.parse_args()

    from baselines.knn import UserKNN
    from protocols.registry import make_model

    train, task = load_split()
    study_train, study_task, study_items = study_item_space(train, task)
    print(f"movielens-1m-spectralcf/given (authors' files): {train.shape[0]} users x {train.shape[1]} items "
          f"({study_items} in the study's id space), {train.nnz} training interactions, {len(task.users)} test "
          "users; full ranking, train excluded\n")
    old = None if args.no_before else knn_module_at(args.before)

    class OwnTopK(UserKNN):
        """variant='tois' except that each user is scored from its own top-K (diagnostic)."""

        def _score(self, users, history):
            from baselines.similarity import NeighbourSide, aggregate_scores, topk_similarity

            history = history.copy()
            history.eliminate_zeros()
            side = NeighbourSide.build(self.neighbours_.kernel, self.neighbours_.vectors)
            own = np.where(users < self.n_users_, users, -1)
            similarity = topk_similarity(self.weighting_.weight_terms(history), side, self.topk, own)
            return aggregate_scores(similarity, self.score_matrix_, bool(self.normalize_scores), "left")

    class UnweightedScores(UserKNN):
        """variant='tois' except that the scores use the unweighted training matrix (diagnostic)."""

        def _fit(self, data):
            super()._fit(data)
            self.score_matrix_ = sp.csr_matrix(data.interactions, dtype=np.float32)

    labels = list(SETTINGS) if args.all else COSINE_ONLY
    runs = []
    for label in labels:
        name, params = SETTINGS[label]
        similarity = name.split("-", 1)[1]
        if old is not None:
            family = "UserKNN" if name.startswith("user") else "ItemKNN"
            old_class = getattr(old, f"{family}{similarity.capitalize()}")
            runs.append((label, f"before ({args.before})", lambda c=old_class, p=params: c(**p), train, task))
        for variant in ("standard", "tois"):
            runs.append((label, f"variant={variant}",
                         lambda n=name, p=params, v=variant: make_model(n, {**p, "variant": v}), train, task))
        runs.append((label, f"tois, N={study_items}", lambda n=name, p=params: make_model(n, p),
                     study_train, study_task))
        if args.diagnose and name.startswith("userknn"):
            fixed = {**params, "similarity": similarity, "variant": "tois"}
            runs.append((label, "tois, own top-K", lambda p=fixed: OwnTopK(**p), train, task))
            runs.append((label, "tois, unweighted X", lambda p=fixed: UnweightedScores(**p), train, task))

    header = (f"{'model':<22} {'code':<20} {'R@20':>7} {'R@100':>7} {'MAP@20':>7}   "
              f"{'study R@20':>10} {'R@100':>7} {'MAP@20':>7}   {'seconds':>7}")
    print(header)
    print("-" * len(header))
    for label, code, build, fit_on, evaluated in runs:
        start = time.perf_counter()
        recall20, recall100, map20, _ = measure(build(), fit_on, evaluated)
        study = STUDY[label]
        print(f"{label:<22} {code:<20} {recall20:7.4f} {recall100:7.4f} {map20:7.4f}   "
              f"{study[0]:10.4f} {study[1]:7.4f} {study[2]:7.4f}   {time.perf_counter() - start:7.1f}", flush=True)
    print("\nstudy: TOIS additional material (DL_Evaluation_TOIS_Additional_material.pdf, "
          "MaurizioFD/RecSys2019_DeepLearning_Evaluation), Table 32 (results) and Table 42 (settings), "
          "Movielens 1M original split")


if __name__ == "__main__":
    main()
