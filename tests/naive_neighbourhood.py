"""Deliberately naive references for the neighbourhood and graph models (tests only).

Plain Python loops and set arithmetic over dense arrays, written from the formulas in the
docstrings of ``baselines.similarity`` and ``baselines.graph``, never from their code.
"""
from __future__ import annotations

import math

import numpy as np

SET_KINDS = ("jaccard", "dice", "tversky")


TOIS_EPSILON = 1e-6


def naive_similarity(targets, neighbours, kind, shrink=0.0, normalize=True, asymmetric_alpha=0.5,
                     tversky_alpha=1.0, tversky_beta=1.0, variant="standard") -> np.ndarray:
    """out[t, n] = similarity of target row t to neighbour row n, one pair at a time.

    ``variant="tois"``: the study's arithmetic, ``+ 1e-6`` in every normalised denominator and,
    without normalisation, the dot product divided by the shrink (when nonzero)."""
    if variant == "tois":
        if kind not in SET_KINDS and not normalize:
            plain = naive_similarity(targets, neighbours, kind, normalize=False)
            return plain / shrink if shrink else plain
        return naive_similarity(targets, neighbours, kind, shrink + TOIS_EPSILON, normalize, asymmetric_alpha,
                                tversky_alpha, tversky_beta)
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


def naive_tois_weights(terms, documents, scheme) -> np.ndarray:
    """The TOIS code's TF-IDF / BM25 of term vectors (rows of ``terms``, over the documents),
    with N and the document lengths of the fitted documents x terms matrix ``documents``:
    ``idf = log(N / (1 + df))``, df counted on the term's own row."""
    terms = np.asarray(terms, dtype=np.float64)
    documents = np.asarray(documents, dtype=np.float64)
    if scheme == "none":
        return terms.copy()
    n_documents = documents.shape[0]
    lengths = [sum(row) for row in documents]
    average = sum(lengths) / n_documents
    out = np.zeros_like(terms)
    for t, row in enumerate(terms):
        df = sum(1 for value in row if value != 0)
        idf = math.log(n_documents / (1 + df))
        for d, x in enumerate(row):
            if x == 0:
                continue
            if scheme == "tfidf":
                out[t, d] = math.sqrt(x) * idf
            else:
                denominator = x + 1.2 * (1 - 0.75 + 0.75 * lengths[d] / average)
                out[t, d] = x * 2.2 / denominator * idf
    return out


def naive_tois_userknn_scores(train, users, history, kind, topk, feature_weighting="none", shrink=0.0,
                              **params) -> np.ndarray:
    """The TOIS UserKNN, straight from its definition: user u is scored from the training users
    v whose own top-K (over the other users, u's row replaced by its history, or added under id
    u) contains u: ``score(u) = sum_v s(target=v, neighbour=u) w(x_v)``."""
    x = np.asarray(train, dtype=np.float64)
    history = np.asarray(history, dtype=np.float64)
    n_users = x.shape[0]
    weighted = naive_tois_weights(x, x.T, feature_weighting)
    scores = np.zeros((len(users), x.shape[1]))
    for r, u in enumerate(users):
        pool = np.zeros((max(n_users, u + 1), x.shape[1]))
        pool[:n_users] = weighted
        pool[u] = naive_tois_weights(history[r:r + 1], x.T, feature_weighting)[0]
        for v in range(n_users):
            if v == u:
                continue
            row = naive_similarity(weighted[v:v + 1], pool, kind, shrink=shrink, variant="tois", **params)
            kept = naive_topk(row, topk, exclude=[v])
            scores[r] += kept[0, u] * weighted[v]
    return scores
