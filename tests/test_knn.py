"""ItemKNN / UserKNN and the similarity builder against naive references, for both variants
("standard": the textbook definitions; "tois": the TOIS study's code)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import baselines.similarity as similarity
from baselines.knn import ItemKNN, UserKNN
from baselines.similarity import (ColumnTopK, FeatureWeighting, NeighbourSide, SimilarityKernel, TOISFeatureWeighting,
                                  blocked_topk, topk_mask, topk_similarity)
from common.errors import RecAuditError
from naive_neighbourhood import naive_similarity, naive_tois_userknn_scores, naive_tois_weights, naive_topk
from protocols.registry import get_model_class, make_model, registered_models
from protocols.space import Categorical, Integer, Real


def binary_matrix(n_users=30, n_items=20, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))


def weighted_matrix(n_users=30, n_items=20, density=0.35, seed=1) -> sp.csr_matrix:
    """Continuous values: no two similarities tie, so the kept sets are unambiguous."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.uniform(0.5, 3.0, (n_users, n_items))
    return sp.csr_matrix(dense.astype(np.float32))


def assert_same_sparse(actual: sp.spmatrix, expected: np.ndarray) -> None:
    actual = actual.toarray()
    np.testing.assert_array_equal(actual != 0, expected != 0, err_msg="kept entries differ")
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-7)


# Integers and dyadic fractions only for set-based kernels: equal rationals stay equal in
# float32, so the tie rule (lower index wins) is what decides the kept sets.
SET_CASES = [
    ("jaccard", {}), ("dice", {}),
    ("tversky", {"tversky_alpha": 1.0, "tversky_beta": 1.0}),
    ("tversky", {"tversky_alpha": 0.5, "tversky_beta": 0.25}),
    ("tversky", {"tversky_alpha": 0.0, "tversky_beta": 2.0}),
]
CONTINUOUS_CASES = [
    ("cosine", {}), ("cosine", {"normalize": False}),
    ("asymmetric", {"asymmetric_alpha": 0.5}), ("asymmetric", {"asymmetric_alpha": 0.2}),
    ("asymmetric", {"asymmetric_alpha": 1.7}),
]


@pytest.mark.parametrize("variant", ["standard", "tois"])
@pytest.mark.parametrize("shrink", [0.0, 5.0])
@pytest.mark.parametrize("topk", [3, 7, 100])
@pytest.mark.parametrize("kind, params", SET_CASES + CONTINUOUS_CASES)
def test_item_similarity_matches_naive(kind, params, topk, shrink, variant):
    matrix = binary_matrix() if (kind, params) in SET_CASES else weighted_matrix()
    items = matrix.T.tocsr()
    kernel = SimilarityKernel(kind=kind, shrink=shrink, variant=variant, **params)
    built = topk_similarity(None, NeighbourSide.build(kernel, items), topk, exclude=np.arange(items.shape[0]))
    expected = naive_topk(naive_similarity(items.toarray(), items.toarray(), kind, shrink=shrink, variant=variant,
                                           **params), topk, exclude=np.arange(items.shape[0]))
    assert_same_sparse(built, expected)


def test_tois_epsilon_breaks_a_cosine_tie_as_the_study_does():
    # Target t has 4 items. Neighbour a shares 2 of its 4: 2 / sqrt(4 * 4) = 0.5. Neighbour b
    # shares all 4 of t's items among its 16: 4 / sqrt(4 * 16) = 0.5. An exact tie, which the
    # lower index (a) wins in "standard"; the study's 2 / (4 + 1e-6) < 4 / (8 + 1e-6) keeps b.
    t = np.zeros(18)
    t[:4] = 1
    a = np.zeros(18)
    a[[0, 1, 4, 5]] = 1
    b = np.zeros(18)
    b[[0, 1, 2, 3] + list(range(6, 18))] = 1
    vectors = sp.csr_matrix(np.array([t, a, b], dtype=np.float32))
    kept = {}
    for variant in ("standard", "tois"):
        side = NeighbourSide.build(SimilarityKernel("cosine", variant=variant), vectors)
        kept[variant] = topk_similarity(vectors[:1], side, 1, exclude=np.array([0])).toarray()[0]
    assert kept["standard"].tolist() == [0.0, 0.5, 0.0]
    assert kept["tois"][:2].tolist() == [0.0, 0.0]
    assert kept["tois"][2] == np.float32(4 / (8 + 1e-6))


