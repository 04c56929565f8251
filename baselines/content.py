"""Content-based and hybrid item-item neighbourhood models: ItemKNN-CBF and ItemKNN-CFCBF.

Same similarities, shrink, top-K rule and weightings as :mod:`baselines.knn` (defined in
:mod:`baselines.similarity`); only the item vectors differ. Registered names: ``itemknn-cbf``,
``itemknn-cfcbf`` and one model per similarity, ``itemknn-cbf-<similarity>`` and
``itemknn-cfcbf-<similarity>``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.knn import ItemSimilarityModel
from baselines.similarity import register_similarity_variants, similarity_search_space
from datasets.errors import RecAuditError
from protocols.contract import SideInformation, UnsupportedProtocolError
from protocols.registry import register
from protocols.space import Real


def item_content(model_name: str, side: SideInformation | None, n_items: int) -> sp.csr_matrix:
    """The items x features content matrix, or a one-line error saying what is missing."""
    content = None if side is None else side.item_content
    if content is None:
        raise UnsupportedProtocolError(
            f"model {model_name!r} cannot run on a dataset without item features (needs item content); "
            "pick a dataset with item content or a collaborative model")
    content = sp.csr_matrix(content, dtype=np.float32)
    if content.shape[0] != n_items:
        raise RecAuditError(f"model {model_name!r}: item content has {content.shape[0]} rows but the training "
                            f"matrix has {n_items} items; rebuild the content matrix on the prepared item ids")
    if content.data.size and not np.isfinite(content.data).all():
        raise RecAuditError(f"model {model_name!r}: item content has non-finite values; fix the feature file")
    return content


@register("itemknn-cbf")
class ItemKNNCBF(ItemSimilarityModel):
    """Content-based item k-nearest-neighbours.

    Items are compared by their content vectors ``c_t`` (rows of ``side.item_content``, items
    x features, optionally TF-IDF/BM25 weighted)::

        s(t, n) = similarity(c_t, c_n);  W[n, t] = s(t, n) for the topk neighbours n != t of t
        score(u, t) = sum_n h_un W[n, t]

    Parameters and ``normalize_scores`` as for :class:`baselines.knn.ItemKNN`. Fitting
    without item content raises :class:`RecAuditError`.

    References
    ----------
    Lops, de Gemmis, Semeraro. Content-based recommender systems: state of the art and trends.
    Recommender Systems Handbook, 2011. Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    def _item_vectors(self, train, side) -> sp.csr_matrix:
        return item_content(self.name, side, train.shape[1])


@register("itemknn-cfcbf")
class ItemKNNCFCBF(ItemSimilarityModel):
    """Hybrid item k-nearest-neighbours on interactions and content together.

    Each item's vector is its column of the training matrix followed by its content,
    scaled by ``content_weight`` (w)::

        v_t = [ x_t (users) | w * c_t (features) ]    (the TOIS ``ICM_weight``)
        s(t, n) = similarity(v_t, v_n);  W[n, t] = s(t, n) for the topk neighbours n != t of t
        score(u, t) = sum_n h_un W[n, t]

    The feature weighting applies to the stacked vectors. Set-based similarities binarise
    them, so ``content_weight`` only matters for cosine and asymmetric.

    Parameters
    ----------
    content_weight : float
        Scale of the content block, > 0 (TOIS range 0.01..100, log-uniform).
    others
        As for :class:`baselines.knn.ItemKNN`.

    References
    ----------
    Ferrari Dacrema et al., ACM TOIS 39(2), 2021 (ItemKNN-CFCBF hybrid).
    """

    search_space = {**similarity_search_space("cosine"), "content_weight": Real(1e-2, 1e2, log=True)}

    def __init__(self, similarity: str = "cosine", topk: int = 100, shrink: float = 10.0,
                 normalize: bool = True, asymmetric_alpha: float = 0.5, tversky_alpha: float = 1.0,
                 tversky_beta: float = 1.0, feature_weighting: str = "none",
                 normalize_scores: bool = False, content_weight: float = 1.0):
        super().__init__(similarity=similarity, topk=topk, shrink=shrink, normalize=normalize,
                         asymmetric_alpha=asymmetric_alpha, tversky_alpha=tversky_alpha,
                         tversky_beta=tversky_beta, feature_weighting=feature_weighting,
                         normalize_scores=normalize_scores)
        self.content_weight = content_weight

    def _item_vectors(self, train, side) -> sp.csr_matrix:
        weight = self.content_weight
        if not (isinstance(weight, (int, float, np.integer, np.floating)) and np.isfinite(weight) and weight > 0):
            raise RecAuditError(f"content_weight must be a finite number > 0, got {weight!r}")
        content = item_content(self.name, side, train.shape[1])
        return sp.hstack([train.T, content * np.float32(weight)], format="csr", dtype=np.float32)


register_similarity_variants(ItemKNNCBF, "itemknn-cbf", globals())
register_similarity_variants(ItemKNNCFCBF, "itemknn-cfcbf", globals())
