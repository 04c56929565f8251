"""PureSVD against numpy's dense SVD."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.puresvd import PureSVD
from common.errors import RecAuditError
from linear_planted import lcfn_recall, model_recall, planted_split, popularity_recall


def _low_rank_counts(rank: int = 5) -> sp.csr_matrix:
    """Non-negative counts with singular values that drop sharply after ``rank``."""
    rng = np.random.default_rng(7)
    left = rng.random((80, rank)) * np.geomspace(4, 1, rank)
    right = rng.random((rank, 45))
    return sp.csr_matrix(np.round(20 * left @ right).astype(np.float32))


def test_scores_equal_projection_on_numpy_svd():
    train = _low_rank_counts()
    dense = train.toarray().astype(np.float64)
    singular_values = np.linalg.svd(dense, compute_uv=False)
    assert singular_values[4] > 5 * singular_values[5]  # the rank-5 space is well separated
    _, _, right = np.linalg.svd(dense, full_matrices=False)
    top = right[:5].T
    model = PureSVD(factors=5).fit(train)
    np.testing.assert_allclose(model.singular_values_, singular_values[:5], rtol=1e-6)
    users = np.arange(train.shape[0])
    expected = dense @ top @ top.T
    np.testing.assert_allclose(model.score(users, train), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_folded_in_scores_of_training_users_equal_the_reconstruction():
    train = _low_rank_counts()
    model = PureSVD(factors=3, seed=1).fit(train)
    left, values, right = np.linalg.svd(train.toarray().astype(np.float64), full_matrices=False)
    reconstruction = left[:, :3] * values[:3] @ right[:3]
    np.testing.assert_allclose(model.score(np.arange(80), train), reconstruction,
                               atol=1e-4 * np.abs(reconstruction).max())


def test_rank_is_capped_by_the_matrix_and_seed_fixes_the_result():
    train = _low_rank_counts()
    model = PureSVD(factors=500).fit(train)
    assert model.factors == 500 and model.n_factors_ == 45 and model.item_factors_.shape == (45, 45)
    # Full rank: the projection is the identity on the item space.
    np.testing.assert_allclose(model.score(np.arange(80), train), train.toarray(), atol=1e-3)
    first = PureSVD(factors=4, seed=3).fit(train).item_factors_
    np.testing.assert_array_equal(first, PureSVD(factors=4, seed=3).fit(train).item_factors_)


@pytest.mark.parametrize("factors", [0, 2.5, "10"])
def test_bad_factors_raise_one_line(factors):
    with pytest.raises(RecAuditError, match="factors must be a positive integer"):
        PureSVD(factors=factors).fit(_low_rank_counts())


def test_beats_popularity_on_planted_data():
    train, heldout = planted_split(seed=2)
    assert model_recall(PureSVD(factors=6), train, heldout) > 1.15 * popularity_recall(train, heldout)


@pytest.mark.slow
def test_movielens_lcfn_regression_value():
    """Recall@20 (normalised by min(20, |test|)) on the mirrored LCFN MovieLens-1M split."""
    assert lcfn_recall(PureSVD(factors=50)) == pytest.approx(0.28551, abs=1e-3)
