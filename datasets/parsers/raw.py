"""What a parser returns: a dataset in its original ids, before any preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class RawFeatures:
    """One named content feature set in original ids: row ``r`` of ``values`` describes item ``ids[r]``.

    ``meta`` says where it comes from and what it is (``source``: the raw file(s); ``features``:
    a sentence; ``feature_names``: the column labels, or where they are). An item whose row is
    empty has no content in this set (its presence mask is False after preparation). Dense
    ``values`` (an ndarray: image features) stay dense; there, absent means not among ``ids``.
    """

    values: sp.csr_matrix | np.ndarray
    ids: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class RawDataset:
    """One dataset as read from its raw files, ids untouched (ints or strings).

    - ``interactions``: columns ``user``, ``item`` and, where the data has them, ``rating``
      and ``timestamp`` (seconds).
    - ``users`` / ``items``: optional descriptive frames keyed by ``user`` / ``item``
      (original ids); they may list ids that never occur in ``interactions``.
    - ``item_features``: named content feature sets (``genres``, ``tags``, ``bow``, ...), see
      :class:`RawFeatures`; preparation re-indexes them and derives ``bow-tfidf`` from ``bow``.
    - ``item_images``: ``item``, ``image_path`` (relative to the raw folder, or None).
    - ``given``: the paper's published splits, ``{split: {part: frame}}`` with ``user`` and
      ``item`` columns (``negatives`` parts list sampled candidates per user).
    - ``source_files``: the raw files read, relative to the raw folder (a trailing ``/``
      names a folder, checksummed as a whole); ``notes`` are facts for ``meta.json`` (never a
      machine path).
    """

    interactions: pd.DataFrame
    source_files: list[str]
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    item_features: dict[str, RawFeatures] = field(default_factory=dict)
    item_images: pd.DataFrame | None = None
    given: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def pairs_frame(users, items, **extra) -> pd.DataFrame:
    return pd.DataFrame({"user": np.asarray(users), "item": np.asarray(items), **extra})


def binary_content(rows: np.ndarray, features: np.ndarray, n_rows: int, n_features: int) -> sp.csr_matrix:
    """A 0/1 rows x features matrix from (row, feature) pairs; repeated pairs count once."""
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, features)), shape=(n_rows, n_features)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def multi_hot(owner_ids: pd.Series, labels: pd.Series) -> tuple[np.ndarray, sp.csr_matrix, list[str]]:
    """(owner, label) pairs -> (sorted unique owners, owners x sorted labels 0/1 matrix, labels)."""
    owner_codes, owners = pd.factorize(owner_ids, sort=True)
    label_codes, names = pd.factorize(labels, sort=True)
    matrix = binary_content(owner_codes, label_codes, len(owners), len(names))
    return np.asarray(owners), matrix, [str(name) for name in names]


def split_genres(ids: pd.Series, genres: pd.Series,
                 empty: tuple[str, ...] = ()) -> tuple[np.ndarray, sp.csr_matrix, list[str]]:
    """``a|b|c`` genre strings -> an items x genres 0/1 matrix over every id in ``ids``."""
    exploded = pd.DataFrame({"id": ids.to_numpy(), "genre": genres.astype(str).str.split("|")}).explode("genre")
    exploded = exploded[(exploded["genre"] != "") & ~exploded["genre"].isin(empty)]
    id_codes = pd.Index(ids.to_numpy()).get_indexer(exploded["id"].to_numpy())
    genre_codes, names = pd.factorize(exploded["genre"], sort=True)
    matrix = binary_content(id_codes, genre_codes, len(ids), len(names))
    return ids.to_numpy(), matrix, [str(name) for name in names]


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` for integer keys by sorting: numpy 2.4's hash-based ``np.unique`` (and
    so ``isin``/``intersect1d``) is 50-100x slower on ~1e6 int64 keys."""
    ordered = np.sort(np.asarray(keys))
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``keys`` occur in ``sorted_keys`` (sorted, unique)."""
    keys = np.asarray(keys)
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[positions] == keys