@pytest.mark.parametrize("kind, params", [("tversky", {"tversky_alpha": 0.5, "tversky_beta": 1.5}),
                                          ("asymmetric", {"asymmetric_alpha": 0.3})])
def test_columns_as_targets_swap_the_roles(kind, params):
    """role='target' puts the target statistics on the columns: the result is the transpose."""
    matrix = binary_matrix(12, 9, seed=2)
    kernel = SimilarityKernel(kind, shrink=1.0, variant="tois", **params)
    as_rows = next(iter(similarity.similarity_blocks(None, NeighbourSide.build(kernel, matrix))))[2]
    columns_side = NeighbourSide.build(kernel, matrix, role="target")
    as_columns = next(iter(similarity.similarity_blocks(matrix, columns_side)))[2]
    np.testing.assert_allclose(as_columns, as_rows.T, rtol=1e-6)
    expected = naive_similarity(matrix.toarray(), matrix.toarray(), kind, shrink=1.0, variant="tois", **params)
    np.testing.assert_allclose(as_rows, expected, rtol=1e-5)


def test_ties_keep_lower_column_index():
    block = np.array([[1.0, 2.0, 2.0, 2.0, 0.0, 3.0],
                      [0.0, 0.0, 5.0, 0.0, 0.0, 0.0],
                      [4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
                      [-1.0, 0.0, -2.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, 1.0, 2.0, 1.0]], dtype=np.float32)
    kept = topk_mask(block.copy(), 3)
    assert kept.tolist() == [[False, True, True, False, False, True],
                             [False, False, True, False, False, False],
                             [True, True, True, False, False, False],
                             [True, False, True, False, False, False],
                             [False, True, False, True, True, False]]


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.int8, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=st.integers(-2, 3)),
       topk=st.integers(1, 13))
def test_topk_mask_matches_sorting_on_tie_heavy_rows(values, topk):
    kept = topk_mask(values.astype(np.float32), topk)
    np.testing.assert_array_equal(kept, naive_topk(values, topk) != 0)


@pytest.mark.parametrize("dense_product", [True, False])
@pytest.mark.parametrize("block_bytes", [1, 4 * 20 * 3, 2**30])
def test_blocked_builder_equals_dense_product_then_topk(monkeypatch, dense_product, block_bytes):
    rng = np.random.default_rng(5)
    left = sp.random(23, 9, density=0.5, random_state=rng, dtype=np.float32, format="csr")
    right = sp.random(9, 20, density=0.5, random_state=rng, dtype=np.float32, format="csr")
    monkeypatch.setattr(similarity, "use_dense_product", lambda _right, *_: dense_product)
    exclude = rng.integers(-1, 20, size=23)

    def halve_odd_columns(block, start, stop):
        block[:, 1::2] *= 0.5

    built = blocked_topk(left, right, 4, halve_odd_columns, exclude, max_block_bytes=block_bytes)
    product = (left @ right).toarray().astype(np.float64)
    product[:, 1::2] *= 0.5
    assert_same_sparse(built, naive_topk(product, 4, exclude=exclude))
    assert built.has_sorted_indices and built.dtype == np.float32


