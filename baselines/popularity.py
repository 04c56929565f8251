"""Most-popular baseline: every user gets the same ranking, by training popularity.

score(u, i) = |{v : (v, i) in train}|, the number of training users who interacted with
item i. It needs no user embedding, so it folds in any user (the history is ignored apart
from the exclusion of seen items, which the evaluator applies).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from protocols.contract import Recommender
from protocols.registry import register


@register("pop")
class Popularity(Recommender):
    family = "baseline"

    def __init__(self):
        pass

    def _fit(self, data) -> None:
        train = data.interactions
        # Stored entries, not summed values: ratings or repeat counts must not weigh in.
        self.item_popularity_ = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        # A real (writable) array: the evaluator masks seen items in place.
        return np.tile(self.item_popularity_, (len(users), 1))

    def _score_candidates(self, users, history, candidates: np.ndarray) -> np.ndarray:
        return self.item_popularity_[candidates]
