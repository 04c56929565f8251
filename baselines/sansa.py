r"""SANSA: EASE through a sparse approximate inverse of the regularised Gram matrix.

Spišák, M., Bartyzal, R., Hoskovec, A., Peška, L. and Tůma, M. (2023). Scalable Approximate
NonSymmetric Autoencoder for Collaborative Filtering. RecSys 2023, 763-770.
Authors' code: https://github.com/glami/sansa (read for this port, not copied).

EASE (:mod:`baselines.ease`) needs :math:`P = (X^\top X + \lambda I)^{-1}`, a dense items x items
matrix. SANSA (the paper's Algorithm 1) replaces it by sparse factors:

1. :math:`\Pi (X^\top X + \lambda I) \Pi^\top \approx L D L^\top` with a fill-reducing permutation
   :math:`\Pi` and :math:`L` unit lower triangular of a target density, by one of the authors'
   two factorisers (``factorizer``):

   - ``"exact"`` (their CHOLMOD path): the exact factor, then pruned to the target density
     (:func:`sparse_ldlt`, :func:`prune_factor`). Its working memory is the exact factor's
     fill-in, which depends on the data: small for clustered or long-tailed catalogues, up to
     items²/2 for a dense Gram matrix.
   - ``"icf"`` (their ICF path): the columns of :math:`X` are first scaled by
     :math:`S = \operatorname{diagMat}(1/\sqrt{\|(X^\top X)_{:,j}\|_2})`, then the incomplete
     Cholesky factorisation of :math:`\Pi (S X^\top X S + \lambda I) \Pi^\top` drops entries while
     it factorises, so the factor never holds more than the target's entries
     (:func:`icf_scaling_and_ordering`, :func:`scaled_lower_gram`, :func:`icf_ldlt`,
     :mod:`baselines.incomplete_cholesky`). Its memory follows the Gram matrix's non-zeros (its
     pattern for the ordering, then its lower triangle) and the target, never the exact
     factor's fill-in. As in the authors' code, :math:`\lambda` is added to
     the *scaled* Gram matrix (whose diagonal is at most 1) and the weights learned on the
     scaled data are applied to unscaled histories: at full density the model is EASE fitted
     on :math:`XS`, scoring :math:`x_u` (not :math:`x_u S`), which is not EASE on :math:`X`.
2. :math:`K \approx L^{-1}`, sparse, by minimal-residual iterations with pruning
   (:func:`approximate_unit_lower_inverse`);
3. :math:`W = K \Pi`, so that :math:`P \approx W^\top D^{-1} W`;
   :math:`r = \operatorname{diag}(W^\top D^{-1} W)` and :math:`Z = D^{-1} W \operatorname{diagMat}(-1/r)`.

The model is the two sparse factors :math:`W^\top` (encoder) and :math:`Z` (decoder); a user's
scores are :math:`x_u W^\top Z + x_u`, i.e. :math:`x_u B` with
:math:`B = I - P \operatorname{diagMat}(1/\operatorname{diag} P)` when :math:`K = L^{-1}` exactly
(with ``"icf"``, :math:`P` of the scaled Gram matrix).
No items x items dense matrix is ever formed, in fitting or in scoring.

Which factoriser: the authors' configuration has no default (one of the two must be chosen);
the paper's ML-20M, Netflix and MSD results were computed with CHOLMOD, ICF only on MSD (an
extra run: recall@20 0.276-0.298 at 0.05%-1% density with :math:`\lambda = 2.5`, against
CHOLMOD's 0.328-0.332, in their branch ``reproduce_our_results``) and Amazon Books
(:math:`\lambda = 20`, density 0.005%), and their README advises CHOLMOD for smaller, denser
Gram matrices and ICF for very large, sparse ones. The default here is ``"exact"``; ``"icf"``
is for catalogues whose exact factor does not fit.

What comes from where
---------------------
- The Gram matrix, the sparse products, the column selection and the top-k pruning are
  scipy.sparse and numpy.
- ``"exact"``: the factorisation is SuperLU, through :func:`scipy.sparse.linalg.splu` on the
  symmetric positive definite matrix with a symmetric fill-reducing ordering (minimum degree on
  the pattern of :math:`A^\top + A`, ``permc_spec="MMD_AT_PLUS_A"``), ``SymmetricMode`` and
  ``diag_pivot_thresh=0`` (always the diagonal pivot). SuperLU then returns the same row and
  column permutation and :math:`U = D L^\top` (checked at run time for the permutation, and by
  ``tests/test_sansa.py`` for :math:`U`); :math:`D` is the diagonal of :math:`U`.
- ``"icf"``: the ordering is METIS's nested dissection (``pymetis.nested_dissection``) on the
  Gram matrix's pattern when it is sparse, scipy's reverse Cuthill-McKee
  (:func:`scipy.sparse.csgraph.reverse_cuthill_mckee`) when it is dense; the incomplete
  factorisation is written here (:mod:`baselines.incomplete_cholesky`, numba).
- Written here (no installed library provides it): the pruning of the factor, the S1 start
  :math:`K_0 = 2I - L`, the authors' "uniform minimal residual" iterations (one scan through
  the columns in blocks, then fine-tuning steps on the worst columns, each block followed by a
  global magnitude pruning to the target density), and the assembly of the two factors.

Where this port differs from the authors' code
----------------------------------------------
- Factorisation: the authors offer CHOLMOD (exact supernodal Cholesky, then pruned, through
  scikit-sparse) and their own numba incomplete Cholesky ("ICF"). Neither CHOLMOD nor the
  ``sansa`` package installs here (no SuiteSparse headers), so ``"exact"`` is their CHOLMOD path
  with SuperLU in place of CHOLMOD: the exact factor is computed, then pruned. The ordering is
  SuperLU's multiple minimum degree on the Gram matrix instead of CHOLMOD's COLAMD on
  :math:`X`; both are fill-reducing orderings of :math:`X^\top X`. SuperLU is single-threaded
  and does not exploit symmetry: while it runs it holds its own :math:`L` and :math:`U` and the
  CSC copies scipy returns (about four times the factor's entries; only :math:`L` and
  :math:`\operatorname{diag}(U)` are kept), where CHOLMOD holds one factor.
- ICF follows the authors' algorithm (their ``icf``): the same column scaling of :math:`X`, the
  same left-looking factorisation, the same rule that subtracts every computed entry's square
  from the later pivots (dropped ones too, as in Lin and Moré's ``icfm``), the same largest-
  magnitude selection per column within an even share of the remaining budget, the same
  budget (``factor_density * items²`` entries, diagonal included, at least 2 per item) and the
  same retries after a breakdown (shift :math:`\lambda + 10^{-3} \cdot 2^k`). It differs in:
  the ordering (COLAMD, their choice, needs SuiteSparse; SuperLU's minimum degree, the exact
  path's, did not finish in 15 minutes on a million-item Gram matrix): METIS's nested
  dissection (pymetis, seconds on a million items) when at most 5% of the Gram matrix is filled,
  reverse Cuthill-McKee (scipy) above. On sparse Gram matrices a fill-reducing ordering is what
  keeps the budget for the factor's large entries: on ``bench_sansa.py``'s synthetic catalogues
  nested dissection's exact factor had 7-10 times fewer entries than reverse Cuthill-McKee's
  (powerlaw-5k: 589k against 4.73M; clustered-10k: 78k against 720k) and, at 0.05% density, its
  top 20 agreed more with the full-density model (0.67 against 0.49; 0.83 against 0.78;
  minimum degree: 0.63, 0.88). On dense ones everything fills whatever the order, and the
  band order dropped better: on MovieLens-latest-small (ratings >= 3.5, 609 x 4,434, Gram 28%
  filled, a random 20% held out) reverse Cuthill-McKee gave the best recall@20 of reverse
  Cuthill-McKee, nested dissection, minimum degree, ascending degree and the natural order in
  all six settings tried (:math:`\lambda` 0.5, 2.5, 20 x density 0.5%, 2%; e.g. 0.292 against
  0.285 for nested dissection, 0.288 for ascending degree and 0.280 for minimum degree at 20
  and 2%; full density: 0.302), and METIS needs about 17 bytes per Gram entry (4.5 GB more on
  the ML-20M shape). The 5% is the authors' own line: above it their ICF warns that it is
  unstable and advises CHOLMOD. Further differences: the share of column :math:`j` counts its
  diagonal, i.e. it is :math:`\lfloor(\text{left} - (n - j)) / (n - j)\rfloor` other entries
  where the authors allow :math:`\lfloor \text{left} / (n - j) \rfloor` (one more, which can
  overrun their preallocated buffer by a few entries at the end); ties in magnitude keep the
  smaller row (theirs: ``argpartition``'s order); exact zeros are not stored; float64
  throughout (theirs: float32); at most :data:`_ICF_MAX_RETRIES` retries (theirs: unbounded).
  The scaled Gram matrix is built from blocks of rows and only its strict lower triangle is
  held (theirs: the full product, then the algorithm reads its lower part).
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
- ``l2`` [``l2``]: :math:`\lambda > 0`. With ``"exact"`` on the scale of EASE's (the CHOLMOD
  path does not rescale :math:`X`); default 500, this suite's EASE default (the paper's EASE
  baselines: 200 on MSD, 600 on ML-20M, 1200 on Netflix). With ``"icf"`` it is added to the
  scaled Gram matrix, whose diagonal is at most 1: the authors used 20 (Amazon Books) and 2.5
  (MSD); the default 500 is far too strong there, so set it.
- ``factorizer`` [``gramian_factorizer_config``]: ``"exact"`` (default) or ``"icf"``, see above.
- ``factor_density`` [``weight_matrix_density``]: kept entries of :math:`L` as a share of
  items², in (0, 1], at least 2/items (the authors' floor). Default 0.02, the paper's main
  setting (2% on ML-20M, Netflix and MSD; 0.5% on ML-20M also reported; 0.005% for Amazon
  Books with ICF). 1 keeps the exact factor, with either factoriser (ICF then drops nothing).
  With ``"icf"`` it also sets the memory: 12 bytes per budgeted entry (a million items at 2%
  is 2*10^10 entries; the authors' Amazon Books run used 0.005%).
- ``inverse_density``: target density of :math:`K`; None (default) is the pruned factor's
  density, as in the authors' code, where one density serves both.
- ``scans`` [``scans``, default 1] and ``finetune_steps`` [``finetune_steps``, default 10 in their
  ``UMRUnitLowerTriangleInverterConfig``, 5 in their README]: the refinement of :math:`K`. The
  scan's column threshold (size-normalised residual norm above :math:`10^{-s-1}` in scan
  :math:`s`, never below :math:`10^{-7}`) is the authors' ``log_norm_threshold=-7``.
- ``dtype``: precision of the stored factors and of scoring (the authors store float32).

The search space spans ``l2`` around EASE's useful range and ``factor_density`` around the
paper's 0.5%-2% (for the default ``"exact"``; with ``"icf"`` its lower end, 10, is near the
authors' 20, but not their 2.5); the refinement steps are a compute budget (more steps lower the
residual until it levels off), not searched.
"""
from __future__ import annotations