def test_dense_and_sparse_products_agree_on_cosine(monkeypatch):
    items = weighted_matrix(60, 40, seed=3).T.tocsr()
    kernel = SimilarityKernel("cosine", shrink=2.0)
    results = []
    for dense_product in (True, False):
        monkeypatch.setattr(similarity, "use_dense_product", lambda _right, *_, d=dense_product: d)
        results.append(topk_similarity(None, NeighbourSide.build(kernel, items), 5, np.arange(40)).toarray())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_feature_weighting_matches_hand_formulas():
    vectors = sp.csr_matrix(np.array([[1.0, 0.0, 2.0, 0.0],
                                      [0.0, 1.0, 1.0, 0.0],
                                      [3.0, 0.0, 0.0, 0.0]], dtype=np.float32))
    # N = 3 vectors; document frequencies (2, 1, 2, 0).
    idf = [math.log(3 / 2), math.log(3), math.log(3 / 2), 0.0]
    tfidf = FeatureWeighting.fit(vectors, "tfidf").transform(vectors).toarray()
    np.testing.assert_allclose(tfidf, [[idf[0], 0, 2 * idf[2], 0],
                                       [0, idf[1], idf[2], 0],
                                       [3 * idf[0], 0, 0, 0]], rtol=1e-6)
    lengths, average = [3.0, 2.0, 3.0], 8.0 / 3.0

    def bm25(x, v, f):
        return x * 2.2 / (x + 1.2 * (0.25 + 0.75 * lengths[v] / average)) * idf[f]

    weighted = FeatureWeighting.fit(vectors, "bm25").transform(vectors).toarray()
    np.testing.assert_allclose(weighted, [[bm25(1, 0, 0), 0, bm25(2, 0, 2), 0],
                                          [0, bm25(1, 1, 1), bm25(1, 1, 2), 0],
                                          [bm25(3, 2, 0), 0, 0, 0]], rtol=1e-6)


def test_feature_present_everywhere_gets_weight_zero():
    vectors = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    weighted = FeatureWeighting.fit(vectors, "tfidf").transform(vectors)
    assert weighted.toarray().tolist() == [[0.0, pytest.approx(math.log(2))], [0.0, 0.0]]
    assert weighted.nnz == 1


# ----- the study's TF-IDF / BM25 -------------------------------------------------------------

def test_tois_weighting_matches_hand_formulas():
    # 4 documents (items) x 3 terms (users); N = 4 documents, term counts df = (1, 3, 4).
    documents = np.array([[2.0, 1.0, 1.0],
                          [0.0, 1.0, 1.0],
                          [0.0, 1.0, 4.0],
                          [0.0, 0.0, 1.0]])
    idf = [math.log(4 / 2), math.log(4 / 4), math.log(4 / 5)]  # 0 for df = N - 1, negative for df = N
    weighting = TOISFeatureWeighting.fit(sp.csr_matrix(documents), "tfidf")
    tfidf = weighting.weight_documents(sp.csr_matrix(documents)).toarray()
    np.testing.assert_allclose(tfidf, [[math.sqrt(2) * idf[0], 0, idf[2]],
                                       [0, 0, idf[2]],
                                       [0, 0, 2 * idf[2]],
                                       [0, 0, idf[2]]], rtol=1e-6)
    lengths, average = [4.0, 2.0, 5.0, 1.0], 3.0

    def bm25(x, d, t):
        return x * 2.2 / (x + 1.2 * (0.25 + 0.75 * lengths[d] / average)) * idf[t]

    weighted = TOISFeatureWeighting.fit(sp.csr_matrix(documents), "bm25").weight_documents(sp.csr_matrix(documents))
    np.testing.assert_allclose(weighted.toarray(), [[bm25(2, 0, 0), 0, bm25(1, 0, 2)],
                                                    [0, 0, bm25(1, 1, 2)],
                                                    [0, 0, bm25(4, 2, 2)],
                                                    [0, 0, bm25(1, 3, 2)]], rtol=1e-6)
    # A new term vector (a user's history over the 4 items) takes its idf from its own entries.
    history = sp.csr_matrix(np.array([[0.0, 9.0, 0.0, 4.0]]))
    np.testing.assert_allclose(weighting.weight_terms(history).toarray(),
                               [[0, 3 * math.log(4 / 3), 0, 2 * math.log(4 / 3)]], rtol=1e-6)


