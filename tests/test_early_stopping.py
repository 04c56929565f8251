"""Early stopping: bookkeeping by hand, validation values against a naive NDCG, a toy iterative model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from common.errors import RecAuditError
from protocols.contract import Recommender, TrainingData, ValidationData
from protocols.early_stopping import EarlyStopping, parse_metric, validation_value

N_USERS, N_ITEMS = 5, 8


class CyclicScores(Recommender):
    """score(u, i) = -((i - u - shift) mod n_items): user u's list starts at item u + shift."""

    def __init__(self, shift: int = 0):
        self.shift = shift

    def _fit(self, data):
        pass

    def _score(self, users, history):
        items = np.arange(self.n_items_)
        return -((items[None, :] - users[:, None] - self.shift) % self.n_items_).astype(np.float32)


class EpochToy(CyclicScores):
    """An iterative model whose shift after epoch e is target - |e - peak|: with target 3 the truth
    (u + 3) is at distance |e - peak| from the start of the list, so epoch ``peak`` is best."""

    def __init__(self, epochs: int = 10, validate_every: int = 1, patience: int | None = None,
                 peak: int = 4, target: int = 3):
        self.epochs, self.validate_every, self.patience = epochs, validate_every, patience
        self.peak, self.target = peak, target

    def _fit(self, data):
        stopper = EarlyStopping(data.validation, validate_every=self.validate_every, patience=self.patience)
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            self.shift = self.target - abs(epoch - self.peak)
            if stopper.after_epoch(epoch, self, snapshot=lambda: self.shift, last=epoch == self.epochs):
                break
        if stopper.best_snapshot is not None:
            self.shift = stopper.best_snapshot
        self.best_epoch_ = stopper.best_epoch_or(epoch)
        self.epochs_run_ = epoch
        self.stopper_ = stopper


def toy_validation() -> tuple[sp.csr_matrix, ValidationData]:
    """Train: user u holds item (u + 7) mod 8. Validation: user u's held-out item is (u + 3) mod 8."""
    users = np.arange(N_USERS)
    train = sp.csr_matrix((np.ones(N_USERS, np.float32), (users, (users + 7) % N_ITEMS)), shape=(N_USERS, N_ITEMS))
    truth = sp.csr_matrix((np.ones(N_USERS, np.float32), (users, (users + 3) % N_ITEMS)), shape=(N_USERS, N_ITEMS))
    return train, ValidationData(users=users, history=train, truth=truth)


def naive_ndcg_at_10(shift: int) -> float:
    """Loop over users: rank the items not in the history by score, NDCG of the single truth item."""
    total = 0.0
    for u in range(N_USERS):
        candidates = [i for i in range(N_ITEMS) if i != (u + 7) % N_ITEMS]
        ranked = sorted(candidates, key=lambda i: ((i - u - shift) % N_ITEMS, i))
        rank = ranked.index((u + 3) % N_ITEMS) + 1
        total += 1 / math.log2(rank + 1) if rank <= 10 else 0.0
    return total / N_USERS


@pytest.mark.parametrize("shift", [0, 1, 3, 5])
def test_validation_value_matches_a_naive_ndcg(shift):
    train, validation = toy_validation()
    model = CyclicScores(shift).fit(train)
    assert validation_value(model, validation) == pytest.approx(naive_ndcg_at_10(shift), abs=1e-12)


def test_validation_value_other_metric_by_hand():
    train, validation = toy_validation()
    # shift 2: user u ranks u+2, u+3, ...: the truth is second -> hr@1 = 0, hr@2 = 1
    model = CyclicScores(2).fit(train)
    assert validation_value(model, validation, "hr@1") == 0.0
    assert validation_value(model, validation, "hr@2") == 1.0
    assert validation_value(model, validation, "mrr@10") == pytest.approx(0.5)


def test_record_keeps_best_and_stops_after_patience_by_hand():
    stopper = EarlyStopping(validation=None, patience=2)
    snapshots = []

    def snapshot():
        snapshots.append(len(snapshots))
        return f"state{len(snapshots)}"

    assert [stopper.record(e, v, snapshot) for e, v in [(1, 0.1), (2, 0.3), (3, 0.3), (4, 0.2)]] == \
        [False, False, False, True]
    assert (stopper.best_epoch, stopper.best_value, stopper.best_snapshot) == (2, 0.3, "state2")
    assert len(snapshots) == 2  # called on improvement only; an equal value is no improvement
    assert stopper.stopped_early and [h["epoch"] for h in stopper.history] == [1, 2, 3, 4]


def test_a_later_improvement_resets_patience_and_nan_never_improves():
    stopper = EarlyStopping(validation=None, patience=2, min_delta=0.05)
    for epoch, value in [(1, float("nan")), (2, 0.2), (3, 0.24), (4, 0.3)]:
        assert not stopper.record(epoch, value)
    # epoch 1 (NaN) and 3 (+0.04 < min_delta) were bad; 4 improved and reset the count
    assert (stopper.best_epoch, stopper.best_value) == (4, 0.3)
    assert not stopper.record(5, float("nan")) and stopper.record(6, 0.1)


def test_patience_none_never_stops_and_due_epochs():
    stopper = EarlyStopping(validation=toy_validation()[1], validate_every=3, patience=None)
    assert [e for e in range(1, 11) if stopper.due(e, last=e == 10)] == [3, 6, 9, 10]
    assert not any(stopper.record(e, -e) for e in range(1, 20))
    assert stopper.best_epoch == 1
    assert not EarlyStopping(validation=None).due(3)


