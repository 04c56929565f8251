"""P3alpha and RP3beta against a naive dense random walk."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.graph import P3alpha, RP3beta
from datasets.errors import RecAuditError
from naive_neighbourhood import naive_random_walk


def interactions(n_users=30, n_items=20, seed=0, ratings=False) -> sp.csr_matrix:
    """Binary, or with continuous values ("ratings"): then no two walk entries tie, so the
    kept sets do not hinge on rounding (the tie rule itself is tested in test_knn)."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    if ratings:
        dense *= rng.uniform(0.5, 5.0, size=dense.shape).astype(np.float32)
    return sp.csr_matrix(dense)


@pytest.mark.parametrize("normalize_similarity", [False, True])
@pytest.mark.parametrize("topk", [3, 100])
@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.6, 1.8])
def test_p3alpha_matches_naive_walk(alpha, topk, normalize_similarity):
    train = interactions(ratings=True)
    model = P3alpha(topk=topk, alpha=alpha, normalize_similarity=normalize_similarity).fit(train)
    expected = naive_random_walk(train.toarray(), alpha, 0.0, topk, normalize_similarity)
    np.testing.assert_array_equal(model.item_similarity_.toarray() != 0, expected != 0)
    np.testing.assert_allclose(model.item_similarity_.toarray(), expected, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("normalize_similarity", [False, True])
@pytest.mark.parametrize("alpha, beta, topk", [(1.0, 0.5, 4), (0.7, 1.3, 6), (1.2, 0.25, 100)])
def test_rp3beta_matches_naive_walk(alpha, beta, topk, normalize_similarity):
    train = interactions(seed=3, ratings=True)
    model = RP3beta(topk=topk, alpha=alpha, beta=beta, normalize_similarity=normalize_similarity).fit(train)
    expected = naive_random_walk(train.toarray(), alpha, beta, topk, normalize_similarity)
    np.testing.assert_array_equal(model.item_similarity_.toarray() != 0, expected != 0)
    np.testing.assert_allclose(model.item_similarity_.toarray(), expected, rtol=2e-5, atol=1e-8)


def assert_is_topk_of(actual: np.ndarray, full: np.ndarray, k: int, normalized: bool) -> None:
    """Tie-tolerant: each row keeps min(k, nonzeros) entries, none smaller than a dropped one
    (up to rounding), with the reference values (rescaled to sum 1 when normalized)."""
    for row, reference in zip(actual, full):
        kept = np.flatnonzero(row)
        dropped = np.setdiff1d(np.flatnonzero(reference), kept)
        assert len(kept) == min(k, np.count_nonzero(reference))
        if dropped.size:
            assert reference[kept].min() >= reference[dropped].max() * (1 - 1e-5)
        expected = reference[kept] / reference[kept].sum() if normalized else reference[kept]
        np.testing.assert_allclose(row[kept], expected, rtol=2e-5)


@pytest.mark.parametrize("normalize_similarity", [False, True])
@pytest.mark.parametrize("alpha, beta, topk", [(1.0, 0.0, 4), (0.0, 0.0, 5), (0.6, 0.0, 100), (0.7, 1.3, 6),
                                               (1.5, 0.4, 3)])
def test_binary_interactions_take_the_symmetric_path_to_the_same_walk(alpha, beta, topk, normalize_similarity):
    """Binary data uses diag(pop^-a) (D B)^T (D B); ties are common there, so the check
    is the top-K property rather than one kept set."""
    train = interactions(seed=12)
    model = RP3beta(topk=topk, alpha=alpha, beta=beta, normalize_similarity=normalize_similarity).fit(train)
    full = naive_random_walk(train.toarray(), alpha, beta, 10**6, False)
    assert_is_topk_of(model.item_similarity_.toarray(), full, topk, normalize_similarity)


def test_rp3beta_with_beta_zero_is_p3alpha():
    train = interactions(40, 25, seed=5)
    rp3 = RP3beta(topk=8, alpha=0.9, beta=0.0).fit(train).item_similarity_
    p3 = P3alpha(topk=8, alpha=0.9).fit(train).item_similarity_
    assert (rp3 != p3).nnz == 0


@pytest.mark.parametrize("model", [P3alpha(topk=5), RP3beta(topk=5, beta=0.4)])
def test_scores_are_history_times_walk(model):
    train = interactions(seed=7)
    model.fit(train)
    history = interactions(6, 20, seed=8, ratings=True)
    expected = history.toarray().astype(np.float64) @ model.item_similarity_.toarray()
    np.testing.assert_allclose(model.score(np.arange(6), history), expected, rtol=1e-5, atol=1e-8)


def test_fit_is_deterministic_and_has_no_self_loops():
    train = interactions(50, 30, seed=9)
    first = RP3beta(topk=10).fit(train).item_similarity_
    second = RP3beta(topk=10).fit(train).item_similarity_
    assert (first != second).nnz == 0
    assert not first.diagonal().any()
    assert np.diff(first.indptr).max() <= 10


@pytest.mark.parametrize("params, message", [
    ({"topk": -3}, "topk must be an integer >= 1"),
    ({"alpha": -0.5}, "alpha must be a finite number >= 0"),
    ({"beta": float("nan")}, "beta must be a finite number >= 0"),
])
def test_bad_parameters_raise(params, message):
    with pytest.raises(RecAuditError, match=message):
        RP3beta(**params).fit(interactions())


def test_negative_interaction_values_are_refused():
    train = interactions().toarray()
    train[0, train[0].nonzero()[0][0]] = -1.0
    with pytest.raises(RecAuditError, match="needs nonnegative interaction values"):
        P3alpha().fit(sp.csr_matrix(train))
