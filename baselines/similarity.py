"""Similarity kernels and the blocked top-K builder shared by the neighbourhood models.

Conventions
-----------
Vectors are the **rows** of a CSR matrix ``V`` (vectors x features): item vectors over users
for ItemKNN, user vectors over items for UserKNN, item vectors over content features for the
content models. A similarity compares a *target* t (the item or user being scored) with a
*neighbour* n (a history item, or another user). With ``G = V_t V_n^T`` (dot products),
``|x|`` the Euclidean norm, ``c`` the number of nonzero entries of a binarised vector and
``s`` the shrink term:

=============  ==============================================================================
cosine         ``G / (|x_t| |x_n| + s)``                      (``normalize=False``: ``G``)
asymmetric     ``G / (|x_t|^(2a) |x_n|^(2(1-a)) + s)``        (Aiolli 2013; ``a=0.5``: cosine)
jaccard        ``G / (c_t + c_n - G + s)``                    on binarised vectors
dice           ``2 G / (c_t + c_n + s)``                      on binarised vectors
tversky        ``G / (G + a (c_t - G) + b (c_n - G) + s)``    on binarised vectors
=============  ==============================================================================

The orientation of the asymmetric cosine and of the Tversky index (exponent ``2a`` and weight
``a`` on the target) follows Aiolli (RecSys 2013) and the TOIS code (Ferrari Dacrema et al.,
ACM TOIS 39(2), 2021). ``normalize=False`` keeps the plain dot product; the TOIS code then
divides by ``s``, a constant factor that changes no ranking, so ``s`` is unused there. A zero
denominator gives similarity 0 (its numerator is 0 too).

Top-K pruning (:func:`blocked_topk`) keeps, per row, the ``k`` largest **nonzero** entries,
excluding a given column per row (self-similarity). Ties at the k-th value are broken
deterministically in favour of the **lower column index**. The product is computed in row
blocks, dense (BLAS) or sparse, whichever the cost model expects to be faster, so the full
dense similarity matrix never exists.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from datasets.errors import RecAuditError
from protocols.registry import register
from protocols.space import Categorical, Integer, Real

SIMILARITIES = ("cosine", "asymmetric", "jaccard", "dice", "tversky")
SET_SIMILARITIES = frozenset({"jaccard", "dice", "tversky"})
FEATURE_WEIGHTINGS = ("none", "tfidf", "bm25")
BM25_K1 = 1.2
BM25_B = 0.75

# Bytes of one dense float32 block of the product; bounds the builder's working memory.
MAX_BLOCK_BYTES = 48 * 2**20
# Largest dense copy of the right-hand factor the builder may make.
MAX_DENSE_RIGHT_BYTES = 256 * 2**20
# Dense BLAS multiply-adds per second over sparse (scipy) ones, measured on ML-1M with
# 2 cores (1.7e11/s against 4.5e8/s, rounded down: densifying blocks costs too).
DENSE_SPEEDUP = 300.0


# ----- feature weighting ----------------------------------------------------------------

@dataclass(frozen=True)
class FeatureWeighting:
    """TF-IDF or BM25 weights of the features (columns) of a vectors x features matrix.

    With ``N`` vectors, ``df_f`` the number of vectors with feature f and
    ``idf_f = log(N / df_f)`` (0 where ``df_f = 0``):

    - ``tfidf``: ``w_vf = x_vf * idf_f``
    - ``bm25``:  ``w_vf = x_vf (k1 + 1) / (x_vf + k1 (1 - b + b L_v / L_avg)) * idf_f`` with
      ``L_v = sum_f x_vf``, ``L_avg`` its mean over the N fitted vectors, ``k1 = 1.2``,
      ``b = 0.75`` (Robertson & Zaragoza 2009).

    The statistics come from the fitted matrix and are reused for vectors folded in later.
    A feature present in every vector gets weight 0 (it separates nothing).
    """

    scheme: str
    idf: np.ndarray
    average_length: float

    @classmethod
    def fit(cls, vectors: sp.csr_matrix, scheme: str) -> FeatureWeighting:
        check_choice("feature_weighting", scheme, FEATURE_WEIGHTINGS)
        n_vectors, n_features = vectors.shape
        document_frequency = np.bincount(vectors.indices, minlength=n_features).astype(np.float64)
        idf = np.zeros(n_features)
        present = document_frequency > 0
        idf[present] = np.log(n_vectors / document_frequency[present])
        lengths = np.asarray(vectors.sum(axis=1)).ravel()
        average_length = float(lengths.mean()) if n_vectors else 0.0
        return cls(scheme, idf, average_length)

    def transform(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        if self.scheme == "none":
            return vectors
        weighted = vectors.astype(np.float64, copy=True)
        values = weighted.data
        if self.scheme == "bm25":
            lengths = np.asarray(weighted.sum(axis=1)).ravel()
            relative = lengths / self.average_length if self.average_length > 0 else np.ones_like(lengths)
            per_entry = np.repeat(relative, np.diff(weighted.indptr))
            saturation = values + BM25_K1 * (1.0 - BM25_B + BM25_B * per_entry)
            values = values * (BM25_K1 + 1.0) / np.where(saturation > 0, saturation, 1.0)
        weighted.data = values * self.idf[weighted.indices]
        weighted = weighted.astype(np.float32)
        weighted.eliminate_zeros()
        return weighted


# ----- similarity kernels ---------------------------------------------------------------

@dataclass(frozen=True)
class SimilarityKernel:
    """One similarity of the module table, with its parameters (see the module docstring)."""

    kind: str = "cosine"
    shrink: float = 0.0
    normalize: bool = True
    asymmetric_alpha: float = 0.5
    tversky_alpha: float = 1.0
    tversky_beta: float = 1.0

    def check(self) -> None:
        check_choice("similarity", self.kind, SIMILARITIES)
        check_nonnegative("shrink", self.shrink)
        check_nonnegative("tversky_alpha", self.tversky_alpha)
        check_nonnegative("tversky_beta", self.tversky_beta)
        if not np.isfinite(self.asymmetric_alpha):
            raise RecAuditError(f"asymmetric_alpha must be a finite number, got {self.asymmetric_alpha!r}")

    @property
    def is_set_based(self) -> bool:
        return self.kind in SET_SIMILARITIES

    def prepare(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        """Set-based similarities compare supports: binarise."""
        vectors = sp.csr_matrix(vectors, dtype=np.float32)
        if self.is_set_based:
            vectors = vectors.copy()
            vectors.eliminate_zeros()
            vectors.data[:] = 1.0
        return vectors

    def factors(self, prepared: sp.csr_matrix, role: str) -> np.ndarray:
        """Per-vector statistic entering the denominator, for a target or a neighbour."""
        if self.is_set_based:
            return np.diff(prepared.indptr).astype(np.float32)
        squares = np.asarray(prepared.multiply(prepared).sum(axis=1), dtype=np.float64).ravel()
        if self.kind == "cosine":
            return np.sqrt(squares).astype(np.float32)
        exponent = self.asymmetric_alpha if role == "target" else 1.0 - self.asymmetric_alpha
        powered = np.zeros_like(squares)
        np.power(squares, exponent, out=powered, where=squares > 0)
        return powered.astype(np.float32)

    def finish(self, gram: np.ndarray, target: np.ndarray, neighbour: np.ndarray) -> None:
        """Turn a block of dot products into similarities, in place.

        ``gram[r, c]`` pairs target ``r`` (statistic ``target[r]``) and neighbour ``c``.
        """
        t = target[:, None]
        n = neighbour[None, :]
        if self.kind in ("cosine", "asymmetric"):
            if not self.normalize:
                return
            denominator = t * n + np.float32(self.shrink)
        elif self.kind == "jaccard":
            denominator = (t + n) - gram + np.float32(self.shrink)
        elif self.kind == "dice":
            np.multiply(gram, 2.0, out=gram)
            denominator = (t + n) + np.float32(self.shrink)
        else:  # tversky
            a, b = np.float32(self.tversky_alpha), np.float32(self.tversky_beta)
            denominator = (1 - a - b) * gram + (a * t + b * n) + np.float32(self.shrink)
        np.divide(gram, denominator, out=gram, where=denominator > 0)


@dataclass(frozen=True)
class NeighbourSide:
    """The neighbour vectors of a similarity, prepared once (binarised for set-based kernels,
    their denominator statistics, and transposed to features x neighbours for the product)."""

    kernel: SimilarityKernel
    vectors: sp.csr_matrix
    factor: np.ndarray
    by_feature: sp.csr_matrix

    @classmethod
    def build(cls, kernel: SimilarityKernel, neighbours: sp.csr_matrix) -> NeighbourSide:
        kernel.check()
        vectors = kernel.prepare(neighbours)
        return cls(kernel, vectors, kernel.factors(vectors, "neighbour"), vectors.T.tocsr())


def topk_similarity(targets: sp.csr_matrix | None, neighbours: NeighbourSide, topk: int,
                    exclude: np.ndarray | None = None) -> sp.csr_matrix:
    """Similarities of every target row to the neighbour rows, top-K per target.

    ``targets`` (n_t x f, already weighted) are compared with ``neighbours`` (n_n x f);
    ``targets=None`` compares the neighbours with themselves. ``exclude[r]`` is a neighbour
    column dropped from row r (its own id), or -1. Returns CSR n_t x n_n.
    """
    kernel = neighbours.kernel
    prepared = neighbours.vectors if targets is None else kernel.prepare(targets)
    target_factor = kernel.factors(prepared, "target")

    def finish(block: np.ndarray, start: int, stop: int) -> None:
        kernel.finish(block, target_factor[start:stop], neighbours.factor)

    return blocked_topk(prepared, neighbours.by_feature, topk, finish, exclude,
                        left_is_right_transposed=targets is None)


# ----- the blocked top-K product --------------------------------------------------------

def blocked_topk(left: sp.csr_matrix, right: sp.csr_matrix, topk: int,
                 finish_block: Callable[[np.ndarray, int, int], None] | None = None,
                 exclude: np.ndarray | None = None, max_block_bytes: int = MAX_BLOCK_BYTES,
                 left_is_right_transposed: bool = False) -> sp.csr_matrix:
    """Top-K per row of ``finish(left @ right)`` without forming the whole product.

    ``finish_block(block, start, stop)`` transforms the dense block of rows ``start:stop`` in
    place. Entries equal to 0 and the column ``exclude[r]`` of row r are never kept; ties
    at the k-th value keep the lower column indices. Returns CSR (n_left x n_right_cols),
    float32, sorted indices. The choice between a dense (BLAS) and a sparse product depends
    only on ``right``, so a row's result never depends on which other rows share its block.
    ``left_is_right_transposed`` (left == right.T) lets the dense path reuse one dense copy.
    """
    topk = check_topk(topk)
    left = sp.csr_matrix(left, dtype=np.float32)
    right = sp.csr_matrix(right, dtype=np.float32)
    n_rows, n_features = left.shape
    n_columns = right.shape[1]
    dense_right = right.toarray() if use_dense_product(right) else None
    densify_left = dense_right is not None and not left_is_right_transposed
    row_bytes = 4 * max(n_columns, n_features if densify_left else 0, 1)
    rows_per_block = max(1, max_block_bytes // row_bytes)

    data, indices, counts = [], [], []
    for start in range(0, n_rows, rows_per_block):
        stop = min(start + rows_per_block, n_rows)
        if dense_right is not None:
            left_block = dense_right[:, start:stop].T if left_is_right_transposed else left[start:stop].toarray()
            block = left_block @ dense_right
        else:
            block = (left[start:stop] @ right).toarray()
        block = np.asarray(block, dtype=np.float32)
        if finish_block is not None:
            finish_block(block, start, stop)
        if exclude is not None:
            columns = np.asarray(exclude[start:stop])
            rows = np.flatnonzero(columns >= 0)
            block[rows, columns[rows]] = 0.0
        keep = topk_mask(block, topk)
        rows, columns = np.nonzero(keep)
        data.append(block[rows, columns])
        indices.append(columns.astype(np.int32))
        counts.append(np.bincount(rows, minlength=stop - start))

    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    result = sp.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, np.float32),
         np.concatenate(indices) if indices else np.zeros(0, np.int32), indptr),
        shape=(n_rows, n_columns))
    result.has_sorted_indices = True
    return result


def topk_mask(block: np.ndarray, topk: int) -> np.ndarray:
    """Boolean mask of the ``topk`` largest nonzero entries of each row (block is modified:
    zeros become -inf). Ties at the k-th value keep the lowest column indices."""
    block[block == 0] = -np.inf
    n_columns = block.shape[1]
    if topk >= n_columns:
        return block > -np.inf
    # Select the k smallest of the negated block: numpy's introselect is far slower when
    # the k-th position sits above a mass of equal values (the dropped zeros) than below it.
    negated = np.negative(block)
    negated.partition(topk - 1, axis=1)
    threshold = -negated[:, topk - 1]
    del negated
    keep = block >= threshold[:, None]
    sparse_rows = np.flatnonzero(threshold == -np.inf)  # fewer than k nonzeros: keep them all
    if sparse_rows.size:
        keep[sparse_rows] = block[sparse_rows] > -np.inf
    excess = keep.sum(axis=1) - topk
    crowded = np.flatnonzero(excess > 0)  # ties at the threshold: drop the last ones
    if crowded.size:
        tie_rows, tie_columns = np.nonzero(block[crowded] == threshold[crowded, None])
        ties_per_row = np.bincount(tie_rows, minlength=crowded.size)
        from_the_end = np.cumsum(ties_per_row)[tie_rows] - 1 - np.arange(tie_rows.size)
        drop = from_the_end < excess[crowded][tie_rows]
        keep[crowded[tie_rows[drop]], tie_columns[drop]] = False
    return keep


def use_dense_product(right: sp.csr_matrix) -> bool:
    """Dense BLAS beats scipy's sparse product once the sparse work per left row,
    estimated as ``sum_f deg_f^2 / n_columns`` (left rows resembling right's columns),
    exceeds the dense work ``n_features * n_columns`` divided by ``DENSE_SPEEDUP``."""
    n_features, n_columns = right.shape
    if n_features * n_columns * 4 > MAX_DENSE_RIGHT_BYTES or n_columns == 0:
        return False
    degrees = np.diff(right.indptr).astype(np.float64)
    sparse_work = float(degrees @ degrees) / n_columns
    return sparse_work * DENSE_SPEEDUP >= n_features * n_columns


# ----- scoring ------------------------------------------------------------------------------

def aggregate_scores(left: sp.csr_matrix, right: sp.csr_matrix, normalize_scores: bool = False,
                     similarity_side: str = "right") -> np.ndarray:
    """Dense ``left @ right``, one factor holding similarities and the other values.

    With ``normalize_scores`` each entry is divided by the sum of the magnitudes of the
    similarities that contributed to it (0 where none did): ``1[left != 0] @ |right|`` when
    the similarities are on the right (item-item), ``|left| @ 1[right != 0]`` when on the
    left (user-user).
    """
    scores = np.asarray((left @ right).toarray(), dtype=np.float32)
    if normalize_scores:
        check_choice("similarity_side", similarity_side, ("left", "right"))
        similarities, values = (right, left) if similarity_side == "right" else (left, right)
        magnitudes = abs(similarities)
        support = values.copy()
        support.data = (support.data != 0).astype(np.float32)
        total = support @ magnitudes if similarity_side == "right" else magnitudes @ support
        total = np.asarray(total.toarray(), dtype=np.float32)
        np.divide(scores, total, out=scores, where=total > 0)
    return scores


# ----- parameter checks, search spaces and per-similarity variants ------------------------

def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise RecAuditError(f"unknown {name} {value!r}; known {name}s: {', '.join(map(str, choices))}")


def check_nonnegative(name: str, value) -> None:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value) and value >= 0):
        raise RecAuditError(f"{name} must be a finite number >= 0, got {value!r}")


def check_topk(topk) -> int:
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise RecAuditError(f"topk must be an integer >= 1, got {topk!r}")
    return int(topk)


# Parameters that only matter for some similarities: each per-similarity model exposes
# (and tunes) only its own, as in the TOIS searches.
SIMILARITY_PARAMETERS = {
    "cosine": ("normalize", "feature_weighting"),
    "asymmetric": ("asymmetric_alpha", "feature_weighting"),
    "jaccard": (),
    "dice": (),
    "tversky": ("tversky_alpha", "tversky_beta"),
}
_SPECIFIC = frozenset(p for names in SIMILARITY_PARAMETERS.values() for p in names)


def similarity_search_space(similarity: str) -> dict:
    """The TOIS search space of one similarity (topK range as in the TOIS appendix)."""
    space = {"topk": Integer(5, 1000), "shrink": Integer(0, 1000)}
    if similarity == "cosine":
        space["normalize"] = Categorical((True, False))
    if similarity == "asymmetric":
        space["asymmetric_alpha"] = Real(0.0, 2.0)
    if similarity in ("cosine", "asymmetric"):
        space["feature_weighting"] = Categorical(FEATURE_WEIGHTINGS)
    if similarity == "tversky":
        space["tversky_alpha"] = Real(0.0, 2.0)
        space["tversky_beta"] = Real(0.0, 2.0)
    return space


def fixed_similarity_variant(base: type, similarity: str, class_name: str, module: str) -> type:
    """A subclass of ``base`` whose similarity is fixed (one search per similarity).

    Its constructor takes ``base``'s parameters minus ``similarity`` and minus the
    parameters of other similarities; those keep ``base``'s defaults.
    """
    check_choice("similarity", similarity, SIMILARITIES)
    base_parameters = inspect.signature(base.__init__).parameters.values()
    kept = [p for p in base_parameters if p.name != "similarity"
            and (p.name not in _SPECIFIC or p.name in SIMILARITY_PARAMETERS[similarity])]
    accepted = frozenset(p.name for p in kept) - {"self"}

    def __init__(self, **params):
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword argument(s) {', '.join(unknown)}")
        base.__init__(self, similarity=similarity, **params)

    __init__.__signature__ = inspect.Signature(kept)
    extra_space = {k: v for k, v in base.search_space.items() if k not in similarity_search_space("cosine")}
    namespace = {
        "__init__": __init__,
        "__module__": module,
        "__qualname__": class_name,
        "__doc__": f"{base.__name__} with ``similarity={similarity!r}`` fixed, tuned on its own "
                   f"(one search per similarity, as in TOIS). See :class:`{base.__name__}`.",
        "search_space": {**similarity_search_space(similarity), **extra_space},
    }
    return type(class_name, (base,), namespace)


def register_similarity_variants(base: type, model_name: str, namespace: dict) -> None:
    """Register one fixed-similarity variant of ``base`` per similarity, as ``<model_name>-<similarity>``.

    Each class is also bound in ``namespace`` (the defining module's globals) under
    ``<BaseName><Similarity>``, so that pickle finds it by name.
    """
    for similarity in SIMILARITIES:
        class_name = f"{base.__name__}{similarity.capitalize()}"
        variant = fixed_similarity_variant(base, similarity, class_name, namespace["__name__"])
        namespace[class_name] = register(f"{model_name}-{similarity}")(variant)
