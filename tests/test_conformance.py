"""Every registered model against every conformance check, plus the registry's guards."""
from __future__ import annotations

import numpy as np
import pytest

from datasets.errors import RecAuditError
from protocols.conformance import (CHECKS, check_batch_invariance, check_heldout_users,
                                   check_refit_leaks_no_state, conformance_factory, make_conformance_data)
from protocols.contract import Recommender
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
    assert data.side.item_content.shape[0] == 40
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

    def _fit(self, train, validation, side):
        previous = getattr(self, "counts_", 0)
        self.counts_ = previous + np.asarray(train.sum(axis=0)).ravel()

    def _score(self, users, history):
        return np.tile(self.counts_, (len(users), 1))


class _BatchDependentModel(_LeakyModel):
    """Normalises scores over the batch, so a user's row depends on the other users."""

    def _fit(self, train, validation, side):
        self.counts_ = np.asarray(train.sum(axis=0)).ravel()

    def _score(self, users, history):
        scores = history.toarray() @ np.ones((self.n_items_, self.n_items_)) + self.counts_
        return scores / scores.sum()


class _SilentNoFoldIn(_BatchDependentModel):
    """Claims to need user embeddings but neither check_protocol nor score refuse."""

    folds_in_users = False

    def check_protocol(self, strong_generalisation):
        return None

    def _check_query(self, users, history):
        return np.asarray(users), history


@pytest.mark.parametrize("broken, check", [
    (_LeakyModel, check_refit_leaks_no_state),
    (_BatchDependentModel, check_batch_invariance),
    (_SilentNoFoldIn, check_heldout_users),
])
def test_checks_catch_broken_models(broken, check, data):
    with pytest.raises(AssertionError):
        check(broken, data)
