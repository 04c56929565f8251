"""EASE: the closed-form item-item linear autoencoder with a zero diagonal.

Steck, H. (2019). Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019, 3251-3257.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.dense_inverse import BLOCK, LAPACK_MAX_ORDER, symmetric_inverse_in_place
from common.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Real

# Columns of the Gram matrix built per sparse product: bounds the temporary sparse block
# (items x block entries at most) instead of materialising a sparse items x items Gram.
_GRAM_BLOCK_ENTRIES = 1 << 24
_DTYPES = {"float32": np.float32, "float64": np.float64}


def item_gram(train: sp.csr_matrix, dtype, extra_diagonal: float = 0.0) -> np.ndarray:
    """Dense ``X^T X + extra_diagonal * I`` in ``dtype``, built in column blocks.

    A fresh array on every call (callers factorise it in place).
    """
    n_items = train.shape[1]
    train = sp.csr_matrix(train)
    transposed = train.T.tocsr()
    gram = np.empty((n_items, n_items), dtype=dtype)
    block = max(1, _GRAM_BLOCK_ENTRIES // max(n_items, 1))
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        # Symmetric, so row blocks of the C-ordered array are the column blocks of X^T X.
        gram[start:stop] = (transposed[start:stop] @ train).toarray()
    gram.flat[::n_items + 1] += dtype(extra_diagonal)
    return gram


def dual_item_weights(train: sp.csr_matrix, l2: float, dtype) -> np.ndarray:
    """EASE's ``B`` through the users x users system, for catalogues larger than the user base.

    By the Woodbury identity, ``(X^T X + l2 I)^-1 = (I - Q) / l2`` with
    ``Q = X^T (X X^T + l2 I)^-1 X``, so ``B_ij = -P_ij / P_jj = Q_ij / (1 - Q_jj)`` for
    ``i != j``: the inversion costs users^3 instead of items^3 (CiteULike-a: 5,551 users against
    16,980 items, about 30 times less work). Only users with interactions enter. The small
    system and ``diag(Q)`` are computed in float64, since ``1 - Q_jj`` cancels when l2 is small.
    """
    active = sp.csr_matrix(train[np.diff(train.indptr) > 0], dtype=np.float64)
    kernel = (active @ active.T).toarray()
    kernel.flat[::kernel.shape[0] + 1] += l2
    symmetric_inverse_in_place(kernel)
    left = np.asarray(active.T @ kernel)                      # X^T K^-1, items x users
    diagonal = np.asarray(active.T.multiply(left).sum(axis=1)).ravel()
    weights = np.ascontiguousarray(left.astype(dtype, copy=False) @ active.astype(dtype), dtype=dtype)
    del left
    weights /= (1.0 - diagonal).astype(dtype)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def nonnegative_item_weights(train: sp.csr_matrix, l2: float, iterations: int, tolerance: float,
                             dtype=np.float64) -> tuple[np.ndarray, int]:
    r"""EASE≥0 (Steck 2019, section 3.3): the same objective with :math:`B \ge 0` as well as
    :math:`\operatorname{diag}(B) = 0`, by ADMM on the split :math:`B = C`.

    With :math:`K = X^\top X` and :math:`G = K + \lambda I` the objective is
    :math:`\operatorname{tr}(B^\top G B) - 2\operatorname{tr}(K B)` + const, so each iteration is

    - :math:`B \leftarrow (2G + \rho I)^{-1} (2K + \rho (C - U))` (one matrix product with an
      inverse computed once),
    - :math:`C \leftarrow \max(0, B + U)` with a zero diagonal (the projection on the constraints),
    - :math:`U \leftarrow U + B - C`,

    with :math:`\rho` the mean diagonal of :math:`2G`. It stops when the primal residual
    :math:`\|B - C\|` and the dual residual :math:`\rho \|C - C_{prev}\|` fall below
    ``tolerance`` times :math:`\|C\|` (and ``tolerance`` absolutely), or after ``iterations``;
    the feasible :math:`C` is returned with the iterations run. A budget in iterations, never
    seconds. Convex problem: the limit is the exact optimum (tests compare it with a
    non-negative least-squares solve per column).
    """
    gram = item_gram(train, np.float64)
    n_items = gram.shape[0]
    doubled = 2.0 * gram
    doubled.flat[::n_items + 1] += 2.0 * l2
    rho = float(np.mean(np.diag(doubled))) or 1.0
    target = 2.0 * gram  # 2K
    system = doubled
    system.flat[::n_items + 1] += rho
    inverse = symmetric_inverse_in_place(system)
    weights = np.zeros((n_items, n_items))
    dual = np.zeros((n_items, n_items))
    iteration = 0
    for iteration in range(1, iterations + 1):
        free = inverse @ (target + rho * (weights - dual))
        previous = weights
        weights = np.maximum(free + dual, 0.0)
        np.fill_diagonal(weights, 0.0)
        dual += free - weights
        scale = max(np.linalg.norm(weights), 1.0)
        primal_residual = np.linalg.norm(free - weights)
        dual_residual = rho * np.linalg.norm(weights - previous)
        if primal_residual <= tolerance * scale and dual_residual <= tolerance * scale:
            break
    return weights.astype(dtype, copy=False), iteration


@register("ease")
class EASE(Recommender):
    r"""Embarrassingly Shallow AutoEncoder (Steck, WWW 2019).

    Learns the item-item weights

    .. math::

        B = \arg\min_B \|X - XB\|_F^2 + \lambda \|B\|_F^2 \quad \text{s.t.}\ \operatorname{diag}(B) = 0,

    in closed form: :math:`G = X^\top X + \lambda I`, :math:`P = G^{-1}`,
    :math:`B = I - P\,\operatorname{diagMat}(1 / \operatorname{diag}(P))`, i.e.
    :math:`B_{ij} = -P_{ij} / P_{jj}` for :math:`i \ne j`. A user's scores are
    :math:`x_u B` for the history row :math:`x_u`, so any user can be folded in.

    Parameters
    ----------
    l2 : float
        The ridge weight :math:`\lambda > 0`.
    dtype : {"float32", "float64"}
        Precision of the Gram matrix, its inverse and ``B``. The inverse is computed in place
        by Cholesky (:func:`baselines.dense_inverse.symmetric_inverse_in_place`: LAPACK
        ``potrf``/``potri``, tiled beyond what scipy's LAPACK handles), so one items x items
        array is held: 20,000 items need 1.6 GB in float32, the MSD's 41,140 6.8 GB. When fewer users than items have interactions, the
        same ``B`` is computed through the users x users system (:func:`dual_item_weights`).
    non_negative : bool
        EASE≥0: also constrain :math:`B \ge 0` (Steck's section 3.3), solved by ADMM
        (:func:`nonnegative_item_weights`, float64), at most ``admm_iterations`` iterations to a
        relative ``admm_tolerance``; ``admm_iterations_`` records how many ran.
    """

    family = "baseline"
    search_space: ClassVar[dict] = {"l2": Real(1.0, 1e7, log=True)}

    def __init__(self, l2: float = 500.0, dtype: str = "float32", non_negative: bool = False,
                 admm_iterations: int = 1000, admm_tolerance: float = 1e-6):
        self.l2 = l2
        self.dtype = dtype
        self.non_negative = non_negative
        self.admm_iterations = admm_iterations
        self.admm_tolerance = admm_tolerance

    memory_fix = ("set dtype: float32, drop rare items in the dataset's prepare filters, or use sansa "
                  "(its memory grows with the Gram matrix's non-zeros, not with items^2)")

    def fit_memory_bytes(self, train) -> int:
        n_users, n_items = train.shape
        itemsize = np.dtype(_DTYPES.get(self.dtype, np.float32)).itemsize
        if self.non_negative is True:
            # ADMM holds the system inverse, the target, B, C, the dual and one product (float64).
            return 6 * n_items * n_items * 8
        # The dual path (fewer users than items) adds the users x users kernel (float64) and
        # the items x users factor; the primal path inverts in place.
        smaller = min(n_users, n_items)
        inverted = smaller if n_users < n_items else n_items
        # beyond LAPACK's order the tiled inverse holds a few n x BLOCK strips besides
        strips = 4 * inverted * BLOCK * itemsize * (inverted > LAPACK_MAX_ORDER)
        return n_items * n_items * itemsize + (smaller * smaller + smaller * n_items) * 8 * (n_users < n_items) + strips

    def _fit(self, data) -> None:
        train = data.interactions
        if self.dtype not in _DTYPES:
            raise RecAuditError(f"ease: dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if not float(self.l2) > 0:
            raise RecAuditError(f"ease: l2 must be positive, got {self.l2!r}")
        dtype = _DTYPES[self.dtype]
        if not isinstance(self.non_negative, bool):
            raise RecAuditError(f"ease: non_negative must be true or false, got {self.non_negative!r}")
        if self.non_negative:
            if isinstance(self.admm_iterations, bool) or not isinstance(self.admm_iterations, int) \
                    or self.admm_iterations < 1:
                raise RecAuditError(f"ease: admm_iterations must be an integer >= 1, got {self.admm_iterations!r}")
            if not float(self.admm_tolerance) > 0:
                raise RecAuditError(f"ease: admm_tolerance must be positive, got {self.admm_tolerance!r}")
            self.item_weights_, self.admm_iterations_ = nonnegative_item_weights(
                train, float(self.l2), self.admm_iterations, float(self.admm_tolerance), dtype)
            return
        n_active_users = int(np.count_nonzero(np.diff(train.indptr)))
        try:
            if n_active_users < train.shape[1]:
                self.item_weights_ = dual_item_weights(train, float(self.l2), dtype)
                return
            weights = item_gram(train, dtype, extra_diagonal=float(self.l2))
            symmetric_inverse_in_place(weights)
        except np.linalg.LinAlgError as error:
            raise RecAuditError(f"ease: the regularised Gram matrix cannot be inverted ({error}); "
                                "increase l2") from None
        weights /= -np.diag(weights)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.item_weights_ = weights

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.item_weights_, dtype=np.float32)


@register("ease-nonnegative")
class EASENonNegative(EASE):
    """EASE≥0 under its own name (Steck 2019's table reports it beside EASE): ``EASE`` with
    ``non_negative=True`` by default."""

    def __init__(self, l2: float = 500.0, dtype: str = "float32", non_negative: bool = True,
                 admm_iterations: int = 1000, admm_tolerance: float = 1e-6):
        super().__init__(l2=l2, dtype=dtype, non_negative=non_negative, admm_iterations=admm_iterations,
                         admm_tolerance=admm_tolerance)
