"""Vectorised negative sampling from a users x items CSR matrix (numpy only).

A *negative* of user ``u`` is an item ``u`` has not interacted with in training. Every
sampler here draws negatives uniformly from the user's non-interacted items, which is what
rejection sampling ("draw an item uniformly, redraw while it is a positive", as in the NCF
and BPR papers) converges to, but in one vectorised pass with no redraw loop:

    draw k ~ U{0, ..., n_items - deg(u) - 1}, then return the k-th non-interacted item.

With the user's sorted positives p_0 < p_1 < ..., the k-th non-interacted item is
``k + #{m : p_m - m <= k}`` (``p_m - m`` counts the non-interacted items below ``p_m``), and
that count is one ``searchsorted`` over all users at once. Users who interacted with every
item have no negatives; they are left out of sampling (see :attr:`NegativeSampler.sampleable`).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class NegativeSampler:
    """Uniform sampler of non-interacted items for a fixed training matrix."""

    def __init__(self, train: sp.csr_matrix):
        train = sp.csr_matrix(train)
        train.sum_duplicates()
        train.sort_indices()
        self.n_users, self.n_items = train.shape
        self.indptr = train.indptr.astype(np.int64)
        self.degree = np.diff(self.indptr)
        self.sampleable = self.degree < self.n_items
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), self.degree)
        rank_in_row = np.arange(len(train.indices), dtype=np.int64) - self.indptr[rows]
        # Per row, p_m - m is non-decreasing and lies in [0, n_items], so offsetting rows by
        # (n_items + 1) makes one globally sorted array.
        self._stride = self.n_items + 1
        self._gaps = rows * self._stride + (train.indices.astype(np.int64) - rank_in_row)
        self.positive_rows = rows
        self.positive_items = train.indices.astype(np.int64)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniform negative item for each entry of ``users`` (all must be sampleable)."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            return np.empty(0, dtype=np.int64)
        n_negatives = self.n_items - self.degree[users]
        if np.any(n_negatives <= 0):
            raise ValueError("cannot sample negatives for users who interacted with every item")
        k = rng.integers(0, n_negatives)
        below = np.searchsorted(self._gaps, users * self._stride + k, side="right") - self.indptr[users]
        return k + below

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training interaction."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        positives = self.positive_rows * self.n_items + self.positive_items
        where = np.searchsorted(positives, keys)
        found = where < len(positives)
        found[found] = positives[where[found]] == keys[found]
        return found

    def pointwise_instances(self, negatives: int, rng: np.random.Generator):
        """NCF training instances: every positive once and ``negatives`` sampled items per
        positive, shuffled together. Returns ``users, items, labels`` (labels are 1 / 0)."""
        keep = self.sampleable[self.positive_rows]
        negative_users = np.repeat(self.positive_rows[keep], negatives)
        negative_items = self.sample(negative_users, rng)
        users = np.concatenate([self.positive_rows, negative_users])
        items = np.concatenate([self.positive_items, negative_items])
        labels = np.concatenate([np.ones(len(self.positive_rows), np.float32),
                                 np.zeros(len(negative_users), np.float32)])
        order = rng.permutation(len(users))
        return users[order], items[order], labels[order]

    def bootstrap_triples(self, n_samples: int, rng: np.random.Generator):
        """BPR triples (u, i, j): (u, i) drawn uniformly with replacement from the positives of
        sampleable users (Rendle et al.'s bootstrap sampling), j a uniform negative of u."""
        candidates = np.flatnonzero(self.sampleable[self.positive_rows])
        if len(candidates) == 0:
            raise ValueError("no user has both positive and negative items")
        chosen = candidates[rng.integers(0, len(candidates), size=n_samples)]
        users = self.positive_rows[chosen]
        return users, self.positive_items[chosen], self.sample(users, rng)

    def user_uniform_triples(self, n_samples: int, rng: np.random.Generator):
        """BPR triples with the user drawn first: u uniform among users with at least one item and
        not every item, i uniform among u's items, j a uniform negative of u (DVBPR's released
        sampler; CuratorNet's uniform variant)."""
        candidates = np.flatnonzero(self.sampleable & (self.degree > 0))
        if len(candidates) == 0:
            raise ValueError("no user has both positive and negative items")
        users = candidates[rng.integers(0, len(candidates), size=n_samples)]
        positives = self.positive_items[self.indptr[users] + rng.integers(0, self.degree[users])]
        return users, positives, self.sample(users, rng)
