"""CDAE: the loss against a naive formula, negative sampling masks, and the user node."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neural.cdae import CDAE
from neural_synthetic import planted, torch_threads
from protocols.contract import TrainingData


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return planted(n_users=30, n_items=25, groups=3, seed=5)[0]


def fresh(model, data):
    network = model._fresh_network(TrainingData(data), torch.Generator().manual_seed(0), torch.device("cpu"))
    with torch.no_grad():  # move the output off its near-zero start so the loss terms differ
        network.decoder.bias.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return network


def numpy_parameters(network):
    return {name: p.detach().double().numpy() for name, p in network.named_parameters()}


@pytest.mark.parametrize("loss", ["log", "square"])
def test_full_loss_matches_naive_formula(loss, data):
    model = CDAE(hidden=4, corruption=0.0, negatives=None, loss=loss, l2=0.1)
    network = fresh(model, data)
    users = np.array([0, 2, 3, 7])
    y = data[users].toarray().astype(np.float64)
    value = model._batch_loss(network, (torch.tensor(users), torch.tensor(y, dtype=torch.float32), None),
                              torch.Generator(), 0)
    p = numpy_parameters(network)
    z = 1 / (1 + np.exp(-(y @ p["encoder.weight"].T + p["encoder.bias"] + p["user_embedding.weight"][users])))
    out = z @ p["decoder.weight"].T + p["decoder.bias"]
    if loss == "log":
        y_hat = 1 / (1 + np.exp(-out))
        entries = -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))
    else:
        entries = (y - out) ** 2
    shared = sum((p[name] ** 2).sum() for name in ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"))
    own = (p["user_embedding.weight"][users] ** 2).sum(axis=1).mean()
    assert value.item() == pytest.approx(entries.sum(axis=1).mean() + 0.05 * (shared + own), rel=1e-5)


def test_sampled_loss_covers_positives_and_sampled_negatives_only(data):
    model = CDAE(hidden=4, negatives=2, batch_size=30)
    rows = model._training_data(TrainingData(data))
    users, targets, mask = next(iter(model._epoch_batches(rows, np.random.default_rng(0), None, torch.device("cpu"))))
    targets, mask = targets.numpy(), mask.numpy()
    degree = targets.sum(axis=1)
    negatives = mask & (targets == 0)
    assert np.all(mask[targets > 0])
    assert np.all(negatives.sum(axis=1) <= 2 * degree) and np.all(negatives.sum(axis=1)[degree > 0] >= 1)
    assert len(users) == int((np.diff(data.indptr) > 0).sum())  # users without items are not trained


def test_corruption_applies_to_training_only(data):
    users = np.array([1, 2, 4])
    batch = (torch.tensor(users), torch.tensor(data[users].toarray()), None)
    for corruption, differs in ((0.5, True), (0.0, False)):
        model = CDAE(hidden=4, corruption=corruption, negatives=None)
        network = fresh(model, data)
        losses = [model._batch_loss(network, batch, torch.Generator().manual_seed(seed), 0).item() for seed in (1, 2)]
        assert (losses[0] != losses[1]) == differs
    model = CDAE(hidden=4, corruption=0.5, epochs=1, batch_size=8, device="cpu").fit(data)
    assert np.array_equal(model.score(users, data[users]), model.score(users, data[users]))
