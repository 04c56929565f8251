"""The one contract every model meets, in the spirit of scikit-learn's estimators.

- Hyperparameters are keyword arguments of ``__init__``, stored unmodified under the same
  names; ``__init__`` validates and computes nothing.
- ``fit(data)`` learns from a :class:`~datasets.item_data.TrainingData` (interactions, the
  validation data to stop on, named item feature sets, item images, the item table) and
  returns ``self``; a second call replaces the first. Learned state ends in ``_``. A bare
  users x items matrix is accepted as data without validation or item side data.
- ``score(users, history)`` returns dense float32 scores, one row per user, one column per
  item. ``history`` holds the rows of the input matrix for those users (their training
  interactions, or the fold-in items of held-out users), so item-based models and
  autoencoders never need user ids, and models with user embeddings use ``users``.
- ``score_candidates(users, history, candidates)`` scores given items only (sampled
  protocols); by default it gathers from ``score``.
- Randomness comes only from a ``seed`` constructor argument, turned into generators in
  ``fit``; a model with a ``seed`` parameter is stochastic and is run over several seeds.
- ``requirements()`` declares what the model needs from a task (user embeddings, a named
  item feature set, item images). :func:`check_requirements` compares it with the task
  *before* any fit; a refusal is an :class:`UnsupportedProtocolError` whose message says
  ``(needs ...)``, shown on the leaderboard as ``n/a (needs ...)``. This is the one place
  where "cannot run here" is decided.

Subclasses implement ``_fit`` and ``_score`` (and may override ``_score_candidates``).
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError
from common.memory import require_memory
from datasets.item_data import FeatureSet, TrainingData, ValidationData
from protocols.space import Dimension

__all__ = ["Recommender", "Requirements", "TaskProfile", "TrainingData", "ValidationData", "FeatureSet",
           "UnsupportedProtocolError", "NotFittedError", "ANY_FEATURES", "as_interaction_matrix", "check_requirements",
           "as_training_data"]


class UnsupportedProtocolError(RecAuditError):
    """The model cannot run under this protocol (for example, held-out users without embeddings)."""


class NotFittedError(RuntimeError):
    pass


ANY_FEATURES = "*"  # Requirements.item_features: any item feature set will do


@dataclass(frozen=True)
class Requirements:
    """What a model needs from a task, declared by :meth:`Recommender.requirements`.

    ``user_embeddings``: every user it scores must have training interactions (no fold-in);
    ``item_features``: the name of an item feature set it reads (None: none; ``ANY_FEATURES``:
    whichever the data has), with
    ``feature_kind`` ``"any"``, ``"dense"`` or ``"sparse"``; ``item_images``: it reads pixels.
    """

    user_embeddings: bool = False
    item_features: str | None = None
    feature_kind: str = "any"
    item_images: bool = False


@dataclass(frozen=True)
class TaskProfile:
    """What a task offers, for :func:`check_requirements`: how many scored users have no
    training interaction, the item feature sets (name -> "dense"/"sparse"), whether the items
    have images, and whether every item the task asks to find (its truth) is cold (no training
    interaction, as under ``cold-items``)."""

    users_without_training: int = 0
    feature_kinds: tuple = ()
    has_images: bool = False
    where: str = "this split"
    truth_all_cold: bool = False

    @classmethod
    def of(cls, data: TrainingData, scored_users: np.ndarray, where: str = "this split",
           truth: sp.spmatrix | None = None) -> TaskProfile:
        trained = np.diff(sp.csr_matrix(data.interactions).indptr) > 0
        users = np.asarray(scored_users, dtype=np.int64)
        inside = users < len(trained)
        missing = int((~inside).sum() + (~trained[users[inside]]).sum())
        kinds = tuple(sorted({(features.name, "sparse" if features.is_sparse else "dense")
                              for features in data.item_features.values()}))
        all_cold = False
        if truth is not None and truth.nnz:
            warm = np.diff(sp.csc_matrix(data.interactions).indptr) > 0
            truth_items = np.unique(sp.csr_matrix(truth).indices)
            inside = truth_items < len(warm)
            all_cold = not warm[truth_items[inside]].any()
        return cls(users_without_training=missing, feature_kinds=kinds,
                   has_images=data.images is not None and bool(data.images.present.any()), where=where,
                   truth_all_cold=all_cold)


def check_requirements(model: Recommender, profile: TaskProfile) -> None:
    """Raise :class:`UnsupportedProtocolError` (one line, ``(needs ...)``) if ``model``'s
    requirements are not met by the task described by ``profile``."""
    needs = model.requirements()
    name = model.name or type(model).__name__
    reads_content = needs.item_features is not None or needs.item_images
    if profile.truth_all_cold and not (reads_content or model.scores_cold_items):
        raise UnsupportedProtocolError(
            f"model {name!r} ranks items by their training interactions, and every item {profile.where} asks for "
            "has none (needs item content to rank cold items); content models rank them")
    if needs.user_embeddings and profile.users_without_training:
        raise UnsupportedProtocolError(
            f"model {name!r} cannot score {profile.users_without_training} users of {profile.where} who have no "
            "training interaction (needs user embeddings); use a weak-generalisation protocol such as holdout")
    if needs.item_features is not None:
        kinds = dict(profile.feature_kinds)
        if needs.item_features == ANY_FEATURES:
            if not kinds:
                raise UnsupportedProtocolError(f"model {name!r} reads item content, which {profile.where} lacks "
                                               "(needs item features); pick a dataset with item content")
            return _check_images(needs, profile, name)
        if needs.item_features not in kinds:
            available = ", ".join(sorted(kinds)) or "none"
            raise UnsupportedProtocolError(
                f"model {name!r} reads item feature set {needs.item_features!r}, which {profile.where} lacks "
                f"(needs item features {needs.item_features}); available feature sets: {available}")
        if needs.feature_kind != "any" and kinds[needs.item_features] != needs.feature_kind:
            raise UnsupportedProtocolError(
                f"model {name!r} reads {needs.feature_kind} features but {needs.item_features!r} is "
                f"{kinds[needs.item_features]} (needs {needs.feature_kind} item features); choose another set")
    _check_images(needs, profile, name)


def _check_images(needs: Requirements, profile: TaskProfile, name: str) -> None:
    if needs.item_images and not profile.has_images:
        raise UnsupportedProtocolError(f"model {name!r} reads item pixels but {profile.where} has none "
                                       "(needs item images); pick a dataset with images")


def as_training_data(data) -> TrainingData:
    """``data`` itself, or a bare interaction matrix wrapped as data without side information."""
    if isinstance(data, TrainingData):
        return dataclasses.replace(data, interactions=as_interaction_matrix(data.interactions))
    return TrainingData(interactions=as_interaction_matrix(data))


def as_interaction_matrix(matrix) -> sp.csr_matrix:
    """Canonical training input: CSR, float32, sorted indices, duplicates summed."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


