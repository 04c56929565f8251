"""iALS against dense closed-form least squares, and its training and early-stopping rules."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from baselines.ials import IALS, _PaddedRows, _solve_side, _spd_solve, ials_loss
from common.errors import RecAuditError
from linear_planted import lcfn_recall, model_recall, planted_split, popularity_recall
from protocols.contract import TrainingData, ValidationData
from protocols.early_stopping import validation_value


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(5)
    values = (rng.random((9, 7)) < 0.4) * rng.integers(1, 4, size=(9, 7))
    values[0] = 0  # a user without interactions
    return sp.csr_matrix(values.astype(np.float32))


def _dense_update(matrix: np.ndarray, fixed: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """x_u = (Y^T C_u Y + reg I)^-1 Y^T C_u p_u with C_u = diag(1 + alpha r_u) written out."""
    solutions = []
    for row in matrix:
        confidence = np.diag(1 + alpha * row)
        preference = (row > 0).astype(np.float64)
        lhs = fixed.T @ confidence @ fixed + reg * np.eye(fixed.shape[1])
        solutions.append(np.linalg.solve(lhs, fixed.T @ confidence @ preference))
    return np.array(solutions)


@pytest.mark.parametrize("side", ["users", "items"])
def test_exact_update_equals_dense_closed_form(tiny, side):
    matrix = tiny if side == "users" else tiny.T.tocsr()
    fixed = np.random.default_rng(0).standard_normal((matrix.shape[1], 3))
    plan = _PaddedRows.build(matrix, alpha=2.5, factors=3)
    solved = _solve_side(plan, fixed, np.zeros((matrix.shape[0], 3)), 0.3, "cholesky", 0)
    np.testing.assert_allclose(solved, _dense_update(matrix.toarray(), fixed, 2.5, 0.3), rtol=1e-10, atol=1e-12)
    assert np.all(solved[0] == 0) or side == "items"


def test_conjugate_gradient_with_enough_steps_equals_the_exact_solve(tiny):
    rng = np.random.default_rng(1)
    fixed, start = rng.standard_normal((7, 4)), rng.standard_normal((9, 4))
    plan = _PaddedRows.build(tiny, alpha=4.0, factors=4)
    exact = _solve_side(plan, fixed, start, 0.1, "cholesky", 0)
    few = _solve_side(plan, fixed, start, 0.1, "cg", 1)
    converged = _solve_side(plan, fixed, start, 0.1, "cg", 12)
    np.testing.assert_allclose(converged, exact, rtol=1e-8, atol=1e-10)
    assert np.abs(few - exact).max() > 1e-4  # one step is not the solution: the test can fail


def test_padding_and_chunking_do_not_change_the_solution(tiny, monkeypatch):
    import baselines.ials as ials_module

    fixed = np.random.default_rng(2).standard_normal((7, 3))
    whole = _solve_side(_PaddedRows.build(tiny, 1.5, 3), fixed, np.zeros((9, 3)), 0.2, "cholesky", 0)
    monkeypatch.setattr(ials_module, "_CHUNK_NUMBERS", 10)
    plan = _PaddedRows.build(tiny, 1.5, 3)
    assert len(plan.rows) > 3
    np.testing.assert_allclose(_solve_side(plan, fixed, np.zeros((9, 3)), 0.2, "cholesky", 0), whole,
                               rtol=1e-12, atol=1e-12)


def test_loss_formula_matches_the_dense_sum(tiny):
    rng = np.random.default_rng(3)
    users, items = rng.standard_normal((9, 2)), rng.standard_normal((7, 2))
    values = tiny.toarray().astype(np.float64)
    confidence, preference = 1 + 3.0 * values, (values > 0).astype(np.float64)
    dense = np.sum(confidence * (preference - users @ items.T) ** 2) + 0.5 * (np.sum(users**2) + np.sum(items**2))
    assert ials_loss(tiny, users, items, alpha=3.0, reg=0.5) == pytest.approx(dense, rel=1e-12)


def test_exact_alternation_never_increases_the_loss():
    train, _ = planted_split(n_users=80, n_items=40, seed=6)
    losses = []
    for epochs in range(1, 7):
        model = IALS(factors=5, alpha=5.0, reg=0.5, epochs=epochs, solver="cholesky", seed=2).fit(train)
        losses.append(ials_loss(train, model.user_factors_, model.item_factors_, 5.0, 0.5))
    assert np.all(np.diff(losses) <= 1e-5 * np.abs(losses[:-1]))
    assert losses[-1] < 0.9 * losses[0]


@pytest.fixture(scope="module")
def planted_validation():
    train, heldout = planted_split(seed=4)
    return train, ValidationData(users=np.arange(train.shape[0]), history=train, truth=heldout)


def test_early_stopping_keeps_the_best_epoch(planted_validation):
    train, validation = planted_validation
    params = {"factors": 8, "alpha": 1.0, "reg": 0.1, "solver": "cholesky", "seed": 0}
    full = IALS(epochs=8, **params).fit(TrainingData(train, validation=validation))
    epochs, scores = zip(*full.validation_history_)
    assert epochs == tuple(range(1, 9))
    assert full.best_epoch_ == epochs[int(np.argmax(scores))] and max(scores) > scores[-1]
    refit = IALS(epochs=full.best_epoch_, **params).fit(train)
    np.testing.assert_allclose(full.item_factors_, refit.item_factors_, rtol=1e-5, atol=1e-6)

    stopped = IALS(epochs=8, patience=2, **params).fit(TrainingData(train, validation=validation))
    assert len(stopped.validation_history_) == full.best_epoch_ + 2
    assert stopped.best_epoch_ == full.best_epoch_
    np.testing.assert_array_equal(stopped.item_factors_, full.item_factors_)

    sparse_checks = IALS(epochs=5, validate_every=2, **params).fit(TrainingData(train, validation=validation))
    assert [epoch for epoch, _ in sparse_checks.validation_history_] == [2, 4, 5]


def test_early_stopping_uses_the_metric_of_the_validation_data(planted_validation):
    train, validation = planted_validation
    on_recall = ValidationData(validation.users, validation.history, validation.truth, metric="recall@20")
    params = {"factors": 8, "alpha": 1.0, "reg": 0.1, "solver": "cholesky", "seed": 0}
    model = IALS(epochs=3, **params).fit(TrainingData(train, validation=on_recall))
    for epoch, value in model.validation_history_:
        refit = IALS(epochs=epoch, **params).fit(train)
        assert value == pytest.approx(validation_value(refit, validation, "recall@20"), abs=1e-6)
        assert value != pytest.approx(validation_value(refit, validation, "ndcg@10"), abs=1e-6)


def test_same_seed_same_factors_other_seed_other_factors(tiny):
    first = IALS(factors=4, epochs=2, seed=7).fit(tiny)
    again = IALS(factors=4, epochs=2, seed=7).fit(tiny)
    other = IALS(factors=4, epochs=2, seed=8).fit(tiny)
    np.testing.assert_array_equal(first.item_factors_, again.item_factors_)
    assert not np.allclose(first.item_factors_, other.item_factors_)
    assert first.best_epoch_ == 2 and first.validation_history_ == []


def test_scores_fold_in_the_history_exactly(tiny):
    model = IALS(factors=3, alpha=2.0, reg=0.4, epochs=2).fit(tiny[:6])
    items = model.item_factors_.astype(np.float64)
    history = tiny[3:]
    expected = _dense_update(history.toarray().astype(np.float64), items, 2.0, 0.4) @ items.T
    np.testing.assert_allclose(model.score(np.arange(3, 9), history), expected, rtol=1e-5, atol=1e-6)


def test_cholesky_failure_falls_back_to_lu():
    matrices = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 2.0], [2.0, 1.0]]], dtype=torch.float64)
    rhs = torch.tensor([[2.0, 3.0], [3.0, 3.0]], dtype=torch.float64)
    np.testing.assert_allclose(_spd_solve(matrices, rhs).numpy(), [[1.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("params, pattern", [
    ({"factors": 0}, "factors must be a positive integer"),
    ({"solver": "lu"}, "solver must be one of cg, cholesky"),
    ({"reg": 0.0}, "reg must be positive"),
    ({"patience": 0}, "patience must be None or a positive integer"),
])
def test_bad_parameters_raise_one_line(tiny, params, pattern):
    with pytest.raises(RecAuditError, match=pattern):
        IALS(**params).fit(tiny)


def test_negative_values_are_refused(tiny):
    with pytest.raises(RecAuditError, match="non-negative"):
        IALS().fit(-tiny)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_beats_popularity_on_planted_data(solver):
    train, heldout = planted_split(seed=4)
    model = IALS(factors=8, alpha=1.0, reg=0.1, epochs=3, solver=solver)
    assert model_recall(model, train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.slow
@pytest.mark.parametrize("solver, expected", [("cg", 0.27426), ("cholesky", 0.27682)])
def test_movielens_lcfn_regression_value(solver, expected):
    """Recall@20 (normalised by min(20, |test|)) on the mirrored LCFN MovieLens-1M split."""
    assert lcfn_recall(IALS(epochs=4, solver=solver)) == pytest.approx(expected, abs=3e-3)


def test_log_confidence_by_hand_and_the_binary_equivalence():
    """c - 1 = alpha log(1 + r / eps): r = 3, alpha 2, eps 0.5 gives 2 ln 7. On binary data the
    log scaling is the linear one with alpha' = alpha ln(1 + 1/eps): the same fit."""
    import math

    from baselines.ials import IALS

    weights = IALS(alpha=2.0, confidence="log", epsilon=0.5)._confidence_minus_one(
        sp.csr_matrix(np.array([[3.0, 0.0], [0.0, 1.0]], dtype=np.float32)))
    assert weights.toarray() == pytest.approx(np.array([[2 * math.log(7), 0], [0, 2 * math.log(3)]]), rel=1e-6)
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((30, 20)) < 0.2).astype(np.float32))
    log = IALS(factors=4, alpha=2.0, confidence="log", epsilon=0.5, epochs=3, solver="cholesky").fit(train)
    linear = IALS(factors=4, alpha=2.0 * math.log(3.0), epochs=3, solver="cholesky").fit(train)
    users = np.arange(30)
    assert np.allclose(log.score(users, train), linear.score(users, train), atol=1e-4)


def test_tois_init_first_user_step_solves_against_root_k_uniform_item_factors():
    """init='tois': item factors k^-1/2 U[0, 1) from the seed; the first update computes the
    user factors from them exactly (Hu et al. eq. 4, solved here by hand)."""
    from baselines.ials import IALS

    rng = np.random.default_rng(1)
    train = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    model = IALS(factors=9, alpha=3.0, reg=0.5, init="tois", epochs=1, solver="cholesky", seed=3).fit(train)
    items = (9 ** -0.5 * np.random.default_rng(3).random((30, 9))).astype(np.float32).astype(np.float64)
    dense = train.toarray()
    for user in range(40):
        confidence = 1 + 3.0 * dense[user]
        left = items.T @ (confidence[:, None] * items) + 0.5 * np.eye(9)
        right = items.T @ (confidence * dense[user])
        assert np.allclose(model.user_factors_[user], np.linalg.solve(left, right), atol=1e-4)
    with pytest.raises(Exception, match="init must be one of normal, tois"):
        IALS(init="xavier").fit(train)
