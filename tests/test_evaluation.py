"""The batched evaluator against hand-computed cases and a deliberately naive reimplementation."""
from collections import Counter
from math import log2

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from common.errors import RecAuditError
from protocols import evaluation as E
from protocols.contract import Recommender
from protocols.evaluation import RankingTask, evaluate, evaluate_scores, final_data, tuning_data
from protocols.split_data import Split


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for row, items in enumerate(rows):
        dense[row, items] = 1.0
    return sp.csr_matrix(dense)


def full_task(history: list[list[int]], truth: list[list[int]], n_items: int) -> RankingTask:
    return RankingTask(users=np.arange(len(truth)), history=csr(history, n_items),
                       truth=csr(truth, n_items), exclude=csr(history, n_items))


def fixed_scores(scores: np.ndarray):
    """A scores_fn returning precomputed rows (task users are 0..n-1)."""
    return lambda users, history: scores[users]


# ----- a deliberately naive evaluator: loops, sets, sorted() ----------------------------------
def naive_evaluate(scores, history, truth, cutoffs, popularity):
    per_user, lists = [], {k: [] for k in cutoffs}
    n_items = scores.shape[1]
    for user in range(scores.shape[0]):
        excluded = set(np.flatnonzero(history[user]).tolist())
        relevant = set(np.flatnonzero(truth[user]).tolist()) - excluded
        if not relevant:
            continue
        candidates = [item for item in range(n_items) if item not in excluded]
        ranking = sorted(candidates, key=lambda item: (-scores[user, item], item))
        row = {"user": user}
        for k in cutoffs:
            top = ranking[:k]
            hit_ranks = [rank for rank, item in enumerate(top, start=1) if item in relevant]
            row[f"precision@{k}"] = len(hit_ranks) / k
            row[f"recall@{k}"] = len(hit_ranks) / len(relevant)
            row[f"recall_mv@{k}"] = len(hit_ranks) / min(k, len(relevant))
            dcg = sum(1 / log2(rank + 1) for rank in hit_ranks)
            ideal = sum(1 / log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
            row[f"ndcg@{k}"] = dcg / ideal
            row[f"ndcg_tois@{k}"] = dcg / sum(1 / log2(rank + 1) for rank in range(1, len(relevant) + 1))
            row[f"hr@{k}"] = 1.0 if hit_ranks else 0.0
            row[f"mrr@{k}"] = 1 / hit_ranks[0] if hit_ranks else 0.0
            precisions = [sum(1 for r in hit_ranks if r <= rank) / rank for rank in hit_ranks]
            row[f"map@{k}"] = sum(precisions) / min(k, len(relevant))
            lists[k].append(top)
        negatives = [item for item in candidates if item not in relevant]
        pairs = [1.0 if scores[user, r] > scores[user, n] else 0.5 if scores[user, r] == scores[user, n] else 0.0
                 for r in relevant for n in negatives]
        row["auc"] = sum(pairs) / len(pairs) if pairs else float("nan")
        per_user.append(row)
    if not per_user:
        return per_user, {}
    summary = {}
    for k in cutoffs:
        counts = Counter(item for top in lists[k] for item in top)
        exposure = [counts.get(item, 0) for item in range(n_items)]
        summary[f"coverage@{k}"] = len(counts) / n_items
        # Gini as the mean absolute difference over all item pairs (independent of the sorted form)
        total = sum(exposure)
        summary[f"gini@{k}"] = sum(abs(a - b) for a in exposure for b in exposure) / (2 * n_items * total)
        summary[f"popularity@{k}"] = sum(sum(popularity[i] for i in top) / len(top) for top in lists[k]) / len(lists[k])
    return per_user, summary


@st.composite
def ranking_problems(draw):
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(2, 25))
    seed = draw(st.integers(0, 2**32 - 1))
    tied = draw(st.booleans())
    rng = np.random.default_rng(seed)
    if tied:  # few distinct values: ties everywhere
        scores = rng.integers(0, 3, size=(n_users, n_items)).astype(np.float32)
    else:  # distinct values
        scores = (rng.permutation(n_users * n_items).reshape(n_users, n_items) / 7.0 - 3).astype(np.float32)
    history = rng.random((n_users, n_items)) < draw(st.sampled_from([0.0, 0.3, 0.7]))
    truth = rng.random((n_users, n_items)) < draw(st.sampled_from([0.1, 0.3]))
    cutoffs = draw(st.lists(st.sampled_from([1, 2, 3, 5, 10, 40]), min_size=1, max_size=4))
    return scores, history, truth, cutoffs