@pytest.mark.parametrize("scheme", ["none", "tfidf", "bm25"])
def test_tois_weighting_matches_naive(scheme):
    train = weighted_matrix(9, 7, seed=5)
    documents = train.T.tocsr()  # items as documents, users as terms
    weighting = TOISFeatureWeighting.fit(documents, scheme)
    np.testing.assert_allclose(weighting.weight_terms(train).toarray(),
                               naive_tois_weights(train.toarray(), documents.toarray(), scheme), rtol=1e-5)
    np.testing.assert_allclose(weighting.weight_documents(documents).toarray(),
                               naive_tois_weights(train.toarray(), documents.toarray(), scheme).T, rtol=1e-5)


def test_tois_tfidf_refuses_negative_values():
    train = weighted_matrix()
    train.data[0] = -1.0
    with pytest.raises(RecAuditError, match="negative values") as error:
        ItemKNN(feature_weighting="tfidf").fit(train)
    assert "\n" not in str(error.value)
    ItemKNN(feature_weighting="tfidf", variant="standard").fit(train)


# ----- ItemKNN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_itemknn_with_weighting_is_cosine_of_weighted_items(weighting):
    train = weighted_matrix()
    model = ItemKNN(similarity="cosine", topk=6, shrink=1.0, feature_weighting=weighting,
                    variant="standard").fit(train)
    items = train.T.tocsr()
    weighted = FeatureWeighting.fit(items, weighting).transform(items).toarray()
    expected = naive_topk(naive_similarity(weighted, weighted, "cosine", shrink=1.0), 6, exclude=np.arange(20))
    assert_same_sparse(model.item_similarity_.T, expected)


@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
@pytest.mark.parametrize("kind, params", [("cosine", {}), ("asymmetric", {"asymmetric_alpha": 0.2}),
                                          ("cosine", {"normalize": False})])
def test_tois_itemknn_matches_naive(kind, params, weighting):
    """The study's items: TF_IDF(URM.T) rows, compared; scores from the weighted history."""
    train = weighted_matrix()
    model = ItemKNN(similarity=kind, topk=6, shrink=3.0, feature_weighting=weighting, **params).fit(train)
    x = train.toarray()
    items = naive_tois_weights(x, x.T, weighting).T
    expected = naive_topk(naive_similarity(items, items, kind, shrink=3.0, variant="tois", **params), 6,
                          exclude=np.arange(20))
    assert_same_sparse(model.item_similarity_.T, expected)
    history = weighted_matrix(5, 20, seed=12)
    scores = model.score(np.arange(5), history)
    weighted_history = naive_tois_weights(history.toarray(), x.T, weighting)
    np.testing.assert_allclose(scores, weighted_history @ expected.T, rtol=1e-4, atol=1e-6)


def test_tois_itemknn_bm25_history_changes_the_ranking():
    """BM25 weights a history entry by its item's length: not a per-user factor (unlike TF-IDF
    on binary data), so scoring the weighted history can reorder items."""
    train = binary_matrix(40, 20, seed=3)
    history = binary_matrix(6, 20, density=0.4, seed=4)
    orders = {}
    for weighting in ("tfidf", "bm25"):
        model = ItemKNN(topk=8, shrink=0, feature_weighting=weighting).fit(train)
        scores = model.score(np.arange(6), history)
        plain = history @ model.item_similarity_
        orders[weighting] = (np.argsort(-scores, axis=1, kind="stable"),
                             np.argsort(-plain.toarray(), axis=1, kind="stable"))
    assert (orders["tfidf"][0] == orders["tfidf"][1]).all()
    assert (orders["bm25"][0] != orders["bm25"][1]).any()


