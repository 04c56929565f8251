"""SANSA against EASE at full density, its LDL^T factor, its approximate inverse and its memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from baselines.ease import EASE
from baselines.sansa import (SANSA, SPLU_OPTIONS, approximate_unit_lower_inverse, prune_factor, regularised_gram,
                             sparse_ldlt)
from common.errors import RecAuditError
from linear_planted import model_recall, planted_split, popularity_recall

FULL = {"factor_density": 1.0, "inverse_density": 1.0, "finetune_steps": 30}


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(4)
    return sp.csr_matrix((rng.random((60, 25)) < 0.25).astype(np.float32))


def clustered(n_items: int, seed: int = 0, cluster: int = 50, per_user: int = 5, noise: float = 0.01) -> sp.csr_matrix:
    """Many items with few interactions each (2 users per item on average): each user takes
    ``per_user`` items of one cluster of ``cluster`` items, and each pick is, with probability
    ``noise``, any item of the catalogue instead (links between clusters)."""
    rng = np.random.default_rng(seed)
    n_users = 2 * n_items // per_user
    items = rng.integers(0, n_items // cluster, n_users)[:, None] * cluster + rng.integers(0, cluster,
                                                                                         (n_users, per_user))
    anywhere = rng.random(items.shape) < noise
    items[anywhere] = rng.integers(0, n_items, int(anywhere.sum()))
    rows = np.repeat(np.arange(n_users), per_user)
    matrix = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, items.ravel())), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    return matrix


@pytest.mark.parametrize("l2", [0.5, 5.0, 200.0])
def test_full_density_equals_ease(small, l2):
    users = np.arange(small.shape[0])
    ease = EASE(l2=l2, dtype="float64").fit(small).score(users, small)
    sansa = SANSA(l2=l2, dtype="float64", **FULL).fit(small)
    assert sansa.factor_nnz_ == sansa.exact_factor_nnz_  # nothing pruned
    assert sansa.inverse_residual_ < 1e-10
    np.testing.assert_allclose(sansa.score(users, small), ease, rtol=0, atol=1e-5)
    single = SANSA(l2=l2, **FULL).fit(small)
    assert single.encoder_.dtype == np.float32 and single.decoder_.dtype == np.float32
    np.testing.assert_allclose(single.score(users, small), ease, rtol=0, atol=1e-5)


def test_factors_are_sparse_and_reproduce_ease_weights(small):
    """B = I + W^T Z has a zero diagonal and equals EASE's B; the model holds only sparse factors."""
    sansa = SANSA(l2=5.0, dtype="float64", **FULL).fit(small)
    ease = EASE(l2=5.0, dtype="float64").fit(small).item_weights_
    assert sp.issparse(sansa.encoder_) and sp.issparse(sansa.decoder_)
    weights = np.eye(small.shape[1]) + (sansa.encoder_ @ sansa.decoder_).toarray()
    np.testing.assert_allclose(np.diag(weights), 0.0, atol=1e-12)
    np.testing.assert_allclose(weights, ease, rtol=0, atol=1e-8)


@pytest.mark.parametrize("l2", [0.5, 30.0])
def test_ldlt_reconstructs_the_permuted_gram(small, l2):
    gram = regularised_gram(small, l2)
    lower, d, order = sparse_ldlt(gram)
    assert sorted(order) == list(range(small.shape[1]))
    assert np.allclose(lower.diagonal(), 1.0) and sp.triu(lower, k=1).nnz == 0 and d.min() > 0
    permuted = gram.toarray()[np.ix_(order, order)]
    reconstruction = (lower @ sp.diags(d) @ lower.T).toarray()
    np.testing.assert_allclose(reconstruction, permuted, rtol=0, atol=1e-8)
    expected = small.toarray().astype(np.float64).T @ small.toarray() + l2 * np.eye(small.shape[1])
    np.testing.assert_allclose(gram.toarray(), expected, atol=1e-12)


def test_superlu_in_symmetric_mode_gives_u_equal_to_d_lt(small):
    """What sparse_ldlt relies on: with a symmetric ordering and diagonal pivots, SuperLU's
    row and column permutations agree and U = D L^T."""
    for matrix in (small, clustered(2000, seed=1, noise=0.05)):
        factor = splu(regularised_gram(matrix, 2.0), **SPLU_OPTIONS)
        assert np.array_equal(factor.perm_r, factor.perm_c)
        lower, upper = factor.L, factor.U
        difference = upper - sp.diags(upper.diagonal()) @ lower.T
        assert abs(difference).max() <= 1e-10 * abs(upper).max()