@settings(max_examples=80, deadline=None)
@given(ranking_problems(), st.sampled_from([1, 3, None]))
def test_agrees_with_naive_evaluator(problem, batch_size):
    scores, history, truth, cutoffs = problem
    expected_users, expected_summary = naive_evaluate(scores, history, truth, sorted(set(cutoffs)),
                                                      popularity=np.arange(scores.shape[1]) % 4)
    if not expected_users:
        with pytest.raises(RecAuditError, match="no user"):
            evaluate_scores(fixed_scores(scores), task_from_dense(history, truth), cutoffs)
        return
    result = evaluate_scores(fixed_scores(scores), task_from_dense(history, truth), cutoffs,
                             batch_size=batch_size, item_popularity=np.arange(scores.shape[1]) % 4)
    expected = pd.DataFrame(expected_users)
    assert result.n_users == len(expected)
    assert result.n_dropped_users == scores.shape[0] - len(expected)
    assert sorted(result.per_user.columns) == sorted(expected.columns)
    for column in expected.columns:
        np.testing.assert_allclose(result.per_user[column].to_numpy(), expected[column].to_numpy(dtype=float),
                                   rtol=1e-12, atol=1e-12, err_msg=column)
    for label, value in expected_summary.items():
        assert result.summary[label] == pytest.approx(value, abs=1e-12), label


@settings(max_examples=40, deadline=None)
@given(ranking_problems(), st.integers(0, 2**32 - 1))
def test_sampled_equals_full_ranking_over_the_candidates(problem, seed):
    # ranking a user's candidates is full ranking with every other item excluded
    scores, history, truth, cutoffs = problem
    rng = np.random.default_rng(seed)
    truth &= ~history
    in_candidates = truth | (rng.random(truth.shape) < 0.5)
    rows = [np.concatenate([np.flatnonzero(truth[u]), rng.permutation(np.flatnonzero(in_candidates[u] & ~truth[u]))])
            for u in range(len(truth))]
    candidates = np.full((len(rows), max(len(r) for r in rows) + 1), E.PAD_ITEM)
    for u, row in enumerate(rows):
        candidates[u, :len(row)] = row
    sampled = RankingTask(users=np.arange(len(truth)), history=sp.csr_matrix(history.astype(np.float32)),
                          truth=sp.csr_matrix(truth.astype(np.float32)),
                          exclude=sp.csr_matrix(history.astype(np.float32)), candidates=candidates)
    restricted = task_from_dense(history | ~in_candidates, truth)
    if not truth.any():
        return
    expected = evaluate_scores(fixed_scores(scores), restricted, cutoffs)
    result = evaluate_scores(fixed_scores(scores), sampled, cutoffs, batch_size=2)
    assert result.sampled and not expected.sampled
    pd.testing.assert_frame_equal(result.per_user, expected.per_user)
    assert result.summary == pytest.approx(expected.summary, nan_ok=True)


def task_from_dense(history, truth) -> RankingTask:
    return RankingTask(users=np.arange(len(truth)), history=sp.csr_matrix(history.astype(np.float32)),
                       truth=sp.csr_matrix(truth.astype(np.float32)), exclude=sp.csr_matrix(history.astype(np.float32)))


# ----- golden cases through the evaluator ---------------------------------------------------
def test_golden_ndcg_ranks_one_and_three():
    # scores rank items 0..5 in order; history item 1 is excluded, so the list is 0, 2, 3, 4, 5
    # truth {0, 3}: ranks 1 and 3. NDCG@5 = (1 + 1/log2 4) / (1 + 1/log2 3); AP@5 = (1 + 2/3) / 2
    scores = np.array([[6, 5, 4, 3, 2, 1]], dtype=np.float32)
    task = full_task([[1]], [[0, 3]], 6)
    result = evaluate_scores(fixed_scores(scores), task, [5], metrics=["ndcg", "map", "precision", "auc"])
    row = result.per_user.iloc[0]
    assert row["ndcg@5"] == pytest.approx(1.5 / (1 + 1 / log2(3)))
    assert row["map@5"] == pytest.approx((1 + 2 / 3) / 2)
    assert row["precision@5"] == pytest.approx(2 / 5)
    # candidates 0, 2, 3, 4, 5; relevant 0 and 3 beat 3 and 2 of the 3 negatives: 5 / 6
    assert row["auc"] == pytest.approx(5 / 6)
    assert list(result.per_user.columns) == ["user", "ndcg@5", "map@5", "precision@5", "auc"]


