"""(user, item) pairs as single int64 keys ``user * n_items + item``, and fast set operations
on sorted keys (sort-based: numpy's hash-based ``unique``/``isin`` are several times slower
on millions of int64 keys)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    return frame["user"].to_numpy(np.int64) * np.int64(n_items) + frame["item"].to_numpy(np.int64)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(np.asarray(values))
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Element-wise ``query in sorted_keys`` by binary search."""
    if len(sorted_keys) == 0:
        return np.zeros(len(queries), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[position] == queries
