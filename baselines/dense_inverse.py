"""The inverse of a dense symmetric positive definite matrix, in place: EASE's one hard step.

Up to :data:`LAPACK_MAX_ORDER` it is LAPACK's Cholesky inverse (``potrf`` then ``potri``, through
scipy). Beyond it, scipy's LAPACK (OpenBLAS with 32-bit integers) segfaults in ``potrf``:
measured on this machine, order 26,000 factorises and 27,000 (and the MSD shape's 41,140)
crash. There the same three steps LAPACK takes (Cholesky ``G = L L^T``, the triangular inverse
``W = L^-1``, then ``G^-1 = W^T W``) run blocked in Python: every LAPACK call is on one
``block x block`` tile, and every large product is a numpy matmul (numpy's OpenBLAS uses 64-bit
integers). Memory stays one n x n array plus a few ``n x block`` strips; the work is LAPACK's
(about n^3 flops), in tiles of ``block`` columns.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack, solve_triangular

LAPACK_MAX_ORDER = 26_754
BLOCK = 2048


def symmetric_inverse_in_place(matrix: np.ndarray, block: int = BLOCK,
                               lapack_max_order: int = LAPACK_MAX_ORDER) -> np.ndarray:
    """Inverse of the symmetric positive definite C-ordered ``matrix``, written over it.

    Returns ``matrix`` itself. Raises ``np.linalg.LinAlgError`` if it is not positive definite.
    """
    if matrix.shape[0] <= lapack_max_order:
        _lapack_inverse(matrix)
    else:
        _blocked_inverse(matrix, block)
    _mirror_lower_to_upper(matrix)
    return matrix


def _lapack_inverse(matrix: np.ndarray) -> None:
    """Leaves the inverse in the lower triangle."""
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (matrix,))
    # A C-ordered symmetric matrix is its own Fortran-ordered transpose: LAPACK works in place.
    fortran_view = matrix.T
    factor, info = potrf(fortran_view, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"matrix is not positive definite (potrf info {info})")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"matrix is singular (potri info {info})")
    if not np.shares_memory(inverse, matrix):  # LAPACK wrapper copied after all
        matrix[...] = inverse.T
    # potri fills the upper triangle of the Fortran view, i.e. the lower triangle of ``matrix``.


def _blocked_inverse(matrix: np.ndarray, block: int) -> None:
    """Cholesky, triangular inverse and ``W^T W`` by tiles; leaves the inverse in the lower
    triangle (the upper triangle of each diagonal tile holds leftovers until mirrored)."""
    n = matrix.shape[0]
    edges = list(range(0, n, block)) + [n]
    tiles = [slice(edges[k], edges[k + 1]) for k in range(len(edges) - 1)]
    _cholesky_lower(matrix, tiles)
    _invert_lower(matrix, tiles)
    _lower_gram(matrix, tiles)


def _cholesky_lower(a: np.ndarray, tiles: list[slice]) -> None:
    """Right-looking blocked Cholesky: the lower triangle of ``a`` becomes ``L``."""
    for k, tile in enumerate(tiles):
        below = slice(tile.stop, a.shape[0])
        a[tile, tile] = np.linalg.cholesky(a[tile, tile])  # lower; raises LinAlgError if not PD
        if below.start == below.stop:
            break
        # L_below = A_below L_kk^-T, i.e. L_kk X = A_below^T
        a[below, tile] = solve_triangular(a[tile, tile], a[below, tile].T, lower=True, check_finite=False).T
        panel = a[below, tile]
        for column in tiles[k + 1:]:
            rows = slice(column.start, a.shape[0])
            a[rows, column] -= a[rows, tile] @ panel[column.start - below.start:column.stop - below.start].T


def _invert_lower(a: np.ndarray, tiles: list[slice]) -> None:
    """``L`` in the lower triangle becomes ``W = L^-1``, by block columns from the last.

    ``W_ij = -(sum_{m=j+1..i} W_im L_mj) W_jj`` for ``i > j``: block rows are done from the
    bottom, so the ``L_mj`` (m <= i) they read are not yet overwritten.
    """
    for j in range(len(tiles) - 1, -1, -1):
        tj = tiles[j]
        diagonal = np.tril(a[tj, tj])
        inverse_jj = solve_triangular(diagonal, np.eye(len(diagonal), dtype=a.dtype), lower=True,
                                      check_finite=False)
        for i in range(len(tiles) - 1, j, -1):
            ti = tiles[i]
            rows_w = np.concatenate([a[ti, tiles[j + 1].start:ti.start], np.tril(a[ti, ti])], axis=1)
            a[ti, tj] = -(rows_w @ a[tiles[j + 1].start:ti.stop, tj]) @ inverse_jj
        a[tj, tj] = inverse_jj


def _lower_gram(a: np.ndarray, tiles: list[slice]) -> None:
    """``W`` in the lower triangle becomes the lower triangle of ``W^T W``, by block rows from
    the first: ``P_ij = sum_{m>=i} W_mi^T W_mj`` reads rows ``m >= i`` only, and row ``i``'s
    diagonal tile is written last."""
    n = a.shape[0]
    for i, ti in enumerate(tiles):
        strip = a[ti.start:n, ti].copy()
        strip[:ti.stop - ti.start] = np.tril(strip[:ti.stop - ti.start])
        for j in range(i + 1):
            tj = tiles[j]
            other = strip if j == i else a[ti.start:n, tj]
            a[ti, tj] = strip.T @ other


def _mirror_lower_to_upper(matrix: np.ndarray, block: int = 1024) -> None:
    n = matrix.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        diagonal = matrix[start:stop, start:stop]
        diagonal[...] = np.tril(diagonal) + np.tril(diagonal, -1).T
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T