import math
import numbers
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.sparse.linalg import splu

from baselines.incomplete_cholesky import incomplete_cholesky
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
_FACTORIZERS = ("exact", "icf")
# Gram rows computed per sparse product in the ICF path (bounded through the users' counts), so
# that the full symmetric Gram matrix is never held, only its strict lower triangle.
_GRAM_BLOCK_ENTRIES = 1 << 24
# The authors' ICF retries after a non-positive pivot with the shift l2 + step * multiplier^k
# (their ICFGramianFactorizerConfig defaults); they retry without end, this port at most
# _ICF_MAX_RETRIES times (a shift of 1e-3 * 2^39 > 5e8 exceeds any scaled Gram's entries).
_ICF_SHIFT_STEP = 1e-3
_ICF_SHIFT_MULTIPLIER = 2.0
_ICF_MAX_RETRIES = 40
# Share of items^2 filled above which the Gram matrix counts as dense for the ICF ordering (the
# authors' own threshold: their ICF warns that it is unstable above 5% and advises CHOLMOD).
_DENSE_GRAM = 0.05


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


def _gram_row_bounds(train: sp.csr_matrix) -> np.ndarray:
    """Per item, an upper bound of its Gram row's non-zeros: ``min(items, sum of its users'
    counts)``, from the pattern of ``train`` (CSR; its values may be scaled)."""
    counts = np.diff(train.indptr)
    sums = np.bincount(train.indices, weights=np.repeat(counts, counts).astype(np.float64), minlength=train.shape[1])
    return np.minimum(float(train.shape[1]), sums)


