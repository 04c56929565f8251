"""iALS: implicit-feedback matrix factorisation by alternating least squares.

Hu, Y., Koren, Y. and Volinsky, C. (2008). Collaborative Filtering for Implicit Feedback
Datasets. ICDM 2008, 263-272. Conjugate-gradient updates after Takács, G., Pilászy, I. and
Tikk, D. (2011). Applications of the Conjugate Gradient Method for Implicit Feedback
Collaborative Filtering. RecSys 2011, 297-300. Search ranges in the spirit of Rendle, S.,
Krichene, W., Zhang, L. and Koren, Y. (2022). Revisiting the Performance of iALS on Item
Recommendation Benchmarks. RecSys 2022.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError
from common.threads import thread_scope
from protocols.contract import Recommender, TrainingData
from protocols.early_stopping import EarlyStopping
from protocols.registry import register
from protocols.space import Integer, Real

# Numbers per gathered chunk of rows (rows x padded length x factors), bounding memory.
_CHUNK_NUMBERS = 1 << 22
_SOLVERS = ("cg", "cholesky")
CONFIDENCES = ("linear", "log")
INITS = ("normal", "tois")
# torch threads for fitting and fold-in: the batched kernels are small, and on a shared
# 2-core machine one thread ran 2-4x faster than two (ML-1M, 5 epochs: 2.6 s vs 5-10 s);
# one thread also makes the numbers independent of the machine's core count.
_TORCH_THREADS = 1


@dataclass(frozen=True)
class _PaddedRows:
    """The rows of a sparse matrix in chunks of similar length, padded to a rectangle.

    ``index`` points into the other side's factors (padding: one past the last, a zero row);
    ``weight`` holds ``alpha * r`` (padding: 0), the confidence minus one.
    """

    rows: list[np.ndarray]
    index: list[np.ndarray]
    weight: list[np.ndarray]

    @classmethod
    def build(cls, matrix: sp.csr_matrix, alpha: float, factors: int) -> _PaddedRows:
        counts = np.diff(matrix.indptr)
        order = np.argsort(counts, kind="stable")
        widths = np.maximum(counts[order], factors)  # the k x k systems count too
        parts: tuple[list, list, list] = ([], [], [])
        start = 0
        while start < len(order):
            # Sorted by length, so a chunk costs (members) x (its last member's width) x factors.
            cost = np.arange(1, len(order) - start + 1) * widths[start:] * factors
            stop = start + max(1, int(np.searchsorted(cost, _CHUNK_NUMBERS, side="right")))
            rows = order[start:stop]
            length = int(counts[rows].max(initial=0))
            offsets = matrix.indptr[rows][:, None] + np.arange(length)[None, :]
            valid = np.arange(length)[None, :] < counts[rows][:, None]
            offsets = np.where(valid, offsets, 0)
            parts[0].append(rows)
            parts[1].append(np.where(valid, matrix.indices[offsets] if matrix.nnz else 0, matrix.shape[1]))
            parts[2].append(np.where(valid, alpha * matrix.data[offsets] if matrix.nnz else 0, 0.0))
            start = stop
        return cls(*parts)


def _solve_side(plan: _PaddedRows, fixed: np.ndarray, current: np.ndarray, reg: float, solver: str,
                cg_steps: int) -> np.ndarray:
    r"""One half-step of ALS: every row's factor given the other side's factors ``fixed``.

    Row u solves :math:`(Y^\top Y + Y^\top (C_u - I) Y + \lambda I)\, x_u = Y^\top C_u p_u`
    (Hu et al. 2008, eq. 4) exactly by batched Cholesky, or by ``cg_steps`` steps of
    conjugate gradient started from ``current`` (Takács et al. 2011). Runs on torch's CPU
    kernels (batched GEMM and Cholesky are several times faster there than numpy's loops).
    """
    import torch

    fixed_t = torch.from_numpy(np.ascontiguousarray(fixed))
    n_factors = fixed.shape[1]
    system = fixed_t.T @ fixed_t + reg * torch.eye(n_factors, dtype=fixed_t.dtype)
    padded = torch.cat([fixed_t, torch.zeros((1, n_factors), dtype=fixed_t.dtype)])
    current_t = torch.from_numpy(np.ascontiguousarray(current, dtype=fixed.dtype))
    result = torch.zeros_like(current_t)
    for rows, index, weight in zip(plan.rows, plan.index, plan.weight):
        rows_t, index_t = torch.from_numpy(rows), torch.from_numpy(index)
        gathered = padded[index_t]                                   # rows x length x factors
        weight_t = torch.from_numpy(weight).to(fixed_t.dtype)
        confidence = torch.where(index_t < len(fixed), 1 + weight_t, 0)
        rhs = torch.bmm(confidence[:, None, :], gathered)[:, 0, :]
        if solver == "cholesky":
            scaled = gathered * weight_t.sqrt()[:, :, None]
            matrices = torch.baddbmm(system.expand(len(rows), -1, -1), scaled.transpose(1, 2), scaled)
            result[rows_t] = _spd_solve(matrices, rhs)
        else:
            result[rows_t] = _conjugate_gradient(system, gathered, weight_t, rhs, current_t[rows_t], cg_steps)
    return result.numpy()


def _spd_solve(matrices, rhs):
    """Batched Cholesky solve; systems too ill-conditioned for it (in float32) fall back to LU."""
    import torch

    factor, info = torch.linalg.cholesky_ex(matrices)
    solution = torch.cholesky_solve(rhs[:, :, None], factor)[:, :, 0]
    failed = info != 0
    if bool(failed.any()):
        solution[failed] = torch.linalg.solve(matrices[failed], rhs[failed])
    return solution


def _conjugate_gradient(system, gathered, weight, rhs, start, steps):
    """Batched CG on A_u = system + F_u^T diag(w_u) F_u (torch tensors), never forming A_u."""
    import torch


    def apply(vectors):
        along_items = torch.bmm(gathered, vectors[:, :, None])[:, :, 0] * weight
        return vectors @ system + torch.bmm(along_items[:, None, :], gathered)[:, 0, :]

    solution = start.clone()
    residual = rhs - apply(solution)
    direction = residual.clone()
    residual_norm2 = (residual * residual).sum(dim=1)
    for _ in range(steps):
        image = apply(direction)
        curvature = (direction * image).sum(dim=1)
        step = torch.where(curvature > 0, residual_norm2 / torch.where(curvature > 0, curvature, 1), 0)
        solution += step[:, None] * direction
        residual -= step[:, None] * image
        new_norm2 = (residual * residual).sum(dim=1)
        ratio = torch.where(residual_norm2 > 0, new_norm2 / torch.where(residual_norm2 > 0, residual_norm2, 1), 0)
        direction = residual + ratio[:, None] * direction
        residual_norm2 = new_norm2
    return solution


def ials_loss(train: sp.csr_matrix, user_factors: np.ndarray, item_factors: np.ndarray, alpha: float,
              reg: float) -> float:
    r""":math:`\sum_{u,i} c_{ui}(p_{ui} - x_u^\top y_i)^2 + \lambda(\|X\|^2 + \|Y\|^2)`, with
    :math:`c = 1 + \alpha r` and :math:`p = [r > 0]`, without forming the dense matrix:
    :math:`\sum_{u,i} s_{ui}^2 = \operatorname{tr}(X^\top X\, Y^\top Y)` plus corrections on
    the observed entries."""
    users = np.asarray(user_factors, dtype=np.float64)
    items = np.asarray(item_factors, dtype=np.float64)
    coo = train.tocoo()
    observed = np.einsum("nk,nk->n", users[coo.row], items[coo.col])
    confidence = 1 + alpha * coo.data.astype(np.float64)
    total = np.sum((users.T @ users) * (items.T @ items))
    total += np.sum(confidence * (1 - observed) ** 2 - observed**2)
    return float(total + reg * (np.sum(users**2) + np.sum(items**2)))


@register("ials")
class IALS(Recommender):
    r"""Implicit ALS (Hu, Koren and Volinsky, ICDM 2008).

    Minimises

    .. math::

        \sum_{u,i} c_{ui} (p_{ui} - x_u^\top y_i)^2 + \lambda \Big(\sum_u \|x_u\|^2 + \sum_i \|y_i\|^2\Big),
        \qquad c_{ui} = 1 + \alpha r_{ui},\quad p_{ui} = [r_{ui} > 0],

    or, with ``confidence="log"``, :math:`c_{ui} = 1 + \alpha \log(1 + r_{ui} / \epsilon)` (Hu et al.'s
    second scaling; the TOIS study's ``IALSRecommender`` offers both and searches them).

    by alternating exact (``solver="cholesky"``) or conjugate-gradient (``solver="cg"``,
    ``cg_steps`` steps from the previous factors, Takács et al. 2011) updates, using
    :math:`Y^\top C_u Y = Y^\top Y + Y^\top (C_u - I) Y` so each user costs only its own items.
    Users are always folded in at scoring time: :math:`x_u` is the exact least-squares
    factor of the given history row against the learned item factors, so training users
    and held-out users are scored the same way, and :math:`\hat r_u = Y x_u`.

    With validation data, its metric (the tuning metric) is computed every ``validate_every``
    epochs (and after the last) by the shared :class:`~protocols.early_stopping.EarlyStopping`;
    training stops after ``patience`` checks without improvement (never if ``None``) and the
    factors of the best check are kept (``best_epoch_``, ``validation_history_`` as
    (epoch, value) pairs).

    Parameters
    ----------
    factors : int
        Dimension of the user and item factors.
    alpha : float
        Confidence slope, :math:`c = 1 + \alpha r`.
    reg : float
        L2 weight :math:`\lambda > 0`.
    epochs : int
        Most full alternations (users then items).
    cg_steps : int
        Conjugate-gradient steps per update (``solver="cg"``).
    solver : {"cg", "cholesky"}
    confidence : {"linear", "log"}
    epsilon : float
        The log scaling's :math:`\epsilon` (unused by ``"linear"``).
    init : {"normal", "tois"}
        Initial factors: :math:`\mathcal N(0, 0.1^2/k)` for both sides, or the TOIS study's
        code: item factors :math:`k^{-1/2}\,U[0, 1)`, user factors computed from them first
        (zeros before the first update).
    seed : int
        Seed of the initial factors.

    Choices the TOIS study's code makes (``MatrixFactorization/IALSRecommender.py``) and how
    they map here: the same objective, :math:`\lambda I` not scaled by counts; exact solves
    (``solver="cholesky"``; its code inverts the k x k matrix); ``init="tois"``. It searches
    factors in 1..200, ``confidence`` in {linear, log}, alpha in [1e-3, 50], epsilon in
    [1e-3, 10] and reg in [1e-5, 1e-2], all log-uniform; the search space below keeps wider
    ranges for alpha and reg (the best reg on MovieLens-1M at 64 factors is near 100, outside
    the study's range) and leaves ``confidence`` and ``epsilon`` fixed: on binary interactions
    the log scaling is the linear one with alpha' = alpha log(1 + 1/epsilon).
    validate_every, patience : int, int or None
        Early-stopping schedule (see above).
    """

    family = "baseline"
    search_space: ClassVar[dict] = {
        "factors": Integer(1, 200),
        "alpha": Real(0.1, 100.0, log=True),
        # The loss is not scaled by frequency (unlike Rendle et al.'s), so the useful L2 grows
        # with the data: on MovieLens-1M (64 factors, alpha 10) the best is near 100.
        "reg": Real(1e-3, 1e3, log=True),
    }
    conformance_params: ClassVar[dict] = {"factors": 6, "epochs": 3}

    def __init__(self, factors: int = 64, alpha: float = 10.0, reg: float = 0.01, epochs: int = 15,
                 cg_steps: int = 3, solver: str = "cg", confidence: str = "linear", epsilon: float = 1.0,
                 init: str = "normal", seed: int = 0, validate_every: int = 1, patience: int | None = None):
        self.factors = factors
        self.alpha = alpha
        self.reg = reg
        self.confidence = confidence
        self.epsilon = epsilon
        self.init = init
        self.epochs = epochs
        self.cg_steps = cg_steps
        self.solver = solver
        self.seed = seed
        self.validate_every = validate_every
        self.patience = patience

    def _check_params(self, train: sp.csr_matrix) -> None:
        for name in ("factors", "epochs", "cg_steps", "validate_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise RecAuditError(f"ials: {name} must be a positive integer, got {value!r}")
        if self.patience is not None and (isinstance(self.patience, bool)
                                          or not isinstance(self.patience, (int, np.integer))
                                          or self.patience < 1):
            raise RecAuditError(f"ials: patience must be None or a positive integer, got {self.patience!r}")
        if self.solver not in _SOLVERS:
            raise RecAuditError(f"ials: solver must be one of {', '.join(_SOLVERS)}, got {self.solver!r}")
        if self.confidence not in CONFIDENCES:
            raise RecAuditError(f"ials: confidence must be one of {', '.join(CONFIDENCES)}, got {self.confidence!r}")
        if self.init not in INITS:
            raise RecAuditError(f"ials: init must be one of {', '.join(INITS)}, got {self.init!r}")
        if not float(self.epsilon) > 0:
            raise RecAuditError(f"ials: epsilon must be positive, got {self.epsilon!r}")
        if not float(self.alpha) >= 0:
            raise RecAuditError(f"ials: alpha must be non-negative, got {self.alpha!r}")
        if not float(self.reg) > 0:
            raise RecAuditError(f"ials: reg must be positive, got {self.reg!r}")
        if train.nnz and train.data.min() < 0:
            raise RecAuditError("ials: interaction values must be non-negative (confidence 1 + alpha * r); "
                                "binarise or shift the ratings")

    def _fit(self, data: TrainingData) -> None:
        self._check_params(data.interactions)
        with thread_scope(_TORCH_THREADS):
            self._alternate(data)

    def _alternate(self, data: TrainingData) -> None:
        weights = self._confidence_minus_one(data.interactions)
        k, reg = int(self.factors), float(self.reg)
        users_plan = _PaddedRows.build(weights, 1.0, k)
        items_plan = _PaddedRows.build(weights.T.tocsr(), 1.0, k)
        rng = np.random.default_rng(self.seed)
        if self.init == "tois":
            item_factors = (k ** -0.5 * rng.random((weights.shape[1], k))).astype(np.float32)
            user_factors = np.zeros((weights.shape[0], k), dtype=np.float32)
        else:
            scale = 0.1 / np.sqrt(k)
            user_factors = (scale * rng.standard_normal((weights.shape[0], k))).astype(np.float32)
            item_factors = (scale * rng.standard_normal((weights.shape[1], k))).astype(np.float32)
        stopper = EarlyStopping(data.validation, validate_every=int(self.validate_every), patience=self.patience)
        epoch = 0
        for epoch in range(1, int(self.epochs) + 1):
            user_factors = _solve_side(users_plan, item_factors, user_factors, reg, self.solver, self.cg_steps)
            item_factors = _solve_side(items_plan, user_factors, item_factors, reg, self.solver, self.cg_steps)
            self.item_factors_ = item_factors
            current = (user_factors, item_factors)
            if stopper.after_epoch(epoch, self, snapshot=lambda: current, last=epoch == int(self.epochs)):
                break
        self.user_factors_, self.item_factors_ = stopper.best_snapshot or (user_factors, item_factors)
        self.best_epoch_ = stopper.best_epoch_or(epoch)
        self.validation_history_ = [(record["epoch"], record[stopper.metric]) for record in stopper.history]

    def _confidence_minus_one(self, interactions: sp.csr_matrix) -> sp.csr_matrix:
        """c - 1 on the non-zero entries: alpha r, or alpha log(1 + r / epsilon)."""
        weights = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
        weights.eliminate_zeros()
        if self.confidence == "log":
            weights.data = (float(self.alpha) * np.log1p(weights.data / float(self.epsilon))).astype(np.float32)
        else:
            weights.data = weights.data * np.float32(self.alpha)
        return weights

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        with thread_scope(_TORCH_THREADS):
            return self._fold_in_scores(history)

    def _fold_in_scores(self, history: sp.csr_matrix) -> np.ndarray:
        item_factors = self.item_factors_.astype(np.float64)
        plan = _PaddedRows.build(self._confidence_minus_one(history), 1.0, item_factors.shape[1])
        folded = _solve_side(plan, item_factors, np.zeros((history.shape[0], item_factors.shape[1])),
                             float(self.reg), "cholesky", 0)
        return (folded @ item_factors.T).astype(np.float32)
