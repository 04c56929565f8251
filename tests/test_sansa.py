"""SANSA against EASE at full density, its LDL^T factor, its approximate inverse and its memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.sparse.linalg import splu

from baselines.ease import EASE
from baselines.incomplete_cholesky import incomplete_cholesky
from baselines.sansa import (SANSA, SPLU_OPTIONS, approximate_unit_lower_inverse, icf_ldlt, icf_scaling_and_ordering,
                             prune_factor, regularised_gram, scaled_lower_gram, sparse_ldlt)
from common.errors import RecAuditError
from linear_planted import model_recall, planted_split, popularity_recall
from protocols.conformance import CHECKS, make_conformance_data

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


# ----- the incomplete factorisation ("icf") -------------------------------------------------

def naive_incomplete_cholesky(matrix: np.ndarray, max_nnz: int):
    """The authors' ICF rule on a dense array, one column at a time: column j is
    a_j - L[:, :j] L[j, :j]^T below the diagonal over sqrt(pivot); every computed entry's square
    leaves the later pivots; the column keeps its largest entries within an even share of the
    entries left after reserving one diagonal per remaining column (ties: smaller row).
    Returns L, or the column whose pivot is not positive."""
    n = matrix.shape[0]
    pivots = np.diag(matrix).astype(np.float64).copy()
    factor = np.zeros((n, n))
    stored = 0
    for j in range(n):
        column = matrix[j + 1:, j] - factor[j + 1:, :j] @ factor[j, :j]
        if not pivots[j] > 0:
            return j
        factor[j, j] = np.sqrt(pivots[j])
        column = column / factor[j, j]
        pivots[j + 1:] -= column ** 2
        share = (max_nnz - stored - (n - j)) // (n - j)
        stored += 1
        candidates = np.flatnonzero(column)
        if len(candidates) > share:
            keep = candidates[np.argsort(-np.abs(column[candidates]), kind="stable")[:max(share, 0)]]
            dropped = np.ones(len(column), dtype=bool)
            dropped[keep] = False
            column[dropped] = 0.0
        factor[j + 1:, j] = column
        stored += np.count_nonzero(column)
    return factor


def random_gram(n: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.random((3 * n, n)) < 0.2) * rng.random((3 * n, n))
    return x.T @ x + shift * np.eye(n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icf_matches_a_naive_dense_incomplete_cholesky(seed):
    n = 30
    for shift, budgets in ((3.0, (n * n, n * (n + 1) // 2, 200, 90, 45, n)), (0.05, (200, 120))):
        gram = random_gram(n, seed, shift)
        for budget in budgets:
            factor, failed = incomplete_cholesky(sp.csc_matrix(np.tril(gram, -1)), np.diag(gram), budget)
            expected = naive_incomplete_cholesky(gram, budget)
            if isinstance(expected, int):  # a breakdown: the same column
                assert factor is None and failed == expected
                continue
            assert failed == -1 and factor.nnz == np.count_nonzero(expected) <= max(budget, n)
            np.testing.assert_allclose(factor.toarray(), expected, rtol=0, atol=1e-12)
            assert factor.has_sorted_indices and np.all(factor.indices[factor.indptr[:-1]] == np.arange(n))
    # At least one of the small shifts breaks down, so the comparison covers that branch.
    assert any(isinstance(naive_incomplete_cholesky(random_gram(n, s, 0.05), 120), int) for s in range(3))


def test_icf_without_dropping_is_the_exact_cholesky():
    gram = random_gram(40, 5, 0.5)
    factor, failed = incomplete_cholesky(sp.csc_matrix(np.tril(gram, -1)), np.diag(gram), 40 * 40)
    assert failed == -1
    np.testing.assert_allclose(factor.toarray(), np.linalg.cholesky(gram), rtol=0, atol=1e-12)


def test_icf_builds_the_scaled_permuted_gram(small):
    """The authors' scaling: column j of X over sqrt(|(X^T X)_j|_2); the lower triangle and the
    diagonal of the scaled Gram matrix in the chosen order."""
    gram = small.toarray().astype(np.float64).T @ small.toarray()
    scale, order, entries, ordering = icf_scaling_and_ordering(small)
    assert ordering == "reverse Cuthill-McKee"  # 60 x 25 at 25%: a dense Gram matrix
    np.testing.assert_allclose(scale, 1 / np.sqrt(np.linalg.norm(gram, axis=0)), rtol=1e-12)
    assert sorted(order) == list(range(small.shape[1]))
    lower, diagonal = scaled_lower_gram(small, scale, order, entries)
    scaled = (gram * scale[:, None] * scale[None, :])[np.ix_(order, order)]
    assert lower.nnz == entries == np.count_nonzero(np.tril(gram, -1))
    np.testing.assert_allclose(lower.toarray(), np.tril(scaled, -1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(diagonal, np.diag(scaled), rtol=1e-12)
    assert np.diag(scaled).max() <= 1 + 1e-12
    # Items without interactions keep scale 1 (no division by zero).
    empty = sp.hstack([small, sp.csr_matrix((small.shape[0], 2), dtype=np.float32)]).tocsr()
    assert np.all(icf_scaling_and_ordering(empty)[0][-2:] == 1.0)


@pytest.mark.parametrize("l2, sparse", [(0.5, False), (5.0, False), (5.0, True)])
def test_icf_at_full_density_is_ease_on_the_scaled_data(small, l2, sparse):
    """Nothing dropped: the ICF factor is the exact Cholesky factor of the scaled, permuted,
    regularised Gram matrix, and the model is EASE fitted on X S (the authors' scaling, l2 on
    that scale), applied to the unscaled history. Dense (RCM order) and sparse (METIS order)."""
    if sparse:
        small = clustered(300, seed=3, cluster=30, noise=0.05)
    gram = small.toarray().astype(np.float64).T @ small.toarray()
    scale, order, entries, ordering = icf_scaling_and_ordering(small)
    assert ordering == ("nested dissection" if sparse else "reverse Cuthill-McKee")
    lower, diagonal = scaled_lower_gram(small, scale, order, entries)
    unit, d, shift = icf_ldlt(lower, diagonal, l2, small.shape[1] ** 2)
    assert shift == l2
    matrix = (lower + lower.T).toarray() + np.diag(diagonal + l2)
    cholesky = np.linalg.cholesky(matrix)
    np.testing.assert_allclose(unit.toarray() * np.sqrt(d)[None, :], cholesky, rtol=0, atol=1e-12)
    sansa = SANSA(l2=l2, dtype="float64", factorizer="icf", **FULL).fit(small)
    assert sansa.icf_shift_ == l2 and sansa.inverse_residual_ < 1e-10 and sansa.exact_factor_nnz_ is None
    assert sansa.icf_ordering_ == ordering
    # EASE's closed form on X S in float64 (EASE.fit would take X S in float32, the input's type).
    scaled_gram = gram * scale[:, None] * scale[None, :]
    inverse = np.linalg.inv(scaled_gram + l2 * np.eye(small.shape[1]))
    ease = np.eye(small.shape[1]) - inverse / np.diag(inverse)[None, :]
    weights = np.eye(small.shape[1]) + (sansa.encoder_ @ sansa.decoder_).toarray()
    np.testing.assert_allclose(weights, ease, rtol=0, atol=1e-10)
    users = np.arange(small.shape[0])
    np.testing.assert_allclose(sansa.score(users, small), small @ ease, rtol=0, atol=1e-5)
    # ... which is not EASE on X: the scaling changes the model.
    assert np.abs(weights - EASE(l2=l2, dtype="float64").fit(small).item_weights_).max() > 1e-2


def test_icf_retries_with_the_authors_shifts():
    """A tight budget with a small l2 breaks down; the retry adds 1e-3 * 2^k to the scaled
    diagonal and gives the factorisation of the shifted matrix."""
    train = planted_split(seed=3)[0]
    n = train.shape[1]
    scale, order, entries, _ = icf_scaling_and_ordering(train)
    lower, diagonal = scaled_lower_gram(train, scale, order, entries)
    budget = int(np.ceil(0.05 * n * n))
    unit, d, shift = icf_ldlt(lower, diagonal, 1e-4, budget)
    shifts = [1e-4] + [1e-4 + 1e-3 * 2.0 ** k for k in range(40)]
    first = next(s for s in shifts if incomplete_cholesky(lower, diagonal + s, budget)[0] is not None)
    assert shift == first > 1e-4
    direct, _ = incomplete_cholesky(lower, diagonal + shift, budget)
    np.testing.assert_allclose(unit.toarray() * np.sqrt(d)[None, :], direct.toarray(), rtol=0, atol=1e-12)
    model = SANSA(l2=1e-4, factor_density=0.05, factorizer="icf").fit(train)
    assert model.icf_shift_ == shift


def test_icf_ordering_reduces_fill_on_a_sparse_gram_matrix():
    """A clustered catalogue in shuffled item order (Gram matrix 0.6% filled): nested dissection
    finds the clusters, so the incomplete factor without a budget keeps little more than the
    Gram matrix's lower triangle, where reverse Cuthill-McKee's band fills more than twice as much."""
    matrix = clustered(2000, seed=2, noise=0.02)
    matrix = matrix[:, np.random.default_rng(0).permutation(2000)]
    scale, order, entries, ordering = icf_scaling_and_ordering(matrix)
    assert ordering == "nested dissection"
    fills = {}
    for name, permutation in (("nd", order), ("rcm", reverse_cuthill_mckee(
            sp.csr_matrix((matrix.T @ matrix) > 0), symmetric_mode=True).astype(np.int64))):
        lower, diagonal = scaled_lower_gram(matrix, scale, permutation, entries)
        factor, failed = incomplete_cholesky(lower, diagonal + 1.0, 2000 ** 2)
        fills[name] = factor.nnz - 2000
    assert fills["nd"] < 2 * entries and fills["rcm"] > 2 * fills["nd"]


def test_icf_factor_stays_within_its_budget():
    train = planted_split(seed=3)[0]
    n = train.shape[1]
    for density in (0.2, 0.05, 0.025):  # 120 items: 2,880, 720, 360 entries (floor: 240)
        model = SANSA(l2=5.0, factor_density=density, factorizer="icf").fit(train)
        assert model.factor_nnz_ <= np.ceil(density * n * n)
        assert model.encoder_.nnz <= np.ceil(density * n * n) and model.decoder_.nnz == model.encoder_.nnz
    assert model.factor_nnz_ > 0.9 * np.ceil(0.025 * n * n)  # the budget binds (the exact factor is denser)
    tiny = SANSA(l2=5.0, factor_density=1e-6, factorizer="icf").fit(train)  # the authors' floor, 2 per item
    assert n < tiny.factor_nnz_ <= 2 * n


def test_icf_memory_estimate_follows_the_gram_matrix_not_items_squared():
    """Twice the items (empty ones) with the same interactions and the same factor budget in
    entries: the ICF estimate barely moves where EASE's quadruples; and it bounds the traced
    peak of a fit."""
    matrix = clustered(10_000)
    wide = sp.hstack([matrix, sp.csr_matrix(matrix.shape, dtype=np.float32)]).tocsr()
    narrow_estimate = SANSA(factorizer="icf", factor_density=0.004).fit_memory_bytes(matrix)
    wide_estimate = SANSA(factorizer="icf", factor_density=0.001).fit_memory_bytes(wide)
    assert wide_estimate < 1.2 * narrow_estimate
    assert EASE().fit_memory_bytes(wide) > 2.5 * EASE().fit_memory_bytes(matrix)  # dense: items^2
    # The density is a share of items^2: the same density on twice the items is 4 times the budget.
    assert SANSA(factorizer="icf", factor_density=0.004).fit_memory_bytes(wide) > 3 * narrow_estimate
    n_items = 20_000
    matrix = clustered(n_items, noise=0.05)
    SANSA(l2=20.0, factorizer="icf").fit(matrix[:50])  # numba's first call loads its modules (~15 MB)
    tracemalloc.start()
    try:
        model = SANSA(l2=20.0, factorizer="icf", factor_density=0.001).fit(matrix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SANSA(factorizer="icf", factor_density=0.001).fit_memory_bytes(matrix)
    assert peak < n_items ** 2 * 8 / 100  # a dense float64 items x items matrix: 3.2 GB; here < 32 MB
    assert model.factor_nnz_ <= np.ceil(0.001 * n_items ** 2)


def test_icf_beats_popularity_on_planted_data():
    train, heldout = planted_split(seed=3)
    model = SANSA(l2=5.0, factor_density=0.05, factorizer="icf")
    assert model_recall(model, train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.parametrize("check_name", sorted(CHECKS))
def test_icf_model_conforms(check_name):
    """The conformance suite runs the registered default ("exact"); the same checks on "icf"."""
    CHECKS[check_name](lambda: SANSA(l2=20.0, factorizer="icf"), make_conformance_data())


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
    ({"factorizer": "cholmod"}, "factorizer must be one of exact, icf"),
])
def test_bad_parameters_raise_one_line(small, params, pattern):
    with pytest.raises(RecAuditError, match=pattern) as caught:
        SANSA(**params).fit(small)
    assert "\n" not in str(caught.value)
