"""P3alpha and RP3beta, both variants, against naive dense loop references written here from
the formulas of the ``baselines.graph`` docstring (not from its code), and by hand."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.graph import P3alpha, RP3beta, topk_per_column
from common.errors import RecAuditError

VARIANTS = ("tois", "paper")


# ----- naive references -----------------------------------------------------------------------

def naive_walk(x, alpha: float, beta: float) -> np.ndarray:
    """walk[i, j] = sum_u (1/pop_i)^alpha (x_uj / sum_j' x_uj')^alpha / pop_j^beta, i != j, one term at a time."""
    x = np.asarray(x, dtype=np.float64)
    n_users, n_items = x.shape
    pop = [sum(1 for u in range(n_users) if x[u, i] != 0) for i in range(n_items)]
    walk = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            if i == j or pop[j] == 0:
                continue
            total = 0.0
            for u in range(n_users):
                if x[u, i] != 0 and x[u, j] != 0:
                    total += (1.0 / pop[i]) ** alpha * (x[u, j] / x[u].sum()) ** alpha
            walk[i, j] = total / pop[j] ** beta
    return walk


def naive_keep_largest(values: list[tuple[float, int]], k: int) -> set[int]:
    """Indices of the k largest nonzero values; ties keep the lower index."""
    ranked = sorted((-value, index) for value, index in values if value != 0)
    return {index for _, index in ranked[:k]}


def naive_row_topk(dense, k) -> np.ndarray:
    out = np.zeros_like(dense)
    for r in range(dense.shape[0]):
        for c in naive_keep_largest([(dense[r, c], c) for c in range(dense.shape[1])], k):
            out[r, c] = dense[r, c]
    return out


def naive_column_topk(dense, k) -> np.ndarray:
    return naive_row_topk(np.asarray(dense).T, k).T


def naive_normalize_rows(dense) -> np.ndarray:
    out = np.array(dense, dtype=np.float64)
    for r in range(out.shape[0]):
        if out[r].sum() != 0:
            out[r] = out[r] / out[r].sum()
    return out


def naive_similarity(x, alpha, beta, k, normalize_similarity, variant) -> np.ndarray:
    w = naive_row_topk(naive_walk(x, alpha, beta), k)
    if normalize_similarity:
        w = naive_normalize_rows(w)
    if variant == "tois":
        w = naive_column_topk(w, k)
    return w


def naive_scores(history, w, alpha, variant) -> np.ndarray:
    """tois: sum_i h_ui W[i, j]; paper: sum_i (h_ui / sum_i h_ui)^alpha W[i, j]."""
    h = np.asarray(history, dtype=np.float64)
    out = np.zeros((h.shape[0], w.shape[1]))
    for u in range(h.shape[0]):
        for i in range(h.shape[1]):
            if h[u, i] == 0:
                continue
            weight = h[u, i] if variant == "tois" else (h[u, i] / h[u].sum()) ** alpha
            out[u] += weight * w[i]
    return out


def interactions(n_users=30, n_items=20, seed=0, ratings=False) -> sp.csr_matrix:
    """Binary, or with continuous values ("ratings"): then no two walk entries tie, so the
    kept sets do not hinge on rounding."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    if ratings:
        dense *= rng.uniform(0.5, 5.0, size=dense.shape).astype(np.float32)
    return sp.csr_matrix(dense)


# ----- by hand ------------------------------------------------------------------------------------

# 4 users x 3 items, binary:      item 0  1  2      deg_u
HAND = np.array([[1, 1, 0],      # u0    1  1  .      2
                 [1, 0, 1],      # u1    1  .  1      2
                 [1, 1, 1],      # u2    1  1  1      3
                 [0, 1, 0]],     # u3    .  1  .      1
                dtype=np.float32)  # pop_i: 3  3  2
