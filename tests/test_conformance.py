"""Every registered model against every conformance check, plus the registry's guards."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import RecAuditError
from protocols.conformance import (CHECKS, check_batch_invariance, check_fit_leaves_params_unchanged,
                                   check_global_random_state_untouched, check_heldout_users,
                                   check_refit_leaks_no_state, check_refuses_without_requirements,
                                   check_score_leaves_history_unchanged, check_works_without_side_data,
                                   conformance_factory, make_conformance_data)
from protocols.contract import Recommender, Requirements, TrainingData, as_training_data
from protocols.registry import make_model, registered_models

MODEL_NAMES = sorted(registered_models())


@pytest.fixture(scope="module")
def data():
    return make_conformance_data()


@pytest.mark.parametrize("check_name", sorted(CHECKS))
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_model_conforms(model_name, check_name, data):
    CHECKS[check_name](conformance_factory(model_name), data)


def test_the_suite_has_the_first_baselines():
    assert {"pop", "random"} <= set(MODEL_NAMES)


def test_conformance_data_is_seeded_and_structured(data):
    again = make_conformance_data()
    assert (data.train != again.train).nnz == 0
    assert data.train.shape == (60, 40) and data.other_train.shape[1] == 40
    assert np.diff(data.train.indptr).min() >= 2
    assert data.strong_train[data.heldout_users].nnz == 0
    tags, image = data.side.item_features["tags"], data.side.item_features["image-features@000000000000"]
    assert tags.is_sparse and tags.n_items == 40 and not image.is_sparse and image.n_items == 40
    assert tags.sha256 == again.side.item_features["tags"].sha256 and image.sha256 == \
        again.side.item_features["image-features@000000000000"].sha256
    assert image.present.sum() == 39 and data.side.images.present.sum() == 39 and data.side.items is not None
    # the data a model fits on carries every item data, with the requested interactions and validation
    training = data.training(data.other_train, data.validation)
    assert isinstance(training, TrainingData) and training.interactions is data.other_train
    assert training.validation is data.validation and set(training.item_features) == set(data.side.item_features)
    assert data.training().interactions is data.train and data.training().images is data.side.images
    # Planted blocks: users share far more items within a group than the 3% noise would give.
    assert data.train.nnz > 0.1 * 60 * 40


def test_make_model_rejects_unknown_parameter_with_one_line():
    with pytest.raises(RecAuditError) as caught:
        make_model("random", {"seed": 1, "n_factors": 8})
    message = str(caught.value)
    assert "\n" not in message and "'n_factors'" in message and "seed" in message


def test_make_model_unknown_name_lists_known_models():
    with pytest.raises(RecAuditError, match="known models: .*pop.*random"):
        make_model("popularity-ish")


# ----- the checks catch broken models (a check that cannot fail proves nothing) --------

class _LeakyModel(Recommender):
    """Keeps adding to its popularity across fits."""

    name = "leaky"

    def __init__(self):
        pass

    def _fit(self, data):
        previous = getattr(self, "counts_", 0)
        self.counts_ = previous + np.asarray(data.interactions.sum(axis=0)).ravel()

    def _score(self, users, history):
        return np.tile(self.counts_, (len(users), 1))


class _BatchDependentModel(_LeakyModel):
    """Normalises scores over the batch, so a user's row depends on the other users."""

    def _fit(self, data):
        self.counts_ = np.asarray(data.interactions.sum(axis=0)).ravel()

    def _score(self, users, history):
        scores = history.toarray() @ np.ones((self.n_items_, self.n_items_)) + self.counts_
        return scores / scores.sum()


class _SilentNoFoldIn(_BatchDependentModel):
    """Claims to need user embeddings but scores users it never saw instead of refusing."""

    folds_in_users = False

    def _check_query(self, users, history):
        return np.asarray(users), history


class _Popularity(Recommender):
    """A sound base for the broken models below: training counts for every user."""

    name = "test-popularity"

    def __init__(self, smoothing: float = 1.0):
        self.smoothing = smoothing

    def _fit(self, data):
        self.counts_ = np.asarray(data.interactions.sum(axis=0)).ravel() + self.smoothing

    def _score(self, users, history):
        return np.tile(self.counts_, (len(users), 1))


