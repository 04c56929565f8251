"""Golden values for the pop and random baselines."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.random_scores import hashed_uniform
from protocols.registry import make_model

TRAIN = sp.csr_matrix(np.array([
    [5, 0, 1, 0],
    [3, 0, 0, 0],
    [0, 0, 4, 2],
], dtype=np.float32))


def test_pop_counts_users_not_rating_values():
    model = make_model("pop").fit(TRAIN)
    scores = model.score(np.array([0, 2]), TRAIN[[0, 2]])
    np.testing.assert_array_equal(scores, [[2, 0, 2, 1], [2, 0, 2, 1]])
    assert scores.flags.writeable
    np.testing.assert_array_equal(model.score_candidates([7], sp.csr_matrix((1, 4)), [[3, 0]]), [[1, 2]])


def test_random_depends_on_seed_user_and_item_only():
    first = make_model("random", {"seed": 3}).fit(TRAIN)
    other_train = sp.csr_matrix(np.eye(5, 4, dtype=np.float32))
    second = make_model("random", {"seed": 3}).fit(other_train)
    history = sp.csr_matrix((2, 4))
    np.testing.assert_array_equal(first.score([1, 2], history), second.score([1, 2], history))
    other_seed = make_model("random", {"seed": 4}).fit(TRAIN)
    assert not np.array_equal(first.score([1, 2], history), other_seed.score([1, 2], history))
    assert not np.array_equal(first.score([1], history[:1]), first.score([2], history[:1]))


def test_hashed_uniform_is_uniform_and_uncorrelated():
    values = hashed_uniform(0, np.arange(400)[:, None], np.arange(500)[None, :]).astype(np.float64)
    assert values.min() >= 0.0 and values.max() < 1.0
    # Mean and variance of U(0, 1) (1/2, 1/12) within ~6 standard errors over 200,000 draws.
    assert abs(values.mean() - 0.5) < 6 * (1 / 12) ** 0.5 / 447
    assert abs(values.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(values[:, :-1].ravel(), values[:, 1:].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(values[:-1].ravel(), values[1:].ravel())[0, 1]) < 0.02
