"""SLIM: sparse non-negative item-item regression with an elastic-net penalty.

Ning, X. and Karypis, G. (2011). SLIM: Sparse Linear Methods for Top-N Recommender
Systems. ICDM 2011, 497-506.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.ease import item_gram
from common.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Integer, Real

# Working arrays of one batch of columns (sub-Grams: columns x size x size float64 numbers).
_BATCH_NUMBERS = 1 << 22
# Zero coordinates that violate the optimality conditions, added per column and round
# (at least this many, or as many as the column already has non-zeros).
_MIN_GROWTH = 16
_MAX_ROUNDS = 100
_INNER_GAP_SHARE = 0.3
# Bytes of the per-block dense arrays (weights, products, correlations: items x block float64).
_BLOCK_BYTES = 400 * 2**20
_FLOAT64_GRAM_MAX_ITEMS = 8192


def nonnegative_elastic_net(gram: np.ndarray, targets: np.ndarray, l1: float, l2: float, tol: float,
                            max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Non-negative elastic net of every target item on all other items, from the Gram matrix.

    For every :math:`j` in ``targets`` it solves

    .. math::

        \min_{w \ge 0,\ w_j = 0}\ \tfrac12 w^\top G w - G_{:j}^\top w + l_1 \|w\|_1
            + \tfrac{l_2}{2} \|w\|_2^2,

    which is :math:`\tfrac12 \|x_j - X w\|^2 + l_1\|w\|_1 + \tfrac{l_2}{2}\|w\|^2` up to a
    constant when :math:`G = X^\top X`.

    Working sets (as in glmnet's strong rules and Massias et al.'s Celer, ICML 2018): each
    round computes :math:`Q = GW` for the unfinished columns (one matrix product) and their
    duality gaps; a column is done when its gap is at most ``tol * G_jj`` (``tol`` times
    :math:`\|x_j\|^2`, scikit-learn's rule). Otherwise its working set becomes its non-zeros
    plus the zero coordinates that most violate :math:`G_{kj} - (Gw)_k \le l_1`, and the
    problem restricted to the working set is solved by cyclic coordinate descent,
    :math:`w_k \leftarrow \max(0, G_{kj} - (Gw)_k + G_{kk} w_k - l_1) / (G_{kk} + l_2)`,
    for many columns at once on their gathered sub-Grams (columns batched by working-set
    size), until its own gap is below ``tol * G_jj / 2``.

    ``max_iter`` bounds the sweeps a column gets over all its rounds together, as
    scikit-learn's ``max_iter`` bounds its passes: a column that has not met the gap by then
    keeps its current weights (scikit-learn's ConvergenceWarning case). Without that bound a
    problem with more items than users and tiny penalties (ml-latest-small: 610 users,
    9,724 items, alpha 0.002, l1_ratio 0.002) grows working sets of a thousand items and
    takes hours. Returns the items x targets weights, the number of rounds each column took
    and whether it met the gap.

    Cost: one items x items x unfinished-columns GEMM per round (5-11 rounds on MovieLens-1M)
    plus sweeps over working sets of at most a few hundred items (non-negativity keeps the
    solutions sparse: at most 228 non-zeros per column on MovieLens-1M even at alpha 1e-3,
    l1_ratio 1e-5). A batch holds at least one column, so a working set of s items takes
    8 s^2 bytes however small ``_BATCH_NUMBERS`` is.
    """
    n_items = gram.shape[0]
    diagonal = np.diag(gram).astype(np.float64)
    weights = np.zeros((n_items, len(targets)))
    rounds = np.full(len(targets), _MAX_ROUNDS, dtype=np.int64)
    sweeps = np.zeros(len(targets), dtype=np.int64)
    converged = np.zeros(len(targets), dtype=bool)
    correlations_all = np.asarray(gram[:, targets], dtype=np.float64)
    active = np.arange(len(targets))
    for round_number in range(1, _MAX_ROUNDS + 1):
        correlations = correlations_all[:, active]
        current = weights[:, active]
        products = (np.asarray(gram @ current.astype(gram.dtype), dtype=np.float64) if round_number > 1
                    else np.zeros_like(current))
        own = (targets[active], np.arange(len(active)))
        gap = _duality_gap(current, products, correlations, diagonal[targets[active]], l1, l2, own)
        met = gap <= tol * diagonal[targets[active]]
        converged[active[met]] = True
        done = met | (sweeps[active] >= max_iter)
        rounds[active[done]] = round_number
        active, current, products, correlations = (
            active[~done], current[:, ~done], products[:, ~done], correlations[:, ~done])
        if len(active) == 0:
            break
        working = _working_sets(current, products, correlations, targets[active], l1)
        # Celer's inner precision: a fraction of the outer gap, so that early rounds on small
        # working sets do not spend the sweep budget on precision the next round discards.
        inner_gap = np.maximum(0.5 * tol * diagonal[targets[active]], _INNER_GAP_SHARE * gap[~done])
        weights[:, active], used = _solve_restricted(gram, diagonal, current, correlations, working,
                                                     targets[active], l1, l2, inner_gap,
                                                     max_iter - sweeps[active])
        sweeps[active] += used
    return weights, rounds, converged


