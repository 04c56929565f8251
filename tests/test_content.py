"""ItemKNN-CBF and ItemKNN-CFCBF against naive similarities over content."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.content import ItemKNNCBF, ItemKNNCFCBF
from baselines.similarity import FeatureWeighting
from datasets.errors import RecAuditError
from naive_neighbourhood import naive_similarity, naive_topk
from protocols.contract import SideInformation
from protocols.registry import registered_models
from protocols.space import Real

N_USERS, N_ITEMS, N_FEATURES = 30, 20, 12


def data(seed=0, continuous=True):
    rng = np.random.default_rng(seed)
    train = sp.csr_matrix((rng.random((N_USERS, N_ITEMS)) < 0.3).astype(np.float32))
    content = (rng.random((N_ITEMS, N_FEATURES)) < 0.3).astype(np.float32)
    if continuous:
        content *= rng.uniform(0.5, 2.0, content.shape).astype(np.float32)
    return train, sp.csr_matrix(content)


def assert_same_sparse(actual, expected):
    actual = actual.toarray()
    np.testing.assert_array_equal(actual != 0, expected != 0, err_msg="kept entries differ")
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("kind, params, continuous", [
    ("cosine", {}, True), ("asymmetric", {"asymmetric_alpha": 0.3}, True),
    ("jaccard", {}, False), ("dice", {}, False), ("tversky", {"tversky_alpha": 0.5, "tversky_beta": 1.5}, False),
])
def test_cbf_similarity_is_naive_similarity_of_content(kind, params, continuous):
    train, content = data(continuous=continuous)
    model = ItemKNNCBF(similarity=kind, topk=4, shrink=1.0, **params).fit(train, side=SideInformation(content))
    expected = naive_topk(naive_similarity(content.toarray(), content.toarray(), kind, shrink=1.0, **params),
                          4, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)
    history = train[:5]
    np.testing.assert_allclose(model.score(np.arange(5), history), history.toarray() @ expected.T,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_cbf_weighting_applies_to_content_features(weighting):
    train, content = data(seed=2)
    model = ItemKNNCBF(topk=5, shrink=0.0, feature_weighting=weighting).fit(train, side=SideInformation(content))
    weighted = FeatureWeighting.fit(content, weighting).transform(content).toarray()
    expected = naive_topk(naive_similarity(weighted, weighted, "cosine"), 5, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)


@pytest.mark.parametrize("content_weight", [0.1, 1.0, 30.0])
def test_cfcbf_compares_stacked_interactions_and_weighted_content(content_weight):
    train, content = data(seed=3)
    model = ItemKNNCFCBF(topk=6, shrink=2.0, content_weight=content_weight).fit(train, side=SideInformation(content))
    stacked = np.hstack([train.toarray().T, content_weight * content.toarray()])
    expected = naive_topk(naive_similarity(stacked, stacked, "cosine", shrink=2.0), 6, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)


def test_cfcbf_content_weight_moves_between_cf_and_cbf():
    train, content = data(seed=4)
    side = SideInformation(content)
    tiny = ItemKNNCFCBF(topk=100, shrink=0.0, content_weight=1e-4).fit(train, side=side).item_similarity_
    huge = ItemKNNCFCBF(topk=100, shrink=0.0, content_weight=1e4).fit(train, side=side).item_similarity_
    items = train.T.toarray()
    np.testing.assert_allclose(tiny.toarray().T, naive_topk(naive_similarity(items, items, "cosine"), 100,
                                                            np.arange(N_ITEMS)), atol=1e-4)
    np.testing.assert_allclose(huge.toarray().T, naive_topk(naive_similarity(content.toarray(), content.toarray(),
                                                                             "cosine"), 100, np.arange(N_ITEMS)),
                               atol=1e-4)


@pytest.mark.parametrize("cls", [ItemKNNCBF, ItemKNNCFCBF])
@pytest.mark.parametrize("side", [None, SideInformation(item_content=None)])
def test_missing_content_is_a_clear_error(cls, side):
    train, _ = data()
    with pytest.raises(RecAuditError, match="needs item content") as error:
        cls().fit(train, side=side)
    assert "\n" not in str(error.value) and cls.name in str(error.value)


def test_content_with_wrong_item_count_is_refused():
    train, content = data()
    with pytest.raises(RecAuditError, match="item content has 19 rows but the training matrix has 20 items"):
        ItemKNNCBF().fit(train, side=SideInformation(content[:19]))


def test_bad_content_weight_is_refused():
    train, content = data()
    with pytest.raises(RecAuditError, match="content_weight must be a finite number > 0"):
        ItemKNNCFCBF(content_weight=0.0).fit(train, side=SideInformation(content))


def test_content_model_names_and_search_spaces():
    models = registered_models()
    for family in ("itemknn-cbf", "itemknn-cfcbf"):
        for kind in ("cosine", "asymmetric", "jaccard", "dice", "tversky"):
            cls = models[f"{family}-{kind}"]
            assert cls().similarity == kind
            assert ("content_weight" in cls.search_space) == (family == "itemknn-cfcbf")
    assert models["itemknn-cfcbf-dice"].search_space["content_weight"] == Real(1e-2, 1e2, log=True)