@pytest.mark.parametrize("normalize_scores", [False, True])
def test_itemknn_scores_are_history_times_similarity(normalize_scores):
    train = binary_matrix()
    model = ItemKNN(similarity="jaccard", topk=5, shrink=2.0, normalize_scores=normalize_scores,
                    variant="standard").fit(train)
    items = train.T.toarray()
    weights = naive_topk(naive_similarity(items, items, "jaccard", shrink=2.0), 5, np.arange(20)).T  # W[n, t]
    history = binary_matrix(4, 20, density=0.4, seed=9)
    h = history.toarray()
    expected = np.zeros((4, 20))
    for u in range(4):
        for t in range(20):
            used = [n for n in range(20) if h[u, n] != 0 and weights[n, t] != 0]
            total = sum(h[u, n] * weights[n, t] for n in used)
            norm = sum(abs(weights[n, t]) for n in used)
            expected[u, t] = (total / norm if norm else 0.0) if normalize_scores else total
    np.testing.assert_allclose(model.score(np.arange(4), history), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind, params", [("cosine", {}), ("tversky", {"tversky_alpha": 0.5, "tversky_beta": 1.0}),
                                          ("asymmetric", {"asymmetric_alpha": 0.8})])
def test_userknn_matches_naive(kind, params):
    train = weighted_matrix(25, 18, seed=4) if kind != "tversky" else binary_matrix(25, 18, seed=4)
    model = UserKNN(similarity=kind, topk=4, shrink=3.0, variant="standard", **params).fit(train)
    users = np.arange(25)
    x = train.toarray()
    neighbours = naive_topk(naive_similarity(x, x, kind, shrink=3.0, **params), 4, exclude=users)
    np.testing.assert_allclose(model.score(users, train), neighbours @ x, rtol=1e-5, atol=1e-6)


def test_userknn_normalize_scores_is_a_weighted_average():
    train = weighted_matrix(25, 18, seed=4)
    model = UserKNN(topk=4, shrink=3.0, normalize_scores=True, variant="standard").fit(train)
    x = train.toarray()
    neighbours = naive_topk(naive_similarity(x, x, "cosine", shrink=3.0), 4, exclude=np.arange(25))
    expected = np.zeros_like(x)
    for u in range(25):
        for t in range(18):
            used = [v for v in range(25) if neighbours[u, v] != 0 and x[v, t] != 0]
            norm = sum(abs(neighbours[u, v]) for v in used)
            expected[u, t] = sum(neighbours[u, v] * x[v, t] for v in used) / norm if norm else 0.0
    np.testing.assert_allclose(model.score(np.arange(25), train), expected, rtol=1e-5, atol=1e-7)


def test_userknn_folds_in_a_user_unseen_in_training():
    train = binary_matrix(40, 25, seed=6)
    newcomer = 17
    without = train.toarray()
    without[newcomer] = 0
    folded = UserKNN(topk=5, variant="standard").fit(sp.csr_matrix(without)).score([newcomer], train[newcomer])
    trained = UserKNN(topk=5, variant="standard").fit(train).score([newcomer], train[newcomer])
    np.testing.assert_array_equal(folded, trained)
    # A brand-new id past the training users works too, and matches the naive neighbours.
    x = without[np.arange(40) != newcomer]
    beyond = UserKNN(topk=5, variant="standard").fit(sp.csr_matrix(x)).score([39], train[newcomer])
    neighbours = naive_topk(naive_similarity(train[newcomer].toarray(), x, "cosine", shrink=10.0), 5)
    np.testing.assert_allclose(beyond, neighbours @ x, rtol=1e-5)


# ----- UserKNN, variant "tois": pruned per column, read per row ---------------------------------

