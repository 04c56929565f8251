"""Random baseline: the floor every model must clear.

score(u, i) = h(seed, u, i) / 2^24 with h a 64-bit integer hash (the SplitMix64 finaliser,
Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014). A
score depends only on (seed, user, item), so the same seed gives the same ranking whatever
the batching, the order of users or the set of candidates, and no state is drawn in fit.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from protocols.contract import Recommender
from protocols.registry import register

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_USER_STRIDE = np.uint64(0xD6E8FEB86659FD93)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's output function; uint64 arithmetic wraps modulo 2^64 by design."""
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def hashed_uniform(seed: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Uniform float32 in [0, 1) for every (user, item) pair of the broadcast of the inputs."""
    seed_key = _splitmix64(np.asarray([seed], dtype=np.int64).astype(np.uint64))[0]
    user_keys = _splitmix64(np.asarray(users, dtype=np.int64).astype(np.uint64) * _USER_STRIDE ^ seed_key)
    bits = _splitmix64(user_keys ^ np.asarray(items, dtype=np.int64).astype(np.uint64))
    # The top 24 bits fill a float32 mantissa exactly, so every value is representable.
    return (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


@register("random")
class RandomScores(Recommender):
    family = "baseline"
    scores_cold_items = True  # uniform over every item, cold or not

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, data) -> None:
        self.fitted_seed_ = int(self.seed)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return hashed_uniform(self.fitted_seed_, users[:, None], np.arange(self.n_items_)[None, :])

    def _score_candidates(self, users, history, candidates: np.ndarray) -> np.ndarray:
        return hashed_uniform(self.fitted_seed_, users[:, None], candidates)
