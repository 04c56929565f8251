r"""SANSA: EASE through a sparse approximate inverse of the regularised Gram matrix.

Spišák, M., Bartyzal, R., Hoskovec, A., Peška, L. and Tůma, M. (2023). Scalable Approximate
NonSymmetric Autoencoder for Collaborative Filtering. RecSys 2023, 763-770.
Authors' code: https://github.com/glami/sansa (read for this port, not copied).

EASE (:mod:`baselines.ease`) needs :math:`P = (X^\top X + \lambda I)^{-1}`, a dense items x items
matrix. SANSA (the paper's Algorithm 1) replaces it by sparse factors:

1. :math:`\Pi (X^\top X + \lambda I) \Pi^\top = L D L^\top` with a fill-reducing permutation
   :math:`\Pi`, :math:`L` unit lower triangular, then :math:`L` pruned to a target density
   (:func:`sparse_ldlt`, :func:`prune_factor`);
2. :math:`K \approx L^{-1}`, sparse, by minimal-residual iterations with pruning
   (:func:`approximate_unit_lower_inverse`);
3. :math:`W = K \Pi`, so that :math:`P \approx W^\top D^{-1} W`;
   :math:`r = \operatorname{diag}(W^\top D^{-1} W)` and :math:`Z = D^{-1} W \operatorname{diagMat}(-1/r)`.

The model is the two sparse factors :math:`W^\top` (encoder) and :math:`Z` (decoder); a user's
scores are :math:`x_u W^\top Z + x_u`, i.e. :math:`x_u B` with
:math:`B = I - P \operatorname{diagMat}(1/\operatorname{diag} P)` when :math:`K = L^{-1}` exactly.
No items x items dense matrix is ever formed, in fitting or in scoring.

What comes from where
---------------------
- The Gram matrix, the sparse products, the column selection and the top-k pruning are
  scipy.sparse and numpy.
- The factorisation is SuperLU, through :func:`scipy.sparse.linalg.splu` on the symmetric
  positive definite matrix with a symmetric fill-reducing ordering (minimum degree on the
  pattern of :math:`A^\top + A`, ``permc_spec="MMD_AT_PLUS_A"``), ``SymmetricMode`` and
  ``diag_pivot_thresh=0`` (always the diagonal pivot). SuperLU then returns the same row and
  column permutation and :math:`U = D L^\top` (checked at run time for the permutation, and by
  ``tests/test_sansa.py`` for :math:`U`); :math:`D` is the diagonal of :math:`U`.
- Written here (no installed library provides it): the pruning of the factor, the S1 start
  :math:`K_0 = 2I - L`, the authors' "uniform minimal residual" iterations (one scan through
  the columns in blocks, then fine-tuning steps on the worst columns, each block followed by a
  global magnitude pruning to the target density), and the assembly of the two factors.

Where this port differs from the authors' code
----------------------------------------------
- Factorisation: the authors offer CHOLMOD (exact supernodal Cholesky, then pruned, through
  scikit-sparse) and their own numba incomplete Cholesky ("ICF", which drops entries while it
  factorises and rescales the columns of :math:`X` first). Neither CHOLMOD nor the ``sansa``
  package installs here (no SuiteSparse headers), so this is their CHOLMOD path with SuperLU in
  place of CHOLMOD: the exact factor is computed, then pruned. Its size is the exact factor's
  fill-in, which depends on the data (small for clustered or long-tailed catalogues, up to
  items²/2 for a dense Gram matrix); the ICF path, which never holds the exact factor, is not
  ported. The ordering is SuperLU's multiple minimum degree on the Gram matrix instead of
  CHOLMOD's COLAMD on :math:`X`; both are fill-reducing orderings of :math:`X^\top X`.
  SuperLU is single-threaded and does not exploit symmetry: while it runs it holds its own
  :math:`L` and :math:`U` and the CSC copies scipy returns (about four times the factor's
  entries; only :math:`L` and :math:`\operatorname{diag}(U)` are kept), where CHOLMOD holds one
  factor.
- Pruning keeps exactly the target number of entries of largest magnitude (ranked on the
  Cholesky factor :math:`L D^{1/2}`, as the authors rank the CHOLMOD factor) and always keeps
  the diagonal; the authors drop everything at or below a quantile, which can drop a few more
  on ties. Both the factor and :math:`K` keep their diagonal, so :math:`r > 0` always.
- The inverse iterations run in float64 on :math:`L` in float64 (the authors: float32, with
  MKL sparse products when installed). Every update uses the residual columns
  :math:`I - LK` of the current :math:`K` (the authors compute the whole residual once per scan
  or step and reuse its columns, which the global pruning after earlier blocks makes stale).
  Residual norms are computed once in full, block by block (never the full residual matrix),
  and afterwards only for the columns an update or a pruning changed; the authors recompute the
  whole residual before every step. A scan updates the columns above its threshold in groups
  of :math:`\lceil n \cdot density \rceil` of them; the authors walk fixed blocks of that many
  consecutive columns and update the ones above the threshold in each (the same updates,
  fewer prunings in between here).
- Scores add the input :math:`x_u` (the "input-output residual connection" of the paper's
  Fig. 1), so that :math:`B` has a zero diagonal and equals EASE's at full density; the
  authors' ``forward`` leaves it out and masks the input items.

Hyperparameters (the authors' names in brackets)
-----------------------------------------------
- ``l2`` [``l2``]: :math:`\lambda > 0`, on the scale of EASE's (the CHOLMOD path does not
  rescale :math:`X`). Default 500, this suite's EASE default (the paper's EASE baselines: 200 on
  MSD, 600 on ML-20M, 1200 on Netflix).
- ``factor_density`` [``weight_matrix_density``]: kept entries of :math:`L` as a share of
  items², in (0, 1], at least 2/items (the authors' floor). Default 0.02, the paper's main
  setting (2% on ML-20M, Netflix and MSD; 0.5% on ML-20M also reported). 1 keeps the exact factor.
- ``inverse_density``: target density of :math:`K`; None (default) is the pruned factor's
  density, as in the authors' code, where one density serves both.
- ``scans`` [``scans``, default 1] and ``finetune_steps`` [``finetune_steps``, default 10 in their
  ``UMRUnitLowerTriangleInverterConfig``, 5 in their README]: the refinement of :math:`K`. The
  scan's column threshold (size-normalised residual norm above :math:`10^{-s-1}` in scan
  :math:`s`, never below :math:`10^{-7}`) is the authors' ``log_norm_threshold=-7``.
- ``dtype``: precision of the stored factors and of scoring (the authors store float32).

The search space spans ``l2`` around EASE's useful range and ``factor_density`` around the
paper's 0.5%-2%; the refinement steps are a compute budget (more steps lower the residual until
it levels off), not searched.
"""
from __future__ import annotations

