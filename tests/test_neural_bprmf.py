"""BPR-MF: the loss against a naive formula, one SGD step against LearnBPR's update rule,
and the bootstrap sampling of an epoch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neural.bprmf import BPRMF
from neural_synthetic import planted, torch_threads
from protocols.contract import TrainingData


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return planted(n_users=30, n_items=25, groups=3, seed=6)[0]


def fresh(model, data):
    return model._fresh_network(TrainingData(data), torch.Generator().manual_seed(0), torch.device("cpu"))


def test_loss_matches_naive_formula(data):
    model = BPRMF(factors=3, l2=0.2, init_std=1.0)
    network = fresh(model, data)
    u, i, j = np.array([0, 1, 1]), np.array([2, 3, 4]), np.array([5, 6, 0])
    loss = model._batch_loss(network, tuple(torch.tensor(a) for a in (u, i, j)), None, 0)
    W = network.user_factors.weight.detach().double().numpy()
    H = network.item_factors.weight.detach().double().numpy()
    x = (W[u] * H[i]).sum(1) - (W[u] * H[j]).sum(1)
    penalty = (W[u] ** 2).sum(1) + (H[i] ** 2).sum(1) + (H[j] ** 2).sum(1)
    naive = np.mean(np.log1p(np.exp(-x)) + 0.1 * penalty)
    assert loss.item() == pytest.approx(naive, rel=1e-5)


def test_one_sgd_step_is_learnbpr_update(data):
    # Rendle et al., Fig. 4: theta <- theta + alpha (e^-x / (1 + e^-x) dx/dtheta - lambda theta)
    alpha, lam = 0.05, 0.1
    model = BPRMF(factors=3, l2=lam, init_std=1.0)
    network = fresh(model, data)
    W = network.user_factors.weight.detach().double().numpy().copy()
    H = network.item_factors.weight.detach().double().numpy().copy()
    u, i, j = 4, 1, 2
    loss = model._batch_loss(network, (torch.tensor([u]), torch.tensor([i]), torch.tensor([j])), None, 0)
    loss.backward()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter -= alpha * parameter.grad
    x = W[u] @ (H[i] - H[j])
    weight = np.exp(-x) / (1 + np.exp(-x))
    np.testing.assert_allclose(network.user_factors.weight[u].detach().numpy(),
                               W[u] + alpha * (weight * (H[i] - H[j]) - lam * W[u]), rtol=1e-5)
    np.testing.assert_allclose(network.item_factors.weight[i].detach().numpy(),
                               H[i] + alpha * (weight * W[u] - lam * H[i]), rtol=1e-5)
    np.testing.assert_allclose(network.item_factors.weight[j].detach().numpy(),
                               H[j] + alpha * (-weight * W[u] - lam * H[j]), rtol=1e-5)


def test_an_epoch_draws_as_many_triples_as_interactions(data):
    model = BPRMF(batch_size=100)
    triples = model._training_data(TrainingData(data))
    batches = list(model._epoch_batches(triples, np.random.default_rng(0), None, torch.device("cpu")))
    u, i, j = (torch.cat([b[k] for b in batches]).numpy() for k in range(3))
    dense = data.toarray()
    assert len(u) == data.nnz and len(batches) == int(np.ceil(data.nnz / 100))
    assert np.all(dense[u, i] > 0) and not np.any(dense[u, j])
