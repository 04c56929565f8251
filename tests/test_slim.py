"""SLIM against scikit-learn's ElasticNet, column by column, and the optimality conditions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import ElasticNet

import baselines.slim as slim_module
from baselines.slim import SLIM, nonnegative_elastic_net
from common.errors import RecAuditError
from linear_planted import lcfn_recall, model_recall, planted_split, popularity_recall

TIGHT = {"tol": 1e-12, "max_iter": 10_000, "topk": 1000}


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    return sp.csr_matrix((rng.random((70, 30)) < 0.3).astype(np.float32))


def _sklearn_weights(dense: np.ndarray, alpha: float, l1_ratio: float) -> np.ndarray:
    """One scikit-learn fit per item, on X with the target's own column zeroed out."""
    weights = np.zeros((dense.shape[1], dense.shape[1]))
    for j in range(dense.shape[1]):
        features = dense.copy()
        features[:, j] = 0.0
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False,
                           tol=1e-12, max_iter=100_000)
        weights[:, j] = model.fit(features, dense[:, j]).coef_
    return weights


@pytest.mark.parametrize("alpha, l1_ratio", [(0.01, 0.1), (0.002, 0.002), (0.05, 0.9)])
def test_weights_equal_sklearn_elastic_net(small, alpha, l1_ratio):
    ours = SLIM(alpha=alpha, l1_ratio=l1_ratio, **TIGHT).fit(small).item_weights_.toarray()
    reference = _sklearn_weights(small.toarray().astype(np.float64), alpha, l1_ratio)
    assert (reference > 0).sum() > 3 * small.shape[1]  # a non-trivial solution
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_solution_meets_the_optimality_conditions(small):
    """Gradient of 1/2|x_j - Xw|^2 + l2/2|w|^2 is -l1 on non-zeros and >= -l1 on zeros."""
    n_users = small.shape[0]
    alpha, l1_ratio = 0.004, 0.3
    l1, l2 = n_users * alpha * l1_ratio, n_users * alpha * (1 - l1_ratio)
    weights = SLIM(alpha=alpha, l1_ratio=l1_ratio, **TIGHT).fit(small).item_weights_.toarray().astype(np.float64)
    gram = (small.T @ small).toarray().astype(np.float64)
    gradient = gram @ weights - gram + l2 * weights
    off_diagonal = ~np.eye(len(gram), dtype=bool)
    positive = (weights > 0) & off_diagonal
    zero = (weights == 0) & off_diagonal
    assert positive.sum() > 20 and zero.sum() > 20
    np.testing.assert_allclose(gradient[positive], -l1, atol=1e-4)
    assert gradient[zero].min() >= -l1 - 1e-4
    assert np.all(np.diag(weights) == 0) and weights.min() >= 0


def test_topk_keeps_the_largest_weights_of_each_column(small):
    full = SLIM(alpha=0.002, l1_ratio=0.01, **TIGHT).fit(small).item_weights_.toarray()
    kept = SLIM(alpha=0.002, l1_ratio=0.01, tol=1e-12, max_iter=10_000, topk=4).fit(small).item_weights_.toarray()
    assert ((kept > 0).sum(axis=0) <= 4).all() and (full > 0).sum(axis=0).min() > 4
    expected = np.zeros_like(full)
    top = np.argsort(-full, axis=0)[:4]
    np.put_along_axis(expected, top, np.take_along_axis(full, top, axis=0), axis=0)
    np.testing.assert_allclose(kept, expected, atol=1e-6)


def test_blocks_and_float32_gram_do_not_change_the_solution(small, monkeypatch):
    reference = SLIM(alpha=0.01, l1_ratio=0.1, **TIGHT).fit(small).item_weights_.toarray()
    monkeypatch.setattr(slim_module, "_BLOCK_BYTES", 3 * 8 * 30 * 7)  # 7 target columns per block
    monkeypatch.setattr(slim_module, "_FLOAT64_GRAM_MAX_ITEMS", 10)
    monkeypatch.setattr(slim_module, "_BATCH_NUMBERS", 200)  # many small working-set batches
    blocked = SLIM(alpha=0.01, l1_ratio=0.1, tol=1e-9, max_iter=10_000, topk=1000).fit(small)
    np.testing.assert_allclose(blocked.item_weights_.toarray(), reference, atol=1e-5)


def test_solver_stops_on_the_duality_gap(small):
    gram = (small.T @ small).toarray().astype(np.float64)
    targets = np.arange(gram.shape[0])
    loose, loose_rounds, _ = nonnegative_elastic_net(gram, targets, l1=2.0, l2=5.0, tol=1e-2, max_iter=1000)
    tight, tight_rounds, _ = nonnegative_elastic_net(gram, targets, l1=2.0, l2=5.0, tol=1e-12, max_iter=1000)
    assert tight_rounds.sum() > loose_rounds.sum()
    objective = lambda w: 0.5 * np.einsum("ij,ij->j", w, gram @ w) - np.einsum("ij,ij->j", gram, w) \
        + 2.0 * w.sum(axis=0) + 2.5 * (w**2).sum(axis=0)
    # The gap bounds the suboptimality: within tol * |x_j|^2 of the optimum.
    assert np.all(objective(loose) - objective(tight) <= 1e-2 * np.diag(gram) + 1e-9)


def test_max_iter_bounds_the_sweeps_of_all_rounds_together(small, monkeypatch):
    """scikit-learn's max_iter (the TOIS reference runs ElasticNet with max_iter=100): a column
    gets at most max_iter coordinate sweeps in total, then keeps its weights unconverged."""
    spent = np.zeros(small.shape[1], dtype=np.int64)
    solve = slim_module._solve_restricted

    def counting(gram, diagonal, current, correlations, working, own_items, *rest):
        weights, used = solve(gram, diagonal, current, correlations, working, own_items, *rest)
        np.add.at(spent, own_items, used)
        return weights, used

    monkeypatch.setattr(slim_module, "_solve_restricted", counting)
    capped = SLIM(alpha=0.002, l1_ratio=0.002, tol=1e-12, max_iter=3, topk=1000).fit(small)
    assert spent.max() == 3 and capped.unconverged_ > 0
    spent[:] = 0
    assert SLIM(alpha=0.002, l1_ratio=0.002, **TIGHT).fit(small).unconverged_ == 0
    assert spent.max() > 3


@pytest.mark.parametrize("params, pattern", [
    ({"alpha": 0.0}, "alpha must be positive"),
    ({"l1_ratio": 0.0}, r"l1_ratio must lie in \(0, 1\]"),
    ({"topk": 0}, "topk must be a positive integer"),
    ({"max_iter": 2.5}, "max_iter must be a positive integer"),
])
def test_bad_parameters_raise_one_line(small, params, pattern):
    with pytest.raises(RecAuditError, match=pattern):
        SLIM(**params).fit(small)


def test_beats_popularity_on_planted_data():
    train, heldout = planted_split(seed=3)
    model = SLIM(alpha=0.002, l1_ratio=0.05, topk=50)
    assert model_recall(model, train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.slow
def test_movielens_lcfn_regression_value():
    """Recall@20 (normalised by min(20, |test|)) on the mirrored LCFN MovieLens-1M split."""
    assert lcfn_recall(SLIM(alpha=0.1, l1_ratio=0.1, topk=100)) == pytest.approx(0.28057, abs=1e-3)