def test_history_items_are_never_ranked():
    # history items get the best scores; with them excluded the truth item 3 comes first
    scores = np.array([[9, 8, 7, 1, 0], [0, 1, 2, 3, 4]], dtype=np.float32)
    task = full_task([[0, 1, 2], [4]], [[3], [3]], 5)
    result = evaluate_scores(fixed_scores(scores), task, [1], metrics=["hr"])
    assert result.per_user["hr@1"].tolist() == [1.0, 1.0]


def test_excluded_truth_is_removed_and_empty_users_dropped():
    # user 0: truth {1, 2} but 1 is history -> truth {2}; user 1: no truth; user 2: truth only in history
    scores = np.array([[0, 5, 4, 3], [0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.float32)
    task = full_task([[1], [], [0]], [[1, 2], [], [0]], 4)
    result = evaluate_scores(fixed_scores(scores), task, [1, 2], metrics=["recall", "hr"])
    assert result.n_users == 1 and result.n_dropped_users == 2
    assert result.per_user["user"].tolist() == [0]
    assert result.per_user["recall@1"].tolist() == [1.0]  # item 2 first once item 1 is excluded


def test_tie_break_by_lower_item_id_is_deterministic():
    scores = np.zeros((2, 50), dtype=np.float32)
    task = full_task([[], []], [[0], [49]], 50)
    runs = [evaluate_scores(fixed_scores(scores), task, [1, 49], metrics=["hr", "mrr"]) for _ in range(3)]
    assert runs[0].per_user["hr@1"].tolist() == [1.0, 0.0]
    assert runs[0].per_user["mrr@49"].tolist() == [1.0, 0.0]  # item 49 is 50th of 50
    for run in runs[1:]:
        pd.testing.assert_frame_equal(run.per_user, runs[0].per_user)


def test_negative_zero_ties_with_zero():
    # -0.0 and 0.0 are the same score: the tie goes to the lower id, and AUC counts it as 1/2
    scores = np.array([[0.0, -0.0, -1.0]], dtype=np.float32)
    result = evaluate_scores(fixed_scores(scores), full_task([[]], [[1]], 3), [1], metrics=["hr", "auc"])
    assert result.per_user["hr@1"].tolist() == [0.0]
    assert result.per_user["auc"].tolist() == [pytest.approx(0.75)]  # beats -1.0, ties 0.0


def test_short_lists_and_infinite_scores():
    # 3 items, 2 in history: the list at k=5 holds one item; -inf is still a score, not an exclusion
    scores = np.array([[np.inf, 1, -np.inf]], dtype=np.float32)
    task = full_task([[0, 1]], [[2]], 3)
    result = evaluate_scores(fixed_scores(scores), task, [5], metrics=["hr", "precision", "coverage", "gini"])
    assert result.per_user["hr@5"].tolist() == [1.0]
    assert result.per_user["precision@5"].tolist() == [pytest.approx(1 / 5)]
    assert result.summary["coverage@5"] == pytest.approx(1 / 3)
    assert result.summary["gini@5"] == pytest.approx(2 / 3)  # (n - 1) / n with n = 3


def test_batch_size_and_block_size_invariance(monkeypatch):
    rng = np.random.default_rng(3)
    scores = rng.random((40, 30)).astype(np.float32)
    task = task_from_dense(rng.random((40, 30)) < 0.3, rng.random((40, 30)) < 0.2)
    reference = evaluate_scores(fixed_scores(scores), task, [1, 5, 10], batch_size=40)
    one = evaluate_scores(fixed_scores(scores), task, [1, 5, 10], batch_size=1)
    monkeypatch.setattr(E, "RANK_BLOCK_ENTRIES", 70)  # blocks of two users inside each batch
    blocked = evaluate_scores(fixed_scores(scores), task, [1, 5, 10], batch_size=7)
    for other in (one, blocked):
        pd.testing.assert_frame_equal(other.per_user, reference.per_user, check_exact=True)
        assert other.summary == reference.summary


def test_auc_matches_sklearn_per_user():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 6, size=(25, 40)).astype(np.float32)  # many ties
    history, truth = rng.random((25, 40)) < 0.3, rng.random((25, 40)) < 0.25
    result = evaluate_scores(fixed_scores(scores), task_from_dense(history, truth), [5], metrics=["auc"])
    by_user = dict(zip(result.per_user["user"], result.per_user["auc"]))
    checked = 0
    for user in range(25):
        candidates = ~history[user]
        labels = (truth[user] & candidates)[candidates]
        if labels.any() and not labels.all():
            assert by_user[user] == pytest.approx(roc_auc_score(labels, scores[user][candidates]), abs=1e-12)
            checked += 1
    assert checked > 15


def test_sampled_golden_truth_among_99_negatives():
    # one user, 1000 items; truth item 500 among negatives 0..98. Two negatives score above it,
    # so it ranks 3rd of 100: HR@1 = 0, HR@5 = 1, NDCG@10 = 1/log2(4), MRR = 1/3, AUC = 97/99.
    # Items outside the candidates score highest of all and must be ignored.
    n_items = 1000
    scores = np.full((1, n_items), 100.0, dtype=np.float32)
    scores[0, :99] = np.linspace(0, 1, 99)
    scores[0, 97:99] = [2.0, 3.0]
    scores[0, 500] = 1.5
    candidates = np.array([[500] + list(range(99))])
    truth = csr([[500]], n_items)
    task = RankingTask(users=np.array([0]), history=csr([[]], n_items), truth=truth,
                       exclude=csr([[]], n_items), candidates=candidates)
    result = evaluate_scores(fixed_scores(scores), task, [1, 5, 10])
    row = result.per_user.iloc[0]
    assert result.sampled
    assert (row["hr@1"], row["hr@5"], row["mrr@10"]) == (0.0, 1.0, pytest.approx(1 / 3))
    assert row["ndcg@10"] == pytest.approx(1 / log2(4))
    assert row["auc"] == pytest.approx(97 / 99)
    assert result.summary["coverage@1"] == pytest.approx(1 / n_items)  # item 98 for the only user


def test_sampled_constant_scores_get_no_credit_for_truth_listed_first():
    # all 100 candidates tie; the tie goes to the lower item id, and truth 500 has the highest
    n_items = 600
    candidates = np.array([[500] + list(range(99))])
    task = RankingTask(users=np.array([0]), history=csr([[]], n_items), truth=csr([[500]], n_items),
                       exclude=csr([[]], n_items), candidates=candidates)
    result = evaluate_scores(lambda users, history: np.zeros((len(users), n_items), np.float32), task, [10])
    assert result.per_user["hr@10"].tolist() == [0.0]
    assert result.per_user["auc"].tolist() == [0.5]


def test_sampled_padding_and_missing_truth():
    # user 0 has two truth items and one negative; user 1 one truth item and two negatives (padded row)
    n_items = 6
    candidates = np.array([[0, 3, 1], [5, 2, E.PAD_ITEM]])
    scores = np.array([[5, 6, 0, 4, 0, 0], [0, 0, 9, 0, 0, 1]], dtype=np.float32)
    task = RankingTask(users=np.array([0, 1]), history=csr([[], []], n_items), truth=csr([[0, 3], [5]], n_items),
                       exclude=csr([[], []], n_items), candidates=candidates)
    result = evaluate_scores(fixed_scores(scores), task, [1, 3], metrics=["recall", "auc"])
    # user 0 ranks 1, 0, 3 -> recall@1 = 0, recall@3 = 1, AUC = 0 (the negative beats both)
    # user 1 ranks 2, 5 (padding is not ranked) -> recall@1 = 0, recall@3 = 1, AUC = 0
    assert result.per_user["recall@1"].tolist() == [0.0, 0.0]
    assert result.per_user["recall@3"].tolist() == [1.0, 1.0]
    assert result.per_user["auc"].tolist() == [0.0, 0.0]
    broken = RankingTask(users=task.users, history=task.history, truth=csr([[0, 4], [5]], n_items),
                         exclude=task.exclude, candidates=candidates)
    with pytest.raises(ValueError, match="missing"):
        evaluate_scores(fixed_scores(scores), broken, [1])


def test_popularity_metric():
    # top-2 lists: user 0 -> items 0, 1 (pop 10, 2) -> 6; user 1 -> items 3, 2 (pop 0, 4) -> 2
    scores = np.array([[4, 3, 2, 1], [1, 2, 3, 4]], dtype=np.float32)
    task = full_task([[], []], [[0], [0]], 4)
    result = evaluate_scores(fixed_scores(scores), task, [2], metrics=["popularity", "coverage"],
                             item_popularity=np.array([10, 2, 4, 0]))
    assert result.summary == {"popularity@2": pytest.approx(4.0), "coverage@2": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="item_popularity"):
        evaluate_scores(fixed_scores(scores), task, [2], metrics=["popularity"])
    default = evaluate_scores(fixed_scores(scores), task, [2])  # all metrics but popularity
    assert "popularity@2" not in default.summary and "gini@2" in default.summary


def test_result_records_versions_and_labels():
    scores = np.array([[1, 0]], dtype=np.float32)
    result = evaluate_scores(fixed_scores(scores), full_task([[]], [[0]], 2), [1, 2])
    record = result.to_dict()
    assert record["sampled"] is False and record["n_users"] == 1
    assert record["metric_version"] == "1" and set(record["metric_versions"]) >= {"ndcg", "auc", "gini"}
    assert {"ndcg@1", "ndcg@2", "recall_mv@2", "auc", "coverage@1", "gini@2"} <= set(result.summary)


def test_bad_input():
    task = full_task([[]], [[0]], 2)
    with pytest.raises(RecAuditError, match="unknown metric 'ndcg@10'"):
        evaluate_scores(fixed_scores(np.zeros((1, 2), np.float32)), task, [1], metrics=["ndcg@10"])
    with pytest.raises(E.NonFiniteScoresError, match="NaN scores for 1 users"):
        evaluate_scores(fixed_scores(np.array([[np.nan, 0]], np.float32)), task, [1])
    with pytest.raises(ValueError, match="shape"):
        evaluate_scores(lambda users, history: np.zeros((1, 3), np.float32), task, [1])


# ----- tasks from splits ---------------------------------------------------------------------
def frame(pairs) -> pd.DataFrame:
    return pd.DataFrame({"user": np.array([u for u, _ in pairs], dtype=np.int32),
                         "item": np.array([i for _, i in pairs], dtype=np.int32)})


def dense(matrix) -> list[list[float]]:
    return matrix.toarray().tolist()


def test_weak_split_tasks():
    split = Split(train=frame([(0, 0), (0, 1), (0, 1), (1, 2), (2, 3), (2, 4), (3, 5)]),
                  validation=frame([(0, 2), (2, 0)]),
                  test=frame([(0, 3), (1, 4), (3, 0)]),
                  card={"protocol": "holdout", "n_users": 4, "n_items": 6})
    fit, task = tuning_data(split)
    assert dense(fit) == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]]
    assert task.users.tolist() == [0, 2] and not task.sampled
    assert dense(task.history) == [[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]]
    assert dense(task.exclude) == dense(task.history)
    assert dense(task.truth) == [[0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    refit, test_task = final_data(split)
    assert dense(refit) == [[1, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0], [1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]]
    assert test_task.users.tolist() == [0, 1, 3]
    assert dense(test_task.history) == [[1, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]]
    assert dense(test_task.exclude) == dense(test_task.history)
    assert dense(test_task.truth) == [[0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0]]
    assert fit.dtype == np.float32 and fit.shape == (4, 6)


def test_strong_split_tasks():
    split = Split(train=frame([(0, 0), (0, 1), (1, 1)]),
                  validation=frame([(2, 2), (3, 0)]), validation_input=frame([(2, 0), (3, 1), (3, 2)]),
                  test=frame([(4, 1), (5, 3)]), test_input=frame([(4, 0), (5, 2)]),
                  card={"protocol": "strong", "n_users": 6, "n_items": 4})
    fit, task = tuning_data(split)
    assert dense(fit) == [[1, 1, 0, 0], [0, 1, 0, 0]] + [[0] * 4] * 4
    assert task.users.tolist() == [2, 3]
    assert dense(task.history) == [[1, 0, 0, 0], [0, 1, 1, 0]]
    assert dense(task.exclude) == dense(task.history)
    assert dense(task.truth) == [[0, 0, 1, 0], [1, 0, 0, 0]]
    refit, test_task = final_data(split)
    assert dense(refit) == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0] * 4, [0] * 4]
    assert test_task.users.tolist() == [4, 5]
    assert dense(test_task.history) == [[1, 0, 0, 0], [0, 0, 1, 0]]
    assert dense(test_task.truth) == [[0, 1, 0, 0], [0, 0, 0, 1]]


