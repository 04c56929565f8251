"""Random-walk item-item models: P3alpha and RP3beta.

Both build an item x item matrix from a three-step walk item -> user -> item on the bipartite
interaction graph, keep the top-K entries of each row while building it (the blocked builder
of :mod:`baselines.similarity`) and score ``history @ W``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.similarity import aggregate_scores, blocked_topk, check_nonnegative, check_topk
from datasets.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Categorical, Integer, Real


def row_stochastic(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Divide every row by its sum (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.zeros_like(sums)
    np.divide(1.0, sums, out=inverse, where=sums != 0)
    matrix.data *= np.repeat(inverse, np.diff(matrix.indptr))
    return matrix


def inverse_power(values: np.ndarray, exponent: float) -> np.ndarray:
    """float32 ``values ** -exponent``, 0 where ``values`` is 0."""
    result = np.zeros(len(values), dtype=np.float64)
    np.power(values, -exponent, out=result, where=values > 0)
    return result.astype(np.float32)


def elementwise_power(matrix: sp.csr_matrix, exponent: float) -> sp.csr_matrix:
    """Stored entries raised to ``exponent`` (``exponent = 0`` gives 1 on the support)."""
    matrix = matrix.copy()
    matrix.data = np.power(matrix.data, exponent)
    return matrix


@register("p3alpha")
class P3alpha(Recommender):
    """P3alpha: three-step random walk with transition probabilities raised to alpha.

    With ``X`` the training matrix (users x items), ``B`` its binarised support and
    ``pop_j`` the number of training users of item j::

        P_ui = rows of X divided by their sums            (user -> item)
        P_iu = rows of B^T divided by their sums          (item -> user)
        W = (P_iu^alpha) @ (P_ui^alpha) * diag(pop^-beta)   (powers elementwise; beta = 0 here)
        W[i, i] = 0; keep the topk largest entries of each row i (ties: lower column index)
        normalize_similarity: divide each row of W by its sum
        score(u, j) = sum_i h_ui W[i, j]

    Parameters
    ----------
    topk : int
        Entries kept per row of W (TOIS range 5..1000).
    alpha : float
        Exponent of the transition probabilities (1: plain random walk), in [0, 2].
    normalize_similarity : bool
        Make the pruned W row-stochastic again.

    References
    ----------
    Cooper, Lee, Radecka, Buchel. Random walks in recommender systems: exact computation and
    simulations. WWW 2014 (companion). Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    search_space = {"topk": Integer(5, 1000), "alpha": Real(0.0, 2.0),
                    "normalize_similarity": Categorical((True, False))}

    def __init__(self, topk: int = 100, alpha: float = 1.0, normalize_similarity: bool = False):
        self.topk = topk
        self.alpha = alpha
        self.normalize_similarity = normalize_similarity

    def _popularity_exponent(self) -> float:
        return 0.0

    def _fit(self, data) -> None:
        train = data.interactions
        topk = check_topk(self.topk)
        check_nonnegative("alpha", self.alpha)
        beta = self._popularity_exponent()
        train = train.copy()
        train.eliminate_zeros()
        if train.data.size and train.data.min() < 0:
            raise RecAuditError(f"model {self.name!r} needs nonnegative interaction values "
                                "(they are transition weights); binarise or shift the ratings")
        support = train.copy()
        support.data[:] = 1.0
        popularity = np.diff(support.tocsc().indptr).astype(np.float64)
        column_scale = inverse_power(popularity, beta)
        n_items = train.shape[1]
        if np.all(train.data == 1.0):
            # Binary X: P_iu^a P_ui^a = diag(pop^-a) (D B)^T (D B) with D = diag(deg^(-a/2)),
            # a symmetric product: one dense copy, and BLAS syrk when it fits one block.
            degree = np.diff(train.indptr).astype(np.float64)
            right = sp.csr_matrix(sp.diags(inverse_power(degree, self.alpha / 2)) @ support, dtype=np.float32)
            left, symmetric = right.T.tocsr(), True
            row_scale = inverse_power(popularity, self.alpha)
        else:
            left = elementwise_power(row_stochastic(support.T), self.alpha)
            right = elementwise_power(row_stochastic(train), self.alpha)
            symmetric, row_scale = False, None

        def scale(block: np.ndarray, start: int, stop: int) -> None:
            if row_scale is not None:
                block *= row_scale[start:stop, None]
            if beta != 0.0:
                block *= column_scale[None, :]

        similarity = blocked_topk(left, right, topk, scale, exclude=np.arange(n_items),
                                  left_is_right_transposed=symmetric)
        if self.normalize_similarity:
            similarity = row_stochastic(similarity).astype(np.float32)
        self.item_similarity_ = similarity

    def _score(self, users, history) -> np.ndarray:
        return aggregate_scores(history, self.item_similarity_)


@register("rp3beta")
class RP3beta(P3alpha):
    """RP3beta: P3alpha whose column j is divided by ``pop_j^beta`` before pruning.

    The same walk as :class:`P3alpha` (see its formula, with ``beta`` here), re-ranked
    against popularity: ``W[i, j] = (P_iu^alpha P_ui^alpha)[i, j] / pop_j^beta``.

    Parameters
    ----------
    topk, alpha, normalize_similarity
        As for :class:`P3alpha`.
    beta : float
        Popularity penalty exponent, in [0, 2] (0: P3alpha).

    References
    ----------
    Paudel, Christoffel, Mendez, Bernstein. Updatable, accurate, diverse, and scalable
    recommendations for interactive applications. ACM TiiS 7(1), 2017.
    Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    search_space = {"topk": Integer(5, 1000), "alpha": Real(0.0, 2.0), "beta": Real(0.0, 2.0),
                    "normalize_similarity": Categorical((True, False))}

    def __init__(self, topk: int = 100, alpha: float = 1.0, beta: float = 0.6,
                 normalize_similarity: bool = False):
        super().__init__(topk=topk, alpha=alpha, normalize_similarity=normalize_similarity)
        self.beta = beta

    def _popularity_exponent(self) -> float:
        check_nonnegative("beta", self.beta)
        return float(self.beta)
