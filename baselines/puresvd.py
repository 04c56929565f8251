"""PureSVD: a truncated SVD of the training matrix, users folded in through the item factors.

Cremonesi, P., Koren, Y. and Turrin, R. (2010). Performance of Recommender Algorithms on
Top-N Recommendation Tasks. RecSys 2010, 39-46.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Integer


@register("puresvd")
class PureSVD(Recommender):
    r"""PureSVD (Cremonesi et al., RecSys 2010).

    The training matrix is factorised as :math:`X \approx U_k \Sigma_k Q_k^\top` by a
    truncated randomised SVD (Halko et al. 2011, ``sklearn.utils.extmath.randomized_svd``;
    its integer ``random_state`` makes a local generator, global state is untouched). A
    user's scores are the projection of the history row :math:`x_u` onto the top-k item
    space, :math:`\hat r_u = x_u Q_k Q_k^\top`, which equals :math:`U_k \Sigma_k Q_k^\top` for
    training users and folds in any other user.

    Parameters
    ----------
    factors : int
        Rank k; capped at ``min(n_users, n_items)`` (the learned rank is ``n_factors_``).
    seed : int
        Seed of the random test matrix of the randomised SVD.
    """

    family = "baseline"
    search_space: ClassVar[dict] = {"factors": Integer(1, 350)}
    conformance_params: ClassVar[dict] = {"factors": 8}

    def __init__(self, factors: int = 50, seed: int = 0):
        self.factors = factors
        self.seed = seed

    def _fit(self, data) -> None:
        train = data.interactions
        if isinstance(self.factors, bool) or not isinstance(self.factors, (int, np.integer)) or self.factors < 1:
            raise RecAuditError(f"puresvd: factors must be a positive integer, got {self.factors!r}")
        rank = min(int(self.factors), *train.shape)  # more is undefined; capped, not refused
        from sklearn.utils.extmath import randomized_svd  # imported here: 0.4 s that every other stage skips

        _, singular_values, item_vectors = randomized_svd(
            train.astype(np.float64), n_components=rank, random_state=int(self.seed))
        self.n_factors_ = rank
        self.singular_values_ = singular_values
        self.item_factors_ = np.ascontiguousarray(item_vectors.T, dtype=np.float32)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        projected = np.asarray(history @ self.item_factors_)
        return projected @ self.item_factors_.T