class _ParamChangingModel(_Popularity):
    """Adjusts a constructor parameter in fit instead of keeping a learned copy."""

    def _fit(self, data):
        self.smoothing = max(self.smoothing, 1.0 / data.n_items) * 2
        super()._fit(data)


class _HistoryWritingModel(_Popularity):
    """Down-weights seen items by writing into the history it was given."""

    def _score(self, users, history):
        history.data *= -1.0
        return super()._score(users, history) + history.toarray()


class _SilentlyNeedsFeatures(_Popularity):
    """Reads the ``tags`` feature set without declaring it: without item data its scores are
    0 / 0 = NaN instead of a refusal."""

    def _fit(self, data):
        tags = data.item_features["tags"].dense() if "tags" in data.item_features else np.zeros((data.n_items, 1))
        profile = np.asarray(data.interactions.sum(axis=0)).ravel() @ tags
        with np.errstate(invalid="ignore", divide="ignore"):
            self.counts_ = (tags @ profile) / np.linalg.norm(profile)


class _CrashesWithoutFeatures(_Popularity):
    """Reads the ``tags`` feature set without declaring it, and crashes without it."""

    def _fit(self, data):
        tags = data.features("tags").dense()
        self.counts_ = tags @ (np.asarray(data.interactions.sum(axis=0)).ravel() @ tags)


class _DeclaresFeaturesButDoesNotRefuse(_Popularity):
    """Declares that it reads ``tags`` but its own fit skips the requirement check and
    falls back to popularity."""

    def requirements(self) -> Requirements:
        return Requirements(item_features="tags")

    def fit(self, data):
        data = as_training_data(data)
        self.n_users_, self.n_items_ = data.interactions.shape
        self.trained_users_ = np.diff(data.interactions.indptr) > 0
        self._fit(data)
        return self


class _GlobalRandomModel(_Popularity):
    """Breaks ties with the global NumPy generator instead of a seeded one."""

    def _fit(self, data):
        super()._fit(data)
        self.counts_ = self.counts_ + 1e-3 * np.random.rand(data.n_items)


@pytest.mark.parametrize("broken, check, reason", [
    (_LeakyModel, check_refit_leaks_no_state, "refitting must forget earlier fits"),
    (_BatchDependentModel, check_batch_invariance, "scoring a batch must equal scoring its users one by one"),
    (_SilentNoFoldIn, check_heldout_users, "score of held-out users must raise UnsupportedProtocolError"),
    (_ParamChangingModel, check_fit_leaves_params_unchanged, r"fit changed constructor parameters \['smoothing'\]"),
    (_HistoryWritingModel, check_score_leaves_history_unchanged, "score modified history.data"),
    (_SilentlyNeedsFeatures, check_works_without_side_data, "non-finite values"),
    (_DeclaresFeaturesButDoesNotRefuse, check_refuses_without_requirements,
     "so fit without item data must raise UnsupportedProtocolError"),
    (_GlobalRandomModel, check_global_random_state_untouched, "used the global NumPy random state"),
])
def test_checks_catch_broken_models(broken, check, reason, data):
    with pytest.raises(AssertionError, match=reason):
        check(broken, data)


def test_a_model_that_crashes_without_undeclared_features_fails_the_side_data_check(data):
    _CrashesWithoutFeatures().fit(data.training())  # fine while the features are there
    with pytest.raises((AssertionError, RecAuditError), match="tags"):
        check_works_without_side_data(_CrashesWithoutFeatures, data)


class _DeclaredTagsModel(_CrashesWithoutFeatures):
    """The sound version of the feature readers above: it declares the set it reads."""

    def requirements(self) -> Requirements:
        return Requirements(item_features="tags", feature_kind="sparse")


@pytest.mark.parametrize("sound", [_Popularity, _DeclaredTagsModel])
def test_the_new_checks_pass_sound_models(sound, data):
    """The broken models above differ from these by exactly their defect."""
    for check in (check_fit_leaves_params_unchanged, check_score_leaves_history_unchanged,
                  check_works_without_side_data, check_refuses_without_requirements,
                  check_global_random_state_untouched):
        check(sound, data)
