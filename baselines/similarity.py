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

Two variants (``variant``, a constructor keyword of every neighbourhood model, never tuned)
------------------------------------------------------------------------------------------
``"standard"`` is the table above with :class:`FeatureWeighting` (textbook TF-IDF and BM25).
``"tois"`` is what the TOIS study's code computes (repository
MaurizioFD/RecSys2019_DeepLearning_Evaluation, identical in the 2019 and 2020 revisions that
matter here): ``Base/Similarity/Cython/Compute_Similarity_Cython.pyx`` (the implementation
``Base/Similarity/Compute_Similarity.py`` picks for sparse data; ``Compute_Similarity_Python.py``
has the same formulas) and ``Base/IR_feature_weighting.py``. Its differences from "standard":

- every normalised denominator gets ``+ 1e-6`` (cosine and asymmetric with ``normalize``,
  jaccard, dice, tversky); Tversky is written ``G + a (c_t - G) + b (c_n - G) + s + 1e-6``;
- ``normalize=False`` (cosine, asymmetric) divides the dot products by ``s`` when ``s != 0``
  (a constant factor: no ranking changes);
- TF-IDF and BM25 are :class:`TOISFeatureWeighting` (``sqrt`` of the values, ``log(N / (1 + df))``
  with ``N`` the number of items of the id space), always with the items as documents;
- the models decide the rest (UserKNN's neighbour orientation, scoring with weighted
  interactions): see :mod:`baselines.knn`.

- the similarities are computed and pruned in float64, as the study's Cython code does (its
  ``1e-6`` then always tells apart equal ratios with different denominators, which float32
  would often round back into a tie), and stored as float32 like its ``W_sparse``.

Exact ties left after that keep the lower index in both variants; the study's ``argpartition``
leaves them in an arbitrary order. The study's ``Compute_Similarity_Python.py`` (which it uses
for data denser than 50 %) would also drop negative similarities unless fewer than K are
nonnegative; we rank them as its Cython code does (the K largest nonzero values).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError
from protocols.registry import register
from protocols.space import Categorical, Integer, Real

SIMILARITIES = ("cosine", "asymmetric", "jaccard", "dice", "tversky")
VARIANTS = ("tois", "standard")
# The TOIS code adds this to every normalised similarity denominator.
TOIS_EPSILON = 1e-6
# Added by the TOIS code's okapi_BM_25 to a zero BM25 denominator.
TOIS_BM25_EPSILON = 1e-9
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


