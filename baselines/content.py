"""Content-based and hybrid item-item neighbourhood models: ItemKNN-CBF and ItemKNN-CFCBF.

Same similarities, shrink, top-K rule and weightings as :mod:`baselines.knn` (defined in
:mod:`baselines.similarity`); only the item vectors differ. Registered names: ``itemknn-cbf``,
``itemknn-cfcbf`` and one model per similarity, ``itemknn-cbf-<similarity>`` and
``itemknn-cfcbf-<similarity>``.

The item vectors come from a named item feature set (``features``): ``genres``, ``tags``,
``bow-tfidf``, image features such as ``efficientnet-lite0``, ... The default (None) reads the
dataset's text-like content, the first of :data:`CONTENT_PREFERENCE` it has. Items without
content (``present`` False) have an all-zero vector, so they get no similarity.

``variant`` as in :mod:`baselines.knn`, ``"tois"`` by default: what the TOIS study's
``KNN/ItemKNNCBFRecommender.py`` and ``KNN/ItemKNN_CFCBF_Hybrid_Recommender.py`` compute.
TF-IDF/BM25 weight the compared matrix with items as documents (the study's
``TF_IDF(ICM_train)``: ``sqrt(x) log(N_items / (1 + df_feature))``; for the hybrid, the stacked
``[w * ICM | URM^T]``, so users count as features too), every normalised denominator gets
``+ 1e-6``, and the history scores unweighted (the study weights only the item matrix).
``"standard"``: the textbook weighting of :class:`baselines.similarity.FeatureWeighting`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from baselines.knn import ItemSimilarityModel
from baselines.similarity import register_similarity_variants, similarity_search_space
from common.errors import RecAuditError
from protocols.contract import ANY_FEATURES, Requirements, TrainingData, UnsupportedProtocolError
from protocols.registry import register
from protocols.space import Real

# The feature set a content model reads when ``features`` is None: the dataset's own content.
CONTENT_PREFERENCE = ("bow-tfidf", "tags", "genres", "bow")


def resolve_features(model_name: str, data: TrainingData, name: str | None):
    """The feature set ``name`` of ``data`` (None: the first of CONTENT_PREFERENCE it has, else
    its only set); a one-line refusal when there is none."""
    if name is None:
        for candidate in CONTENT_PREFERENCE:
            if data.has_features(candidate):
                return data.features(candidate)
        if len(data.item_features) == 1:
            return next(iter(data.item_features.values()))
        raise UnsupportedProtocolError(
            f"model {model_name!r} found no item content among {data.feature_names() or 'no feature sets'} "
            "(needs item features); set `features` to one of them")
    if not data.has_features(name):
        raise UnsupportedProtocolError(f"model {model_name!r} reads item feature set {name!r}, which this data "
                                       f"lacks (needs item features {name}); available: "
                                       f"{', '.join(data.feature_names()) or 'none'}")
    return data.features(name)


def item_content(model_name: str, data: TrainingData, name: str | None) -> sp.csr_matrix:
    """The items x features matrix of the chosen feature set, checked against the data."""
    features = resolve_features(model_name, data, name)
    content = features.csr()
    if content.shape[0] != data.n_items:
        raise RecAuditError(f"model {model_name!r}: feature set {features.key!r} has {content.shape[0]} rows but "
                            f"the training matrix has {data.n_items} items; rebuild it on the prepared item ids")
    return content


class ContentFeaturesMixin:
    """``features`` keyword, declared requirement, and the resolved key as ``features_key_``."""

    def requirements(self) -> Requirements:
        return Requirements(user_embeddings=False, item_features=self.features or ANY_FEATURES)

    def _content(self, data: TrainingData) -> sp.csr_matrix:
        content = item_content(self.name, data, self.features)
        self.features_key_ = resolve_features(self.name, data, self.features).key
        return content


@register("itemknn-cbf")
class ItemKNNCBF(ContentFeaturesMixin, ItemSimilarityModel):
    """Content-based item k-nearest-neighbours.

    Items are compared by their content vectors ``c_t`` (rows of the chosen feature set, items
    x features, optionally TF-IDF/BM25 weighted)::

        s(t, n) = similarity(c_t, c_n);  W[n, t] = s(t, n) for the topk neighbours n != t of t
        score(u, t) = sum_n h_un W[n, t]

    Parameters as for :class:`baselines.knn.ItemKNN`, plus ``features``: the name of the item
    feature set compared (None: the dataset's own content, see the module docstring). A task
    without that feature set is refused before fitting (``n/a (needs item features)``).

    References
    ----------
    Lops, de Gemmis, Semeraro. Content-based recommender systems: state of the art and trends.
    Recommender Systems Handbook, 2011. Ferrari Dacrema et al., ACM TOIS 39(2), 2021.
    """

    def __init__(self, similarity: str = "cosine", topk: int = 100, shrink: float = 10.0,
                 normalize: bool = True, asymmetric_alpha: float = 0.5, tversky_alpha: float = 1.0,
                 tversky_beta: float = 1.0, feature_weighting: str = "none",
                 normalize_scores: bool = False, features: str | None = None, variant: str = "tois"):
        super().__init__(similarity=similarity, topk=topk, shrink=shrink, normalize=normalize,
                         asymmetric_alpha=asymmetric_alpha, tversky_alpha=tversky_alpha,
                         tversky_beta=tversky_beta, feature_weighting=feature_weighting,
                         normalize_scores=normalize_scores, variant=variant)
        self.features = features

    def _item_vectors(self, data) -> sp.csr_matrix:
        return self._content(data)


@register("itemknn-cfcbf")
class ItemKNNCFCBF(ContentFeaturesMixin, ItemSimilarityModel):
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
    features : str or None
        The item feature set stacked under the interactions (None: the dataset's own content).
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
                 normalize_scores: bool = False, content_weight: float = 1.0, features: str | None = None,
                 variant: str = "tois"):
        super().__init__(similarity=similarity, topk=topk, shrink=shrink, normalize=normalize,
                         asymmetric_alpha=asymmetric_alpha, tversky_alpha=tversky_alpha,
                         tversky_beta=tversky_beta, feature_weighting=feature_weighting,
                         normalize_scores=normalize_scores, variant=variant)
        self.content_weight = content_weight
        self.features = features

    def _item_vectors(self, data) -> sp.csr_matrix:
        weight = self.content_weight
        if not (isinstance(weight, (int, float, np.integer, np.floating)) and np.isfinite(weight) and weight > 0):
            raise RecAuditError(f"content_weight must be a finite number > 0, got {weight!r}")
        content = self._content(data)
        return sp.hstack([data.interactions.T, content * np.float32(weight)], format="csr", dtype=np.float32)


register_similarity_variants(ItemKNNCBF, "itemknn-cbf", globals())
register_similarity_variants(ItemKNNCFCBF, "itemknn-cfcbf", globals())
