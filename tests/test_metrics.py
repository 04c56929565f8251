"""Metric formulas against hand-computed values (the arithmetic is in the comments)."""
from math import log2

import numpy as np
import pytest

from common.errors import RecAuditError
from protocols import metrics as M

# Four users, ranked lists of length 5 (True = relevant item at that rank).
HITS = np.array([
    [1, 0, 1, 0, 0],  # hits at ranks 1 and 3, R = 2
    [0, 1, 0, 1, 0],  # hits at ranks 2 and 4, R = 4
    [0, 0, 0, 0, 0],  # no hit, R = 1
    [1, 1, 1, 1, 1],  # all five hit, R = 10
], dtype=bool)
N_RELEVANT = np.array([2, 4, 1, 10])


def test_precision():
    # hits in the top k divided by k
    assert M.precision(HITS, N_RELEVANT, 5) == pytest.approx([2 / 5, 2 / 5, 0, 5 / 5])
    assert M.precision(HITS, N_RELEVANT, 3) == pytest.approx([2 / 3, 1 / 3, 0, 3 / 3])


def test_recall_and_mult_vae_recall():
    # recall: hits / R; Mult-VAE recall: hits / min(k, R)
    assert M.recall(HITS, N_RELEVANT, 5) == pytest.approx([2 / 2, 2 / 4, 0, 5 / 10])
    assert M.recall_mv(HITS, N_RELEVANT, 5) == pytest.approx([2 / 2, 2 / 4, 0, 5 / 5])
    assert M.recall(HITS, N_RELEVANT, 3) == pytest.approx([2 / 2, 1 / 4, 0, 3 / 10])
    assert M.recall_mv(HITS, N_RELEVANT, 3) == pytest.approx([2 / 2, 1 / 3, 0, 3 / 3])


def test_ndcg():
    # user 0, k=5: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (2 relevant) = 1 + 1/log2(3)
    # user 1, k=5: DCG = 1/log2(3) + 1/log2(5); IDCG (min(5, 4) = 4) = 1 + 1/log2 3 + 1/2 + 1/log2 5
    # user 3: every rank a hit, so DCG = IDCG
    expected_5 = [1.5 / (1 + 1 / log2(3)),
                  (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3) + 0.5 + 1 / log2(5)),
                  0.0, 1.0]
    assert M.ndcg(HITS, N_RELEVANT, 5) == pytest.approx(expected_5)
    assert expected_5[0] == pytest.approx(0.9197207891)
    # user 1, k=3: DCG = 1/log2(3); IDCG over min(3, 4) = 3 ranks = 1 + 1/log2(3) + 1/2
    assert M.ndcg(HITS, N_RELEVANT, 3)[1] == pytest.approx((1 / log2(3)) / (1 + 1 / log2(3) + 0.5))


def test_ndcg_of_the_tois_code_divides_by_all_relevant_items():
    # user 1, k=3: DCG = 1/log2(3); IDCG over all R = 4 relevant items = 1 + 1/log2 3 + 1/2 + 1/log2 5
    idcg_4 = 1 + 1 / log2(3) + 0.5 + 1 / log2(5)
    assert M.ndcg_tois(HITS, N_RELEVANT, 3)[1] == pytest.approx((1 / log2(3)) / idcg_4)
    # user 3, k=5: five hits of R = 10: DCG over 5 ranks, IDCG over 10 ranks, so below 1
    idcg_10 = sum(1 / log2(r + 1) for r in range(1, 11))
    dcg_5 = sum(1 / log2(r + 1) for r in range(1, 6))
    assert M.ndcg_tois(HITS, N_RELEVANT, 5)[3] == pytest.approx(dcg_5 / idcg_10)
    # when R <= k both definitions agree
    assert M.ndcg_tois(HITS, N_RELEVANT, 5)[0] == pytest.approx(M.ndcg(HITS, N_RELEVANT, 5)[0])