def _working_sets(current, products, correlations, own_items, l1) -> np.ndarray:
    """Per column: its non-zeros plus its worst violators of the zero-coordinate condition.

    Returns a columns x width matrix of sorted item ids, padded with ``n_items``.
    """
    n_items = current.shape[0]
    violation = correlations - products - l1
    support = current > 0
    violation[support] = np.inf
    violation[own_items, np.arange(len(own_items))] = -np.inf
    support_size = support.sum(axis=0)
    wanted = np.minimum(support_size + np.maximum(support_size, _MIN_GROWTH), (violation > 0).sum(axis=0))
    width = max(int(wanted.max(initial=0)), 1)
    top = np.argpartition(-violation, width - 1, axis=0)[:width]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(violation, top, axis=0), axis=0,
                                             kind="stable"), axis=0).T
    top[np.arange(width)[None, :] >= wanted[:, None]] = n_items
    return np.sort(top, axis=1)


def _solve_restricted(gram, diagonal, current, correlations, working, own_items, l1, l2, inner_gap,
                      budgets) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate descent on each column's working set, batched over columns of similar size.

    Returns the weights and the sweeps each column used (at most its entry of ``budgets``).
    """
    n_items = gram.shape[0]
    result = np.zeros_like(current)
    used = np.zeros(len(budgets), dtype=np.int64)
    sizes = (working < n_items).sum(axis=1)
    order = np.argsort(sizes, kind="stable")
    squared = np.maximum(sizes[order], 1) ** 2
    start = 0
    while start < len(order):
        # Sorted by size, so a batch costs (members) x (its last member's size)^2 numbers.
        cost = np.arange(1, len(order) - start + 1) * squared[start:]
        stop = start + max(1, int(np.searchsorted(cost, _BATCH_NUMBERS, side="right")))
        batch = order[start:stop]
        index = working[batch, :max(int(sizes[batch].max()), 1)]
        valid = index < n_items
        index = np.where(valid, index, 0)
        solved, used[batch] = _batched_cd(gram, diagonal, index, valid, current, correlations, batch,
                                          diagonal[own_items[batch]], l1, l2, inner_gap[batch],
                                          budgets[batch])
        member = np.nonzero(valid)[0]  # row-major, like index[valid]
        result[index[valid], batch[member]] = solved[valid]
        start = stop
    return result, used


def _batched_cd(gram, diagonal, index, valid, current, correlations, batch, y_norm2, l1, l2, inner_gap,
                budgets) -> tuple[np.ndarray, np.ndarray]:
    """Cyclic coordinate descent on the gathered sub-problems (padding: inert zero coordinates).

    Arrays are position-major (position, ..., column) so that the update of one coordinate
    in every column of the batch reads and writes contiguous memory.
    """
    width = index.shape[1]
    index_t, valid_t, columns = index.T, valid.T, batch[None, :]
    sub_gram = np.asarray(gram[index_t[:, None, :], index_t[None, :, :]], dtype=np.float64)
    sub_gram *= valid_t[:, None, :] & valid_t[None, :, :]
    sub_diagonal = np.where(valid_t, diagonal[index_t], 1.0)
    sub_gram[np.arange(width), np.arange(width)] = sub_diagonal
    sub_correlations = np.where(valid_t, correlations[index_t, columns], 0.0)
    sub_weights = np.where(valid_t, current[index_t, columns], 0.0)
    inverse_denominator = np.divide(1.0, sub_diagonal + l2, out=np.zeros_like(sub_diagonal),
                                    where=sub_diagonal + l2 > 0)
    sub_products = np.einsum("ijb,jb->ib", sub_gram, sub_weights)
    result = np.zeros_like(sub_weights)
    used = np.zeros(len(batch), dtype=np.int64)
    unfinished = np.arange(len(batch))
    for sweep in range(1, int(budgets.max(initial=0)) + 1):
        for position in range(width):
            old = sub_weights[position]
            new = sub_correlations[position] - sub_products[position] + sub_diagonal[position] * old
            new -= l1
            np.maximum(new, 0.0, out=new)
            new *= inverse_denominator[position]
            change = new - old
            if change.any():
                old[...] = new
                sub_products += sub_gram[position] * change
        gap = _duality_gap(sub_weights, sub_products, sub_correlations, y_norm2, l1, l2)
        finished = (gap <= inner_gap) | (budgets[unfinished] <= sweep)
        if finished.any():
            result[:, unfinished[finished]] = sub_weights[:, finished]
            used[unfinished[finished]] = sweep
            keep = ~finished
            unfinished, y_norm2, inner_gap = unfinished[keep], y_norm2[keep], inner_gap[keep]
            sub_gram, sub_diagonal, sub_correlations, sub_weights, sub_products, inverse_denominator = (
                array[..., keep] for array in (sub_gram, sub_diagonal, sub_correlations, sub_weights,
                                               sub_products, inverse_denominator))
        if len(unfinished) == 0:
            break
    result[:, unfinished] = sub_weights
    used[unfinished] = budgets[unfinished]
    return result.T, used


def _duality_gap(weights, products, correlations, y_norm2, l1, l2, excluded=None) -> np.ndarray:
    """Elastic-net duality gap per column (scikit-learn's formulation A, positive case).

    With y = x_j: |R|^2 = y'y - 2 G_j'w + w'Gw and R'y = y'y - G_j'w for R = y - Xw; the
    dual scaling uses max_k (X'R - l2 w)_k, with ``excluded`` (row, column) entries (the
    coordinate fixed at zero) counted as 0, as scikit-learn counts an all-zero feature.
    """
    correlation_w = np.einsum("ij,ij->j", correlations, weights)
    residual_norm2 = y_norm2 - 2 * correlation_w + np.einsum("ij,ij->j", products, weights)
    residual_y = y_norm2 - correlation_w
    feasibility = correlations - products - l2 * weights
    if excluded is not None:
        feasibility[excluded] = 0.0
    dual_norm = feasibility.max(axis=0) if len(feasibility) else np.zeros(weights.shape[1])
    penalty = l2 * np.einsum("ij,ij->j", weights, weights)
    primal = 0.5 * (residual_norm2 + penalty) + l1 * weights.sum(axis=0)
    scale = np.where(dual_norm > l1, l1 / np.maximum(dual_norm, l1), 1.0)
    dual = -0.5 * scale**2 * (residual_norm2 + penalty) + scale * residual_y
    return primal - dual


def top_k_per_column(weights: np.ndarray, k: int) -> np.ndarray:
    """Zero all but the ``k`` largest entries of each column, in place (ties broken arbitrarily
    but deterministically)."""
    if k < weights.shape[0]:
        dropped = np.argpartition(-weights, k, axis=0)[k:]
        np.put_along_axis(weights, dropped, 0.0, axis=0)
    return weights


@register("slim")
class SLIM(Recommender):
    r"""SLIM ElasticNet (Ning and Karypis, ICDM 2011), non-negative with a zero diagonal.

    For every item :math:`j` the column :math:`w_j` of the item-item matrix solves

    .. math::

        \min_{w \ge 0,\ w_j = 0}\ \frac{1}{2n} \|x_j - X w\|_2^2
            + \alpha\rho \|w\|_1 + \frac{\alpha (1 - \rho)}{2} \|w\|_2^2,

    with :math:`n` the number of training users, :math:`\alpha` = ``alpha`` and
    :math:`\rho` = ``l1_ratio``. This is scikit-learn's ``ElasticNet(alpha, l1_ratio,
    positive=True, fit_intercept=False)`` objective on :math:`X` with column :math:`j`
    zeroed, as in the reference implementation of Ferrari Dacrema et al. (2019), so their
    hyperparameter ranges carry over. Multiplied by :math:`n` it is the unnormalised problem
    :math:`\frac12\|x_j - Xw\|^2 + l_1\|w\|_1 + \frac{l_2}{2}\|w\|^2` with
    :math:`l_1 = n\alpha\rho` and :math:`l_2 = n\alpha(1-\rho)`, which
    :func:`nonnegative_elastic_net` solves on :math:`G = X^\top X`. Only the ``topk`` largest
    weights of each column are kept. Scores are :math:`x_u W` (any user folds in).

    Parameters
    ----------
    alpha : float
        Overall penalty weight (scikit-learn scale), > 0.
    l1_ratio : float
        Share of the L1 penalty, in (0, 1].
    topk : int
        Weights kept per item column.
    tol : float
        A column is solved when its duality gap is at most ``tol`` times :math:`\|x_j\|^2`
        (scikit-learn's rule).
    max_iter : int
        Most coordinate-descent sweeps per column, all working-set rounds together (see
        :func:`nonnegative_elastic_net`); ``unconverged_`` counts the columns that used them
        all without meeting ``tol``.
    """

    family = "baseline"
    search_space: ClassVar[dict] = {
        "l1_ratio": Real(1e-5, 1.0, log=True),
        "alpha": Real(1e-3, 1.0, log=True),
        "topk": Integer(5, 1000),
    }
    conformance_params: ClassVar[dict] = {"alpha": 0.01, "topk": 20}

    def __init__(self, alpha: float = 0.01, l1_ratio: float = 0.1, topk: int = 100, tol: float = 1e-4,
                 max_iter: int = 100):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.topk = topk
        self.tol = tol
        self.max_iter = max_iter

    def _check_params(self) -> None:
        if not float(self.alpha) > 0:
            raise RecAuditError(f"slim: alpha must be positive, got {self.alpha!r}")
        # l1_ratio = 0 has no duality gap of the form used to stop (scikit-learn refuses it too).
        if not 0.0 < float(self.l1_ratio) <= 1.0:
            raise RecAuditError(f"slim: l1_ratio must lie in (0, 1], got {self.l1_ratio!r}")
        for name in ("topk", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise RecAuditError(f"slim: {name} must be a positive integer, got {value!r}")
        if not float(self.tol) >= 0:
            raise RecAuditError(f"slim: tol must be non-negative, got {self.tol!r}")

    memory_fix = "drop rare items in the dataset's prepare filters (the Gram matrix is items x items)"

    def fit_memory_bytes(self, train) -> int:
        n_users, n_items = train.shape
        itemsize = 8 if n_items <= _FLOAT64_GRAM_MAX_ITEMS else 4
        return n_items * n_items * itemsize + min(_BLOCK_BYTES, 3 * 8 * n_items * n_items)

    def _fit(self, data) -> None:
        train = data.interactions
        self._check_params()
        n_users, n_items = train.shape
        l1 = n_users * float(self.alpha) * float(self.l1_ratio)
        l2 = n_users * float(self.alpha) * (1.0 - float(self.l1_ratio))
        # float32 holds co-occurrence counts exactly and halves the largest array.
        gram = item_gram(train, np.float64 if n_items <= _FLOAT64_GRAM_MAX_ITEMS else np.float32)
        block = max(1, _BLOCK_BYTES // (3 * 8 * max(n_items, 1)))
        rows, columns, values = [], [], []
        rounds = np.zeros(n_items, dtype=np.int64)
        converged = np.zeros(n_items, dtype=bool)
        for start in range(0, n_items, block):
            targets = np.arange(start, min(start + block, n_items))
            weights, rounds[targets], converged[targets] = nonnegative_elastic_net(
                gram, targets, l1, l2, float(self.tol), int(self.max_iter))
            weights = top_k_per_column(weights, int(self.topk))
            row, column = np.nonzero(weights)
            rows.append(row)
            columns.append(targets[column])
            values.append(weights[row, column])
        self.item_weights_ = sp.csr_matrix(
            (np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(columns))),
            shape=(n_items, n_items))
        self.rounds_ = rounds
        self.unconverged_ = int((~converged).sum())

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return (history @ self.item_weights_).toarray()
