"""Fixed sampled negatives: for each user, distinct items the user never interacted with.

Sampling is uniform without replacement over the user's never-touched items, done for all
users at once by rejection:

1. every user draws ``c_u`` items uniformly with replacement, where ``c_u`` covers the
   expected number of draws needed to see ``k`` distinct never-touched items
   (``F_u * -ln(1 - k / F_u)`` draws among the ``F_u`` free items, divided by the share
   ``F_u / n_items`` of free items, plus a 25 % margin and 16 spare draws);
2. draws that are positives of that user (a sorted-key lookup in ``user * n_items + item``)
   and repeats within the user are rejected; the first ``k`` survivors in draw order are kept,
   which is exactly sequential sampling without replacement;
3. the rare users left short, and users with fewer than ``2k`` free items (for whom
   rejection wastes draws), are drawn exactly: a random key per free item, smallest ``k``
   kept (``argpartition`` over a dense block of such users).

Because the first ``k`` survivors of an exchangeable draw sequence form a uniform k-subset
and the exact path is uniform too, the result is uniform whichever path served a user.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from protocols.splitting.keys import contains, sorted_unique

_MARGIN = 1.25
_SPARE_DRAWS = 16
_DENSE_BLOCK_CELLS = 1 << 23


def positive_keys(frames: list[pd.DataFrame], n_items: int) -> np.ndarray:
    """Sorted unique ``user * n_items + item`` over every frame: everything a user touched."""
    keys = [f["user"].to_numpy(np.int64) * np.int64(n_items) + f["item"].to_numpy(np.int64) for f in frames]
    return sorted_unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)


def free_item_counts(users: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """How many items each user never touched."""
    users = np.asarray(users, dtype=np.int64)
    touched = np.searchsorted(keys, (users + 1) * n_items) - np.searchsorted(keys, users * n_items)
    return n_items - touched


def sample_negatives(users: np.ndarray, n_negatives: int, keys: np.ndarray, n_items: int,
                     rng: np.random.Generator) -> pd.DataFrame:
    """``n_negatives`` distinct never-touched items per user, as a (user, item) frame.

    ``users`` must be unique and each must have at least ``n_negatives`` free items;
    ``keys`` comes from :func:`positive_keys`.
    """
    users = sorted_unique(np.asarray(users, dtype=np.int64))
    k = int(n_negatives)
    if k == 0 or len(users) == 0:
        return pd.DataFrame({"user": np.empty(0, np.int64), "item": np.empty(0, np.int64)})
    free = free_item_counts(users, keys, n_items)
    if (free < k).any():
        raise ValueError(f"{int((free < k).sum())} users have fewer than {k} never-touched items")
    by_rejection = free >= 2 * k
    chosen_users, chosen_items, short = _by_rejection(users[by_rejection], free[by_rejection], k, keys, n_items, rng)
    exact_users = np.union1d(users[~by_rejection], short)
    exact_items = _exactly(exact_users, k, keys, n_items, rng)
    return pd.DataFrame({"user": np.r_[chosen_users, np.repeat(exact_users, k)],
                         "item": np.r_[chosen_items, exact_items]})


def _by_rejection(users, free, k, keys, n_items, rng):
    empty = np.empty(0, np.int64)
    if len(users) == 0:
        return empty, empty, empty
    share_free = free / n_items
    needed = free * -np.log1p(-k / free)
    draws = np.ceil(needed / share_free * _MARGIN).astype(np.int64) + _SPARE_DRAWS
    row = np.repeat(np.arange(len(users)), draws)
    candidates = rng.integers(0, n_items, size=len(row), dtype=np.int64)
    drawn_keys = users[row] * n_items + candidates
    # one stable sort serves both tests: first draw of each (user, item), and the positive
    # lookup, whose binary searches run much faster on sorted queries
    order = np.argsort(drawn_keys, kind="stable")
    ordered = drawn_keys[order]
    first_draw = np.r_[True, ordered[1:] != ordered[:-1]]
    survives = np.zeros(len(row), dtype=bool)
    survives[order[first_draw & ~contains(keys, ordered)]] = True
    kept = np.flatnonzero(survives)  # ascending, so in draw order and grouped by row
    kept_rows = row[kept]
    starts = np.searchsorted(kept_rows, np.arange(len(users)))
    rank = np.arange(len(kept)) - starts[kept_rows]
    served = np.bincount(kept_rows, minlength=len(users)) >= k
    take = kept[(rank < k) & served[kept_rows]]
    return users[row[take]], candidates[take], users[~served]


def _exactly(users, k, keys, n_items, rng) -> np.ndarray:
    """k smallest of a random key per item, positives keyed out; rows of the result follow ``users``."""
    if len(users) == 0:
        return np.empty(0, np.int64)
    block = max(1, _DENSE_BLOCK_CELLS // n_items)
    items = []
    for start in range(0, len(users), block):
        chunk = users[start:start + block]
        random_keys = rng.random((len(chunk), n_items))
        lo = np.searchsorted(keys, chunk * n_items)
        hi = np.searchsorted(keys, (chunk + 1) * n_items)
        lengths = hi - lo
        rows = np.repeat(np.arange(len(chunk)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        touched = keys[np.repeat(lo, lengths) + offsets] - chunk[rows] * n_items
        random_keys[rows, touched] = 2.0  # above every uniform key, so never among the k smallest
        items.append(np.argpartition(random_keys, k - 1, axis=1)[:, :k].ravel())
    return np.concatenate(items).astype(np.int64)

