"""The shared neural training loop: sampling, the validation metric it stops on, early
stopping, checkpoints, devices, progress, and the global state a fit must leave alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.early_stopping
from common.errors import RecAuditError
from neural.autoencoders import MultVAE
from neural.bprmf import BPRMF
from neural.cdae import CDAE
from neural.checkpoint import CHECKPOINT_FILE
from neural.device import DeviceFallbackWarning, resolve_device
from neural.ncf import GMF
from neural.sampling import NegativeSampler
from neural.training import TrainingDivergedError, dropout
from neural_synthetic import as_validation, planted, torch_threads
from protocols.contract import TrainingData, ValidationData
from protocols.early_stopping import validation_value


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return planted(n_users=60, n_items=40, groups=3, seed=2)


def trained_users(train):
    return np.flatnonzero(np.diff(train.indptr) > 0)


def gmf(**overrides):
    return GMF(**{"factors": 4, "epochs": 3, "batch_size": 64, "device": "cpu", **overrides})


# ----- negative sampling -------------------------------------------------------------
class FixedDraws:
    """Stands in for a numpy Generator: ``integers`` returns preset values."""

    def __init__(self, values):
        self.values = np.asarray(values)

    def integers(self, low, high, size=None):
        assert np.all(self.values < high)
        return self.values


def test_sampler_returns_the_kth_non_interacted_item():
    # user 0 has items {1, 3, 4} of 6: its negatives in order are 0, 2, 5
    train = sp.csr_matrix(np.array([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(train)
    assert sampler.sample(np.array([0, 0, 0]), FixedDraws([0, 1, 2])).tolist() == [0, 2, 5]
    assert sampler.sample(np.array([1, 1]), FixedDraws([0, 4])).tolist() == [1, 5]


def test_sampler_is_uniform_over_non_interacted_items():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 0]], dtype=np.float32))
    items = NegativeSampler(train).sample(np.zeros(30000, dtype=np.int64), np.random.default_rng(0))
    frequencies = np.bincount(items, minlength=5) / len(items)
    np.testing.assert_allclose(frequencies, [0, 0, 1 / 3, 1 / 3, 1 / 3], atol=0.015)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 12), st.floats(0.0, 1.0))
def test_sampled_negatives_are_never_positives(seed, n_users, n_items, density):
    rng = np.random.default_rng(seed)
    train = sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))
    sampler = NegativeSampler(train)
    users = np.repeat(np.flatnonzero(sampler.sampleable), 20)
    items = sampler.sample(users, rng)
    assert np.all((items >= 0) & (items < n_items))
    assert not np.any(train.toarray()[users, items])
    users_out, items_out, labels = sampler.pointwise_instances(3, rng)
    assert np.array_equal(labels == 1, train.toarray()[users_out, items_out] > 0)
    keep = sampler.sampleable[sampler.positive_rows]
    assert len(labels) == train.nnz + 3 * int(keep.sum())


def test_users_with_every_item_get_no_negatives():
    train = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(train)
    assert sampler.sampleable.tolist() == [False, True]
    users, items, labels = sampler.pointwise_instances(2, np.random.default_rng(0))
    assert sorted(zip(users[labels == 0].tolist(), items[labels == 0].tolist()))[0][0] == 1
    assert (labels == 0).sum() == 2
    with pytest.raises(ValueError, match="every item"):
        sampler.sample(np.array([0]), np.random.default_rng(0))
    u, i, j = sampler.bootstrap_triples(50, np.random.default_rng(0))
    assert np.all(u == 1) and np.all(i == 0) and np.all(j > 0)


def with_validation(train, test, metric: str = "ndcg@10") -> TrainingData:
    validation = as_validation(train, test)
    return TrainingData(train, validation=ValidationData(validation.users, validation.history, validation.truth,
                                                         metric=metric))


# ----- the validation metric (the shared evaluator's) ---------------------------------
class FixedScores:
    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score(self, users, history):
        return self.scores[users]

    def score_candidates(self, users, history, candidates):
        return np.take_along_axis(self.scores[users], candidates, axis=1)


SCORES = [[0.9, 0.1, 0.5, 0.3, 0.7], [0.2, 0.8, 0.4, 0.6, 0.0], [0.5] * 5]
HISTORY = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
TRUTH = sp.csr_matrix(np.array([[0, 0, 1, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))


def test_validation_value_golden_values():
    # user 0 ranks 4, 2, 3, 1 (item 0 is history): hits at ranks 2 and 3; user 1 hits rank 1;
    # user 2 has no held-out item and is not counted.
    validation = ValidationData(users=np.arange(3), history=HISTORY, truth=TRUTH)
    user0 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert validation_value(FixedScores(SCORES), validation, "ndcg@10") == pytest.approx((user0 + 1) / 2)
    user0_at_2 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert validation_value(FixedScores(SCORES), validation, "ndcg@2") == pytest.approx((user0_at_2 + 1) / 2)
    # recall@2: user 0 finds 1 of its 2 held-out items in its top 2, user 1 its only one
    assert validation_value(FixedScores(SCORES), validation, "recall@2") == pytest.approx((0.5 + 1) / 2)


def test_validation_value_on_candidates_ranks_truth_with_the_candidates():
    # the evaluator's layout: truth items first, then negatives, padded with -1; user 0 ranks
    # {1, 2, 3, 4}, as in full ranking, user 1 ranks {0, 1, 4}: its truth is first either way
    candidates = np.array([[2, 3, 4, 1], [1, 0, 4, -1], [-1, -1, -1, -1]])
    validation = ValidationData(users=np.arange(3), history=HISTORY, truth=TRUTH, candidates=candidates)
    user0 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert validation_value(FixedScores(SCORES), validation) == pytest.approx((user0 + 1) / 2)


# ----- early stopping, validation schedule, history ----------------------------------
def test_early_stopping_keeps_the_best_epoch(data, monkeypatch):
    train, test = data
    values = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    monkeypatch.setattr(protocols.early_stopping, "validation_value", lambda model, validation, metric: next(values))
    model = gmf(epochs=5, patience=2).fit(with_validation(train, test))
    assert model.stopped_early_ and model.epochs_run_ == 4 and model.best_epoch_ == 2
    assert [r["ndcg@10"] for r in model.history_] == [0.1, 0.3, 0.2, 0.25]
    # validation draws no random numbers, so the kept weights are those of a 2-epoch run
    users = trained_users(train)
    assert np.array_equal(model.score(users, train[users]), gmf(epochs=2).fit(train).score(users, train[users]))


def test_validation_every_few_epochs_and_at_the_last(data):
    train, test = data
    model = gmf(epochs=5, validate_every=2).fit(with_validation(train, test))
    assert [r["ndcg@10"] is not None for r in model.history_] == [False, True, False, True, True]
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5]
    assert all(r["seconds"] >= 0 for r in model.history_)


def test_the_loop_stops_on_the_metric_of_the_validation_data(data, monkeypatch):
    train, test = data
    asked = []

    def value(model, validation, metric):
        asked.append(metric)
        return [0.5, 0.4, 0.3][len(asked) - 1]

    monkeypatch.setattr(protocols.early_stopping, "validation_value", value)
    model = gmf(epochs=5, patience=2).fit(with_validation(train, test, metric="recall@20"))
    assert asked == ["recall@20"] * 3 and model.best_epoch_ == 1 and model.stopped_early_
    assert [r["recall@20"] for r in model.history_] == [0.5, 0.4, 0.3]
    assert all("ndcg@10" not in r for r in model.history_)


def test_the_recorded_value_is_the_evaluators_metric_of_the_kept_model(data):
    train, test = data
    validation = with_validation(train, test, metric="recall@10")
    model = gmf(epochs=3, patience=None).fit(validation)
    best = max(model.history_, key=lambda r: (r["recall@10"], -r["epoch"]))
    assert model.best_epoch_ == best["epoch"]
    assert validation_value(model, validation.validation, "recall@10") == pytest.approx(best["recall@10"], abs=1e-12)


def test_without_validation_the_last_epoch_is_kept(data):
    train, _ = data
    model = gmf(epochs=3).fit(train)
    assert model.best_epoch_ == 3 and not model.stopped_early_
    assert all(r["ndcg@10"] is None for r in model.history_)


def test_diverged_training_raises_one_line_error(data):
    class Diverging(BPRMF):
        def _batch_loss(self, network, batch, generator, step):
            return super()._batch_loss(network, batch, generator, step) * float("nan")

    with pytest.raises(TrainingDivergedError, match="diverged.*lower lr"):
        Diverging(factors=2, epochs=2, device="cpu").fit(data[0])


# ----- checkpoints -------------------------------------------------------------------
def test_checkpoint_refuses_other_parameters_or_fewer_epochs(data, tmp_path):
    train, _ = data
    gmf(epochs=2, checkpoint_dir=str(tmp_path)).fit(train)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]  # nothing half-written
    with pytest.raises(RecAuditError, match="other parameters or data"):
        gmf(epochs=3, lr=0.01, checkpoint_dir=str(tmp_path)).fit(train)
    with pytest.raises(RecAuditError, match="other parameters or data"):
        gmf(epochs=3, checkpoint_dir=str(tmp_path)).fit(train[:50])
    with pytest.raises(RecAuditError, match="more than epochs=1"):
        gmf(epochs=1, checkpoint_dir=str(tmp_path)).fit(train)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(RecAuditError, match="cannot be read"):
        gmf(epochs=3, checkpoint_dir=str(tmp_path)).fit(train)


def test_finished_checkpoint_is_reloaded_without_training(data, tmp_path):
    train, _ = data
    first = gmf(epochs=2, checkpoint_dir=str(tmp_path)).fit(train)
    again = gmf(epochs=2, checkpoint_dir=str(tmp_path)).fit(train)
    users = trained_users(train)
    assert again.resumed_from_epoch_ == 2 and len(again.history_) == 2
    assert np.array_equal(first.score(users, train[users]), again.score(users, train[users]))


def test_a_checkpoint_carries_the_early_stopping_state_and_the_loss_history(data, tmp_path, monkeypatch):
    train, test = data
    values = iter([0.1, 0.3, 0.2, 0.25])
    monkeypatch.setattr(protocols.early_stopping, "validation_value", lambda model, validation, metric: next(values))
    first = gmf(epochs=5, patience=2, checkpoint_dir=str(tmp_path)).fit(with_validation(train, test))
    assert (first.epochs_run_, first.best_epoch_, first.stopped_early_) == (4, 2, True)
    # reloading the stopped run validates nothing more and keeps the best epoch's weights
    again = gmf(epochs=5, patience=2, checkpoint_dir=str(tmp_path)).fit(with_validation(train, test))
    assert (again.resumed_from_epoch_, again.epochs_run_, again.best_epoch_, again.stopped_early_) == (4, 4, 2, True)
    assert again.history_ == first.history_ and [r["ndcg@10"] for r in again.history_] == [0.1, 0.3, 0.2, 0.25]
    users = trained_users(train)
    assert np.array_equal(first.score(users, train[users]), again.score(users, train[users]))


# ----- devices and global state ------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on machines without CUDA")
def test_cuda_without_cuda_warns_and_runs_on_the_cpu(data):
    assert resolve_device("auto").type == "cpu"
    with pytest.warns(DeviceFallbackWarning, match="CUDA is not available"):
        model = gmf(device="cuda", epochs=1).fit(data[0])
    assert model.device_ == "cpu"


def test_unknown_device_is_a_one_line_error(data):
    with pytest.raises(RecAuditError, match="unknown device 'tpu'; use one of auto, cpu, cuda"):
        gmf(device="tpu").fit(data[0])


@pytest.mark.parametrize("model", [
    GMF(negatives=-1), GMF(epochs=0), GMF(patience=0), CDAE(loss="hinge"), CDAE(corruption=1.0),
    MultVAE(dropout=1.0), BPRMF(optimizer="rmsprop"), MultVAE(validate_every=0)])
def test_invalid_parameters_are_one_line_errors(model, data):
    with pytest.raises(RecAuditError, match="is invalid; use"):
        model.fit(data[0])


def test_fit_leaves_global_state_alone(data):
    torch_state = torch.random.get_rng_state().clone()
    numpy_state = np.random.get_state()[1].copy()
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    MultVAE(hidden=8, latent=2, epochs=2, batch_size=16, device="cpu").fit(data[0])
    gmf(epochs=1).fit(data[0])
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.get_num_threads() == threads


def test_progress_bar_only_when_asked(data, capsys):
    gmf(epochs=2).fit(data[0])
    assert capsys.readouterr().err == ""
    gmf(epochs=2, progress=True).fit(data[0])
    assert "gmf" in capsys.readouterr().err


def test_dropout_draws_from_its_generator():
    x = torch.ones(200, 50)
    first = dropout(x, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(first, dropout(x, 0.5, torch.Generator().manual_seed(1)))
    assert set(first.unique().tolist()) == {0.0, 2.0}
    assert abs(first.mean().item() - 1.0) < 0.05
    assert torch.equal(dropout(x, 0.0, None), x) and not dropout(x, 1.0, None).any()


def test_neural_modules_import_without_torch():
    code = ("import sys, neural.ncf, neural.autoencoders, neural.cdae, neural.bprmf, neural.training, "
            "neural.device, neural.checkpoint; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
