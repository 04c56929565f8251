"""CVAE: planted content structure (beats popularity and itself on shuffled content), the batch
loss against a naive formula of the authors' objective, V starting at theta, falling losses,
determinism and resumption from a checkpoint. The ALS sweep it shares with CDL is checked
against a dense solve in ``test_cdl.py``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neural.cvae import CVAE
from neural.training import sparse_rows
from neural_synthetic import torch_threads
from test_cdl import content_planted, planted_comparison, with_content


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


SMALL = {"factors": 8, "hidden": (16, 12), "pretrain_epochs": 100, "pretrain_vae_epochs": 100, "epochs": 30,
         "batch_size": 32, "device": "cpu"}


def test_learns_planted_content_structure():
    result = planted_comparison(lambda: CVAE(**SMALL))
    print("cvae planted recall@10:", result)
    assert result["model"] > 3 * result["pop"] and result["model"] > result["pop"] + 0.2
    assert result["model"] > result["shuffled"] + 0.1


def test_batch_loss_matches_naive_formula():
    train, _, content = content_planted(n_users=20, n_items=24, groups=3)
    model = CVAE(factors=3, hidden=(5, 4), lambda_v=7.0, lambda_r=2.0, weight_decay=0.01)
    data = with_content(train, content)
    network = model._fresh_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))
    V = np.random.default_rng(0).standard_normal((24, 3))
    with torch.no_grad():
        network.item_factors.copy_(torch.from_numpy(V))
        for name, parameter in network.named_parameters():  # biases away from zero
            if parameter.dim() == 1:
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    prepared = model._training_data(data)
    rows = np.array([0, 3, 7, 22])
    batch = (sparse_rows(prepared.content, rows, torch.device("cpu")), torch.from_numpy(rows))
    loss = model._batch_loss(network, batch, torch.Generator().manual_seed(5), 0).item()
    eps = torch.randn((4, 3), generator=torch.Generator().manual_seed(5)).double().numpy()

    p = {name: t.detach().double().numpy() for name, t in network.named_parameters()}
    x = prepared.content[rows].toarray().astype(np.float64)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h1 = sigmoid(x @ p["weights.0"] + p["biases.0"])
    h2 = sigmoid(h1 @ p["weights.1"] + p["biases.1"])
    mu, logvar = h2 @ p["mu_weight"] + p["mu_bias"], h2 @ p["logvar_weight"] + p["logvar_bias"]
    z = mu + np.sqrt(np.exp(logvar)) * eps
    g2 = sigmoid(z @ p["generation_weight"] + p["generation_bias"])
    g1 = sigmoid(g2 @ p["weights.1"].T + p["biases.0"])  # tied matrix, the encoder's first bias
    y = sigmoid(g1 @ p["weights.0"].T + p["visible_bias"])
    cross_entropy = -(x * np.log(y) + (1 - x) * np.log(1 - y)).sum(axis=1).mean()
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1).sum(axis=1).mean()
    coupling = ((V[rows] - z) ** 2).sum(axis=1).mean()
    penalty = (p["weights.0"] ** 2).sum() + (p["weights.1"] ** 2).sum()
    assert loss == pytest.approx(cross_entropy + kl + 7.0 / 2.0 * coupling + 0.01 * penalty, rel=1e-5)


TINY = {"factors": 4, "hidden": (8, 6), "pretrain_epochs": 3, "pretrain_vae_epochs": 3, "epochs": 6,
        "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny():
    train, test, content = content_planted(n_users=60, n_items=80, groups=4)
    return train, test, with_content(train, content)


def test_loss_falls_and_v_starts_at_theta(tiny):
    train, _, data = tiny
    model = CVAE(**TINY).fit(data)
    losses = [record["loss"] for record in model.history_]
    assert losses[-1] < losses[0]
    initial = CVAE(**TINY)._initial_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))
    theta = initial.encode_items(CVAE(**TINY)._training_data(data).content, torch.device("cpu"))
    np.testing.assert_array_equal(initial.item_factors.numpy(), theta.double().numpy())
    assert not initial.user_factors.any()


def test_cold_items_are_scored_through_their_content(tiny):
    train, _, data = tiny
    model = CVAE(**TINY).fit(data)
    cold = np.flatnonzero(np.asarray(train.sum(axis=0)).ravel() == 0)
    theta = model.network_.encode_items(model._training_data(data).content, torch.device("cpu")).double().numpy()
    U = model.user_factors
    expected = np.linalg.solve(0.01 * U.T @ U + 10.0 * np.eye(4), 10.0 * theta[cold].T).T
    np.testing.assert_allclose(model.item_factors[cold], expected, rtol=1e-6, atol=1e-9)


def test_same_seed_same_scores_other_seed_other_scores(tiny):
    train, _, data = tiny
    users = np.arange(train.shape[0])
    first = CVAE(**TINY, seed=3).fit(data).score(users, train)
    np.testing.assert_array_equal(first, CVAE(**TINY, seed=3).fit(data).score(users, train))
    assert not np.array_equal(first, CVAE(**TINY, seed=4).fit(data).score(users, train))


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tiny, tmp_path):
    train, _, data = tiny
    users = np.arange(train.shape[0])
    whole = CVAE(**TINY).fit(data)
    CVAE(**{**TINY, "epochs": 2}, checkpoint_dir=str(tmp_path)).fit(data)
    resumed = CVAE(**TINY, checkpoint_dir=str(tmp_path)).fit(data)
    assert resumed.resumed_from_epoch_ == 2 and resumed.epochs_run_ == TINY["epochs"]
    np.testing.assert_array_equal(resumed.score(users, train), whole.score(users, train))
