"""Validation NDCG@k for early stopping (a private stand-in until the shared evaluator lands).

For one user with held-out items T, history items H and the top-k list r_1..r_k of the
items ranked (all items not in H, or the user's candidates plus T on sampled protocols):

    DCG = sum_{j=1..k} [r_j in T] / log2(j + 1),   IDCG = sum_{j=1..min(k, |T|)} 1 / log2(j + 1)

and NDCG@k is the mean of DCG / IDCG over users with at least one held-out item.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from protocols.contract import ValidationData


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _contains(matrix: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Whether ``items[r, j]`` is stored in row ``rows[r]`` of the sorted CSR ``matrix``."""
    n_items = matrix.shape[1]
    stored = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n_items
    stored = stored + matrix.indices
    keys = rows[:, None].astype(np.int64) * n_items + items
    where = np.searchsorted(stored, keys)
    inside = where < len(stored)
    found = np.zeros(keys.shape, dtype=bool)
    found[inside] = stored[where[inside]] == keys[inside]
    return found


def _ndcg_rows(scores: np.ndarray, relevant: np.ndarray, n_truth: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    gains = np.take_along_axis(relevant, top, axis=1) * np.isfinite(np.take_along_axis(scores, top, axis=1))
    discounts = _discounts(k)
    dcg = gains @ discounts
    idcg = np.cumsum(discounts)[np.minimum(n_truth, k) - 1]
    return dcg / idcg


def validation_ndcg(model, validation: ValidationData, k: int = 10, chunk: int = 1024) -> float:
    """Mean NDCG@k of a fitted ``model`` on ``validation`` (see the module docstring)."""
    truth = sp.csr_matrix(validation.truth)
    truth.sort_indices()
    history = sp.csr_matrix(validation.history)
    users = np.asarray(validation.users, dtype=np.int64)
    n_truth_all = np.diff(truth.indptr)
    totals, counted = 0.0, 0
    for start in range(0, len(users), chunk):
        rows = np.arange(start, min(start + chunk, len(users)))
        rows = rows[n_truth_all[rows] > 0]
        if len(rows) == 0:
            continue
        n_truth = n_truth_all[rows]
        if validation.candidates is None:
            scores = model.score(users[rows], history[rows]).astype(np.float64)
            seen = history[rows]
            scores[np.repeat(np.arange(len(rows)), np.diff(seen.indptr)), seen.indices] = -np.inf
            relevant = np.asarray(truth[rows].todense(), dtype=np.float64) > 0
        else:
            scores, relevant = _candidate_scores(model, users[rows], history[rows], truth[rows],
                                                 np.asarray(validation.candidates)[rows])
        totals += float(_ndcg_rows(scores, relevant.astype(np.float64), n_truth, k).sum())
        counted += len(rows)
    return totals / counted if counted else float("nan")


def _candidate_scores(model, users, history, truth, candidates):
    """Rank the held-out items together with the candidates: columns are the held-out items
    (padded) followed by the candidates; padding and candidates that repeat a held-out item
    score -inf so that each item is ranked once."""
    n_truth = np.diff(truth.indptr)
    width = int(n_truth.max())
    slot = np.arange(width)[None, :] < n_truth[:, None]
    padded = np.zeros((len(users), width), dtype=np.int64)
    padded[slot] = truth.indices
    padded[~slot] = candidates[:, :1].repeat(width, axis=1)[~slot]
    columns = np.concatenate([padded, candidates.astype(np.int64)], axis=1)
    scores = model.score_candidates(users, history, columns).astype(np.float64)
    repeated = _contains(truth, np.arange(len(users)), candidates.astype(np.int64))
    invalid = np.concatenate([~slot, repeated], axis=1)
    scores[invalid] = -np.inf
    relevant = np.concatenate([slot, np.zeros(candidates.shape, dtype=bool)], axis=1)
    return scores, relevant
