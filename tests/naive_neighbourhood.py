"""Deliberately naive references for the neighbourhood and graph models (tests only).

Plain Python loops and set arithmetic over dense arrays, written from the formulas in the
docstrings of ``baselines.similarity`` and ``baselines.graph``, never from their code.
"""
from __future__ import annotations

import math

import numpy as np

SET_KINDS = ("jaccard", "dice", "tversky")


def naive_similarity(targets, neighbours, kind, shrink=0.0, normalize=True, asymmetric_alpha=0.5,
                     tversky_alpha=1.0, tversky_beta=1.0) -> np.ndarray:
    """out[t, n] = similarity of target row t to neighbour row n, one pair at a time."""
    targets = np.asarray(targets, dtype=np.float64)
    neighbours = np.asarray(neighbours, dtype=np.float64)
    out = np.zeros((len(targets), len(neighbours)))
    for t, x in enumerate(targets):
        for n, y in enumerate(neighbours):
            if kind in SET_KINDS:
                x_set = {f for f, value in enumerate(x) if value != 0}
                y_set = {f for f, value in enumerate(y) if value != 0}
                both = len(x_set & y_set)
                if kind == "jaccard":
                    numerator, denominator = both, len(x_set | y_set) + shrink
                elif kind == "dice":
                    numerator, denominator = 2 * both, len(x_set) + len(y_set) + shrink
                else:
                    numerator = both
                    denominator = (both + tversky_alpha * len(x_set - y_set)
                                   + tversky_beta * len(y_set - x_set) + shrink)
            else:
                numerator = sum(a * b for a, b in zip(x, y))
                x_squares = sum(a * a for a in x)
                y_squares = sum(b * b for b in y)
                if not normalize:
                    denominator = 1.0
                elif kind == "cosine":
                    denominator = math.sqrt(x_squares) * math.sqrt(y_squares) + shrink
                elif numerator == 0:
                    denominator = 1.0
                else:
                    denominator = (x_squares ** asymmetric_alpha * y_squares ** (1 - asymmetric_alpha)
                                   + shrink)
            out[t, n] = numerator / denominator if numerator != 0 and denominator > 0 else 0.0
    return out


def naive_topk(dense, k, exclude=None) -> np.ndarray:
    """Keep, per row, the k largest nonzero entries (ties: lower column), by sorting."""
    dense = np.asarray(dense, dtype=np.float64)
    out = np.zeros_like(dense)
    for r, row in enumerate(dense):
        candidates = sorted((-value, c) for c, value in enumerate(row)
                            if value != 0 and (exclude is None or c != exclude[r]))
        for _, c in candidates[:k]:
            out[r, c] = row[c]
    return out


def naive_random_walk(interactions, alpha, beta, k, normalize_similarity) -> np.ndarray:
    """P3alpha / RP3beta item x item matrix, one transition probability at a time."""
    x = np.asarray(interactions, dtype=np.float64)
    n_users, n_items = x.shape
    user_to_item = np.zeros((n_users, n_items))
    item_to_user = np.zeros((n_items, n_users))
    for u in range(n_users):
        for i in range(n_items):
            if x[u, i] != 0:
                user_to_item[u, i] = (x[u, i] / x[u].sum()) ** alpha
                item_to_user[i, u] = (1.0 / np.count_nonzero(x[:, i])) ** alpha
    walk = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            if i != j:
                total = sum(item_to_user[i, u] * user_to_item[u, j] for u in range(n_users))
                popularity = np.count_nonzero(x[:, j])
                walk[i, j] = total / popularity ** beta if popularity else 0.0
    walk = naive_topk(walk, k)
    if normalize_similarity:
        for i in range(n_items):
            if walk[i].sum() != 0:
                walk[i] = walk[i] / walk[i].sum()
    return walk