def test_fill_reducing_ordering_keeps_the_factor_sparse():
    """A clustered catalogue in shuffled item order: the ordering finds the clusters."""
    matrix = clustered(3000, seed=2, noise=0.0)
    matrix = matrix[:, np.random.default_rng(0).permutation(3000)]
    lower, _, _ = sparse_ldlt(regularised_gram(matrix, 1.0))
    gram = regularised_gram(matrix, 1.0)
    assert lower.nnz <= gram.nnz  # the natural (shuffled) order would fill far more


def test_approximate_inverse_improves_with_refinement_steps():
    """The relative residual |I - L K|_F / sqrt(n) falls from the Schulz start 2I - L with the
    scan and with each batch of fine-tuning steps (pruned to 30% density: it levels off)."""
    gram = regularised_gram(planted_split(seed=3)[0], 50.0)
    lower, d, _ = sparse_ldlt(gram)
    pruned = prune_factor(lower, d, 0.3)
    n = pruned.shape[0]
    density = pruned.nnz / n ** 2
    finals = []
    for scans, steps in ((0, 0), (1, 0), (1, 3), (1, 10), (1, 30)):
        inverse, history = approximate_unit_lower_inverse(pruned, density, scans=scans, finetune_steps=steps)
        assert len(history) == scans + steps + 1
        assert inverse.nnz <= np.ceil(density * n ** 2)
        residual = np.linalg.norm(np.eye(n) - (pruned @ inverse).toarray()) / np.sqrt(n)
        assert residual == pytest.approx(history[-1], rel=1e-9)
        finals.append(history[-1])
    assert finals[0] > finals[1] > finals[2] > finals[3]
    assert finals[4] == pytest.approx(finals[3], rel=1e-3)  # levelled off (pruning may nudge it either way)
    assert finals[3] < 0.1 * finals[0]
    # Without pruning the iterations converge to the exact inverse.
    exact, history = approximate_unit_lower_inverse(lower, 1.0, scans=1, finetune_steps=30)
    assert history[-1] < 1e-10 < history[0]
    np.testing.assert_allclose((lower @ exact).toarray(), np.eye(lower.shape[0]), atol=1e-9)


def test_pruning_meets_the_target_densities():
    train = planted_split(seed=3)[0]
    n = train.shape[1]
    model = SANSA(l2=50.0, factor_density=0.05, inverse_density=0.03).fit(train)
    assert model.factor_nnz_ == int(np.ceil(0.05 * n * n)) < model.exact_factor_nnz_
    assert model.encoder_.nnz <= np.ceil(0.03 * n * n) and model.decoder_.nnz == model.encoder_.nnz
    tiny = SANSA(l2=50.0, factor_density=1e-6).fit(train)  # clipped to the authors' floor, 2 per item
    assert tiny.factor_nnz_ == 2 * n


def test_memory_follows_the_gram_matrix_not_items_squared():
    n_items = 20_000
    matrix = clustered(n_items)
    tracemalloc.start()
    try:
        model = SANSA(l2=20.0).fit(matrix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n_items ** 2 * 8 / 100  # a dense float64 items x items matrix: 3.2 GB; here < 32 MB
    assert model.exact_factor_nnz_ < 2 * model.gram_nnz_
    users = np.arange(3)
    assert np.isfinite(model.score(users, matrix[:3])).all()
    # The stored factors grow with the Gram matrix's non-zeros: 4x the items (16x items^2),
    # about 4x the non-zeros.
    ratios = []
    for size in (5_000, n_items):
        fitted = model if size == n_items else SANSA(l2=20.0).fit(clustered(size))
        ratios.append((fitted.encoder_.nnz + fitted.decoder_.nnz) / fitted.gram_nnz_)
    assert max(ratios) < 3 and ratios[1] < 1.5 * ratios[0]


def test_beats_popularity_on_planted_data():
    train, heldout = planted_split(seed=3)
    assert model_recall(SANSA(l2=50.0, factor_density=0.05), train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.parametrize("params, pattern", [
    ({"l2": 0.0}, "l2 must be a positive number"),
    ({"l2": "big"}, "l2 must be a positive number"),
    ({"l2": float("nan")}, "l2 must be a positive number"),
    ({"factor_density": 0.0}, r"factor_density must lie in \(0, 1\]"),
    ({"factor_density": 1.5}, r"factor_density must lie in \(0, 1\]"),
    ({"inverse_density": -0.1}, r"inverse_density must lie in \(0, 1\] or be null"),
    ({"scans": -1}, "scans must be a non-negative integer"),
    ({"finetune_steps": 2.5}, "finetune_steps must be a non-negative integer"),
    ({"finetune_steps": True}, "finetune_steps must be a non-negative integer"),
    ({"dtype": "float16"}, "dtype must be one of float32, float64"),
])
def test_bad_parameters_raise_one_line(small, params, pattern):
    with pytest.raises(RecAuditError, match=pattern) as caught:
        SANSA(**params).fit(small)
    assert "\n" not in str(caught.value)
