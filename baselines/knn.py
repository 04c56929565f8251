"""Neighbourhood collaborative filtering: ItemKNN and UserKNN, one model per similarity.

The similarities, the shrink term, the top-K pruning with its tie rule and the feature
weightings are defined in :mod:`baselines.similarity`. Registered names: ``itemknn`` and
``userknn`` (cosine by default, tuned as cosine) and ``itemknn-<similarity>`` /
``userknn-<similarity>`` for cosine, asymmetric, jaccard, dice and tversky, each with its own
search space (TOIS: Ferrari Dacrema et al., "A Troubling Analysis of Reproducibility and
Progress in Recommender Systems Research", ACM TOIS 39(2), 2021, appendix).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.similarity import (FEATURE_WEIGHTINGS, SET_SIMILARITIES, FeatureWeighting, NeighbourSide,
                                  SimilarityKernel, aggregate_scores, check_choice, check_topk,
                                  register_similarity_variants, similarity_search_space, topk_similarity)
from datasets.errors import RecAuditError
from protocols.contract import Recommender, TrainingData
from protocols.registry import register


class NeighbourhoodParameters:
    """Constructor and parameter checks shared by every similarity-based model."""

    def __init__(self, similarity: str = "cosine", topk: int = 100, shrink: float = 10.0,
                 normalize: bool = True, asymmetric_alpha: float = 0.5, tversky_alpha: float = 1.0,
                 tversky_beta: float = 1.0, feature_weighting: str = "none",
                 normalize_scores: bool = False):
        self.similarity = similarity
        self.topk = topk
        self.shrink = shrink
        self.normalize = normalize
        self.asymmetric_alpha = asymmetric_alpha
        self.tversky_alpha = tversky_alpha
        self.tversky_beta = tversky_beta
        self.feature_weighting = feature_weighting
        self.normalize_scores = normalize_scores

    def _kernel(self) -> SimilarityKernel:
        check_topk(self.topk)
        check_choice("feature_weighting", self.feature_weighting, FEATURE_WEIGHTINGS)
        if self.similarity in SET_SIMILARITIES and self.feature_weighting != "none":
            raise RecAuditError(
                f"model {self.name!r}: feature_weighting={self.feature_weighting!r} has no effect on the "
                f"set-based similarity {self.similarity!r} (it binarises the vectors); "
                "use feature_weighting='none' or similarity 'cosine'/'asymmetric'")
        kernel = SimilarityKernel(kind=self.similarity, shrink=self.shrink, normalize=bool(self.normalize),
                                  asymmetric_alpha=self.asymmetric_alpha, tversky_alpha=self.tversky_alpha,
                                  tversky_beta=self.tversky_beta)
        kernel.check()
        return kernel


class ItemSimilarityModel(NeighbourhoodParameters, Recommender):
    """Base of the item-item models: ``score(u, t) = sum_n h_un W[n, t]``.

    ``W[n, t]`` is the similarity of target t to neighbour n, kept for the ``topk`` most
    similar neighbours of each target, self excluded. Subclasses say which item vectors
    are compared (``_item_vectors``).
    """

    search_space = similarity_search_space("cosine")

    def _item_vectors(self, data: TrainingData) -> sp.csr_matrix:
        raise NotImplementedError

    def _fit(self, data) -> None:
        kernel = self._kernel()
        vectors = sp.csr_matrix(self._item_vectors(data), dtype=np.float32)
        vectors.eliminate_zeros()
        vectors = FeatureWeighting.fit(vectors, self.feature_weighting).transform(vectors)
        n_items = vectors.shape[0]
        by_target = topk_similarity(None, NeighbourSide.build(kernel, vectors), self.topk,
                                    exclude=np.arange(n_items))
        self.item_similarity_ = by_target.T.tocsr()

    def _score(self, users, history) -> np.ndarray:
        return aggregate_scores(history, self.item_similarity_, bool(self.normalize_scores))


@register("itemknn")
class ItemKNN(ItemSimilarityModel):
    """Item-based k-nearest-neighbour collaborative filtering.

    Items are compared by their columns of the training matrix ``X`` (users x items), after an
    optional TF-IDF/BM25 weighting of the users (``feature_weighting``)::

        s(t, n) = similarity(x_t, x_n)             (kernels: baselines.similarity)
        W[n, t] = s(t, n) if n is among the topk most similar items of t, else 0   (n != t)
        score(u, t) = sum_n h_un W[n, t]

    With ``normalize_scores=True`` the score is a weighted average instead:
    ``score(u, t) = sum_n h_un W[n, t] / sum_{n: h_un != 0} |W[n, t]|`` (0 when no history
    item is a kept neighbour of t).

    Parameters
    ----------
    similarity : {"cosine", "asymmetric", "jaccard", "dice", "tversky"}
    topk : int
        Neighbours kept per target item (TOIS range 5..1000).
    shrink : float
        Added to every similarity denominator (Bell & Koren 2007); damps pairs with few co-raters.
    normalize : bool
        Cosine only: divide the dot product by the norms (the TOIS ``normalize`` flag);
        False keeps raw co-occurrence dot products.
    asymmetric_alpha : float
        Exponent split of the asymmetric cosine (Aiolli 2013), in [0, 2].
    tversky_alpha, tversky_beta : float
        Weights of the target-only and neighbour-only sets of the Tversky index (1, 1: Jaccard).
    feature_weighting : {"none", "tfidf", "bm25"}
        Weighting of the users before cosine/asymmetric similarities.
    normalize_scores : bool
        Divide each score by the sum of the similarities used (see above).

    References
    ----------
    Sarwar, Karypis, Konstan, Riedl. Item-based collaborative filtering recommendation
    algorithms. WWW 2001. Deshpande & Karypis. Item-based top-N recommendation algorithms.
    ACM TOIS 22(1), 2004. Aiolli. Efficient top-N recommendation for very large scale binary
    rated datasets. RecSys 2013. Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    def _item_vectors(self, data) -> sp.csr_matrix:
        return data.interactions.T.tocsr()


