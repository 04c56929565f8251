"""ItemKNN-CBF and ItemKNN-CFCBF against naive similarities over content."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.content import ItemKNNCBF, ItemKNNCFCBF
from baselines.similarity import FeatureWeighting
from common.errors import RecAuditError
from datasets.item_data import make_feature_set
from naive_neighbourhood import naive_similarity, naive_topk
from protocols.contract import Requirements, TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
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


def with_content(train, content, key: str = "tags", **others) -> TrainingData:
    """``train`` with ``content`` as the item feature set ``key`` (and ``others``, key -> values)."""
    sets = {key: content, **others}
    return TrainingData(train, item_features={k: make_feature_set(k, v) for k, v in sets.items()})


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
    model = ItemKNNCBF(similarity=kind, topk=4, shrink=1.0, **params).fit(with_content(train, content))
    expected = naive_topk(naive_similarity(content.toarray(), content.toarray(), kind, shrink=1.0, **params),
                          4, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)
    history = train[:5]
    np.testing.assert_allclose(model.score(np.arange(5), history), history.toarray() @ expected.T,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_cbf_weighting_applies_to_content_features(weighting):
    train, content = data(seed=2)
    model = ItemKNNCBF(topk=5, shrink=0.0, feature_weighting=weighting, variant="standard").fit(
        with_content(train, content))
    weighted = FeatureWeighting.fit(content, weighting).transform(content).toarray()
    expected = naive_topk(naive_similarity(weighted, weighted, "cosine"), 5, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)


def test_cbf_tois_tfidf_is_the_studys_formula_over_items_as_documents():
    """The study's TF_IDF(ICM): x -> sqrt(x) * log(N_items / (1 + df_feature)), then cosine with
    + 1e-6 in the denominator; the history scores unweighted."""
    train, content = data(seed=2)
    model = ItemKNNCBF(topk=5, shrink=0.0, feature_weighting="tfidf").fit(with_content(train, content))
    dense = content.toarray().astype(np.float64)
    df = (dense > 0).sum(axis=0)
    weighted = np.sqrt(dense) * np.log(N_ITEMS / (1.0 + df))[None, :]
    expected = naive_topk(naive_similarity(weighted, weighted, "cosine", variant="tois"), 5, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)
    history = train[:4]
    np.testing.assert_allclose(model.score(np.arange(4), history), history.toarray() @ expected.T, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("content_weight", [0.1, 1.0, 30.0])
def test_cfcbf_compares_stacked_interactions_and_weighted_content(content_weight):
    train, content = data(seed=3)
    model = ItemKNNCFCBF(topk=6, shrink=2.0, content_weight=content_weight).fit(with_content(train, content))
    stacked = np.hstack([train.toarray().T, content_weight * content.toarray()])
    expected = naive_topk(naive_similarity(stacked, stacked, "cosine", shrink=2.0), 6, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)


def test_cfcbf_content_weight_moves_between_cf_and_cbf():
    train, content = data(seed=4)
    both = with_content(train, content)
    tiny = ItemKNNCFCBF(topk=100, shrink=0.0, content_weight=1e-4).fit(both).item_similarity_
    huge = ItemKNNCFCBF(topk=100, shrink=0.0, content_weight=1e4).fit(both).item_similarity_
    items = train.T.toarray()
    np.testing.assert_allclose(tiny.toarray().T, naive_topk(naive_similarity(items, items, "cosine"), 100,
                                                            np.arange(N_ITEMS)), atol=1e-4)
    np.testing.assert_allclose(huge.toarray().T, naive_topk(naive_similarity(content.toarray(), content.toarray(),
                                                                             "cosine"), 100, np.arange(N_ITEMS)),
                               atol=1e-4)


@pytest.mark.parametrize("cls", [ItemKNNCBF, ItemKNNCFCBF])
@pytest.mark.parametrize("bare", [True, False])
def test_missing_content_is_a_clear_error(cls, bare):
    train, _ = data()
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs item features\)") as error:
        cls().fit(train if bare else TrainingData(train))
    assert "\n" not in str(error.value) and cls.name in str(error.value)


@pytest.mark.parametrize("cls", [ItemKNNCBF, ItemKNNCFCBF])
def test_a_missing_named_feature_set_is_refused_before_fitting(cls):
    train, content = data()
    model = cls(features="genres")
    assert model.requirements() == Requirements(item_features="genres")
    assert cls().requirements().item_features == "*"  # the dataset's own content, whichever it has
    tags_only = with_content(train, content)
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs item features genres\)") as refusal:
        check_requirements(model, TaskProfile.of(tags_only, np.arange(N_USERS)))
    assert "available feature sets: tags" in str(refusal.value) and "\n" not in str(refusal.value)
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs item features genres\)"):
        model.fit(tags_only)
    assert not hasattr(model, "item_similarity_")


def test_the_named_feature_set_is_the_one_compared():
    train, content = data(seed=5)
    _, other = data(seed=6)
    both = with_content(train, content, genres=other)
    for name, values in (("tags", content), ("genres", other)):
        model = ItemKNNCBF(topk=4, shrink=0.0, features=name).fit(both)
        expected = naive_topk(naive_similarity(values.toarray(), values.toarray(), "cosine"), 4,
                              exclude=np.arange(N_ITEMS))
        assert_same_sparse(model.item_similarity_.T, expected)
        assert model.features_key_ == name


@pytest.mark.parametrize("sets, chosen", [
    ({"genres": 1, "tags": 2, "bow-tfidf": 3, "bow": 4}, "bow-tfidf"),
    ({"genres": 1, "tags": 2, "bow": 4}, "tags"),
    ({"genres": 1, "bow": 4}, "genres"),
    ({"bow": 4, "image-features@0123456789ab": 5}, "bow"),
    ({"image-features@0123456789ab": 5}, "image-features@0123456789ab"),  # the only set there is
])
def test_default_features_are_the_datasets_own_content(sets, chosen):
    train, _ = data()
    values = {key: sp.csr_matrix(data(seed=seed)[1]) for key, seed in sets.items()}
    first, *others = values.items()
    model = ItemKNNCBF(topk=4).fit(with_content(train, first[1], first[0], **dict(others)))
    assert model.features_key_ == chosen


def test_default_features_are_refused_when_only_foreign_sets_exist():
    train, content = data()
    with pytest.raises(UnsupportedProtocolError, match=r"found no item content .*\(needs item features\)"):
        ItemKNNCBF().fit(with_content(train, content, "image-a@0123456789ab", **{"image-b@0123456789ab": content}))


def test_dense_features_with_missing_items_compare_like_naive_cosine():
    train, content = data(seed=7)
    dense = content.toarray() + np.float32(0.25)
    present = np.ones(N_ITEMS, dtype=bool)
    present[[3, 11]] = False  # no poster: an all-zero vector, so no similarity
    features = make_feature_set("image-features@0123456789ab", dense, present)
    model = ItemKNNCBF(topk=5, shrink=0.0, features="image-features").fit(
        TrainingData(train, item_features={features.key: features}))
    zeroed = np.where(present[:, None], dense, 0)
    expected = naive_topk(naive_similarity(zeroed, zeroed, "cosine"), 5, exclude=np.arange(N_ITEMS))
    assert_same_sparse(model.item_similarity_.T, expected)
    assert model.features_key_ == "image-features@0123456789ab"
    assert model.item_similarity_[[3, 11]].nnz == 0 and model.item_similarity_[:, [3, 11]].nnz == 0


def test_content_with_wrong_item_count_is_refused():
    train, content = data()
    with pytest.raises(RecAuditError, match="feature set 'tags' has 19 rows but the training matrix has 20 items"):
        ItemKNNCBF().fit(with_content(train, content[:19]))


def test_bad_content_weight_is_refused():
    train, content = data()
    with pytest.raises(RecAuditError, match="content_weight must be a finite number > 0"):
        ItemKNNCFCBF(content_weight=0.0).fit(with_content(train, content))


def test_content_model_names_and_search_spaces():
    models = registered_models()
    for family in ("itemknn-cbf", "itemknn-cfcbf"):
        for kind in ("cosine", "asymmetric", "jaccard", "dice", "tversky"):
            cls = models[f"{family}-{kind}"]
            assert cls().similarity == kind
            assert ("content_weight" in cls.search_space) == (family == "itemknn-cfcbf")
    assert models["itemknn-cfcbf-dice"].search_space["content_weight"] == Real(1e-2, 1e2, log=True)