class Recommender:
    """Base class of every registered model. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    search_space: ClassVar[dict[str, Dimension]] = {}
    folds_in_users: ClassVar[bool] = True
    # Whether it ranks items without training interactions meaningfully although it reads no
    # item content (e.g. random); models that read features or images can, by their content.
    scores_cold_items: ClassVar[bool] = False
    family: ClassVar[str] = "baseline"
    # Small settings (few epochs or factors) that keep the conformance checks fast; they
    # override the defaults only there.
    conformance_params: ClassVar[dict] = {}
    # What to change when fit_memory_bytes exceeds the machine's memory (ends the refusal).
    memory_fix: ClassVar[str] = "use a machine with more memory"

    # ----- parameters (scikit-learn style) -------------------------------------------
    @classmethod
    def parameter_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self.parameter_names()}

    def set_params(self, **params) -> Recommender:
        known = set(self.parameter_names())
        for key, value in params.items():
            if key not in known:
                raise RecAuditError(
                    f"model {self.name or type(self).__name__!r} has no parameter {key!r}; "
                    f"its parameters are: {', '.join(sorted(known)) or 'none'}")
            setattr(self, key, value)
        return self

    def clone(self) -> Recommender:
        return type(self)(**self.get_params())

    @property
    def is_stochastic(self) -> bool:
        return "seed" in self.parameter_names()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ----- template methods ----------------------------------------------------------
    def fit(self, data: TrainingData | sp.spmatrix) -> Recommender:
        data = as_training_data(data)
        train = data.interactions
        self.n_users_, self.n_items_ = train.shape
        self.trained_users_ = np.diff(train.indptr) > 0
        check_requirements(self, TaskProfile.of(data, np.flatnonzero(self.trained_users_), "the training data"))
        needed = self.fit_memory_bytes(train)
        if needed:
            require_memory(needed, f"{self.name or type(self).__name__} on {train.shape[0]:,} users x "
                                   f"{train.shape[1]:,} items", self.memory_fix)
        self._fit(data)
        return self

    def fit_memory_bytes(self, train: sp.csr_matrix) -> int:
        """Working memory the fit will allocate beyond its input ``train`` (users x items),
        when it is large and predictable (a dense items x items matrix, a pixel cache, a sparse
        factor); 0 when small or unknown.
        Checked before the work (``common.memory.require_memory``)."""
        return 0

    def score(self, users, history) -> np.ndarray:
        users, history = self._check_query(users, history)
        scores = np.asarray(self._score(users, history), dtype=np.float32)
        if scores.shape != (len(users), self.n_items_):
            raise AssertionError(f"{type(self).__name__}._score returned shape {scores.shape}, "
                                 f"expected {(len(users), self.n_items_)}")
        return scores

    def score_candidates(self, users, history, candidates) -> np.ndarray:
        users, history = self._check_query(users, history)
        candidates = np.asarray(candidates)
        if candidates.ndim != 2 or candidates.shape[0] != len(users):
            raise ValueError(f"candidates must have one row per user, got shape {candidates.shape}")
        scores = np.asarray(self._score_candidates(users, history, candidates), dtype=np.float32)
        if scores.shape != candidates.shape:
            raise AssertionError(f"{type(self).__name__}._score_candidates returned shape {scores.shape}, "
                                 f"expected {candidates.shape}")
        return scores

    def requirements(self) -> Requirements:
        """What this model needs from a task (see :class:`Requirements`). The default says
        only whether users need embeddings (``folds_in_users``); models reading item
        features or images extend it from their parameters (e.g. ``features``)."""
        return Requirements(user_embeddings=not self.folds_in_users)

    # ----- to implement --------------------------------------------------------------
    def _fit(self, data: TrainingData) -> None:
        raise NotImplementedError

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _score_candidates(self, users: np.ndarray, history: sp.csr_matrix,
                          candidates: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self._score(users, history), candidates, axis=1)

    # ----- helpers -------------------------------------------------------------------
    def _check_query(self, users, history) -> tuple[np.ndarray, sp.csr_matrix]:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")
        users = np.asarray(users, dtype=np.int64)
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape != (len(users), self.n_items_):
            raise ValueError(f"history must have shape {(len(users), self.n_items_)}, got {history.shape}")
        if not self.folds_in_users:
            unseen = (users >= self.n_users_) | ~self.trained_users_[np.minimum(users, self.n_users_ - 1)]
            if unseen.any():
                raise UnsupportedProtocolError(
                    f"model {self.name!r} cannot score {int(unseen.sum())} users unseen in training "
                    "(needs user embeddings); use a weak-generalisation protocol")
        return users, history