def test_tois_userknn_hand_computed():
    # x0 = {0, 1}, x1 = {0}, x2 = {0, 1, 2}; cosine: s(0,1) = 1/sqrt(2) = 0.7071,
    # s(0,2) = 2/sqrt(6) = 0.8165, s(1,2) = 1/sqrt(3) = 0.5774 (the 1e-6 is negligible here).
    # Top-1 of each user: 0 -> 2, 1 -> 0, 2 -> 0.
    # standard: each user from its own top-1: u0 <- 0.8165 x2, u1 <- 0.7071 x0, u2 <- 0.8165 x0.
    # tois: user u from the users whose top-1 holds u: u0 <- 0.7071 x1 + 0.8165 x2 (0 is the
    # top-1 of both 1 and 2), u1 <- nobody (zero scores), u2 <- 0.8165 x0.
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=np.float32))
    users = np.arange(3)
    a, b = 1 / math.sqrt(2), 2 / math.sqrt(6)
    tois = UserKNN(topk=1, shrink=0).fit(train).score(users, train)
    np.testing.assert_allclose(tois, [[a + b, b, b, 0], [0, 0, 0, 0], [b, b, 0, 0]], rtol=1e-5)
    standard = UserKNN(topk=1, shrink=0, variant="standard").fit(train).score(users, train)
    np.testing.assert_allclose(standard, [[b, b, b, 0], [a, a, 0, 0], [b, b, 0, 0]], rtol=1e-5)


@pytest.mark.parametrize("kind, params, weighting", [
    (kind, params, weighting) for kind, params in [("cosine", {}), ("cosine", {"normalize": False}),
                                                   ("asymmetric", {"asymmetric_alpha": 0.8})]
    for weighting in ("none", "tfidf", "bm25")
] + [("tversky", {"tversky_alpha": 0.5, "tversky_beta": 1.5}, "none"), ("jaccard", {}, "none"), ("dice", {}, "none")])
def test_tois_userknn_matches_naive(kind, params, weighting):
    train = weighted_matrix(25, 18, seed=4) if kind in ("cosine", "asymmetric") else binary_matrix(25, 18, seed=4)
    model = UserKNN(similarity=kind, topk=4, shrink=3.0, feature_weighting=weighting, **params).fit(train)
    users = np.arange(25)
    expected = naive_tois_userknn_scores(train.toarray(), users, train.toarray(), kind, 4, weighting, shrink=3.0,
                                         **params)
    np.testing.assert_allclose(model.score(users, train), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("topk", [1, 3, 8])
def test_tois_userknn_ties_keep_the_lower_user(seed, topk):
    """Small binary data: many users tie at the k-th similarity of another user."""
    train = binary_matrix(14, 6, density=0.4, seed=seed)
    model = UserKNN(similarity="jaccard", topk=topk, shrink=0).fit(train)
    users = np.arange(14)
    expected = naive_tois_userknn_scores(train.toarray(), users, train.toarray(), "jaccard", topk)
    np.testing.assert_allclose(model.score(users, train), expected, rtol=1e-6, atol=1e-7)


def test_tois_userknn_is_the_transpose_of_the_own_top_k():
    """With a symmetric similarity, reading the per-column pruning per row is the transpose of
    each user's own top-K (no ties on continuous data)."""
    train = weighted_matrix(30, 20, seed=7)
    users = np.arange(30)
    tois = UserKNN(topk=5, shrink=0).fit(train)
    selected = tois.column_topk_.select(tois.weighting_.weight_terms(train), users, users).toarray()
    x = train.toarray()
    own = naive_topk(naive_similarity(x, x, "cosine", variant="tois"), 5, exclude=users)
    np.testing.assert_allclose(selected, own.T, rtol=1e-6)
    assert (np.count_nonzero(selected, axis=1) != 5).any()  # a user may have more or fewer than K


@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
def test_tois_userknn_folds_in_changed_and_unseen_users(weighting):
    train = weighted_matrix(30, 16, seed=8)
    x = train.toarray()
    x[29] = 0  # a user without training interactions (strong generalisation)
    train = sp.csr_matrix(x)
    model = UserKNN(topk=4, shrink=1.0, feature_weighting=weighting).fit(train)
    rng = np.random.default_rng(3)
    users = np.array([0, 5, 29, 31, 5])  # 31: an id past the training users; 5 twice, two histories
    history = (rng.random((5, 16)) < 0.4) * rng.uniform(0.5, 3.0, (5, 16))
    history[1] = x[5]  # user 5 with its training row, then with another history
    expected = naive_tois_userknn_scores(x, users, history, "cosine", 4, weighting, shrink=1.0)
    scores = model.score(users, sp.csr_matrix(history))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[1], model.score([5], train[5])[0], rtol=1e-6)


