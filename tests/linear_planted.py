"""Seeded synthetic data with planted low-rank structure, for the linear-baseline tests.

Users and items get non-negative topic mixtures; a user takes an item with probability
``sigmoid(scale * <u, v> + popularity_i - offset)``, so popularity alone explains part of
the data and the rest needs the planted topics.
"""
from __future__ import annotations


import numpy as np
import scipy.sparse as sp


def planted_split(n_users: int = 300, n_items: int = 120, rank: int = 4, heldout_share: float = 0.2,
                  seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, heldout) binary users x items matrices; every user keeps >= 3 training items."""
    rng = np.random.default_rng(seed)
    user_topics = rng.dirichlet(np.full(rank, 0.3), size=n_users)
    item_topics = rng.dirichlet(np.full(rank, 0.3), size=n_items)
    popularity = rng.normal(0.0, 0.7, size=n_items)
    logits = 6.0 * user_topics @ item_topics.T + popularity[None, :] - 3.0
    dense = rng.random((n_users, n_items)) < 1.0 / (1.0 + np.exp(-logits))
    heldout = dense & (rng.random(dense.shape) < heldout_share)
    train = dense & ~heldout
    # Guarantee a few training items per user, so every user has a history to fold in.
    for user in np.flatnonzero(train.sum(axis=1) < 3):
        extra = rng.choice(n_items, size=3, replace=False)
        train[user, extra] = True
        heldout[user, extra] = False
    return (sp.csr_matrix(train.astype(np.float32)), sp.csr_matrix(heldout.astype(np.float32)))


def recall_at(scores: np.ndarray, train: sp.csr_matrix, heldout: sp.csr_matrix, cutoff: int = 10) -> float:
    """Mean over users with held-out items of |top-cutoff unseen items ∩ heldout| / min(cutoff, |heldout|)."""
    scores = np.array(scores, dtype=np.float64)
    scores[train.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :cutoff]
    truth = heldout.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    relevant = truth.sum(axis=1)
    users = relevant > 0
    return float(np.mean(hits[users] / np.minimum(cutoff, relevant[users])))


def popularity_recall(train: sp.csr_matrix, heldout: sp.csr_matrix, cutoff: int = 10) -> float:
    counts = np.asarray((train > 0).sum(axis=0), dtype=np.float64).ravel()
    return recall_at(np.tile(counts, (train.shape[0], 1)), train, heldout, cutoff)


def model_recall(model, train: sp.csr_matrix, heldout: sp.csr_matrix, cutoff: int = 10) -> float:
    users = np.arange(train.shape[0])
    return recall_at(model.fit(train).score(users, train), train, heldout, cutoff)


def movielens_lcfn() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test) of the mirrored LCFN split; skips the calling test when ``RECAUDIT_MIRROR`` is unset."""
    from mirror_raw import lcfn_matrices, mirror_root

    return lcfn_matrices(mirror_root())


def lcfn_recall(model, cutoff: int = 20) -> float:
    """recall_at on the LCFN MovieLens-1M test users (history = train), users in batches."""
    train, test = movielens_lcfn()
    model.fit(train)
    users = np.flatnonzero(np.diff(test.indptr))
    return recall_at(model.score(users, train[users]), train[users], test[users], cutoff)
