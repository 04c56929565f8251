"""Random-walk item-item models: P3alpha and RP3beta, as the TOIS study ran them or as published.

Both build an item x item matrix ``W`` from the three-step walk user -> item -> user -> item
on the bipartite interaction graph and score ``history @ W``. With ``X`` the training matrix
(users x items, nonnegative values), ``B`` its binarised support, ``deg_u`` the number of
items of user u and ``pop_j`` the number of training users of item j::

    P_ui = X with each row divided by its sum            (user -> item; X's values)
    P_iu = B^T with each row divided by its sum          (item -> user; 1 / pop_i)
    walk[i, j] = sum_u P_iu[i, u]^alpha P_ui[u, j]^alpha * pop_j^-beta
                 (powers elementwise on the stored entries; beta = 0 for P3alpha;
                  pop_j = 0 gives 0: such a column is empty anyway)

Two variants, parameter ``variant``:

``"tois"`` (default) - the code the TOIS study ran (Ferrari Dacrema et al., ACM TOIS 39(2),
2021; repository MaurizioFD/RecSys2019_DeepLearning_Evaluation, ``GraphBased/P3alphaRecommender.py``,
``GraphBased/RP3betaRecommender.py`` and ``similarityMatrixTopK`` in ``Base/Recommender_utils.py``,
identical in every released revision), in its order:

1. ``walk`` as above, in row blocks; the diagonal ``walk[i, i]`` is set to 0;
2. **row pruning**: each row i keeps its ``topk`` largest nonzero entries;
3. ``normalize_similarity``: each row divided by its sum (L1), on the pruned rows;
4. **column pruning**: each column j keeps its ``topk`` largest nonzero entries
   (``similarityMatrixTopK`` works column-wise), on the values of step 3; nothing is
   renormalised afterwards, so with ``normalize_similarity`` the rows that lost entries
   sum to less than 1;
5. ``score(u, j) = sum_i x_ui W[i, j]``: the user's raw training row, no normalisation, no
   power (``BaseItemSimilarityMatrixRecommender``: ``URM_train[user] . W_sparse``).

``"paper"`` - the methods as published. P3alpha: Cooper, Lee, Radzik, Siantos, "Random walks in
recommender systems: exact computation and simulations", WWW 2014 companion: the probability
of reaching j in three steps from u, every transition probability raised to alpha, so the
user's own first step is ``P_ui[u, i]^alpha`` too. RP3beta: Christoffel, Paudel, Newell,
Bernstein (RecSys 2015) and Paudel, Christoffel, Mendez, Bernstein, "Updatable, accurate,
diverse, and scalable recommendations for interactive applications", ACM TiiS 7(1), 2017: the
three-step probability divided by ``pop_j^beta``; the papers use plain transition
probabilities there (alpha = 1 here). Steps:

1. ``walk`` as above, diagonal set to 0;
2. row pruning to ``topk`` (``topk >= n_items`` keeps the exact walk);
3. ``normalize_similarity``: rows divided by their sums (the pruned rows are transition
   probabilities again);
4. no column pruning;
5. ``score(u, j) = sum_i P_u[i]^alpha W[i, j]`` with ``P_u`` the history row divided by its
   sum: the user's first step of the walk.

How the study's code departs from the papers, and why each choice is made here:

- **Column pruning** (tois step 4) is the study's: the papers compute the exact walk. It
  caps how many items can reach item j, which damps popular items: on the SpectralCF ML-1M
  split at the study's settings it is what lifts our P3alpha from recall@20 0.069 to the
  study's 0.122 (``tests/benchmarks/bench_tois_graph.py``).
- **Row pruning and ``normalize_similarity``** are the study's sparsification, absent from the
  papers; "paper" keeps them as hyperparameters (same names and TOIS search ranges) so both
  variants are tuned alike. ``topk`` large and ``normalize_similarity=False`` give the exact walk.
- **User step**: the study scores the raw history; the papers' first step is ``P_ui^alpha``.
  For binary histories the two differ by a per-user factor and rank identically; with
  weighted histories "paper" uses ``(x_ui / sum_i x_ui)^alpha``.
- **Diagonal**: dropped in both. In the exact walk ``W[i, i]`` only adds to the scores of items
  already in the history, which are never ranked; kept, it would take a top-K slot and weigh in
  ``normalize_similarity``. The papers' walk includes returns to the start item; the study
  drops them.
- **Item -> user step on the support** (``P_iu`` from ``B``, ``P_ui`` from ``X``'s values): the
  study's asymmetry, kept in both variants; the papers' graphs are unweighted, where it is moot.
- **alpha in RP3beta**: the study's combination of P3alpha's exponent with RP3beta's re-ranking;
  the papers' RP3beta is alpha = 1.
- **Ties** at the k-th value keep the lower column index (row pruning, as
  :func:`baselines.similarity.blocked_topk`) and the lower row index (column pruning). The
  study's ``argsort`` leaves ties in an unspecified order.

Our code before this module had the "paper" walk and pruning with the study's raw-history
scoring and no column pruning: on binary data it ranks exactly as ``variant="paper"``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.similarity import aggregate_scores, blocked_topk, check_choice, check_nonnegative, check_topk
from common.errors import RecAuditError
from protocols.contract import Recommender
from protocols.registry import register
from protocols.space import Categorical, Integer, Real

VARIANTS = ("tois", "paper")


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


def topk_per_column(matrix: sp.spmatrix, topk: int) -> sp.csr_matrix:
    """Keep the ``topk`` largest nonzero entries of each column; ties keep the lower row index.

    Returns CSR with sorted indices, in ``matrix``'s dtype.
    """
    topk = check_topk(topk)
    columns = sp.csc_matrix(matrix, copy=True)
    columns.eliminate_zeros()
    counts = np.diff(columns.indptr)
    column_of = np.repeat(np.arange(columns.shape[1]), counts)
    # Column first, then decreasing value, then increasing row: position within the column is the rank.
    order = np.lexsort((columns.indices, -columns.data, column_of))
    rank = np.arange(order.size) - columns.indptr[column_of[order]]
    kept = np.sort(order[rank < topk])  # back to CSC order, so the kept entries stay grouped by column
    kept_counts = np.bincount(column_of[kept], minlength=columns.shape[1])
    indptr = np.zeros(columns.shape[1] + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=indptr[1:])
    pruned = sp.csc_matrix((columns.data[kept], columns.indices[kept], indptr), shape=columns.shape)
    result = pruned.tocsr()
    result.sort_indices()
    return result


@register("p3alpha")
class P3alpha(Recommender):
    """P3alpha: three-step random walk with transition probabilities raised to alpha.

    See the module docstring for the walk, the two variants step by step, and how the study's
    code (``variant="tois"``) departs from Cooper et al. (``variant="paper"``). In short, for
    ``"tois"``: ``W`` = walk without its diagonal, top-``topk`` per row, rows L1-normalised if
    ``normalize_similarity``, then top-``topk`` per column; ``score = history @ W``. For
    ``"paper"``: the same without the column pruning, and ``score = (P_u)^alpha @ W`` with
    ``P_u`` the history row divided by its sum.

    Parameters
    ----------
    topk : int
        Entries kept per row of W, and, with ``"tois"``, per column (TOIS range 5..1000).
    alpha : float
        Exponent of the transition probabilities (1: plain random walk), in [0, 2].
    normalize_similarity : bool
        Divide each row of the row-pruned W by its sum.
    variant : {"tois", "paper"}
        ``"tois"`` (default): the TOIS study's code, which every suite of this project
        reproduces and against whose reported numbers it is checked. ``"paper"``: the method
        as published. Not a tuned hyperparameter.

    References
    ----------
    Cooper, Lee, Radzik, Siantos. Random walks in recommender systems: exact computation and
    simulations. WWW 2014 (companion). Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    search_space = {"topk": Integer(5, 1000), "alpha": Real(0.0, 2.0),
                    "normalize_similarity": Categorical((True, False))}

    def __init__(self, topk: int = 100, alpha: float = 1.0, normalize_similarity: bool = False,
                 variant: str = "tois"):
        self.topk = topk
        self.alpha = alpha
        self.normalize_similarity = normalize_similarity
        self.variant = variant

    def _popularity_exponent(self) -> float:
        return 0.0

    def _fit(self, data) -> None:
        train = data.interactions
        check_choice("variant", self.variant, VARIANTS)
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

        # Steps 1-2: the walk without its diagonal, top-k per row.
        similarity = blocked_topk(left, right, topk, scale, exclude=np.arange(n_items),
                                  left_is_right_transposed=symmetric)
        if self.normalize_similarity:  # step 3
            similarity = row_stochastic(similarity).astype(np.float32)
        if self.variant == "tois":  # step 4: the study's second, column-wise pruning
            similarity = topk_per_column(similarity, topk)
        self.item_similarity_ = similarity
        # Step 5: "paper" walks the user's first step too, P_ui^alpha; "tois" uses the raw history.
        self.history_exponent_ = float(self.alpha) if self.variant == "paper" else None

    def _score(self, users, history) -> np.ndarray:
        if self.history_exponent_ is not None:
            history = history.copy()
            history.eliminate_zeros()
            history = elementwise_power(row_stochastic(history), self.history_exponent_)
        return aggregate_scores(history, self.item_similarity_)


