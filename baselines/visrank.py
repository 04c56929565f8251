"""VisRank: pure content-based ranking by the visual similarity of items to a user's history.

Messina, Dominguez, Parra, Trattner and Soto, "Content-based artwork recommendation:
integrating painting metadata with neural and manually-engineered visual features", User
Modeling and User-Adapted Interaction 29, 2019 (the visual baseline of CuratorNet, and the
``VisRank`` of the IUI 2021 visual recommendation tutorial).

With f_i the item's feature vector (a dense item feature set, e.g. poster embeddings of an
ImageNet network) and H_u the items of u's history that have features::

    s(i, j)  = cos(f_i, f_j) = f_i . f_j / (||f_i|| ||f_j||)
    score(u, i) = max_{j in H_u} s(i, j)                            aggregate="max" (default)
                = 1/|H_u| sum_{j in H_u} s(i, j)                     aggregate="mean"
                = 1/m sum of the m largest s(i, j), m = min(k, |H_u|)  aggregate="topk-mean"

There is no training beyond normalising the item vectors to unit length, so the model scores
users it never saw (from the history given at query time) and items without any interaction
(from their features). Choices where the references leave room:

- **Items without features** (``present`` False, or an all-zero vector) get the score
  :data:`NO_FEATURES_SCORE` = -2, below every cosine aggregate (which lies in [-1, 1]): they
  rank after every item with features, and scores stay finite (the contract asks for finite
  scores; -inf would also break metrics that average scores).
- **History items without features** are left out of H_u (they have no vector to compare).
  A user whose H_u is empty (no history, or only featureless items) scores 0 on every item
  with features: no preference is known, so they tie.
- **The item itself** is not removed from H_u: s(i, i) = 1 is what an item of the history
  scores, as in the reference code (evaluation excludes training items from rankings anyway).
- History values are read as 0/1 (any stored non-zero counts once).
- **Features**: ``features`` names a dense item feature set (e.g. ``"efficientnet-lite0"``);
  None takes the dataset's only dense set and refuses, one line with ``(needs ...)``, when it
  has none or several (then name one). Requirements declare ``feature_kind="dense"``.

Scoring is batched and memory-bounded: the cosine of the distinct history items of the batch
against a block of catalogue columns is one matrix product; its rows are gathered into a
(users x padded history x items) block per group of users (sorted by history length, so
little is padding) and reduced over the history axis. Every block holds at most
:attr:`VisRank.chunk_elements` numbers, so large catalogues and long histories are scored in
pieces without forming the items x items similarity matrix. The mean needs no gathering: it
is the product of each item's unit vector with the user's mean unit profile vector.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.content import resolve_features
from common.errors import RecAuditError
from datasets.item_data import FeatureSet
from protocols.contract import ANY_FEATURES, Recommender, Requirements, TrainingData, UnsupportedProtocolError
from protocols.registry import register
from protocols.space import Categorical, Integer

AGGREGATES = ("max", "mean", "topk-mean")
NO_FEATURES_SCORE = -2.0  # below any aggregate of cosines, which lie in [-1, 1]


def resolve_dense_features(model_name: str, data: TrainingData, name: str | None) -> FeatureSet:
    """The dense item feature set ``name`` of ``data`` (None: its only dense set), checked to
    have one row per item; a one-line :class:`UnsupportedProtocolError` saying ``(needs ...)``
    when there is no such set (or, for None, several to choose from)."""
    if name is None:
        dense = {features.key: features for features in data.item_features.values() if not features.is_sparse}
        if not dense:
            raise UnsupportedProtocolError(
                f"model {model_name!r} reads dense item features (such as image embeddings), which this data lacks "
                f"(needs dense item features); available: {', '.join(sorted(data.item_features)) or 'none'}")
        if len(dense) > 1:
            raise UnsupportedProtocolError(
                f"model {model_name!r} found several dense item feature sets ({', '.join(sorted(dense))}) "
                "(needs dense item features named by `features`); set `features` to one of them")
        features = next(iter(dense.values()))
    else:
        features = resolve_features(model_name, data, name)
        if features.is_sparse:
            raise UnsupportedProtocolError(f"model {model_name!r} reads dense features but {features.key!r} is sparse "
                                           f"(needs dense item features); choose another set")
    if features.n_items != data.n_items:
        raise RecAuditError(f"model {model_name!r}: feature set {features.key!r} has {features.n_items} rows but the "
                            f"training matrix has {data.n_items} items; rebuild it on the prepared item ids")
    return features


def dense_feature_requirements(features: str | None, user_embeddings: bool) -> Requirements:
    """What a model reading one dense feature set declares (``features`` None: any set, the
    dense one being picked at fit time)."""
    return Requirements(user_embeddings=user_embeddings, item_features=features or ANY_FEATURES,
                        feature_kind="dense")


@register("visrank")
class VisRank(Recommender):
    """Content-based ranking by the cosine of item features to the user's history (see the
    module docstring for the formula and the choices made).

    Parameters
    ----------
    aggregate : str
        How the similarities to the history items combine: ``"max"`` (the tutorial's
        default), ``"mean"`` or ``"topk-mean"`` (the mean of the ``k`` largest).
    k : int
        Number of largest similarities averaged by ``"topk-mean"`` (fewer when the history
        is shorter); ignored by the other aggregates.
    features : str or None
        Name of the dense item feature set compared (None: the dataset's only dense set).

    Attributes set by ``fit``: ``item_vectors_`` (unit-length rows, zero for items without
    features), ``has_features_`` and ``features_key_``.

    References
    ----------
    Messina et al., UMUAI 29(2), 2019; Messina et al., CuratorNet, ComplexRec @ RecSys 2020.
    """

    family: ClassVar[str] = "baseline"
    search_space: ClassVar[dict] = {"aggregate": Categorical(AGGREGATES), "k": Integer(2, 50, log=True)}
    # Numbers held by one intermediate block while scoring (2^24 float32: 64 MiB).
    chunk_elements: ClassVar[int] = 1 << 24

    def __init__(self, aggregate: str = "max", k: int = 5, features: str | None = None):
        self.aggregate = aggregate
        self.k = k
        self.features = features

    def requirements(self) -> Requirements:
        return dense_feature_requirements(self.features, user_embeddings=False)

    def _fit(self, data: TrainingData) -> None:
        if self.aggregate not in AGGREGATES:
            raise RecAuditError(f"model {self.name!r}: aggregate={self.aggregate!r} is invalid; use one of "
                                f"{', '.join(AGGREGATES)}")
        if not (isinstance(self.k, int | np.integer) and not isinstance(self.k, bool) and self.k >= 1):
            raise RecAuditError(f"model {self.name!r}: k={self.k!r} is invalid; use an integer >= 1")
        features = resolve_dense_features(self.name, data, self.features)
        values = features.dense().astype(np.float32, copy=True)
        norms = np.linalg.norm(values.astype(np.float64), axis=1)
        has = np.asarray(features.present, dtype=bool) & (norms > 0)
        values[has] /= norms[has, None].astype(np.float32)
        values[~has] = 0.0
        self.item_vectors_ = values
        self.has_features_ = has
        self.features_key_ = features.key

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        out = np.zeros((len(users), self.n_items_), dtype=np.float32)
        # The history as 0/1 rows restricted to items with features (never written into).
        coo = history.tocoo()
        keep = (coo.data != 0) & self.has_features_[coo.col]
        profile = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (coo.row[keep], coo.col[keep])),
                                shape=history.shape)
        profile.sum_duplicates()
        lengths = np.diff(profile.indptr)
        if profile.nnz and self.aggregate == "mean":
            # mean_j (f_i/|f_i|) . (f_j/|f_j|) = (f_i/|f_i|) . mean_j (f_j/|f_j|): one product
            # per block of users against the mean unit profile vector, no gathering.
            profile_vectors = (profile @ self.item_vectors_) / np.maximum(lengths, 1)[:, None].astype(np.float32)
            step = max(1, int(self.chunk_elements) // self.n_items_)
            for start in range(0, len(users), step):
                out[start:start + step] = profile_vectors[start:start + step] @ self.item_vectors_.T
        elif profile.nnz:
            self._aggregate_into(out, profile, lengths)
        out[:, ~self.has_features_] = NO_FEATURES_SCORE
        return out

    # ----- the batched aggregation ----------------------------------------------------
    def _aggregate_into(self, out: np.ndarray, profile: sp.csr_matrix, lengths: np.ndarray) -> None:
        """Write the aggregate of every user with a non-empty profile into ``out``."""
        budget = max(int(self.chunk_elements), 1)
        distinct, position = np.unique(profile.indices, return_inverse=True)
        n_distinct = len(distinct)
        # Columns per block: the distinct-history x block cosine matrix fits the budget.
        width = int(np.clip(budget // n_distinct, 1, self.n_items_))
        groups = _padded_groups(profile.indptr, lengths, position.astype(np.int64), n_distinct, width, budget)
        vectors = self.item_vectors_[distinct]
        fill = np.float32(0.0 if self.aggregate == "mean" else -np.inf)
        for start in range(0, self.n_items_, width):
            stop = min(start + width, self.n_items_)
            # cosine[d, c]: distinct history item d against catalogue item start + c; the last
            # row is the padding. Gathering whole rows is a copy of contiguous memory.
            cosine = np.empty((n_distinct + 1, stop - start), dtype=np.float32)
            np.matmul(vectors, self.item_vectors_[start:stop].T, out=cosine[:n_distinct])
            cosine[n_distinct] = fill
            for rows, padded, counts in groups:
                out[rows, start:stop] = self._reduce(cosine[padded], counts)

    def _reduce(self, block: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Aggregate a (users, padded history, items) block over the history axis."""
        if self.aggregate == "max":
            return block.max(axis=1)
        if self.aggregate == "mean":
            return block.sum(axis=1) / counts[:, None].astype(np.float32)
        length = block.shape[1]
        take = min(int(self.k), length)
        if take < length:  # the take largest (padding, -inf, only where a profile is shorter)
            block = np.partition(block, length - take, axis=1)[:, length - take:]
        top = np.where(np.isfinite(block), block, np.float32(0)).sum(axis=1)
        return top / np.minimum(counts, int(self.k))[:, None].astype(np.float32)


def _padded_groups(indptr: np.ndarray, lengths: np.ndarray, position: np.ndarray, pad: int, width: int,
                   budget: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Users with a non-empty profile, sorted by profile length and cut into groups whose
    padded (users x longest profile x width) block fits ``budget``. Each group is (row ids,
    users x longest-profile positions into the distinct items, ``pad`` marking padding,
    profile lengths)."""
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    sorted_lengths = lengths[order]
    groups = []
    start = 0
    while start < len(order):
        most = max(1, budget // (int(sorted_lengths[start]) * width))
        window = sorted_lengths[start:start + most].astype(np.int64)
        cost = np.arange(1, len(window) + 1, dtype=np.int64) * window * width
        stop = start + max(1, int(np.searchsorted(cost, budget, side="right")))
        rows = order[start:stop]
        counts = lengths[rows]
        longest = int(counts.max())
        padded = np.full((len(rows), longest), pad, dtype=np.int64)
        row_of_entry = np.repeat(np.arange(len(rows)), counts)
        rank = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        padded[row_of_entry, rank] = position[np.repeat(indptr[rows], counts) + rank]
        groups.append((rows, padded, counts))
        start = stop
    return groups