def test_toy_model_stops_at_patience_and_restores_the_best_epoch():
    train, validation = toy_validation()
    model = EpochToy(epochs=10, patience=2, peak=4, target=3).fit(TrainingData(train, validation=validation))
    # values rise to epoch 4 (shift 3: truth first), then fall: epochs 5 and 6 exhaust patience 2
    assert (model.best_epoch_, model.epochs_run_, model.shift) == (4, 6, 3)
    expected = [naive_ndcg_at_10(3 - abs(e - 4)) for e in range(1, 7)]
    assert [h["ndcg@10"] for h in model.stopper_.history] == pytest.approx(expected, abs=1e-12)
    assert model.stopper_.best_value == pytest.approx(1.0)


def test_toy_model_without_validation_trains_every_epoch():
    train, _ = toy_validation()
    model = EpochToy(epochs=4, patience=1, peak=4).fit(train)
    assert (model.best_epoch_, model.epochs_run_, model.shift) == (4, 4, 3)


def test_validate_every_checks_only_those_epochs_and_the_last():
    train, validation = toy_validation()
    model = EpochToy(epochs=7, validate_every=3, patience=None, peak=5).fit(TrainingData(train, validation=validation))
    assert [h["epoch"] for h in model.stopper_.history] == [3, 6, 7]
    assert model.best_epoch_ == 6 and model.epochs_run_ == 7  # epoch 5 was never validated


def test_the_toy_model_stops_on_the_metric_of_its_validation_data():
    """hr@1 is 0 until the truth comes first (epoch ``peak``), so patience 2 stops at epoch 3
    and keeps epoch 1, where ndcg@10 (rising every epoch) would have run to the peak."""
    train, validation = toy_validation()
    on_hr = ValidationData(validation.users, validation.history, validation.truth, metric="hr@1")
    model = EpochToy(epochs=10, patience=2, peak=4, target=3).fit(TrainingData(train, validation=on_hr))
    assert model.stopper_.metric == "hr@1" and [h["hr@1"] for h in model.stopper_.history] == [0.0, 0.0, 0.0]
    assert (model.best_epoch_, model.epochs_run_) == (1, 3)
    assert ValidationData(validation.users, validation.history, validation.truth).metric == "ndcg@10"


def test_an_explicit_metric_overrides_the_validation_datas():
    _, validation = toy_validation()
    assert EarlyStopping(validation).metric == "ndcg@10"
    assert EarlyStopping(validation, metric="mrr@5").metric == "mrr@5"
    assert EarlyStopping(None).metric == "ndcg@10"


def test_validation_value_takes_a_ranking_task_too():
    from protocols.early_stopping import ranking_task

    train, validation = toy_validation()
    model = CyclicScores(1).fit(train)
    assert validation_value(model, ranking_task(validation), "ndcg@10") == validation_value(model, validation)


def test_state_round_trip_resumes_the_bookkeeping():
    stopper = EarlyStopping(validation=None, patience=2)
    for epoch, value in [(1, 0.1), (2, 0.3), (3, 0.2)]:
        stopper.record(epoch, value, lambda: {"epoch": epoch})
    resumed = EarlyStopping(validation=None, patience=2)
    resumed.load_state(stopper.state())
    assert (resumed.best_epoch, resumed.best_value, resumed.best_snapshot) == (2, 0.3, {"epoch": 2})
    assert resumed.history == stopper.history and not resumed.stopped_early
    assert resumed.record(4, 0.25)  # the second bad validation in a row, counted across the resume


@pytest.mark.parametrize("label, expected", [("ndcg@10", ("ndcg", 10)), ("NDCG@5", ("ndcg", 5)),
                                             ("auc", ("auc", None)), ("recall_mv@20", ("recall_mv", 20))])
def test_parse_metric(label, expected):
    assert parse_metric(label) == expected


@pytest.mark.parametrize("label, message", [
    ("ndgc@10", "unknown validation metric 'ndgc'; known validation metrics: auc, hr, map"),
    ("gini@10", "unknown validation metric 'gini'"),
    ("ndcg", "needs a positive cutoff, e.g. 'ndcg@10'"),
    ("ndcg@0", "needs a positive cutoff"),
    ("auc@10", "takes no cutoff"),
])
def test_bad_metric_labels_give_one_line_errors(label, message):
    with pytest.raises(RecAuditError) as caught:
        parse_metric(label)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, message", [({"validate_every": 0}, "validate_every=0"),
                                             ({"patience": 0}, "patience=0"),
                                             ({"patience": 1.5}, "patience=1.5"),
                                             ({"metric": "coverage@10"}, "unknown validation metric")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(RecAuditError, match=message):
        EarlyStopping(validation=None, **kwargs)


def test_rate_steps_lower_the_rate_before_stopping_by_hand():
    """Patience 2 with 2 lower rates: two bad validations move to the next rate (and restart the
    count) twice, then two more stop; an improvement restarts the count without a step."""
    stopper = EarlyStopping(None, patience=2, rate_steps=2)
    values = [0.5, 0.4, 0.4, 0.6, 0.5, 0.5, 0.5, 0.5]
    steps, stops = [], []
    for epoch, value in enumerate(values, start=1):
        stops.append(stopper.record(epoch, value))
        steps.append(stopper.rate_step)
    assert steps == [0, 0, 1, 1, 1, 2, 2, 2]
    assert stops == [False] * 7 + [True]
    assert stopper.best_epoch == 4
    restored = EarlyStopping(None, patience=2, rate_steps=2)
    restored.load_state(stopper.state())
    assert restored.rate_step == 2 and restored.stopped_early
    with pytest.raises(RecAuditError, match="rate_steps=-1 is invalid"):
        EarlyStopping(None, rate_steps=-1)