@register("rp3beta")
class RP3beta(P3alpha):
    """RP3beta: P3alpha whose column j is divided by ``pop_j^beta`` before any pruning.

    ``walk[i, j] = (P_iu^alpha P_ui^alpha)[i, j] / pop_j^beta``, then the steps of the chosen
    ``variant`` as for :class:`P3alpha` (module docstring). As in the study's
    ``RP3betaRecommender``, the penalty multiplies the walk before the row pruning, so it
    changes which entries are kept. The papers' RP3beta has alpha = 1 (plain transition
    probabilities); the study tunes alpha as well, and so do both variants here.

    Parameters
    ----------
    topk, alpha, normalize_similarity, variant
        As for :class:`P3alpha` (default ``variant="tois"``, the study's code, for the same
        reason).
    beta : float
        Popularity penalty exponent, in [0, 2] (0: P3alpha).

    References
    ----------
    Christoffel, Paudel, Newell, Bernstein. Blockbusters and wallflowers: accurate, diverse,
    and scalable recommendations with random walks. RecSys 2015. Paudel, Christoffel, Mendez,
    Bernstein. Updatable, accurate, diverse, and scalable recommendations for interactive
    applications. ACM TiiS 7(1), 2017. Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    search_space = {"topk": Integer(5, 1000), "alpha": Real(0.0, 2.0), "beta": Real(0.0, 2.0),
                    "normalize_similarity": Categorical((True, False))}

    def __init__(self, topk: int = 100, alpha: float = 1.0, beta: float = 0.6,
                 normalize_similarity: bool = False, variant: str = "tois"):
        super().__init__(topk=topk, alpha=alpha, normalize_similarity=normalize_similarity, variant=variant)
        self.beta = beta

    def _popularity_exponent(self) -> float:
        check_nonnegative("beta", self.beta)
        return float(self.beta)