# With alpha = 1, walk[i, j] = (1/pop_i) sum_{u has i and j} 1/deg_u:
#   items 0,1 share u0, u2: 1/2 + 1/3 = 5/6;  0,2 share u1, u2: 5/6;  1,2 share u2: 1/3.
#   walk[0,1] = 5/6 / 3 = 5/18   walk[0,2] = 5/18   walk[1,0] = 5/18
#   walk[1,2] = 1/3 / 3 = 1/9    walk[2,0] = 5/6 / 2 = 5/12   walk[2,1] = 1/3 / 2 = 1/6
#
# P3alpha, alpha 1, topk 1:
#   row pruning: row 0 ties 5/18 = 5/18 -> lower column 1; row 1 -> col 0 (5/18 > 1/9);
#                row 2 -> col 0 (5/12 > 1/6).  "paper" stops here.
#   column pruning ("tois"): column 0 holds rows 1 (5/18) and 2 (5/12) -> row 2 stays;
#                column 1 holds row 0 only.  Row 1 is left empty.
# RP3beta, alpha 1, beta 1, topk 1: divide column j by pop_j (3, 3, 2):
#   walk[0,1] = 5/54  walk[0,2] = 5/36  walk[1,0] = 5/54  walk[1,2] = 1/18  walk[2,0] = 5/36  walk[2,1] = 1/18
#   row pruning: row 0 -> col 2 (5/36); row 1 -> col 0 (5/54); row 2 -> col 0 (5/36).
#   column pruning: column 0 holds rows 1 (5/54) and 2 (5/36) -> row 2 stays.
#   normalize_similarity: each pruned row has one entry -> 1; the column pruning then sees a
#   tie 1 = 1 in column 0 and keeps the lower row, 1: normalising changes the kept set.
# Scores of u3 (history: item 1 only): "tois" = row 1 of W; "paper" = (1/1)^alpha row 1 = row 1;
# with a history of weights (2 on item 0, 6 on item 2) and alpha 0.5, "paper" weighs row 0 by
# (2/8)^0.5 = 1/2 and row 2 by (6/8)^0.5 = sqrt(3)/2; "tois" by 2 and 6.
HAND_CASES = [
    (P3alpha, {"alpha": 1.0}, False, "paper", {(0, 1): 5 / 18, (1, 0): 5 / 18, (2, 0): 5 / 12}),
    (P3alpha, {"alpha": 1.0}, False, "tois", {(0, 1): 5 / 18, (2, 0): 5 / 12}),
    (RP3beta, {"alpha": 1.0, "beta": 1.0}, False, "paper", {(0, 2): 5 / 36, (1, 0): 5 / 54, (2, 0): 5 / 36}),
    (RP3beta, {"alpha": 1.0, "beta": 1.0}, False, "tois", {(0, 2): 5 / 36, (2, 0): 5 / 36}),
    (RP3beta, {"alpha": 1.0, "beta": 1.0}, True, "paper", {(0, 2): 1.0, (1, 0): 1.0, (2, 0): 1.0}),
    (RP3beta, {"alpha": 1.0, "beta": 1.0}, True, "tois", {(0, 2): 1.0, (1, 0): 1.0}),
]


@pytest.mark.parametrize("cls, params, normalize_similarity, variant, expected", HAND_CASES)
def test_walk_computed_by_hand(cls, params, normalize_similarity, variant, expected):
    model = cls(topk=1, normalize_similarity=normalize_similarity, variant=variant, **params)
    model.fit(sp.csr_matrix(HAND))
    dense = np.zeros((3, 3))
    for (i, j), value in expected.items():
        dense[i, j] = value
    np.testing.assert_allclose(model.item_similarity_.toarray(), dense, rtol=1e-6)
    np.testing.assert_allclose(naive_similarity(HAND, params["alpha"], params.get("beta", 0.0), 1,
                                                normalize_similarity, variant), dense, rtol=1e-12)