import math
import numbers
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from common.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Real

_DTYPES = {"float32": np.float32, "float64": np.float64}
# SuperLU as a symmetric LDL^T: minimum degree on A^T + A, the same permutation for rows and
# columns, always the diagonal pivot.
SPLU_OPTIONS = {"permc_spec": "MMD_AT_PLUS_A", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
# log10 of the smallest size-normalised residual norm a scan still updates (authors: -7).
_LOG_NORM_THRESHOLD = -7.0
# Residual columns computed together when only their norms are needed (items x columns at most).
_RESIDUAL_BLOCK_ENTRIES = 1 << 22


def regularised_gram(train: sp.spmatrix, l2: float) -> sp.csc_matrix:
    """Sparse ``X^T X + l2 I`` in float64 (CSC, sorted indices)."""
    train = sp.csr_matrix(train, dtype=np.float64)
    gram = (train.T @ train).tocsc() + l2 * sp.identity(train.shape[1], dtype=np.float64, format="csc")
    gram = sp.csc_matrix(gram)
    gram.sort_indices()
    return gram


def sparse_ldlt(gram: sp.csc_matrix) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """``(L, d, order)`` with ``gram[order][:, order] = L diag(d) L^T``, ``L`` unit lower triangular.

    SuperLU's LU of the symmetric positive definite ``gram`` with a symmetric minimum-degree
    ordering and diagonal pivots (:data:`SPLU_OPTIONS`): ``U = diag(d) L^T``, so only ``L`` and
    the diagonal of ``U`` are kept.
    """
    try:
        factor = splu(sp.csc_matrix(gram), **SPLU_OPTIONS)
    except RuntimeError as error:  # SuperLU: "Factor is exactly singular"
        raise RecAuditError(f"sansa: the regularised Gram matrix cannot be factorised ({error}); "
                            "increase l2") from None
    if not np.array_equal(factor.perm_r, factor.perm_c):
        raise RecAuditError("sansa: SuperLU chose off-diagonal pivots (the regularised Gram matrix is not "
                            "numerically positive definite); increase l2")
    d = factor.U.diagonal()
    lower = sp.csc_matrix(factor.L)
    order = np.argsort(factor.perm_c)
    del factor
    if not (np.all(np.isfinite(d)) and d.min() > 0):
        raise RecAuditError("sansa: the LDL^T factorisation has a non-positive pivot (the regularised Gram "
                            "matrix is not numerically positive definite); increase l2")
    lower.sort_indices()
    return lower, d, order


def _target_nnz(density: float, n: int) -> int:
    return int(min(n * n, math.ceil(density * n * n)))


def _csc_columns(matrix: sp.csc_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[1]), np.diff(matrix.indptr))


