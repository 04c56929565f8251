"""EASE against the constrained least-squares problem solved column by column."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.dense_inverse import symmetric_inverse_in_place
from baselines.ease import EASE
from common.errors import RecAuditError
from linear_planted import lcfn_recall, model_recall, planted_split, popularity_recall


def _kkt_weights(dense: np.ndarray, l2: float) -> np.ndarray:
    """Each column j solves min |x_j - X b|^2 + l2 |b|^2 s.t. b_j = 0 through its KKT system
    [[X^T X + l2 I, e_j], [e_j^T, 0]] [b; mu] = [X^T x_j; 0] (mu: the Lagrange multiplier)."""
    n_items = dense.shape[1]
    gram = dense.T @ dense
    weights = np.zeros((n_items, n_items))
    for j in range(n_items):
        system = np.zeros((n_items + 1, n_items + 1))
        system[:n_items, :n_items] = gram + l2 * np.eye(n_items)
        system[j, n_items] = system[n_items, j] = 1.0
        rhs = np.append(gram[:, j], 0.0)
        weights[:, j] = np.linalg.solve(system, rhs)[:n_items]
    return weights


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(4)
    return sp.csr_matrix((rng.random((50, 25)) < 0.25).astype(np.float32))


@pytest.mark.parametrize("l2", [0.5, 30.0])
def test_weights_solve_the_zero_diagonal_least_squares(small, l2):
    model = EASE(l2=l2, dtype="float64").fit(small)
    np.testing.assert_allclose(model.item_weights_, _kkt_weights(small.toarray().astype(np.float64), l2),
                               rtol=1e-9, atol=1e-11)
    assert np.all(np.diag(model.item_weights_) == 0)


@pytest.mark.parametrize("l2", [0.5, 30.0])
def test_wide_catalogue_takes_the_users_system_and_gives_the_same_weights(l2):
    rng = np.random.default_rng(5)
    wide = (rng.random((14, 40)) < 0.3).astype(np.float64)
    wide[3] = 0.0  # a user without interactions must not matter
    model = EASE(l2=l2, dtype="float64").fit(sp.csr_matrix(wide))
    np.testing.assert_allclose(model.item_weights_, _kkt_weights(wide, l2), rtol=1e-8, atol=1e-10)
    single = EASE(l2=l2).fit(sp.csr_matrix(wide))
    np.testing.assert_allclose(single.item_weights_, model.item_weights_, atol=2e-5)


def test_float32_matches_float64(small):
    single = EASE(l2=5.0).fit(small)
    double = EASE(l2=5.0, dtype="float64").fit(small)
    assert single.item_weights_.dtype == np.float32
    np.testing.assert_allclose(single.item_weights_, double.item_weights_, rtol=0, atol=2e-5)
    users = np.arange(small.shape[0])
    scores = single.score(users, small)
    np.testing.assert_allclose(scores, small.toarray() @ double.item_weights_, atol=5e-5)


def test_in_place_cholesky_inverse_matches_numpy():
    rng = np.random.default_rng(0)
    factor = rng.standard_normal((70, 70))
    matrix = factor @ factor.T + 5 * np.eye(70)
    expected = np.linalg.inv(matrix)
    work = matrix.copy()
    result = symmetric_inverse_in_place(work)
    assert result is work
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order, block", [(70, 16), (70, 70), (70, 69), (101, 7), (5, 2), (1, 4)])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_tiled_inverse_matches_numpy(order, block, dtype, tolerance):
    """The tiled path (orders beyond what scipy's LAPACK handles) on tiles that divide the order,
    do not, and equal it; float32 against float64's inverse at float32 precision."""
    rng = np.random.default_rng(order + block)
    factor = rng.standard_normal((order, order))
    matrix = factor @ factor.T + order * np.eye(order)
    expected = np.linalg.inv(matrix)
    work = np.ascontiguousarray(matrix, dtype=dtype)
    result = symmetric_inverse_in_place(work, block=block, lapack_max_order=0)
    assert result is work and result.dtype == dtype
    np.testing.assert_allclose(result, expected, rtol=0, atol=tolerance * np.abs(expected).max())
    np.testing.assert_array_equal(result, result.T)


def test_tiled_inverse_refuses_a_matrix_that_is_not_positive_definite():
    matrix = np.diag([1.0, 2.0, -1.0, 4.0, 5.0])
    with pytest.raises(np.linalg.LinAlgError):
        symmetric_inverse_in_place(matrix, block=2, lapack_max_order=0)


def test_fit_leaves_the_training_matrix_alone(small):
    before = small.copy()
    EASE(l2=1.0).fit(small)
    assert (small != before).nnz == 0


def test_folds_in_unseen_users(small):
    model = EASE(l2=2.0, dtype="float64").fit(small[:30])
    history = small[30:]
    np.testing.assert_allclose(model.score(np.arange(30, 50), history),
                               history.toarray() @ model.item_weights_, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("params, pattern", [({"l2": 0.0}, "l2 must be positive"),
                                              ({"dtype": "float16"}, "dtype must be one of")])
def test_bad_parameters_raise_one_line(small, params, pattern):
    with pytest.raises(RecAuditError, match=pattern):
        EASE(**params).fit(small)


def test_beats_popularity_on_planted_data():
    train, heldout = planted_split(seed=1)
    assert model_recall(EASE(l2=20.0), train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.slow
def test_movielens_lcfn_regression_value():
    """Recall@20 (normalised by min(20, |test|)) on the mirrored LCFN MovieLens-1M split."""
    assert lcfn_recall(EASE(l2=500.0)) == pytest.approx(0.31114, abs=1e-3)


def test_nonnegative_ease_matches_a_nonnegative_least_squares_solve_per_column():
    """EASE≥0 column j solves min ||X_j - X b||^2 + l2 ||b||^2 with b >= 0, b_j = 0: the same as
    NNLS on the stacked system [X; sqrt(l2) I] without column j, solved here by scipy."""
    from scipy.optimize import nnls

    from baselines.ease import EASE

    rng = np.random.default_rng(4)
    dense = (rng.random((60, 12)) < 0.3).astype(np.float64)
    l2 = 3.0
    model = EASE(l2=l2, non_negative=True, dtype="float64", admm_iterations=5000, admm_tolerance=1e-10)
    model.fit(sp.csr_matrix(dense))
    stacked = np.vstack([dense, np.sqrt(l2) * np.eye(12)])
    for j in range(12):
        others = [i for i in range(12) if i != j]
        target = np.r_[dense[:, j], np.zeros(12)]
        solution, _ = nnls(stacked[:, others], target)
        expected = np.zeros(12)
        expected[others] = solution
        assert np.allclose(model.item_weights_[:, j], expected, atol=1e-6), j
    assert (model.item_weights_ >= 0).all() and np.all(np.diag(model.item_weights_) == 0)
    assert model.admm_iterations_ < 5000
    # Unconstrained EASE has negative weights here, so the constraint is active.
    assert (EASE(l2=l2, dtype="float64").fit(sp.csr_matrix(dense)).item_weights_ < 0).any()


def test_nonnegative_ease_refuses_bad_settings():
    from baselines.ease import EASE

    train = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(Exception, match="non_negative must be true or false"):
        EASE(non_negative="yes").fit(train)
    with pytest.raises(Exception, match="admm_iterations must be an integer >= 1"):
        EASE(non_negative=True, admm_iterations=0).fit(train)