def test_hit_rate_and_reciprocal_rank():
    assert M.hit_rate(HITS, N_RELEVANT, 1) == pytest.approx([1, 0, 0, 1])
    assert M.hit_rate(HITS, N_RELEVANT, 2) == pytest.approx([1, 1, 0, 1])
    # first hit at rank 1, 2, none, 1
    assert M.reciprocal_rank(HITS, N_RELEVANT, 5) == pytest.approx([1, 1 / 2, 0, 1])
    # user 1's first hit (rank 2) is beyond k = 1
    assert M.reciprocal_rank(HITS, N_RELEVANT, 1) == pytest.approx([1, 0, 0, 1])


def test_average_precision():
    # user 0, k=5: (P@1 + P@3) / min(5, 2) = (1 + 2/3) / 2
    # user 1, k=5: (P@2 + P@4) / min(5, 4) = (1/2 + 2/4) / 4
    # user 3, k=5: (1 + 1 + 1 + 1 + 1) / min(5, 10)
    assert M.average_precision(HITS, N_RELEVANT, 5) == pytest.approx([(1 + 2 / 3) / 2, (0.5 + 0.5) / 4, 0, 1])
    # user 1, k=3: P@2 / min(3, 4) = (1/2) / 3
    assert M.average_precision(HITS, N_RELEVANT, 3)[1] == pytest.approx(1 / 6)


def test_auc_mann_whitney_with_ties():
    # relevant scores 0.9, 0.4; non-relevant 0.8, 0.4, 0.1.
    # pairs: 0.9 beats all three (3); 0.4 loses to 0.8, ties 0.4 (1/2), beats 0.1 -> 1.5; 4.5 / 6
    # ascending mid-ranks: 0.1 -> 1, the two 0.4 -> 2.5, 0.8 -> 4, 0.9 -> 5; relevant sum 7.5
    # AUC = (7.5 - 2 * 3 / 2) / (2 * 3) = 0.75
    assert M.auc(np.array([7.5]), np.array([2]), np.array([5])) == pytest.approx([0.75])


def test_auc_undefined_without_negatives():
    values = M.auc(np.array([3.0, 1.0]), np.array([2, 1]), np.array([2, 2]))
    assert np.isnan(values[0]) and values[1] == pytest.approx(0.0)


def test_list_metrics():
    exposure = np.array([0, 0, 1, 3])
    assert M.coverage(exposure) == pytest.approx(2 / 4)
    # sorted [0, 0, 1, 3], weights 2i - n - 1 = [-3, -1, 1, 3]: (1 + 9) / (4 * 4)
    assert M.gini(exposure) == pytest.approx(10 / 16)
    assert M.gini(np.array([2, 2, 2, 2])) == pytest.approx(0.0)
    assert M.gini(np.array([0, 0, 0, 5])) == pytest.approx(3 / 4)  # (n - 1) / n
    # item popularity 10 and 2 in a list of two, 4 alone: means 6 and 4
    assert M.popularity(np.array([12.0, 4.0]), np.array([2, 1])) == pytest.approx([6, 4])


def test_training_popularity_counts_users():
    train = np.array([[1, 0, 5], [1, 0, 0]])
    assert M.training_popularity(train) == pytest.approx([2, 0, 1])


def test_per_user_metrics_labels():
    values = M.per_user_metrics(HITS, N_RELEVANT, ["ndcg", "hr", "auc", "gini"], [1, 5])
    assert list(values) == ["ndcg@1", "ndcg@5", "hr@1", "hr@5"]
    with pytest.raises(ValueError):
        M.per_user_metrics(HITS, N_RELEVANT, ["ndcg"], [10])


def test_names_and_cutoffs_are_checked():
    assert M.check_metric_names(None) == list(M.ALL_METRICS)
    assert M.check_metric_names(["hr", "ndcg", "hr"]) == ["hr", "ndcg"]
    with pytest.raises(RecAuditError, match="unknown metric 'nDCG'.*ndcg"):
        M.check_metric_names(["nDCG"])
    assert M.check_cutoffs([20, 5, 5]) == [5, 20]
    for bad in ([], [0], [5, -1], [2.5], [True]):
        with pytest.raises(RecAuditError, match="cutoffs"):
            M.check_cutoffs(bad)
    assert M.metric_label("auc", 10) == "auc"
    assert M.metric_label("ndcg", 10) == "ndcg@10"
    assert set(M.METRIC_VERSIONS) == set(M.ALL_METRICS)
