"""Ranking metrics, computed for a whole batch of users at once.

Every per-user metric at cutoff ``k`` is a function of two arrays:

- ``hits``: boolean ``(n_users, max_k)``; ``hits[u, r - 1]`` is true when the item at rank
  ``r`` of user ``u``'s ranked list is relevant (ranks start at 1);
- ``n_relevant``: ``(n_users,)``; ``R_u``, the number of relevant (held-out) items of ``u``.

Users with ``R_u = 0`` are dropped by the evaluator before any metric is computed (a metric
of a user with nothing to find is undefined), so every function here assumes ``R_u >= 1``.
``h_u(k)`` below is the number of hits in the top ``k``. A ranked list may hold fewer than
``k`` real items (a user with fewer than ``k`` rankable items); missing ranks are misses and
the denominators stay as written.

The ranking primitives below turn float32 scores into exact integer order keys, so that the
top k (ties to the lower item id) and the AUC mid-ranks need one partition or sort per row.

Labels are lower case ``name@k`` (``ndcg@10``); ``auc`` has no cutoff. ``METRIC_VERSION``
and the per-metric ``METRIC_VERSIONS`` are stored with every result: change a formula,
bump its version. Sampled results use the same labels; the result says ``sampled: true``.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError, unknown_name_error

METRIC_VERSION = "1"

PER_USER_METRICS = ("precision", "recall", "recall_mv", "ndcg", "ndcg_tois", "hr", "mrr", "map", "auc")
LIST_METRICS = ("coverage", "gini", "popularity")
ALL_METRICS = PER_USER_METRICS + LIST_METRICS
CUTOFF_FREE_METRICS = frozenset({"auc"})
METRIC_VERSIONS = {name: "1" for name in ALL_METRICS}


def check_metric_names(names: Iterable[str] | None) -> list[str]:
    """Validated, de-duplicated metric names in the order given (all metrics for ``None``)."""
    if names is None:
        return list(ALL_METRICS)
    checked: list[str] = []
    for name in names:
        if name not in ALL_METRICS:
            raise unknown_name_error("metric", name, ALL_METRICS)
        if name not in checked:
            checked.append(name)
    return checked


def check_cutoffs(cutoffs: Iterable[int]) -> list[int]:
    """Sorted, de-duplicated positive integer cutoffs."""
    cutoffs = list(cutoffs)
    if not cutoffs or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > 0
                              for k in cutoffs):
        raise RecAuditError(f"cutoffs must be a non-empty list of positive integers, got {cutoffs!r}; "
                            "fix evaluation.cutoffs in params.yaml")
    return sorted({int(k) for k in cutoffs})


def metric_label(name: str, k: int | None) -> str:
    return name if name in CUTOFF_FREE_METRICS else f"{name}@{k}"


# ----- ranking primitives: exact, deterministic orderings of float32 scores ---------------
EXCLUDED = np.int32(np.iinfo(np.int32).min)  # order key below every float, -inf included
_LOW_BITS = np.int64(0xFFFFFFFF)


def row_keys(matrix: sp.csr_matrix, width: int) -> np.ndarray:
    """Sorted ``row * width + column`` of every stored entry (CSR with sorted indices)."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * width + matrix.indices


def is_member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Elementwise ``key in sorted_keys`` by binary search."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys


def order_keys(scores: np.ndarray) -> np.ndarray:
    """int32 keys ordered exactly as the float32 scores (-0.0 == 0.0): for a negative float the
    negated magnitude bits, else the bits themselves."""
    bits = scores.view(np.int32)
    sign = bits >> 31
    keys = bits & np.int32(0x7FFFFFFF)
    keys ^= sign
    keys -= sign
    return keys