def test_sampled_split_tasks():
    split = Split(train=frame([(0, 0), (1, 1), (2, 2)]),
                  validation=frame([(0, 2), (1, 5), (2, 3), (2, 0)]),
                  test=frame([(0, 4)]),
                  # user 0's negative 2 is its own truth item and 4 is repeated: both kept once; user 3 has no truth
                  validation_negatives=frame([(3, 1), (0, 4), (0, 2), (0, 5), (1, 0), (1, 4), (1, 3),
                                              (2, 1), (0, 4)]),
                  test_negatives=frame([(0, 1), (0, 3)]),
                  card={"protocol": "leave-one-out", "n_users": 4, "n_items": 6})
    fit, task = tuning_data(split)
    assert task.sampled and task.users.tolist() == [0, 1, 2]
    assert task.candidates.tolist() == [[2, 4, 5, -1], [5, 0, 4, 3], [0, 3, 1, -1]]
    _, test_task = final_data(split)
    assert test_task.users.tolist() == [0] and test_task.candidates.tolist() == [[4, 1, 3]]
    assert dense(test_task.history) == [[1, 0, 1, 0, 0, 0]]
    no_validation_negatives = Split(train=split.train, validation=split.validation, test=split.test,
                                    test_negatives=split.test_negatives, card=split.card)
    with pytest.raises(RecAuditError, match="validation_negatives part is empty"):
        tuning_data(no_validation_negatives)


