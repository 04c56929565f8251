"""VisRank against a brute-force loop over users and items, its choices for items and
histories without features, memory-bounded blocks, feature resolution and refusals."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.visrank import AGGREGATES, NO_FEATURES_SCORE, VisRank
from common.errors import RecAuditError
from datasets.item_data import make_feature_set
from protocols.contract import ANY_FEATURES, TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
from protocols.registry import registered_models

N_USERS, N_ITEMS, DIM = 30, 25, 7
KEY = "image-features@000000000000"
ABSENT = (3, 11)  # items without features
COLD = 20  # an item with features and no training interaction


def example(seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    present = np.ones(N_ITEMS, bool)
    present[list(ABSENT)] = False
    dense = rng.random((N_USERS, N_ITEMS)) < 0.25
    dense[:, COLD] = False
    dense[0] = False  # no history at all
    dense[1] = False
    dense[1, list(ABSENT)] = True  # a history of featureless items only
    train = sp.csr_matrix(dense.astype(np.float32))
    sets = {KEY: make_feature_set(KEY, features, present),
            "tags": make_feature_set("tags", sp.random(N_ITEMS, 5, density=0.3, random_state=1, format="csr"))}
    return TrainingData(train, item_features=sets), features, present


def brute_force(features, present, history, aggregate, k):
    """score(u, i) by the definition, one user and one item at a time, in float64."""
    vectors = features.astype(np.float64)
    out = np.empty(history.shape)
    for u in range(history.shape[0]):
        profile = [j for j in np.flatnonzero(history[u].toarray().ravel()) if present[j]]
        for i in range(history.shape[1]):
            if not present[i]:
                out[u, i] = NO_FEATURES_SCORE
                continue
            similarities = sorted((vectors[i] @ vectors[j] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[j])
                                   for j in profile), reverse=True)
            if not similarities:
                out[u, i] = 0.0
            elif aggregate == "max":
                out[u, i] = similarities[0]
            elif aggregate == "mean":
                out[u, i] = np.mean(similarities)
            else:
                out[u, i] = np.mean(similarities[:k])
    return out


@pytest.mark.parametrize("aggregate, k", [("max", 5), ("mean", 5), ("topk-mean", 1), ("topk-mean", 3),
                                          ("topk-mean", 100)])
def test_scores_match_brute_force(aggregate, k):
    data, features, present = example()
    model = VisRank(aggregate=aggregate, k=k).fit(data)
    history = data.interactions
    expected = brute_force(features, present, history, aggregate, k)
    np.testing.assert_allclose(model.score(np.arange(N_USERS), history), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregate", AGGREGATES)
@pytest.mark.parametrize("budget", [1, 7, 60, 500])
def test_memory_bounded_blocks_give_the_same_scores(aggregate, budget, monkeypatch):
    data, features, present = example(seed=2)
    model = VisRank(aggregate=aggregate, k=2).fit(data)
    full = model.score(np.arange(N_USERS), data.interactions)
    longest = int(np.diff(data.interactions.indptr).max())
    sizes = []
    reduce = VisRank._reduce

    def recording(self, block, counts):
        sizes.append(block.size)
        return reduce(self, block, counts)

    monkeypatch.setattr(VisRank, "_reduce", recording)
    model.chunk_elements = budget
    chunked = model.score(np.arange(N_USERS), data.interactions)
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-7)
    if aggregate != "mean":  # the mean is one product per block of users, without gathering
        assert max(sizes) <= max(budget, longest), (max(sizes), budget)
        if budget < N_ITEMS:
            assert len(sizes) > 1  # the work was split


def test_users_and_items_never_seen_in_training():
    data, features, present = example(seed=3)
    model = VisRank().fit(data)
    # Fold-in users (ids past the training matrix) with histories holding the cold item.
    history = sp.csr_matrix(np.eye(N_ITEMS, dtype=np.float32)[[COLD, 5]])
    scores = model.score(np.array([N_USERS + 4, N_USERS + 9]), history)
    np.testing.assert_allclose(scores, brute_force(features, present, history, "max", 5), rtol=1e-5, atol=1e-6)
    assert scores[0, COLD] == pytest.approx(1.0)  # the cold item is scored from its features
    assert np.all(scores[:, list(ABSENT)] == NO_FEATURES_SCORE)


def test_choices_for_missing_features():
    data, _, _ = example()
    scores = VisRank(aggregate="mean").fit(data).score(np.arange(N_USERS), data.interactions)
    assert np.isfinite(scores).all() and scores.dtype == np.float32
    with_features = np.setdiff1d(np.arange(N_ITEMS), ABSENT)
    # items without features rank after every item with features
    assert np.all(scores[:, list(ABSENT)] == NO_FEATURES_SCORE)
    assert scores[:, with_features].min() >= -1 - 1e-6 > NO_FEATURES_SCORE
    # no history, or only featureless items: no preference, every item with features ties at 0
    assert np.all(scores[:2, with_features] == 0)
    # values of the history count as 0/1
    weighted = data.interactions.copy()
    weighted.data *= 5.0
    np.testing.assert_array_equal(VisRank(aggregate="mean").fit(data).score(np.arange(N_USERS), weighted), scores)


def test_resolves_the_only_dense_set_and_refuses_otherwise():
    data, features, _ = example()
    assert VisRank().fit(data).features_key_ == KEY  # beside the sparse "tags"
    assert VisRank().requirements().item_features == ANY_FEATURES
    assert VisRank().requirements().feature_kind == "dense"
    assert VisRank(features="image-features").requirements().item_features == "image-features"
    two = TrainingData(data.interactions, item_features={**data.item_features,
                                                         "resnet@111111111111": make_feature_set(
                                                             "resnet@111111111111", features + 1)})
    with pytest.raises(UnsupportedProtocolError, match=r"several dense .*\(needs dense item features"):
        VisRank().fit(two)
    assert VisRank(features="resnet").fit(two).features_key_ == "resnet@111111111111"
    only_tags = TrainingData(data.interactions, item_features={"tags": data.item_features["tags"]})
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs dense item features\)"):
        VisRank().fit(only_tags)
    with pytest.raises(UnsupportedProtocolError, match=r"needs dense item features"):  # before any fit
        check_requirements(VisRank(features="tags"), TaskProfile.of(data, np.arange(N_USERS)))
    with pytest.raises(UnsupportedProtocolError, match=r"needs item features"):
        VisRank().fit(data.interactions)


@pytest.mark.parametrize("params", [{"aggregate": "median"}, {"k": 0}, {"k": 2.5}])
def test_invalid_parameters_are_refused(params):
    data, _, _ = example()
    with pytest.raises(RecAuditError, match=str(next(iter(params)))):
        VisRank(**params).fit(data)


def test_registered_as_a_baseline_with_its_search_space():
    cls = registered_models()["visrank"]
    assert cls is VisRank and cls.family == "baseline"
    assert set(cls.search_space) == {"aggregate", "k"}
    assert set(cls.search_space["aggregate"].choices) == set(AGGREGATES)
