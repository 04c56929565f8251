"""Every neural model: learns planted structure, trains sanely, is deterministic, resumes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neural.autoencoders import MultDAE, MultVAE
from neural.bprmf import BPRMF
from neural.cdae import CDAE
from neural.ncf import GMF, MLP, NeuMF
from neural_synthetic import Popularity, as_validation, planted, torch_threads
from protocols.contract import TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
from protocols.early_stopping import validation_value

MODELS = {"gmf": GMF, "mlp": MLP, "neumf": NeuMF, "multvae": MultVAE, "multdae": MultDAE,
          "cdae": CDAE, "bprmf": BPRMF}

# Settings that learn the planted clusters in about a second each.
LEARNING = {
    "gmf": dict(factors=16, epochs=12, lr=0.01),
    "mlp": dict(factors=8, mlp_layers=2, epochs=12, lr=0.01),
    "neumf": dict(factors=8, mlp_layers=2, epochs=10, lr=0.01),
    "multvae": dict(hidden=64, latent=16, epochs=40, batch_size=40, total_anneal_steps=200, lr=0.003),
    "multdae": dict(hidden=32, epochs=40, batch_size=40, lr=0.003),
    "cdae": dict(hidden=16, epochs=15, batch_size=32),
    "bprmf": dict(factors=16, epochs=15, lr=0.01, batch_size=256),
}
# Small settings for the checks that fit several times.
SMALL = {
    "gmf": dict(factors=4, epochs=4, batch_size=64),
    "mlp": dict(factors=2, mlp_layers=2, epochs=4, batch_size=64),
    "neumf": dict(factors=2, mlp_layers=1, epochs=4, batch_size=64),
    "multvae": dict(hidden=16, latent=4, epochs=4, batch_size=16, total_anneal_steps=20),
    "multdae": dict(hidden=8, epochs=4, batch_size=16),
    "cdae": dict(hidden=4, epochs=4, batch_size=16),
    "bprmf": dict(factors=4, epochs=4, batch_size=64),
}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def planted_data():
    return planted()


@pytest.fixture(scope="module")
def small_data():
    return planted(n_users=60, n_items=40, groups=3, seed=1)


def make(name, seed=0, **overrides):
    return MODELS[name](**{**SMALL[name], "device": "cpu", "seed": seed, **overrides})


@pytest.mark.parametrize("name", MODELS)
def test_learns_planted_structure_and_loss_falls(name, planted_data):
    train, test = planted_data
    validation = as_validation(train, test)
    model = MODELS[name](**LEARNING[name], device="cpu").fit(train)
    ndcg = validation_value(model, validation, "ndcg@10")
    popularity = validation_value(Popularity(train), validation, "ndcg@10")
    assert popularity < 0.2
    assert ndcg > popularity + 0.1, (ndcg, popularity)
    losses = [record["loss"] for record in model.history_]
    assert losses[-1] < 0.9 * losses[0]
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("name", MODELS)
def test_gradients_are_finite_and_reach_every_parameter(name, small_data):
    train, _ = small_data
    model = make(name)
    model.fit(train)  # sets the shapes; the check below runs on a fresh network
    device = torch.device("cpu")
    data = TrainingData(train)
    network = model._fresh_network(data, torch.Generator().manual_seed(0), device)
    rng = np.random.default_rng(0)
    batch = next(iter(model._epoch_batches(model._training_data(data), rng, torch.Generator(), device)))
    loss = model._batch_loss(network, batch, torch.Generator().manual_seed(1), step=5)
    loss.backward()
    assert torch.isfinite(loss)
    for parameter_name, parameter in network.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.all(torch.isfinite(parameter.grad)), parameter_name
        assert torch.any(parameter.grad != 0), parameter_name


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_bit_identical_other_seed_different(name, small_data):
    train, _ = small_data
    users = np.arange(train.shape[0])
    first = make(name, seed=3).fit(train).score(users, train)
    second = make(name, seed=3).fit(train).score(users, train)
    other = make(name, seed=4).fit(train).score(users, train)
    assert first.dtype == np.float32 and first.shape == train.shape
    assert np.array_equal(first, second)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_resume_reaches_the_uninterrupted_scores(name, small_data, tmp_path):
    train, test = small_data
    data = TrainingData(train, validation=as_validation(train, test))
    users = np.arange(train.shape[0])
    uninterrupted = make(name, epochs=4).fit(data)
    make(name, epochs=2, checkpoint_dir=str(tmp_path)).fit(data)  # the "interrupted" run
    resumed = make(name, epochs=4, checkpoint_dir=str(tmp_path)).fit(data)
    assert resumed.resumed_from_epoch_ == 2
    assert np.array_equal(resumed.score(users, train), uninterrupted.score(users, train))
    assert resumed.best_epoch_ == uninterrupted.best_epoch_
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in uninterrupted.history_]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history_] == strip


@pytest.mark.parametrize("name", MODELS)
def test_candidate_scores_match_full_scores(name, small_data):
    train, _ = small_data
    model = make(name, epochs=1).fit(train)
    users = np.array([0, 5, 7])
    candidates = np.random.default_rng(0).integers(0, train.shape[1], size=(3, 6))
    full = model.score(users, train[users])
    np.testing.assert_allclose(model.score_candidates(users, train[users], candidates),
                               np.take_along_axis(full, candidates, axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n, cls in MODELS.items() if not cls.folds_in_users])
def test_models_with_user_embeddings_refuse_unseen_users(name, small_data):
    train, _ = small_data
    train = train.tolil()
    train[0, :] = 0  # user 0 has no training interactions: the model never saw her
    train = sp.csr_matrix(train)
    model = make(name, epochs=1).fit(train)
    history = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, train.shape[1]), dtype=np.float32)
    with pytest.raises(UnsupportedProtocolError, match="user embeddings"):
        model.score(np.array([0]), history)
    assert model.requirements().user_embeddings
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs user embeddings\)"):
        check_requirements(model, TaskProfile.of(TrainingData(train), np.array([0, 1])))
    check_requirements(model, TaskProfile.of(TrainingData(train), np.array([1, 2])))  # trained users only


@pytest.mark.parametrize("name", [n for n, cls in MODELS.items() if cls.folds_in_users])
def test_autoencoders_fold_in_from_history_alone(name, small_data):
    train, _ = small_data
    model = make(name, epochs=2).fit(train[:40])  # users 40.. are held out
    assert not model.requirements().user_embeddings
    history = train[40:43]
    held_out = model.score(np.array([40, 41, 42]), history)
    as_other_ids = model.score(np.array([0, 1, 2]), history)
    assert np.array_equal(held_out, as_other_ids)
    assert not np.allclose(held_out[0], held_out[1])


@pytest.mark.parametrize("name", MODELS)
def test_conformance_params_fit_quickly_on_tiny_data(name, small_data):
    import time

    train, _ = small_data
    cls = MODELS[name]
    started = time.perf_counter()
    model = cls(**cls.conformance_params).fit(train)
    assert time.perf_counter() - started < 1.0
    assert model.clone().get_params() == model.get_params()
    assert set(cls.search_space) <= set(cls.parameter_names())
    assert cls.family == "neural"