def test_scores_computed_by_hand():
    history = sp.csr_matrix(np.array([[0, 1, 0], [2, 0, 6]], dtype=np.float32))
    tois = RP3beta(topk=2, alpha=0.5, beta=0.0, variant="tois").fit(sp.csr_matrix(HAND))
    paper = RP3beta(topk=2, alpha=0.5, beta=0.0, variant="paper").fit(sp.csr_matrix(HAND))
    w_tois, w_paper = tois.item_similarity_.toarray(), paper.item_similarity_.toarray()
    np.testing.assert_allclose(tois.score(np.arange(2), history),
                               [w_tois[1], 2 * w_tois[0] + 6 * w_tois[2]], rtol=1e-6)
    np.testing.assert_allclose(paper.score(np.arange(2), history),
                               [w_paper[1], 0.5 * w_paper[0] + np.sqrt(3) / 2 * w_paper[2]], rtol=1e-6)


# ----- against the naive references -----------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("normalize_similarity", [False, True])
@pytest.mark.parametrize("topk", [3, 7, 100])
@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.6, 1.8])
def test_p3alpha_matches_naive_walk(alpha, topk, normalize_similarity, variant):
    train = interactions(ratings=True)
    model = P3alpha(topk=topk, alpha=alpha, normalize_similarity=normalize_similarity, variant=variant).fit(train)
    expected = naive_similarity(train.toarray(), alpha, 0.0, topk, normalize_similarity, variant)
    np.testing.assert_array_equal(model.item_similarity_.toarray() != 0, expected != 0)
    np.testing.assert_allclose(model.item_similarity_.toarray(), expected, rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("normalize_similarity", [False, True])
@pytest.mark.parametrize("alpha, beta, topk", [(1.0, 0.5, 4), (0.7, 1.3, 6), (1.2, 0.25, 100), (0.0, 0.8, 2)])
def test_rp3beta_matches_naive_walk(alpha, beta, topk, normalize_similarity, variant):
    train = interactions(seed=3, ratings=True)
    model = RP3beta(topk=topk, alpha=alpha, beta=beta, normalize_similarity=normalize_similarity,
                    variant=variant).fit(train)
    expected = naive_similarity(train.toarray(), alpha, beta, topk, normalize_similarity, variant)
    np.testing.assert_array_equal(model.item_similarity_.toarray() != 0, expected != 0)
    np.testing.assert_allclose(model.item_similarity_.toarray(), expected, rtol=2e-5, atol=1e-8)


def test_column_pruning_really_prunes_in_the_tested_cases():
    """The tois/paper comparisons above are not vacuous: at small k the column pruning drops
    entries, and the pruned matrix has at most k entries in every row and column."""
    train = interactions(seed=3, ratings=True)
    tois = RP3beta(topk=4, alpha=1.0, beta=0.5, variant="tois").fit(train).item_similarity_
    paper = RP3beta(topk=4, alpha=1.0, beta=0.5, variant="paper").fit(train).item_similarity_
    assert tois.nnz < paper.nnz
    assert np.diff(tois.indptr).max() <= 4 and np.diff(tois.tocsc().indptr).max() <= 4
    assert np.diff(paper.tocsc().indptr).max() > 4


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_scores_match_naive(variant, alpha):
    train = interactions(seed=7, ratings=True)
    model = RP3beta(topk=5, alpha=alpha, beta=0.4, variant=variant).fit(train)
    history = interactions(6, 20, seed=8, ratings=True)
    expected = naive_scores(history.toarray(), model.item_similarity_.toarray(), alpha, variant)
    np.testing.assert_allclose(model.score(np.arange(6), history), expected, rtol=1e-5, atol=1e-8)


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
    """Binary data uses diag(pop^-a) (D B)^T (D B); ties are common there, so the row-pruned
    ("paper") matrix is checked by the top-K property, and the "tois" matrix is its column
    pruning (the same float32 values: exact ties, resolved by the lower row)."""
    train = interactions(seed=12)
    paper = RP3beta(topk=topk, alpha=alpha, beta=beta, normalize_similarity=normalize_similarity,
                    variant="paper").fit(train).item_similarity_.toarray()
    tois = RP3beta(topk=topk, alpha=alpha, beta=beta, normalize_similarity=normalize_similarity,
                   variant="tois").fit(train).item_similarity_.toarray()
    assert_is_topk_of(paper, naive_walk(train.toarray(), alpha, beta), topk, normalize_similarity)
    np.testing.assert_array_equal(tois, naive_column_topk(paper, topk))


def test_topk_per_column_keeps_the_largest_and_breaks_ties_by_lower_row():
    dense = np.array([[0.0, 3.0, 1.0],
                      [2.0, 3.0, 0.0],
                      [5.0, 1.0, 0.0],
                      [2.0, 3.0, 4.0]], dtype=np.float32)
    pruned = topk_per_column(sp.csr_matrix(dense), 2)
    expected = np.array([[0.0, 3.0, 1.0],
                         [2.0, 3.0, 0.0],   # column 0: 5 and the first of the tied 2s (row 1)
                         [5.0, 0.0, 0.0],   # column 1: three 3s -> rows 0 and 1
                         [0.0, 0.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(pruned.toarray(), expected)
    assert pruned.has_sorted_indices and pruned.dtype == np.float32
    np.testing.assert_array_equal(topk_per_column(sp.csr_matrix(dense), 10).toarray(), dense)
    np.testing.assert_array_equal(pruned.toarray(), naive_column_topk(dense, 2))


# ----- properties and parameters --------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_rp3beta_with_beta_zero_is_p3alpha(variant):
    train = interactions(40, 25, seed=5)
    rp3 = RP3beta(topk=8, alpha=0.9, beta=0.0, variant=variant).fit(train).item_similarity_
    p3 = P3alpha(topk=8, alpha=0.9, variant=variant).fit(train).item_similarity_
    assert (rp3 != p3).nnz == 0


def test_variants_rank_alike_without_pruning_on_binary_data():
    """topk >= n_items, no normalisation: both variants are the exact walk; on a binary history
    the paper's first step is a per-user constant, so the rankings agree."""
    train = interactions(40, 25, seed=6)
    history = interactions(8, 25, seed=9)
    scores = [RP3beta(topk=1000, alpha=0.8, beta=0.3, variant=variant).fit(train).score(np.arange(8), history)
              for variant in VARIANTS]
    for tois, paper in zip(*scores):
        positive = tois > 0
        np.testing.assert_array_equal(positive, paper > 0)
        ratio = paper[positive] / tois[positive]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


def test_default_variant_is_the_studys():
    assert P3alpha().variant == "tois" and RP3beta().variant == "tois"
    assert "variant" not in P3alpha.search_space and "variant" not in RP3beta.search_space


def test_fit_is_deterministic_and_has_no_self_loops():
    train = interactions(50, 30, seed=9)
    for variant in VARIANTS:
        first = RP3beta(topk=10, variant=variant).fit(train).item_similarity_
        second = RP3beta(topk=10, variant=variant).fit(train).item_similarity_
        assert (first != second).nnz == 0
        assert not first.diagonal().any()
        assert np.diff(first.indptr).max() <= 10


@pytest.mark.parametrize("params, message", [
    ({"topk": -3}, "topk must be an integer >= 1"),
    ({"alpha": -0.5}, "alpha must be a finite number >= 0"),
    ({"beta": float("nan")}, "beta must be a finite number >= 0"),
    ({"variant": "original"}, "unknown variant 'original'; known variants: tois, paper"),
])
def test_bad_parameters_raise(params, message):
    with pytest.raises(RecAuditError, match=message):
        RP3beta(**params).fit(interactions())


def test_negative_interaction_values_are_refused():
    train = interactions().toarray()
    train[0, train[0].nonzero()[0][0]] = -1.0
    with pytest.raises(RecAuditError, match="needs nonnegative interaction values"):
        P3alpha().fit(sp.csr_matrix(train))