def test_tois_userknn_normalize_scores_is_a_weighted_average_of_weighted_rows():
    train = weighted_matrix(25, 18, seed=4)
    model = UserKNN(topk=4, shrink=3.0, normalize_scores=True, feature_weighting="tfidf").fit(train)
    x = train.toarray()
    weighted = naive_tois_weights(x, x.T, "tfidf")
    similarity = np.zeros((25, 25))  # S[u, v] = s(v, u) if u is in the top-K of v
    for v in range(25):
        similarity[:, v] = naive_topk(naive_similarity(weighted[v:v + 1], weighted, "cosine", shrink=3.0,
                                                       variant="tois"), 4, exclude=[v])[0]
    expected = np.zeros_like(x)
    for u in range(25):
        for t in range(18):
            used = [v for v in range(25) if similarity[u, v] != 0 and weighted[v, t] != 0]
            norm = sum(abs(similarity[u, v]) for v in used)
            expected[u, t] = sum(similarity[u, v] * weighted[v, t] for v in used) / norm if norm else 0.0
    np.testing.assert_allclose(model.score(np.arange(25), train), expected, rtol=1e-5, atol=1e-7)


def test_column_topk_lists_match_sorting():
    """The K-th and (K+1)-th entries of each column, and its first-K members, against a sort."""
    train = binary_matrix(20, 7, density=0.4, seed=1)
    kernel = SimilarityKernel("dice", variant="tois")
    side = NeighbourSide.build(kernel, train, role="target")
    for topk in (1, 2, 5, 19, 40):
        lists = ColumnTopK.build(side, train, topk)
        x = train.toarray()
        for v in range(20):
            column = naive_similarity(x[v:v + 1], x, "dice", variant="tois")[0]
            ranked = sorted((-value, u) for u, value in enumerate(column) if value != 0 and u != v)
            members = {u for _, u in ranked[:topk]}
            assert set(np.flatnonzero(lists.members[:, v].toarray().ravel())) == members
            if len(ranked) >= topk:
                value, row = ranked[topk - 1]
                assert (lists.kth_value[v], lists.kth_row[v]) == pytest.approx((-value, row))
            else:
                assert lists.kth_value[v] == -np.inf
            if len(ranked) > topk:
                value, row = ranked[topk]
                assert (lists.next_value[v], lists.next_row[v]) == pytest.approx((-value, row))
            else:
                assert lists.next_value[v] == -np.inf


def test_fits_are_deterministic():
    train = weighted_matrix(50, 30, seed=8)
    first = ItemKNN(similarity="asymmetric", topk=7, feature_weighting="bm25").fit(train).item_similarity_
    second = ItemKNN(similarity="asymmetric", topk=7, feature_weighting="bm25").fit(train).item_similarity_
    assert (first != second).nnz == 0
    np.testing.assert_array_equal(first.indptr, second.indptr)


@pytest.mark.parametrize("params, message", [
    ({"similarity": "pearson"}, "unknown similarity 'pearson'"),
    ({"topk": 0}, "topk must be an integer >= 1"),
    ({"shrink": -1.0}, "shrink must be a finite number >= 0"),
    ({"feature_weighting": "idf"}, "unknown feature_weighting 'idf'"),
    ({"similarity": "dice", "feature_weighting": "bm25"}, "has no effect on the set-based similarity 'dice'"),
    ({"variant": "paper"}, "unknown variant 'paper'"),
])
def test_bad_parameters_raise_one_line_errors(params, message):
    for cls in (ItemKNN, UserKNN):
        with pytest.raises(RecAuditError, match=message) as error:
            cls(**params).fit(binary_matrix())
        assert "\n" not in str(error.value)