@register("userknn")
class UserKNN(NeighbourhoodParameters, Recommender):
    """User-based k-nearest-neighbour collaborative filtering.

    Users are compared by their rows of the training matrix ``X`` (users x items), after an
    optional TF-IDF/BM25 weighting of the items. A queried user u is represented by its
    ``history`` row h_u, so users unseen in training fold in with no refit::

        s(u, v) = similarity(h_u, x_v)    for every training user v != u
        S[u, v] = s(u, v) if v is among the topk most similar training users of u, else 0
        score(u, t) = sum_v S[u, v] x_vt

    With ``normalize_scores=True``: ``score(u, t) = sum_v S[u, v] x_vt / sum_{v: x_vt != 0} |S[u, v]|``.
    The item weights (IDF, BM25 average length) come from the training matrix. The
    similarities are computed at query time, so ``fit`` only prepares the training vectors.
    Parameters as for :class:`ItemKNN`, with users and items swapped.

    References
    ----------
    Resnick et al. GroupLens: an open architecture for collaborative filtering of netnews.
    CSCW 1994. Herlocker, Konstan, Borchers, Riedl. An algorithmic framework for performing
    collaborative filtering. SIGIR 1999. Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    search_space = similarity_search_space("cosine")

    def _fit(self, data) -> None:
        train = data.interactions
        kernel = self._kernel()
        train = train.copy()
        train.eliminate_zeros()
        self.train_ = train
        self.weighting_ = FeatureWeighting.fit(train, self.feature_weighting)
        self.neighbours_ = NeighbourSide.build(kernel, self.weighting_.transform(train))

    def _score(self, users, history) -> np.ndarray:
        history = history.copy()
        history.eliminate_zeros()
        queries = self.weighting_.transform(history)
        # A queried training user is not its own neighbour; held-out ids have empty rows anyway.
        own_row = np.where(users < self.n_users_, users, -1)
        user_similarity = topk_similarity(queries, self.neighbours_, self.topk, own_row)
        return aggregate_scores(user_similarity, self.train_, bool(self.normalize_scores), "left")


register_similarity_variants(ItemKNN, "itemknn", globals())
register_similarity_variants(UserKNN, "userknn", globals())
