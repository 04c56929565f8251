"""The one contract every model meets, in the spirit of scikit-learn's estimators.

- Hyperparameters are keyword arguments of ``__init__``, stored unmodified under the same
  names; ``__init__`` validates and computes nothing.
- ``fit(train, validation=None, side=None)`` learns from a users x items CSR matrix and
  returns ``self``; a second call replaces the first. Learned state ends in ``_``.
- ``score(users, history)`` returns dense float32 scores, one row per user, one column per
  item. ``history`` holds the rows of the input matrix for those users (their training
  interactions, or the fold-in items of held-out users), so item-based models and
  autoencoders never need user ids, and models with user embeddings use ``users``.
- ``score_candidates(users, history, candidates)`` scores given items only (sampled
  protocols); by default it gathers from ``score``.
- Randomness comes only from a ``seed`` constructor argument, turned into generators in
  ``fit``; a model with a ``seed`` parameter is stochastic and is run over several seeds.

Subclasses implement ``_fit`` and ``_score`` (and may override ``_score_candidates``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from datasets.errors import RecAuditError
from protocols.space import Dimension


class UnsupportedProtocolError(RecAuditError):
    """The model cannot run under this protocol (for example, held-out users without embeddings)."""


class NotFittedError(RuntimeError):
    pass


@dataclass(frozen=True)
class ValidationData:
    """Held-out data a model may use for early stopping, never for fitting.

    ``history`` has one row per entry of ``users``; ``truth`` has the held-out items in the
    same row order; ``candidates`` is set for sampled protocols (one row of item ids per user).
    """

    users: np.ndarray
    history: sp.csr_matrix
    truth: sp.csr_matrix
    candidates: np.ndarray | None = None


@dataclass(frozen=True)
class SideInformation:
    """Item side information: a content matrix (items x features) and/or image paths."""

    item_content: sp.csr_matrix | None = None
    item_images: list[str | None] | None = None
    image_root: Path | None = None


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
    family: ClassVar[str] = "baseline"
    # Small settings (few epochs or factors) that keep the conformance checks fast; they
    # override the defaults only there.
    conformance_params: ClassVar[dict] = {}

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
    def fit(self, train, validation: ValidationData | None = None,
            side: SideInformation | None = None) -> Recommender:
        train = as_interaction_matrix(train)
        self.n_users_, self.n_items_ = train.shape
        self.trained_users_ = np.diff(train.indptr) > 0
        self._fit(train, validation, side)
        return self

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

    def check_protocol(self, strong_generalisation: bool) -> None:
        """Raise UnsupportedProtocolError before any work if the protocol needs fold-in."""
        if strong_generalisation and not self.folds_in_users:
            raise UnsupportedProtocolError(
                f"model {self.name!r} cannot score held-out users (needs user embeddings); "
                "use a weak-generalisation protocol such as holdout or leave-one-out")

    # ----- to implement --------------------------------------------------------------
    def _fit(self, train: sp.csr_matrix, validation: ValidationData | None,
             side: SideInformation | None) -> None:
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
