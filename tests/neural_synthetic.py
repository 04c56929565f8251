"""Synthetic data with planted structure for the neural-model tests (not a test module).

Users and items fall into ``groups`` hidden clusters; a user interacts with an item of
her own cluster with probability ``p_in`` and with any other item with ``p_out`` (times an
item popularity factor), so the interaction matrix is low-rank plus noise. A fraction of
each user's interactions is held out. Popularity ignores the clusters, so a model that
finds them beats it by a wide margin on the held-out entries.
"""
from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

from protocols.contract import ValidationData


def planted(n_users: int = 240, n_items: int = 80, groups: int = 4, p_in: float = 0.4,
            p_out: float = 0.03, holdout: float = 0.25, seed: int = 0):
    """(train, test) CSR float32 matrices of shape (n_users, n_items)."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, groups, n_users)
    item_group = rng.integers(0, groups, n_items)
    popularity = rng.uniform(0.5, 1.5, n_items)
    probability = np.where(user_group[:, None] == item_group[None, :], p_in, p_out) * popularity
    interactions = rng.random((n_users, n_items)) < probability
    held_out = interactions & (rng.random(interactions.shape) < holdout)
    train = sp.csr_matrix(interactions & ~held_out, dtype=np.float32)
    test = sp.csr_matrix(held_out, dtype=np.float32)
    return train, test


def as_validation(train, test) -> ValidationData:
    """Users with training and held-out items rank the held-out ones, training items as history."""
    users = np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(test.indptr) > 0))
    return ValidationData(users=users, history=train[users], truth=test[users])


class Popularity:
    """Scores every item by its training count (the bar a model has to clear)."""

    def __init__(self, train):
        self.counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float32)

    def score(self, users, history):
        return np.tile(self.counts, (len(users), 1))


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch on ``n`` threads inside the block (the test machine is shared and busy)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