def _gram_row_blocks(train: sp.csr_matrix) -> np.ndarray:
    """Edges of consecutive item ranges whose Gram rows hold about :data:`_GRAM_BLOCK_ENTRIES`
    entries at most, bounded per item by ``min(items, sum of its users' counts)``."""
    bound = _gram_row_bounds(train)
    n_items = len(bound)
    ends = np.cumsum(bound)
    total = float(ends[-1]) if n_items else 0.0
    cuts = np.searchsorted(ends, np.arange(1, int(total // _GRAM_BLOCK_ENTRIES) + 1) * float(_GRAM_BLOCK_ENTRIES),
                           side="right")
    return np.unique(np.concatenate(([0], cuts, [n_items]))).astype(np.int64)


def _gram_rows(transposed: sp.csr_matrix, train: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of ``X^T X`` (CSR, sorted indices); ``transposed`` is ``X^T`` as CSR."""
    rows = sp.csr_matrix(transposed[start:stop] @ train)
    rows.sort_indices()
    return rows


def icf_scaling_and_ordering(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, int, str]:
    r"""``(scale, order, lower_entries, ordering)`` for the ICF path, from one pass over row
    blocks of :math:`G = X^\top X`:

    - ``scale``: the authors' column scaling of :math:`X` before ICF,
      :math:`1 / \sqrt{\|G_{:,j}\|_2}` (1 for items without interactions), so that the scaled
      Gram :math:`S G S` has entries :math:`G_{ij} / \sqrt{\|G_{:,i}\|_2 \|G_{:,j}\|_2}`
      (diagonal at most 1);
    - ``order``: on the pattern of :math:`G`, METIS's nested dissection (pymetis) when at most
      :data:`_DENSE_GRAM` of it is filled, reverse Cuthill-McKee (scipy) otherwise, named by
      ``ordering`` (see the module docstring for why);
    - ``lower_entries``: the entries of :math:`G`'s strict lower triangle.

    The pattern (without the diagonal) is held as int32 column indices, sized by the users'
    counts, which bound it; it is released before the lower triangle is built.
    """
    train = sp.csr_matrix(train, dtype=np.float64)
    transposed = train.T.tocsr()
    n_items = train.shape[1]
    squared_norms = np.zeros(n_items)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    indices = np.empty(int(_gram_row_bounds(train).sum()), dtype=np.int32)
    filled = 0
    edges = _gram_row_blocks(train)
    for start, stop in zip(edges[:-1], edges[1:]):
        rows = _gram_rows(transposed, train, start, stop)
        lengths = np.diff(rows.indptr)
        squares = np.zeros(rows.nnz + 1)
        squares[:-1] = rows.data ** 2
        squared_norms[start:stop] = np.where(lengths > 0, np.add.reduceat(squares, rows.indptr[:-1]), 0.0)
        del squares
        local_row = np.repeat(np.arange(stop - start), lengths)
        off = rows.indices != local_row + start  # METIS takes a graph without self-loops
        count = int(off.sum())
        indices[filled:filled + count] = rows.indices[off]
        indptr[start + 1:stop + 1] = filled + np.cumsum(np.bincount(local_row[off], minlength=stop - start))
        filled += count
        del rows, local_row, off
    del transposed
    root = np.sqrt(np.sqrt(squared_norms))
    root[root == 0] = 1.0
    if filled + n_items <= _DENSE_GRAM * float(n_items) ** 2:
        import pymetis  # only here: the exact path does not need it

        order = np.asarray(pymetis.nested_dissection(pymetis.CSRAdjacency(indptr, indices[:filled]))[0],
                           dtype=np.int64)
        ordering = "nested dissection"
    else:
        pattern = sp.csr_matrix((np.ones(filled, dtype=np.bool_), indices[:filled], indptr),
                                shape=(n_items, n_items))
        order = np.asarray(reverse_cuthill_mckee(pattern, symmetric_mode=True), dtype=np.int64)
        ordering = "reverse Cuthill-McKee"
    return 1.0 / root, order, filled // 2, ordering


def scaled_lower_gram(train: sp.csr_matrix, scale: np.ndarray, order: np.ndarray,
                      entries: int | None = None) -> tuple[sp.csc_matrix, np.ndarray]:
    r"""``(lower, diagonal)``: the strict lower triangle (CSC, sorted rows) and the diagonal of
    :math:`A = \Pi S X^\top X S \Pi^\top`, with :math:`S` = ``diag(scale)`` and
    ``A = (S X^T X S)[order][:, order]``. Built from row blocks of the Gram matrix of the scaled,
    permuted :math:`X` (the upper triangle of a row block is the lower triangle of the matching
    column block), so only the lower triangle is ever held; ``entries`` (when known) sizes it."""
    train = sp.csr_matrix(train, dtype=np.float64)
    permuted = sp.csr_matrix(train[:, order])
    del train
    permuted.data *= scale[order][permuted.indices]
    transposed = permuted.T.tocsr()
    n_items = permuted.shape[1]
    diagonal = np.bincount(permuted.indices, weights=permuted.data ** 2, minlength=n_items)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    capacity = int(entries) if entries is not None else 0
    indices = np.empty(capacity, dtype=np.int32 if n_items < 2 ** 31 else np.int64)
    data = np.empty(capacity)
    filled = 0
    edges = _gram_row_blocks(permuted)
    for start, stop in zip(edges[:-1], edges[1:]):
        rows = _gram_rows(transposed, permuted, start, stop)
        local_row = np.repeat(np.arange(stop - start), np.diff(rows.indptr))
        below = rows.indices > local_row + start  # right of the diagonal in row r: below it in column r
        per_column = np.bincount(local_row[below], minlength=stop - start)
        del local_row
        count = int(per_column.sum())
        if filled + count > capacity:  # only when entries was not given (or rounding differs)
            capacity = max(filled + count, int(capacity * 1.25))
            indices = np.resize(indices, capacity)
            data = np.resize(data, capacity)
        indices[filled:filled + count] = rows.indices[below]
        data[filled:filled + count] = rows.data[below]
        indptr[start + 1:stop + 1] = filled + np.cumsum(per_column)
        filled += count
        del rows, below
    if filled < capacity:
        indices, data = indices[:filled].copy(), data[:filled].copy()
    lower = sp.csc_matrix((data, indices, indptr), shape=(n_items, n_items))
    lower.has_sorted_indices = True
    return lower, diagonal


def icf_ldlt(lower: sp.csc_matrix, diagonal: np.ndarray, l2: float,
             max_nnz: int) -> tuple[sp.csc_matrix, np.ndarray, float]:
    """``(L, d, shift)``: the authors' incomplete factorisation of ``A + shift I`` (``A`` given by
    its strict lower triangle and diagonal) as ``L diag(d) L^T`` with ``L`` unit lower
    triangular and at most ``max_nnz`` entries; ``shift`` is ``l2``, or ``l2 + 1e-3 * 2^k`` after
    ``k + 1`` breakdowns (a non-positive pivot), as in the authors' code."""
    shift = float(l2)
    for attempt in range(_ICF_MAX_RETRIES + 1):
        factor, failed = incomplete_cholesky(lower, diagonal + shift, max_nnz)
        if factor is not None:
            root = factor.diagonal()
            factor.data /= np.repeat(root, np.diff(factor.indptr))  # L D^1/2 -> unit L
            return factor, root ** 2, shift
        shift = float(l2) + _ICF_SHIFT_STEP * _ICF_SHIFT_MULTIPLIER ** attempt
    raise RecAuditError(f"sansa: the incomplete factorisation broke down {_ICF_MAX_RETRIES + 1} times "
                        f"(last shift {shift:.3g}); increase l2")


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
        The ridge weight :math:`\lambda > 0`: EASE's scale with ``"exact"``, the scaled Gram
        matrix's (diagonal at most 1) with ``"icf"``.
    factor_density : float
        Share of items² kept in the unit lower factor :math:`L`, in (0, 1] (at least 2/items).
    inverse_density : float or None
        Share of items² kept in :math:`K \approx L^{-1}`, in (0, 1]; None: the pruned factor's.
    scans, finetune_steps : int
        Passes through all columns and fine-tuning steps on the worst columns of the inverse
        (>= 0).
    dtype : {"float32", "float64"}
        Precision of the stored factors and of the scores' products.
    factorizer : {"exact", "icf"}
        The authors' CHOLMOD path (exact factor, then pruned; SuperLU here) or their incomplete
        Cholesky path (scaled columns, entries dropped while factorising).

    Learned: ``encoder_`` (:math:`W^\top`, CSR), ``decoder_`` (:math:`Z`, CSR),
    ``inverse_residual_`` (:math:`\|I - LK\|_F / \sqrt{n}` at the end), ``inverse_residuals_``
    (the same before each scan or step), ``gram_nnz_``, ``factor_nnz_``, ``exact_factor_nnz_``
    (None with ``"icf"``, which never forms the exact factor) and ``icf_shift_`` (the diagonal
    shift the incomplete factorisation succeeded with: ``l2``, or more after breakdowns; None
    with ``"exact"``).
    """

    family = "baseline"
    search_space: ClassVar[dict] = {"l2": Real(10.0, 1e4, log=True), "factor_density": Real(0.005, 0.05, log=True)}

    def __init__(self, l2: float = 500.0, factor_density: float = 0.02, inverse_density: float | None = None,
                 scans: int = 1, finetune_steps: int = 10, dtype: str = "float32", factorizer: str = "exact"):
        self.l2 = l2
        self.factor_density = factor_density
        self.inverse_density = inverse_density
        self.scans = scans
        self.finetune_steps = finetune_steps
        self.dtype = dtype
        self.factorizer = factorizer

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
        if self.factorizer not in _FACTORIZERS:
            raise RecAuditError(f"sansa: factorizer must be one of {', '.join(_FACTORIZERS)}, got {self.factorizer!r}")

    @property
    def memory_fix(self) -> str:
        """What lowers the need that :meth:`fit_memory_bytes` states, for this factoriser."""
        if self.factorizer == "icf":
            return ("lower factor_density (the incomplete factor holds factor_density x items^2 entries; the "
                    "authors used 0.00005 on 92,000 items), or drop rare items or users in the prepare filters "
                    "(the Gram matrix's lower triangle is held)")
        return ("use factorizer: icf (its memory follows the Gram matrix's non-zeros and factor_density; l2 then "
                "applies to the scaled Gram matrix, the authors used 20), or drop rare items or users in the "
                "prepare filters")

    def fit_memory_bytes(self, train) -> int:
        """Working memory of the fit, from the Gram matrix's entries ``g`` (at most items^2 and
        the sum of squared user counts plus the items) and, for ICF, the factor's budget ``t``
        (``factor_density * items^2``, at least ``2 * items``) and the inverse's ``t_inv``.

        - exact: the sparse Gram matrix (float64 values, int32 indices) and SuperLU's working
          copies of a factor no sparser than it (about four times its entries): 36 bytes per
          Gram entry.
        - icf: the largest of four stages: the ordering's pass (the pattern as int32, 4 bytes per
          Gram entry, and METIS's working memory, about 17 more and 800 per item, or scipy's 1
          per entry when dense); the
          Gram's strict lower triangle (12 bytes per entry, ``(g - items) / 2`` entries) with the
          per-block Gram rows (about 20 bytes per entry with their masks,
          :data:`_GRAM_BLOCK_ENTRIES`) and two permuted copies of the input; the same triangle
          with the factor's buffers (12 bytes per budgeted entry); the factor with the inverse's
          iterates, update and pruning copies and the two stored factors (about six copies of
          ``t_inv``); plus 200 bytes per item (the factorisation's and the iterations' per-item
          arrays). Items^2 enters only through the budgets the densities set.
        """
        self._check_params()  # the estimate reads the densities: bad ones fail here, in one line
        n_items = train.shape[1]
        per_user = np.diff(train.indptr).astype(np.float64)  # fit passes CSR
        gram_entries = min(float(n_items) ** 2, float(per_user @ per_user) + n_items)
        if self.factorizer != "icf":
            return int(36 * gram_entries)
        factor = min(self._icf_budget(n_items), n_items * (n_items + 1) // 2)  # a lower triangle at most
        inverse = factor if self.inverse_density is None else max(_target_nnz(float(self.inverse_density), n_items),
                                                                  n_items)
        lower = max(gram_entries - n_items, 0.0) / 2
        block = 20 * min(float(_GRAM_BLOCK_ENTRIES), gram_entries)
        # The ordering pass: the int32 pattern, then METIS (sparse; measured: about 17 bytes per
        # entry and 750 per item) or scipy's bool per entry (dense).
        metis = gram_entries <= _DENSE_GRAM * float(n_items) ** 2
        ordering_stage = 4 * gram_entries + (17 * gram_entries + 800 * n_items if metis else gram_entries) + block
        gram_stage = max(ordering_stage, 12 * lower + block + 2 * 16 * train.nnz)
        factor_stage = 12 * lower + 12 * factor
        inverse_stage = 12 * factor + 6 * 12 * min(float(inverse), n_items * (n_items + 1) / 2)
        return int(max(gram_stage, factor_stage, inverse_stage) + 200 * n_items)

    def _icf_budget(self, n_items: int) -> int:
        """The incomplete factor's entry budget, as the authors count it (every entry of the
        Cholesky factor, diagonal included): ``factor_density * items^2``, at least their floor
        of 2 per item."""
        return max(_target_nnz(float(self.factor_density), n_items), 2 * n_items)

    def _factorise_exact(self, train) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
        gram = regularised_gram(train, float(self.l2))
        self.gram_nnz_ = int(gram.nnz)
        lower, d, order = sparse_ldlt(gram)
        del gram
        self.exact_factor_nnz_ = int(lower.nnz)
        self.icf_shift_ = self.icf_ordering_ = None
        return prune_factor(lower, d, float(self.factor_density)), d, order

    def _factorise_icf(self, train) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
        n_items = train.shape[1]
        scale, order, entries, self.icf_ordering_ = icf_scaling_and_ordering(train)
        lower, diagonal = scaled_lower_gram(train, scale, order, entries)
        self.gram_nnz_ = int(2 * lower.nnz + n_items)  # of the regularised matrix, as with "exact"
        self.exact_factor_nnz_ = None
        factor, d, shift = icf_ldlt(lower, diagonal, float(self.l2), self._icf_budget(n_items))
        self.icf_shift_ = shift
        return factor, d, order

    def _fit(self, data) -> None:
        self._check_params()
        train = data.interactions
        n_items = train.shape[1]
        if self.factorizer == "icf":
            lower, d, order = self._factorise_icf(train)
        else:
            lower, d, order = self._factorise_exact(train)
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