def _keep_largest(matrix: sp.csc_matrix, keep: int,
                  weights: np.ndarray | None = None) -> tuple[sp.csc_matrix, np.ndarray]:
    """``matrix`` with its diagonal and the ``keep - n_diagonal`` largest other entries by
    ``|value| * weights[column]`` (all of them if there are no more), and the columns that lost
    entries."""
    untouched = np.empty(0, dtype=np.int64)
    if matrix.nnz <= keep:
        return matrix, untouched
    columns = _csc_columns(matrix)
    diagonal = matrix.indices == columns
    off = np.flatnonzero(~diagonal)
    budget = max(keep - int(diagonal.sum()), 0)
    if budget >= len(off):
        return matrix, untouched
    magnitude = np.abs(matrix.data[off])
    if weights is not None:
        magnitude *= weights[columns[off]]
    mask = diagonal
    if budget > 0:
        mask[off[np.argpartition(magnitude, len(off) - budget)[len(off) - budget:]]] = True
    kept_per_column = np.bincount(columns[mask], minlength=matrix.shape[1])
    indptr = np.concatenate(([0], np.cumsum(kept_per_column))).astype(matrix.indptr.dtype)
    pruned = sp.csc_matrix((matrix.data[mask], matrix.indices[mask], indptr), shape=matrix.shape)
    return pruned, np.unique(columns[~mask])


def prune_factor(lower: sp.csc_matrix, d: np.ndarray, density: float) -> sp.csc_matrix:
    """The unit lower factor with its diagonal and the largest entries of the Cholesky factor
    ``L diag(sqrt(d))`` up to ``density * n^2`` entries in all (at least ``2n``, the authors'
    floor of 2/n)."""
    n = lower.shape[0]
    keep = max(_target_nnz(density, n), min(2 * n, n * n))
    return _keep_largest(lower, keep, np.sqrt(d))[0]


def _residual_columns(lower: sp.csc_matrix, inverse: sp.csc_matrix, columns: np.ndarray) -> sp.csc_matrix:
    """Columns ``columns`` (sorted) of ``I - lower @ inverse``."""
    part = -(lower @ inverse[:, columns])
    part = sp.csc_matrix(part)
    identity = sp.csc_matrix((np.ones(len(columns)), (columns, np.arange(len(columns)))),
                             shape=(lower.shape[0], len(columns)))
    result = sp.csc_matrix(part + identity)
    result.sort_indices()
    return result


def _column_squared_norms(matrix: sp.csc_matrix) -> np.ndarray:
    squares = np.zeros(len(matrix.data) + 1)
    squares[:-1] = matrix.data ** 2
    sums = np.add.reduceat(squares, matrix.indptr[:-1])
    return np.where(np.diff(matrix.indptr) > 0, sums, 0.0)