def test_registered_names_and_search_spaces():
    models = registered_models()
    for family in ("itemknn", "userknn"):
        assert get_model_class(family).search_space == get_model_class(f"{family}-cosine").search_space
        for kind in similarity.SIMILARITIES:
            cls = models[f"{family}-{kind}"]
            assert "similarity" not in cls.parameter_names()
            assert cls().similarity == kind
            assert cls.search_space["topk"] == Integer(5, 1000)
            assert cls.search_space["shrink"] == Integer(0, 1000)
    assert models["itemknn-tversky"].search_space["tversky_beta"] == Real(0.0, 2.0)
    assert models["userknn-cosine"].search_space["feature_weighting"] == Categorical(("none", "tfidf", "bm25"))
    assert set(models["itemknn-jaccard"].parameter_names()) == {"topk", "shrink", "normalize_scores", "variant"}
    for name in ("itemknn", "userknn", "itemknn-cosine", "userknn-tversky"):
        assert models[name]().variant == "tois" and "variant" not in models[name].search_space
    with pytest.raises(RecAuditError, match="no parameter"):
        make_model("itemknn-jaccard", {"asymmetric_alpha": 0.3})


def test_fixed_similarity_model_equals_generic_model():
    train = binary_matrix()
    fixed = make_model("itemknn-dice", {"topk": 4, "shrink": 1}).fit(train)
    generic = ItemKNN(similarity="dice", topk=4, shrink=1).fit(train)
    assert (fixed.item_similarity_ != generic.item_similarity_).nnz == 0


# ----- behaviour on planted structure ------------------------------------------------------

def planted_data(n_users=240, n_items=60, n_groups=5, seed=11):
    """Users like the items of their own group; items differ in overall appeal, so popularity
    is a fair opponent. One held-out interaction per user; content = group + noise words."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(n_groups, size=n_users)
    item_group = np.arange(n_items) % n_groups
    appeal = rng.uniform(0.3, 1.0, n_items)
    probability = np.where(user_group[:, None] == item_group[None, :], 0.45, 0.04) * appeal
    dense = rng.random((n_users, n_items)) < probability
    dense[np.arange(n_users), user_group] = True  # item g belongs to group g: one in-group item each
    held_out = np.array([rng.choice(np.flatnonzero(row)) for row in dense])
    train = dense.copy()
    train[np.arange(n_users), held_out] = False
    words = rng.random((n_items, 15)) < 0.08
    content = np.hstack([item_group[:, None] == np.arange(n_groups)[None, :], words]).astype(np.float32)
    return sp.csr_matrix(train.astype(np.float32)), held_out, sp.csr_matrix(content)


def hits_at(scores, train, held_out, cutoff=5):
    scores = np.where(train.toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :cutoff]
    return int((top == held_out[:, None]).any(axis=1).sum())


MY_MODELS = sorted(name for name in registered_models()
                   if name.startswith(("itemknn", "userknn")) or name in ("p3alpha", "rp3beta"))


@pytest.mark.parametrize("name", MY_MODELS)
def test_model_beats_popularity_on_planted_structure(name):
    from datasets.item_data import make_feature_set
    from protocols.contract import TrainingData

    train, held_out, content = planted_data()
    users = np.arange(train.shape[0])
    popularity = np.tile(np.asarray(train.sum(axis=0)), (len(users), 1))
    baseline = hits_at(popularity, train, held_out)
    model = make_model(name).fit(TrainingData(train, item_features={"tags": make_feature_set("tags", content)}))
    hits = hits_at(model.score(users, train), train, held_out)
    assert hits > 1.2 * baseline, f"{name}: {hits} hits@5 against popularity's {baseline}"