def top_items(order: np.ndarray, item_ids: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Item ids of the k best columns per row, best first, and whether each is a real
    (non-excluded) item. Score ties go to the lower item id: the id rides in the low 32 bits
    of one int64 key, so a plain partition and sort of the keys is deterministic."""
    width = order.shape[1]
    ids = np.arange(width, dtype=np.int64) if item_ids is None else item_ids
    keys = order.astype(np.int64)
    keys <<= 32
    keys |= _LOW_BITS - ids
    if k < width:
        keys.partition(width - k, axis=1)
        keys = keys[:, width - k:]
    best = np.sort(keys, axis=1)[:, ::-1]
    return _LOW_BITS - (best & _LOW_BITS), (best >> 32) > EXCLUDED


def relevant_rank_sums(order: np.ndarray, relevant: np.ndarray, n_excluded: np.ndarray) -> np.ndarray:
    """Per row, the sum of the ascending mid-ranks of the ``relevant`` flat positions among the
    row's non-excluded columns. Sorts ``order`` in place."""
    n_rows, width = order.shape
    rows = relevant // width
    values = order.ravel()[relevant].astype(np.int64) + 2**31
    order.sort(axis=1)
    offsets = np.arange(n_rows, dtype=np.int64) << 32  # makes the sorted rows one ascending array
    ascending = order.astype(np.int64)
    ascending += 2**31
    ascending += offsets[:, None]
    ascending = ascending.ravel()
    query = values + offsets[rows]
    below = np.searchsorted(ascending, query, side="left")
    # the item itself sits at ``below``; only ties with other items need a second search
    through = below + 1
    tied = ascending[np.minimum(through, len(ascending) - 1)] == query
    through[tied] = np.searchsorted(ascending, query[tied], side="right")
    midranks = (below - rows * width - n_excluded[rows]) + (through - below + 1) / 2
    return np.bincount(rows, weights=midranks, minlength=n_rows)


# ----- per-user metrics at cutoff k ------------------------------------------------------
def _hits_at(hits: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1, dtype=np.int64)


def _discounts(k: int) -> np.ndarray:
    """``1 / log2(r + 1)`` for ranks ``r = 1..k``."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Precision@k = h_u(k) / k."""
    return _hits_at(hits, k) / k


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k = h_u(k) / R_u."""
    return _hits_at(hits, k) / n_relevant


def recall_mv(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k as in Mult-VAE (Liang et al., WWW 2018, eq. 8): h_u(k) / min(k, R_u).

    Unlike plain recall it reaches 1 whenever the top k is filled with relevant items.
    """
    return _hits_at(hits, k) / np.minimum(k, n_relevant)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary gains (Jarvelin & Kekalainen, TOIS 2002).

    DCG@k = sum over hit ranks r <= k of 1 / log2(r + 1); IDCG@k is the DCG of a list
    whose first min(k, R_u) items are relevant: sum_{r=1}^{min(k, R_u)} 1 / log2(r + 1).
    NDCG@k = DCG@k / IDCG@k.
    """
    discounts = _discounts(k)
    dcg = np.where(hits[:, :k], discounts, 0.0).sum(axis=1)  # row by row: no BLAS, batch-invariant
    ideal = np.cumsum(discounts)[np.minimum(k, n_relevant) - 1]
    return dcg / ideal


def ndcg_tois(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k as the TOIS study's evaluation code computes it (Ferrari Dacrema et al., TOIS 2021):
    the same DCG@k as :func:`ndcg`, divided by the ideal DCG of *all* R_u relevant items,
    IDCG = sum_{r=1}^{R_u} 1 / log2(r + 1), whatever k. It is below :func:`ndcg` whenever
    R_u > k; kept under its own name so that tables can be compared with the study's.
    """
    discounts = _discounts(k)
    dcg = np.where(hits[:, :k], discounts, 0.0).sum(axis=1)
    largest = int(n_relevant.max(initial=1))
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, largest + 2, dtype=np.float64)))[n_relevant - 1]
    return dcg / ideal


