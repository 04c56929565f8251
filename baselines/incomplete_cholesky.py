r"""Incomplete Cholesky factorisation with a fixed entry budget (SANSA's "ICF").

Spišák et al. (RecSys 2023) factorise the scaled Gram matrix with an incomplete Cholesky
factorisation that drops entries *while* it factorises, so the factor never holds more than a
prescribed number of entries (their ``sansa.core._ops._factor_ops.icf``, after Lin and Moré's
limited-memory ``icfm``, SIAM J. Sci. Comput. 21(1), 1999). Written here from their description
and code, not copied:

- Left-looking, column by column: column :math:`j` of :math:`L` is
  :math:`a_j - \sum_{k<j} L_{jk} L_{:,k}` restricted to rows :math:`> j`, then divided by
  :math:`L_{jj} = \sqrt{d_j}`, where :math:`d_j` is :math:`a_{jj}` minus the squares of every
  entry computed so far in row :math:`j` (kept or dropped: the authors subtract both).
- Column :math:`j` keeps its diagonal and at most
  :math:`m_j = \lfloor (\text{budget} - \text{stored} - (n-j)) / (n-j) \rfloor` other entries,
  those of largest magnitude (ties: the smaller row), i.e. an even share of what is left after
  reserving one diagonal per remaining column, so the factor never exceeds the budget.
- A non-positive pivot stops the factorisation; the caller retries with a larger diagonal shift.

The kernel is compiled by numba (``cache=True``: compiled once per machine, not per run); its
work is linear in the entries it touches, with no Python per column.
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(cache=True, nogil=True)
def _factorise(n, a_indptr, a_indices, a_data, diagonal, max_nnz, l_indptr, l_indices, l_data):
    """Fill ``l_*`` (CSC, rows sorted, diagonal first in each column) with the incomplete
    factor of the matrix whose strictly lower triangle is ``a_*`` (CSC, rows sorted) and whose
    diagonal is ``diagonal`` (overwritten: the running pivots). Returns the number of entries
    stored, or ``-(j + 1)`` when the pivot of column ``j`` is not positive."""
    work = np.zeros(n, np.float64)
    touched = np.zeros(n, np.bool_)
    rows = np.empty(n, np.int64)
    magnitudes = np.empty(n, np.float64)
    # Columns k < j whose next unused entry lies in row i form a linked list started at head[i]:
    # each column visits the rows of its entries in order, one row per step.
    head = np.full(n, -1, np.int64)
    link = np.full(n, -1, np.int64)
    cursor = np.zeros(n, np.int64)
    nnz = 0
    l_indptr[0] = 0
    for j in range(n):
        count = 0
        for p in range(a_indptr[j], a_indptr[j + 1]):
            i = a_indices[p]
            if a_data[p] != 0.0:
                work[i] += a_data[p]
                if not touched[i]:
                    touched[i] = True
                    rows[count] = i
                    count += 1
        k = head[j]
        head[j] = -1
        while k != -1:
            following = link[k]
            position = cursor[k]
            l_jk = l_data[position]
            end = l_indptr[k + 1]
            for p in range(position + 1, end):
                i = l_indices[p]
                work[i] -= l_data[p] * l_jk
                if not touched[i]:
                    touched[i] = True
                    rows[count] = i
                    count += 1
            if position + 1 < end:
                cursor[k] = position + 1
                i = l_indices[position + 1]
                link[k] = head[i]
                head[i] = k
            k = following
        pivot = diagonal[j]
        if not pivot > 0.0:
            return -(j + 1)
        root = np.sqrt(pivot)
        l_indices[nnz] = j
        l_data[nnz] = root
        nnz += 1
        # Stored by row: the linked lists walk each column's entries in increasing row order.
        column_rows = np.sort(rows[:count])
        kept = 0
        for q in range(count):
            i = column_rows[q]
            value = work[i] / root
            work[i] = value
            diagonal[i] -= value * value  # every computed entry, kept or dropped (the authors' rule)
            if value != 0.0:  # a cancellation to exactly zero is not an entry
                column_rows[kept] = i
                magnitudes[kept] = abs(value)
                kept += 1
        # An even share of the budget left after reserving this and every later diagonal.
        remaining = n - j
        share = (max_nnz - (nnz - 1) - remaining) // remaining
        if kept > share:
            if share <= 0:
                kept = 0
            else:
                # The share-th largest magnitude; ties at it go to the smaller rows (deterministic).
                threshold = np.partition(magnitudes[:kept], kept - share)[kept - share]
                above = 0
                for q in range(kept):
                    if magnitudes[q] > threshold:
                        above += 1
                ties = share - above
                selected = 0
                for q in range(kept):
                    if magnitudes[q] > threshold or (magnitudes[q] == threshold and ties > 0):
                        if magnitudes[q] == threshold:
                            ties -= 1
                        column_rows[selected] = column_rows[q]
                        selected += 1
                kept = selected
        for q in range(kept):
            i = column_rows[q]
            l_indices[nnz] = i
            l_data[nnz] = work[i]
            nnz += 1
        for q in range(count):
            i = rows[q]
            work[i] = 0.0
            touched[i] = False
        l_indptr[j + 1] = nnz
        if kept > 0:
            start = l_indptr[j] + 1
            cursor[j] = start
            i = l_indices[start]
            link[j] = head[i]
            head[i] = j
    return nnz


def incomplete_cholesky(lower: sp.csc_matrix, diagonal: np.ndarray, max_nnz: int) -> tuple[sp.csc_matrix | None, int]:
    """``(L, -1)`` with ``L`` lower triangular (CSC, positive diagonal) and ``L L^T`` the
    incomplete factorisation of the symmetric matrix with strictly lower triangle ``lower`` and
    diagonal ``diagonal``, holding at most ``max(max_nnz, n)`` entries; ``(None, j)`` when the
    pivot of column ``j`` is not positive (the matrix needs a larger diagonal shift).

    ``lower`` must be CSC with sorted row indices and only entries below the diagonal.
    """
    n = lower.shape[0]
    budget = max(int(max_nnz), n)
    # The shares are computed from the budget; a lower triangle never holds more than n(n+1)/2.
    capacity = min(budget, n * (n + 1) // 2)
    l_indptr = np.zeros(n + 1, np.int64)
    l_indices = np.empty(capacity, np.int32 if n < 2 ** 31 else np.int64)
    l_data = np.empty(capacity, np.float64)
    nnz = _factorise(n, lower.indptr.astype(np.int64, copy=False), lower.indices, np.asarray(lower.data, np.float64),
                     np.array(diagonal, np.float64), budget, l_indptr, l_indices, l_data)
    if nnz < 0:
        return None, -nnz - 1
    if nnz < capacity:  # release the unused part of the buffers
        l_data, l_indices = l_data[:nnz].copy(), l_indices[:nnz].copy()
    factor = sp.csc_matrix((l_data, l_indices, l_indptr), shape=(n, n))
    factor.has_sorted_indices = True
    return factor, -1