def _residual_norms(lower: sp.csc_matrix, inverse: sp.csc_matrix, block: int,
                    columns: np.ndarray | None = None) -> np.ndarray:
    """Norms of the columns ``columns`` (sorted; all by default) of ``I - lower @ inverse``,
    computed on at least ``block`` columns at a time and at most about
    :data:`_RESIDUAL_BLOCK_ENTRIES` residual entries (never the full residual)."""
    n = lower.shape[0]
    columns = np.arange(n) if columns is None else columns
    block = max(block, _RESIDUAL_BLOCK_ENTRIES // max(n, 1), 1)
    norms = np.empty(len(columns))
    for start in range(0, len(columns), block):
        part = columns[start:start + block]
        norms[start:start + block] = np.sqrt(_column_squared_norms(_residual_columns(lower, inverse, part)))
    return norms


def _minimal_residual_update(lower: sp.csc_matrix, inverse: sp.csc_matrix, columns: np.ndarray,
                             keep: int) -> tuple[sp.csc_matrix, np.ndarray]:
    """One minimal-residual step on columns ``columns`` (sorted): ``k_j += a_j r_j`` with
    ``r_j`` the residual column and ``a_j = <r_j, L r_j> / |L r_j|^2``, the step that minimises
    the new residual's norm; then the whole inverse pruned to ``keep`` entries. Returns the new
    inverse and the columns that changed (updated or pruned)."""
    residual = _residual_columns(lower, inverse, columns)
    projected = sp.csc_matrix(lower @ residual)
    denominator = _column_squared_norms(projected)
    numerator = np.asarray(residual.multiply(projected).sum(axis=0)).ravel()
    del projected
    step = np.zeros(len(columns))
    positive = denominator > 0
    step[positive] = numerator[positive] / denominator[positive]
    residual.data *= np.repeat(step, np.diff(residual.indptr))
    n = lower.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    counts[columns] = np.diff(residual.indptr)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    update = sp.csc_matrix((residual.data, residual.indices, indptr), shape=(n, n))
    del residual
    updated = sp.csc_matrix(inverse + update)
    del update
    updated.eliminate_zeros()
    updated, pruned = _keep_largest(updated, keep)
    updated.sort_indices()
    return updated, np.union1d(columns, pruned)


def approximate_unit_lower_inverse(lower: sp.csc_matrix, density: float, scans: int = 1,
                                   finetune_steps: int = 10) -> tuple[sp.csc_matrix, list[float]]:
    r"""Sparse :math:`K \approx L^{-1}` for a unit lower triangular ``lower``, with at most
    ``max(density * n^2, n)`` entries, and the relative residual :math:`\|I - LK\|_F / \sqrt n`
    before each scan or step and at the end.

    The authors' scheme (their ``UMRUnitLowerTriangleInverter``): start from one Schulz step,
    :math:`K_0 = 2I - L`; then ``scans`` passes through the columns whose size-normalised
    residual norm :math:`\|r_j\| / \sqrt n` exceeds :math:`10^{\max(-s-1, -7)}` in pass :math:`s`,
    in blocks of :math:`\lceil n \cdot density \rceil` columns; then ``finetune_steps`` steps on
    the block of columns with the largest residual norms normalised by :math:`\sqrt{n - j}`
    (column :math:`j` of a lower triangular matrix has :math:`n - j` entries). Every update is a
    minimal-residual step (:func:`_minimal_residual_update`) followed by a global pruning to the
    target (diagonal kept). The residual norms are computed once in full and then only for the
    columns an update or a pruning changed (the authors recompute the whole residual per step).
    """
    n = lower.shape[0]
    lower = sp.csc_matrix(lower, dtype=np.float64)
    keep = max(_target_nnz(density, n), n)
    block = max(1, min(n, math.ceil(n * density)))
    start = sp.csc_matrix(-lower)
    start.setdiag(2.0 - lower.diagonal())
    inverse, _ = _keep_largest(sp.csc_matrix(start), keep)
    del start
    inverse.sort_indices()
    norms = _residual_norms(lower, inverse, block)
    history = []

    def update(columns: np.ndarray) -> None:
        nonlocal inverse
        inverse, changed = _minimal_residual_update(lower, inverse, columns, keep)
        norms[changed] = _residual_norms(lower, inverse, block, changed)

    for scan in range(1, scans + 1):
        history.append(float(np.sqrt(np.mean(norms ** 2))))
        threshold = 10.0 ** max(-scan - 1, _LOG_NORM_THRESHOLD)
        selected = np.flatnonzero(norms / math.sqrt(n) > threshold)
        for first in range(0, len(selected), block):
            update(selected[first:first + block])
    for _ in range(finetune_steps):
        history.append(float(np.sqrt(np.mean(norms ** 2))))
        normalised = norms / np.sqrt(np.arange(n, 0, -1))
        update(np.sort(np.argpartition(normalised, n - block)[n - block:]) if block < n else np.arange(n))
    history.append(float(np.sqrt(np.mean(norms ** 2))))
    return inverse, history


def _is_count(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer)) and value >= 0


def _is_number(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real) and math.isfinite(value)