def test_ids_outside_the_card_are_refused():
    split = Split(train=frame([(0, 7)]), validation=frame([(0, 1)]), test=frame([]),
                  card={"protocol": "holdout", "n_users": 1, "n_items": 3})
    with pytest.raises(RecAuditError, match="outside"):
        tuning_data(split)


class ItemOrder(Recommender):
    """Scores item i as -i (prefers low ids): a fixed model for the contract path."""

    def __init__(self):
        pass

    def _fit(self, data):
        self.order_ = -np.arange(data.n_items, dtype=np.float32)

    def _score(self, users, history):
        return np.tile(self.order_, (len(users), 1))


def test_evaluate_calls_the_model_contract():
    split = Split(train=frame([(0, 0), (1, 1)]), validation=frame([(0, 3), (1, 2)]), test=frame([]),
                  validation_negatives=frame([(0, 4), (0, 5), (1, 0), (1, 5)]),
                  card={"protocol": "leave-one-out", "n_users": 2, "n_items": 6})
    fit, task = tuning_data(split)
    model = ItemOrder().fit(fit)
    result = evaluate(model, task, [1, 2], metrics=["hr"])
    # user 0 ranks 3, 4, 5 -> hit at 1; user 1 ranks 0, 2, 5 -> hit at 2
    assert result.sampled and result.per_user["hr@1"].tolist() == [1.0, 0.0]
    assert result.per_user["hr@2"].tolist() == [1.0, 1.0]
    full = RankingTask(task.users, task.history, task.truth, task.exclude)
    # full ranking: user 0 (history 0) ranks 1, 2, 3 -> hr@2 = 0; user 1 (history 1) ranks 0, 2 -> hit at 2
    assert evaluate(model, full, [2], metrics=["hr"]).per_user["hr@2"].tolist() == [0.0, 1.0]
    # the task as early-stopping data: same rows, the metric to stop on travels with it
    validation = task.validation_data("hr@2")
    assert validation.metric == "hr@2" and task.validation_data().metric == "ndcg@10"
    assert np.array_equal(validation.candidates, task.candidates) and np.array_equal(validation.users, task.users)


def test_interaction_times_keep_the_latest_time_of_each_pair():
    import pandas as pd

    from protocols.evaluation import interaction_times

    first = pd.DataFrame({"user": [0, 0, 1], "item": [2, 1, 0], "timestamp": [30, 10, 5]})
    second = pd.DataFrame({"user": [0, 1], "item": [2, 2], "timestamp": [20, 7]})
    times = interaction_times([first, second], 2, 3).toarray()
    assert times.tolist() == [[0, 10, 30], [5, 0, 7]]
    assert interaction_times([first, second.drop(columns="timestamp")], 2, 3) is None