def hit_rate(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Hit rate HR@k = 1 if h_u(k) >= 1 else 0 (NCF's HR for one held-out item)."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def reciprocal_rank(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank MRR@k = 1 / r_first, the rank of the first hit if r_first <= k, else 0."""
    top = hits[:, :k]
    first_rank = top.argmax(axis=1) + 1
    return np.where(top.any(axis=1), 1.0 / first_rank, 0.0)


def average_precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Average precision AP@k = (1 / min(k, R_u)) * sum over hit ranks r <= k of Precision@r.

    Precision@r = h_u(r) / r. MAP@k is its mean over users (the evaluator's summary).
    """
    top = hits[:, :k]
    precision_at_rank = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    return np.where(top, precision_at_rank, 0.0).sum(axis=1) / np.minimum(k, n_relevant)


CUTOFF_METRICS = {"precision": precision, "recall": recall, "recall_mv": recall_mv, "ndcg": ndcg, "ndcg_tois": ndcg_tois,
                  "hr": hit_rate, "mrr": reciprocal_rank, "map": average_precision}


def auc(relevant_rank_sum: np.ndarray, n_relevant: np.ndarray, n_candidates: np.ndarray) -> np.ndarray:
    """AUC, not cut off: the fraction of (relevant, non-relevant) candidate pairs ranked correctly,
    a tied pair counting 1/2 (the Mann-Whitney U statistic, as ``sklearn.metrics.roc_auc_score``).

    With ``relevant_rank_sum`` = sum over relevant items of their ascending mid-rank among the
    candidates (rank 1 = lowest score; tied items share the mean of their ranks), N_u the
    number of candidates and R_u of relevant ones:
    AUC = (relevant_rank_sum - R_u (R_u + 1) / 2) / (R_u (N_u - R_u)).
    Candidates are every non-excluded item (full ranking) or the user's candidates (sampled).
    A user with no non-relevant candidate has no pairs: AUC is NaN and left out of the mean.
    """
    n_relevant = n_relevant.astype(np.float64)
    pairs = n_relevant * (n_candidates - n_relevant)
    correct = relevant_rank_sum - n_relevant * (n_relevant + 1) / 2
    result = np.full(len(pairs), np.nan)
    np.divide(correct, pairs, out=result, where=pairs > 0)
    return result


def per_user_metrics(hits: np.ndarray, n_relevant: np.ndarray, names: list[str],
                     cutoffs: list[int]) -> dict[str, np.ndarray]:
    """Every cutoff metric of ``names`` at every cutoff, keyed by label (``auc`` is not here:
    it needs the scores of every candidate, see :func:`auc`)."""
    if hits.shape[1] < max(cutoffs):
        raise ValueError(f"hits has {hits.shape[1]} ranks, fewer than the largest cutoff {max(cutoffs)}")
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    return {metric_label(name, k): CUTOFF_METRICS[name](hits, n_relevant, k)
            for name in names if name in CUTOFF_METRICS for k in cutoffs}


# ----- list metrics over all evaluated users -------------------------------------------
def coverage(exposure: np.ndarray) -> float:
    """Catalogue coverage@k = |distinct items in any user's top k| / n_items.

    ``exposure[i]`` is the number of users whose top k holds item i (length n_items).
    """
    return float(np.count_nonzero(exposure) / len(exposure))


def gini(exposure: np.ndarray) -> float:
    """Exposure Gini index@k over the whole catalogue (items never recommended count as 0).

    With exposures sorted ascending, c_(1) <= ... <= c_(n), n = n_items:
    G = sum_{i=1}^{n} (2 i - n - 1) c_(i) / (n * sum_i c_i).
    0 when every item is recommended equally often, (n - 1) / n when one item takes it all.
    """
    ordered = np.sort(np.asarray(exposure, dtype=np.float64))
    n = len(ordered)
    total = ordered.sum()
    if total == 0:
        return 0.0
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return float(weights @ ordered / (n * total))


def popularity(list_popularity_sum: np.ndarray, list_length: np.ndarray) -> np.ndarray:
    """Average recommendation popularity, per user (Abdollahpouri et al., FLAIRS 2019):
    ARP_u@k = mean over the items i of u's top k of pop(i), pop = the training popularity
    the caller passes (e.g. the number of training interactions of i, :func:`training_popularity`).
    The list metric popularity@k is the mean of ARP_u@k over users.
    """
    return list_popularity_sum / list_length


def training_popularity(train) -> np.ndarray:
    """pop(i) = the number of training users who interacted with item i (binary matrix)."""
    return np.asarray((train != 0).sum(axis=0), dtype=np.float64).ravel()