@register("sansa")
class SANSA(Recommender):
    r"""Scalable Approximate NonSymmetric Autoencoder (Spišák et al., RecSys 2023): EASE with
    :math:`(X^\top X + \lambda I)^{-1}` replaced by sparse factors :math:`W^\top D^{-1} W` of
    prescribed density (see the module docstring for the algorithm, what comes from scipy and
    where this port differs from the authors' code).

    Parameters
    ----------
    l2 : float
        The ridge weight :math:`\lambda > 0` (EASE's scale).
    factor_density : float
        Share of items² kept in the unit lower factor :math:`L`, in (0, 1] (at least 2/items).
    inverse_density : float or None
        Share of items² kept in :math:`K \approx L^{-1}`, in (0, 1]; None: the pruned factor's.
    scans, finetune_steps : int
        Passes through all columns and fine-tuning steps on the worst columns of the inverse
        (>= 0).
    dtype : {"float32", "float64"}
        Precision of the stored factors and of the scores' products.

    Learned: ``encoder_`` (:math:`W^\top`, CSR), ``decoder_`` (:math:`Z`, CSR),
    ``inverse_residual_`` (:math:`\|I - LK\|_F / \sqrt{n}` at the end), ``inverse_residuals_``
    (the same before each scan or step), ``gram_nnz_``, ``exact_factor_nnz_``, ``factor_nnz_``.
    """

    family = "baseline"
    search_space: ClassVar[dict] = {"l2": Real(10.0, 1e4, log=True), "factor_density": Real(0.005, 0.05, log=True)}

    def __init__(self, l2: float = 500.0, factor_density: float = 0.02, inverse_density: float | None = None,
                 scans: int = 1, finetune_steps: int = 10, dtype: str = "float32"):
        self.l2 = l2
        self.factor_density = factor_density
        self.inverse_density = inverse_density
        self.scans = scans
        self.finetune_steps = finetune_steps
        self.dtype = dtype

    def _check_params(self) -> None:
        if not (_is_number(self.l2) and self.l2 > 0):
            raise RecAuditError(f"sansa: l2 must be a positive number, got {self.l2!r}")
        if not (_is_number(self.factor_density) and 0 < self.factor_density <= 1):
            raise RecAuditError(f"sansa: factor_density must lie in (0, 1], got {self.factor_density!r}")
        if self.inverse_density is not None and not (_is_number(self.inverse_density)
                                                     and 0 < self.inverse_density <= 1):
            raise RecAuditError(f"sansa: inverse_density must lie in (0, 1] or be null, got {self.inverse_density!r}")
        for name in ("scans", "finetune_steps"):
            if not _is_count(getattr(self, name)):
                raise RecAuditError(f"sansa: {name} must be a non-negative integer, got {getattr(self, name)!r}")
        if self.dtype not in _DTYPES:
            raise RecAuditError(f"sansa: dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")

    memory_fix = ("this port factorises exactly (no incomplete Cholesky yet), so its memory follows the "
                  "factor's fill-in: drop rare items or users in the prepare filters, or use a larger machine")

    def fit_memory_bytes(self, train) -> int:
        """At least the sparse Gram matrix (float64 values, int32 indices) and SuperLU's working
        copies of a factor no sparser than it (about four times its entries): 36 bytes per Gram
        entry, with the Gram's entries bounded by items^2 and by the sum of squared user counts."""
        n_items = train.shape[1]
        per_user = np.diff(train.indptr).astype(np.float64)  # fit passes CSR
        gram_entries = min(float(n_items) ** 2, float(per_user @ per_user) + n_items)
        return int(36 * gram_entries)

    def _fit(self, data) -> None:
        self._check_params()
        train = data.interactions
        n_items = train.shape[1]
        gram = regularised_gram(train, float(self.l2))
        self.gram_nnz_ = int(gram.nnz)
        lower, d, order = sparse_ldlt(gram)
        del gram
        self.exact_factor_nnz_ = int(lower.nnz)
        lower = prune_factor(lower, d, float(self.factor_density))
        self.factor_nnz_ = int(lower.nnz)
        density = (lower.nnz / n_items ** 2 if self.inverse_density is None else float(self.inverse_density))
        inverse, history = approximate_unit_lower_inverse(lower, density, int(self.scans), int(self.finetune_steps))
        del lower
        self.inverse_residuals_ = history[:-1]
        self.inverse_residual_ = history[-1]
        # W = K Pi: column order[i] of W is column i of K.
        weights = sp.csc_matrix(inverse[:, np.argsort(order)])
        del inverse
        weights.sort_indices()
        scaled = weights.copy()
        scaled.data /= d[weights.indices]                        # D^-1 W
        diagonal = np.asarray(weights.multiply(scaled).sum(axis=0)).ravel()  # diag(W^T D^-1 W) > 0
        scaled.data *= np.repeat(-1.0 / diagonal, np.diff(scaled.indptr))
        dtype = _DTYPES[self.dtype]
        self.encoder_ = sp.csr_matrix(weights.T, dtype=dtype)
        self.decoder_ = sp.csr_matrix(scaled, dtype=dtype)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        dtype = self.encoder_.dtype
        history = sp.csr_matrix(history, dtype=dtype)
        latent = (history @ self.encoder_).toarray()
        scores = np.asarray(latent @ self.decoder_)
        del latent
        entries = history.tocoo()
        np.add.at(scores, (entries.row, entries.col), entries.data)  # + x_u: B = I + W^T Z
        return scores.astype(np.float32, copy=False)