@dataclass(frozen=True)
class TOISFeatureWeighting:
    """The TOIS code's ``TF_IDF`` and ``okapi_BM_25`` (``Base/IR_feature_weighting.py``).

    They weight a *documents x terms* matrix ``D``; the study always passes items as the
    documents: ``URM.T`` for ItemKNN **and** UserKNN (``TF_IDF(URM_train.T).T``), the item
    content for ItemKNN-CBF, ``[ICM_weight * ICM | URM.T]`` for ItemKNN-CFCBF. With ``N`` the
    number of documents (the rows of ``D``: every item of the id space, with or without
    interactions), ``df_t`` the number of stored entries of term t and ``L_d`` the sum of
    document d's values, ``L_avg`` its mean over the N documents::

        idf_t = log(N / (1 + df_t))                      (negative when df_t = N)
        tfidf: w_dt = sqrt(x_dt) * idf_t                 (x >= 0 required, as the study asserts)
        bm25:  w_dt = x_dt (k1 + 1) / (x_dt + k1 (1 - b + b L_d / L_avg)) * idf_t
               (k1 = 1.2, b = 0.75; a zero denominator gets + 1e-9)

    Differences from :class:`FeatureWeighting`: ``sqrt`` of the values (TF-IDF), ``1 + df`` in
    the IDF (so a term present in N - 1 documents gets weight 0 and one in all N a negative
    weight), and for UserKNN the orientation: the "terms" are the users, so each user's whole
    vector is scaled by its own ``log(N_items / (1 + n_items_of_user))`` instead of each item
    being weighted by an item IDF.

    ``fit`` keeps ``N`` and the document lengths of the fitted matrix. :meth:`weight_terms`
    weights term vectors (rows: terms, columns: the fitted documents), each with the IDF of its
    own stored entries; a user's interaction row is such a term vector, so a user unseen in
    training folds in with the statistics of its own history, exactly as the study weights a
    training user. :meth:`weight_documents` is ``weight_terms(D.T).T``.
    """

    scheme: str
    n_documents: int
    document_length: np.ndarray
    average_length: float

    @classmethod
    def fit(cls, documents: sp.csr_matrix, scheme: str) -> TOISFeatureWeighting:
        check_choice("feature_weighting", scheme, FEATURE_WEIGHTINGS)
        documents = sp.csr_matrix(documents, dtype=np.float64)
        lengths = np.asarray(documents.sum(axis=1)).ravel()
        n_documents = documents.shape[0]
        return cls(scheme, n_documents, lengths, float(lengths.mean()) if n_documents else 0.0)

    def weight_terms(self, terms: sp.csr_matrix) -> sp.csr_matrix:
        """Rows are terms over the fitted documents (e.g. users' interaction rows over items).
        Returns CSR float64, as the study's weighted matrices."""
        terms = sp.csr_matrix(terms)
        if self.scheme == "none":
            return sp.csr_matrix(terms, dtype=np.float64)
        if terms.shape[1] != self.n_documents:
            raise RecAuditError(f"expected vectors over {self.n_documents} documents, got {terms.shape[1]}")
        weighted = sp.csr_matrix(terms, dtype=np.float64, copy=True)
        weighted.eliminate_zeros()
        values = weighted.data
        if not np.all(np.isfinite(values)):
            raise RecAuditError(f"feature_weighting={self.scheme!r}: the matrix has non-finite values")
        stored = np.diff(weighted.indptr)
        idf = np.log(self.n_documents / (1.0 + stored))
        if self.scheme == "tfidf":
            if values.size and values.min() < 0:
                raise RecAuditError("feature_weighting='tfidf' (variant 'tois') takes the square root of the "
                                    "values; the matrix has negative values: binarise or shift them, or use "
                                    "variant 'standard'")
            values = np.sqrt(values)
        else:
            average = self.average_length
            relative = self.document_length / average if average > 0 else np.zeros_like(self.document_length)
            length_norm = (1.0 - BM25_B) + BM25_B * relative
            denominator = BM25_K1 * length_norm[weighted.indices] + values
            denominator[denominator == 0.0] += TOIS_BM25_EPSILON
            values = values * (BM25_K1 + 1.0) / denominator
        weighted.data = values * np.repeat(idf, stored)
        weighted.eliminate_zeros()
        return weighted

    def weight_documents(self, documents: sp.csr_matrix) -> sp.csr_matrix:
        """The documents x terms matrix itself, weighted (the study's ``TF_IDF(D)``)."""
        return self.weight_terms(sp.csr_matrix(documents).T.tocsr()).T.tocsr()


# ----- similarity kernels ---------------------------------------------------------------

