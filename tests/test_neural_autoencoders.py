"""Mult-VAE and Mult-DAE: architecture, KL annealing, and the batch loss against a naive
numpy re-implementation of the paper's formulas."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neural.autoencoders import MultDAE, MultVAE
from neural.training import sparse_rows
from neural_synthetic import planted, torch_threads
from protocols.contract import TrainingData


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return planted(n_users=30, n_items=25, groups=3, seed=4)[0]


def _shape_only(n_users, n_items) -> TrainingData:
    """Training data of the given shape and nothing else: what ``_build_network`` reads."""
    return TrainingData(sp.csr_matrix((n_users, n_items), dtype=np.float32))


def shapes(layers):
    return [(layer.in_features, layer.out_features) for layer in layers]


def test_default_architectures_are_the_papers():
    vae = MultVAE()._build_network(_shape_only(5, 1000))
    assert shapes(vae.encoder) == [(1000, 600), (600, 400)]  # 400 = mu and log sigma^2 of size 200
    assert shapes(vae.decoder) == [(200, 600), (600, 1000)]
    dae = MultDAE()._build_network(_shape_only(5, 1000))
    assert shapes(dae.encoder) == [(1000, 200)] and shapes(dae.decoder) == [(200, 1000)]


def test_kl_weight_rises_linearly_to_the_cap():
    model = MultVAE(beta_cap=0.2, total_anneal_steps=1000)
    assert [model.kl_weight(s) for s in (0, 100, 150, 200, 5000)] == pytest.approx([0, 0.1, 0.15, 0.2, 0.2])
    assert MultVAE(beta_cap=0.3, total_anneal_steps=0).kl_weight(0) == pytest.approx(0.3)


def numpy_layers(layers):
    """(W, b) with x @ W.T + b the layer's output (the sparse first layer stores W.T)."""
    out = []
    for layer in layers:
        weight = layer.weight.detach().double().numpy()
        out.append((weight if isinstance(layer, torch.nn.Linear) else weight.T, layer.bias.detach().double().numpy()))
    return out


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def batch(data, n=8):
    """The first ``n`` users with interactions, as the model's batch and as a dense array."""
    rows = data[np.diff(data.indptr) > 0][:n]
    return sparse_rows(rows, None, torch.device("cpu")), rows.toarray().astype(np.float64)


def fresh(model, data):
    model.n_users_, model.n_items_ = data.shape
    return model._fresh_network(TrainingData(data), torch.Generator().manual_seed(0), torch.device("cpu"))


def test_vae_loss_matches_naive_elbo(data):
    model = MultVAE(hidden=6, latent=3, dropout=0.5, beta_cap=1.0, total_anneal_steps=40, lam=0.01)
    network = fresh(model, data)
    rows, x_np = batch(data)
    loss = model._batch_loss(network, rows, torch.Generator().manual_seed(7), step=10)
    # the same draws, in the order the model makes them: a dropout mask over the nonzeros
    # (row by row, as stored), then the noise
    replay = torch.Generator().manual_seed(7)
    keep = np.zeros_like(x_np)
    keep[rows.row_ids.numpy(), rows.indices.numpy()] = (torch.rand(len(rows.values), generator=replay) >= 0.5).numpy()
    noise = torch.randn((8, 3), generator=replay).double().numpy()
    (w1, b1), (w2, b2) = numpy_layers(network.encoder)
    (v1, c1), (v2, c2) = numpy_layers(network.decoder)
    h = x_np / np.linalg.norm(x_np, axis=1, keepdims=True) * keep / 0.5
    out = np.tanh(h @ w1.T + b1) @ w2.T + b2
    mu, logvar = out[:, :3], out[:, 3:]
    z = mu + noise * np.exp(0.5 * logvar)
    logits = np.tanh(z @ v1.T + c1) @ v2.T + c2
    nll = -(log_softmax(logits) * x_np).sum(axis=1).mean()
    kl = (0.5 * (-logvar + np.exp(logvar) + mu**2 - 1)).sum(axis=1).mean()
    l2 = sum((w**2).sum() for w in (w1, w2, v1, v2))
    assert loss.item() == pytest.approx(nll + (10 / 40) * kl + 0.01 * l2, rel=1e-5)


def test_dae_loss_matches_naive_formula_with_the_authors_l2_scaling(data):
    model = MultDAE(hidden=5, dropout=0.0, lam=0.01, batch_size=500)
    network = fresh(model, data)
    rows, x_np = batch(data)
    loss = model._batch_loss(network, rows, torch.Generator(), step=0)
    (w1, b1), = numpy_layers(network.encoder)
    (w2, b2), = numpy_layers(network.decoder)
    logits = np.tanh((x_np / np.linalg.norm(x_np, axis=1, keepdims=True)) @ w1.T + b1) @ w2.T + b2
    nll = -(log_softmax(logits) * x_np).sum(axis=1).mean()
    assert loss.item() == pytest.approx(nll + (0.01 / 500) * ((w1**2).sum() + (w2**2).sum()), rel=1e-5)


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_scores_ignore_the_scale_of_the_history(cls, data):
    model = cls(**cls.conformance_params).fit(data)
    users = np.arange(5)
    np.testing.assert_allclose(model.score(users, data[:5]), model.score(users, 3 * data[:5]), rtol=1e-5, atol=1e-5)


def test_vae_scores_use_the_posterior_mean(data):
    model = MultVAE(**MultVAE.conformance_params).fit(data)
    users = np.arange(4)
    assert np.array_equal(model.score(users, data[:4]), model.score(users, data[:4]))  # no sampling