@dataclass(frozen=True)
class SimilarityKernel:
    """One similarity of the module table, with its parameters (see the module docstring);
    ``variant="tois"`` adds the study's ``1e-6`` to the denominators (module docstring)."""

    kind: str = "cosine"
    shrink: float = 0.0
    normalize: bool = True
    asymmetric_alpha: float = 0.5
    tversky_alpha: float = 1.0
    tversky_beta: float = 1.0
    variant: str = "standard"

    def check(self) -> None:
        check_choice("similarity", self.kind, SIMILARITIES)
        check_choice("variant", self.variant, VARIANTS)
        check_nonnegative("shrink", self.shrink)
        check_nonnegative("tversky_alpha", self.tversky_alpha)
        check_nonnegative("tversky_beta", self.tversky_beta)
        if not np.isfinite(self.asymmetric_alpha):
            raise RecAuditError(f"asymmetric_alpha must be a finite number, got {self.asymmetric_alpha!r}")

    @property
    def is_set_based(self) -> bool:
        return self.kind in SET_SIMILARITIES

    @property
    def dtype(self) -> type:
        """Arithmetic of the similarities: float64 for "tois" (the study's Cython code computes
        and selects in double precision, so its 1e-6 always tells ties apart), else float32.
        Kept similarities are stored as float32 either way, as the study's ``W_sparse``."""
        return np.float64 if self.variant == "tois" else np.float32

    def prepare(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        """Set-based similarities compare supports: binarise."""
        vectors = sp.csr_matrix(vectors, dtype=self.dtype)
        if self.is_set_based:
            vectors = vectors.copy()
            vectors.eliminate_zeros()
            vectors.data[:] = 1.0
        return vectors

    def factors(self, prepared: sp.csr_matrix, role: str) -> np.ndarray:
        """Per-vector statistic entering the denominator, for a target or a neighbour."""
        if self.is_set_based:
            return np.diff(prepared.indptr).astype(self.dtype)
        squares = np.asarray(prepared.multiply(prepared).sum(axis=1), dtype=np.float64).ravel()
        if self.kind == "cosine":
            return np.sqrt(squares).astype(self.dtype)
        exponent = self.asymmetric_alpha if role == "target" else 1.0 - self.asymmetric_alpha
        powered = np.zeros_like(squares)
        np.power(squares, exponent, out=powered, where=squares > 0)
        return powered.astype(self.dtype)

    def finish(self, gram: np.ndarray, row_statistic: np.ndarray, column_statistic: np.ndarray,
               targets_on_rows: bool = True) -> None:
        """Turn a block of dot products into similarities, in place.

        ``gram[r, c]`` pairs row ``r`` (statistic ``row_statistic[r]``) and column ``c``. The
        targets are the rows (``targets_on_rows``) or the columns; the statistics must have
        been computed (:meth:`factors`) for those roles.
        """
        rows = row_statistic[:, None]
        columns = column_statistic[None, :]
        tois = self.variant == "tois"
        number = gram.dtype.type
        shrink = number(self.shrink) + (number(TOIS_EPSILON) if tois else number(0.0))
        if self.kind in ("cosine", "asymmetric"):
            if not self.normalize:
                if tois and self.shrink != 0:  # the study's code: a constant factor, no ranking change
                    np.divide(gram, number(self.shrink), out=gram)
                return
            denominator = rows * columns + shrink
        elif self.kind == "jaccard":
            denominator = (rows + columns) - gram + shrink
        elif self.kind == "dice":
            np.multiply(gram, 2.0, out=gram)
            denominator = (rows + columns) + shrink
        else:  # tversky
            t, n = (rows, columns) if targets_on_rows else (columns, rows)
            a, b = number(self.tversky_alpha), number(self.tversky_beta)
            if tois:
                denominator = gram + (t - gram) * a + (n - gram) * b + shrink
            else:
                denominator = (1 - a - b) * gram + (a * t + b * n) + shrink
        np.divide(gram, denominator, out=gram, where=denominator > 0)


@dataclass(frozen=True)
class NeighbourSide:
    """The column vectors of a similarity, prepared once (binarised for set-based kernels,
    their denominator statistics, and transposed to features x columns for the product).

    ``role`` is what the columns are: ``"neighbour"`` (the rows compared with them are the
    targets, the usual case) or ``"target"`` (the rows are the neighbours: the TOIS UserKNN,
    whose similarity matrix is pruned per column)."""

    kernel: SimilarityKernel
    vectors: sp.csr_matrix
    factor: np.ndarray
    by_feature: sp.csr_matrix
    role: str = "neighbour"

    @classmethod
    def build(cls, kernel: SimilarityKernel, columns: sp.csr_matrix, role: str = "neighbour") -> NeighbourSide:
        kernel.check()
        check_choice("role", role, ("neighbour", "target"))
        vectors = kernel.prepare(columns)
        return cls(kernel, vectors, kernel.factors(vectors, role), vectors.T.tocsr(), role)


def similarity_blocks(rows: sp.csr_matrix | None, columns: NeighbourSide, exclude: np.ndarray | None = None,
                      max_block_bytes: int = MAX_BLOCK_BYTES):
    """Yield ``(start, stop, block)``: dense similarities (in ``kernel.dtype``) of rows
    ``start:stop`` of ``rows`` (n_r x f, already weighted; None: the column vectors themselves)
    to every column vector, in the roles of ``columns.role``; ``exclude[r]`` (a column, or -1)
    is set to 0."""
    kernel = columns.kernel
    prepared = columns.vectors if rows is None else kernel.prepare(rows)
    row_role = "target" if columns.role == "neighbour" else "neighbour"
    row_factor = kernel.factors(prepared, row_role)

    def finish(block: np.ndarray, start: int, stop: int) -> None:
        kernel.finish(block, row_factor[start:stop], columns.factor, targets_on_rows=row_role == "target")

    yield from product_blocks(prepared, columns.by_feature, finish, exclude, max_block_bytes,
                              left_is_right_transposed=rows is None, dtype=kernel.dtype)


def topk_similarity(targets: sp.csr_matrix | None, neighbours: NeighbourSide, topk: int,
                    exclude: np.ndarray | None = None) -> sp.csr_matrix:
    """Similarities of every target row to the neighbour rows, top-K per target.

    ``targets`` (n_t x f, already weighted) are compared with ``neighbours`` (n_n x f);
    ``targets=None`` compares the neighbours with themselves. ``exclude[r]`` is a neighbour
    column dropped from row r (its own id), or -1. Returns CSR n_t x n_n.
    """
    if neighbours.role != "neighbour":
        raise ValueError("topk_similarity needs a NeighbourSide built with role='neighbour'")
    n_rows = neighbours.vectors.shape[0] if targets is None else targets.shape[0]
    return _collect_topk(similarity_blocks(targets, neighbours, exclude), check_topk(topk), n_rows,
                         neighbours.vectors.shape[0])


@dataclass(frozen=True)
class ColumnTopK:
    """A similarity pruned per **column** and read per **row**, as the TOIS UserKNN uses it.

    The columns are the fitted vectors in the role of targets (``NeighbourSide`` with
    ``role="target"``); each column v keeps its ``topk`` largest nonzero similarities over
    the fitted vectors (itself excluded; ties keep the lower row). A row u is then scored from
    the columns that kept it: ``S[u, v] = s(target=v, neighbour=u)`` if u is among the top-K of
    v, else 0.

    To read the row of a vector that is queried again, possibly with other values (a user's
    history at query time, or a user unseen in training), the fit keeps, per column, its
    top-(K+1) list: ``members`` (which fitted rows are in the first K), the K-th and (K+1)-th
    entries (value and row). A query row u with similarity ``q = s(v, u)`` replaces the fitted
    row u (if any) in v's pool, so it is kept iff it beats the K-th best of the *other* rows:
    the (K+1)-th entry if u was among the first K, else the K-th, where "beats" is a larger
    value, or an equal one and a lower row id. A training user queried with its training row
    therefore gets exactly the fitted matrix's row (the same blocked products compute both).
    """

    side: NeighbourSide
    topk: int
    members: sp.csr_matrix
    kth_value: np.ndarray
    kth_row: np.ndarray
    next_value: np.ndarray
    next_row: np.ndarray

    @classmethod
    def build(cls, side: NeighbourSide, vectors: sp.csr_matrix, topk: int) -> ColumnTopK:
        """``vectors`` are the fitted vectors as rows (the ones ``side`` was built from)."""
        if side.role != "target":
            raise ValueError("ColumnTopK needs a NeighbourSide built with role='target'")
        topk = check_topk(topk)
        n_rows, n_columns = vectors.shape[0], side.vectors.shape[0]
        keep = topk + 1
        no_row = np.iinfo(np.int64).max
        # Per column (a row of these arrays): its best `keep` entries so far, in increasing row
        # order, padded with -inf. Merging a block appends its rows (all higher) and keeps the
        # `keep` best with topk_mask, whose ties keep the lower position, i.e. the lower row.
        best_value = np.full((n_columns, 0), -np.inf, dtype=side.kernel.dtype)
        best_row = np.zeros((n_columns, 0), dtype=np.int64)
        # The rows are passed explicitly (not None) so that the fit computes exactly what a query does.
        for start, stop, block in similarity_blocks(vectors, side, np.arange(n_rows)):
            values = np.hstack([best_value, block.T])
            ids = np.hstack([best_row, np.broadcast_to(np.arange(start, stop), (n_columns, stop - start))])
            kept = topk_mask(values.copy(), keep)
            columns, positions = np.nonzero(kept)
            rank = np.arange(columns.size) - np.searchsorted(columns, columns)
            best_value = np.full((n_columns, keep), -np.inf, dtype=side.kernel.dtype)
            best_row = np.full((n_columns, keep), no_row, dtype=np.int64)
            best_value[columns, rank] = values[columns, positions]
            best_row[columns, rank] = ids[columns, positions]
        present = np.isfinite(best_value)
        count = present.sum(axis=1)
        first = topk_mask(best_value.copy(), topk) & present  # the first K of each column
        columns, positions = np.nonzero(first)
        members = sp.csr_matrix((np.ones(columns.size, dtype=np.float32), (best_row[columns, positions], columns)),
                                shape=(n_rows, n_columns))
        # K-th entry: the smallest kept value, and among equal ones the highest row.
        kth_value = np.where(first, best_value, np.inf).min(axis=1)
        at_kth = first & (best_value == kth_value[:, None])
        kth_row = np.where(at_kth, best_row, -1).max(axis=1)
        # (K+1)-th entry: the largest value not kept, and among equal ones the lowest row.
        rest = present & ~first
        next_value = np.where(rest, best_value, -np.inf).max(axis=1)
        at_next = rest & (best_value == next_value[:, None])
        next_row = np.where(at_next, best_row, no_row).min(axis=1)
        kth_value = np.where(count >= topk, kth_value, -np.inf)
        kth_row = np.where(count >= topk, kth_row, no_row)
        next_value = np.where(count > topk, next_value, -np.inf)
        next_row = np.where(count > topk, next_row, no_row)
        return cls(side, topk, members, kth_value, kth_row, next_value, next_row)

    def select(self, queries: sp.csr_matrix, query_ids: np.ndarray,
               exclude: np.ndarray | None = None) -> sp.csr_matrix:
        """``S`` (n_queries x n_columns, CSR float32) for query rows with ids ``query_ids``
        (ids past the fitted rows are new vectors); ``exclude[r]``: a column dropped from row r."""
        query_ids = np.asarray(query_ids, dtype=np.int64)
        n_fitted, n_columns = self.members.shape
        data, indices, counts = [], [], []
        for start, stop, block in similarity_blocks(queries, self.side, exclude):
            ids = query_ids[start:stop]
            fitted = ids < n_fitted
            member = np.zeros(block.shape, dtype=bool)
            if fitted.any():
                member[fitted] = self.members[ids[fitted]].toarray() != 0
            rival_value = np.where(member, self.next_value[None, :], self.kth_value[None, :])
            rival_row = np.where(member, self.next_row[None, :], self.kth_row[None, :])
            keep = (block != 0) & ((block > rival_value) | ((block == rival_value) & (ids[:, None] < rival_row)))
            rows, columns = np.nonzero(keep)
            data.append(block[rows, columns])
            indices.append(columns.astype(np.int32))
            counts.append(np.bincount(rows, minlength=stop - start))
        return _assemble(data, indices, counts, len(query_ids), n_columns)


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
    blocks = product_blocks(left, right, finish_block, exclude, max_block_bytes, left_is_right_transposed)
    return _collect_topk(blocks, topk, left.shape[0], right.shape[1])


def product_blocks(left: sp.csr_matrix, right: sp.csr_matrix,
                   finish_block: Callable[[np.ndarray, int, int], None] | None = None,
                   exclude: np.ndarray | None = None, max_block_bytes: int = MAX_BLOCK_BYTES,
                   left_is_right_transposed: bool = False, dtype: type = np.float32):
    """Yield ``(start, stop, block)``: rows ``start:stop`` of ``finish(left @ right)``, dense
    ``dtype`` (float32 or float64), with ``exclude[r]`` set to 0 (see :func:`blocked_topk`)."""
    left = sp.csr_matrix(left, dtype=dtype)
    right = sp.csr_matrix(right, dtype=dtype)
    n_rows, n_features = left.shape
    n_columns = right.shape[1]
    itemsize = np.dtype(dtype).itemsize
    dense_right = right.toarray() if use_dense_product(right, itemsize) else None
    densify_left = dense_right is not None and not left_is_right_transposed
    row_bytes = itemsize * max(n_columns, n_features if densify_left else 0, 1)
    rows_per_block = max(1, max_block_bytes // row_bytes)

    for start in range(0, n_rows, rows_per_block):
        stop = min(start + rows_per_block, n_rows)
        if dense_right is not None:
            left_block = dense_right[:, start:stop].T if left_is_right_transposed else left[start:stop].toarray()
            block = left_block @ dense_right
        else:
            block = (left[start:stop] @ right).toarray()
        block = np.asarray(block, dtype=dtype)
        if finish_block is not None:
            finish_block(block, start, stop)
        if exclude is not None:
            columns = np.asarray(exclude[start:stop])
            rows = np.flatnonzero(columns >= 0)
            block[rows, columns[rows]] = 0.0
        yield start, stop, block


def _collect_topk(blocks, topk: int, n_rows: int, n_columns: int) -> sp.csr_matrix:
    data, indices, counts = [], [], []
    for start, stop, block in blocks:
        keep = topk_mask(block, topk)
        rows, columns = np.nonzero(keep)
        data.append(block[rows, columns])
        indices.append(columns.astype(np.int32))
        counts.append(np.bincount(rows, minlength=stop - start))
    return _assemble(data, indices, counts, n_rows, n_columns)


def _assemble(data, indices, counts, n_rows: int, n_columns: int) -> sp.csr_matrix:
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    result = sp.csr_matrix(
        (np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
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


def use_dense_product(right: sp.csr_matrix, itemsize: int = 4) -> bool:
    """Dense BLAS beats scipy's sparse product once the sparse work per left row,
    estimated as ``sum_f deg_f^2 / n_columns`` (left rows resembling right's columns),
    exceeds the dense work ``n_features * n_columns`` divided by ``DENSE_SPEEDUP``."""
    n_features, n_columns = right.shape
    if n_features * n_columns * itemsize > MAX_DENSE_RIGHT_BYTES or n_columns == 0:
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
