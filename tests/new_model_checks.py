"""Checks of a model that ``new-model`` generated, run by ``tests/test_new_model.py`` in a
subprocess whose ``baselines/`` and ``neural/`` are a temporary copy holding the new file.

Not collected in the repository (no ``test_`` prefix): pytest runs it only when given the
path. The environment names the model: ``NEW_MODEL_NAME``, ``NEW_MODEL_KIND``,
``NEW_MODEL_MODULE`` (``<package>.<module>``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from protocols.contract import TrainingData
from protocols.registry import make_model, registered_models

NAME = os.environ.get("NEW_MODEL_NAME", "")
KIND = os.environ.get("NEW_MODEL_KIND", "")
MODULE = os.environ.get("NEW_MODEL_MODULE", "")

# Users x items, 0/1 apart from one rating of 5 (entries count once whatever their value).
MATRIX = np.array([[1, 1, 0, 0, 0],
                   [1, 0, 1, 0, 0],
                   [0, 1, 1, 5, 0],
                   [0, 0, 0, 1, 1]], dtype=np.float32)


def test_registered_from_the_new_file():
    cls = registered_models()[NAME]
    assert cls.__module__ == MODULE
    assert Path(__import__(MODULE, fromlist=["_"]).__file__).resolve().is_relative_to(Path.cwd().resolve())
    assert cls.family == KIND


@pytest.mark.skipif(KIND != "baseline", reason="tests the baseline template's score formula")
def test_template_formula_baseline():
    weight = 0.3
    model = make_model(NAME, {"weight": weight}).fit(sp.csr_matrix(MATRIX))
    history = sp.csr_matrix(np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    binary = MATRIX > 0
    n_users, n_items = binary.shape
    counts = [sum(binary[u, i] for u in range(n_users)) for i in range(n_items)]
    expected = np.zeros((2, n_items))
    for row, seen in enumerate(history.toarray() > 0):
        items = [j for j in range(n_items) if seen[j]]
        for i in range(n_items):
            together = [sum(binary[u, j] and binary[u, i] for u in range(n_users)) if j != i else 0 for j in items]
            mean = sum(c / counts[j] for c, j in zip(together, items)) / len(items) if items else 0.0
            expected[row, i] = (1 - weight) * counts[i] / max(counts) + weight * mean
    # By hand for item 2 of the first row (history {0, 3}): popularity 2/2, co-occurrence
    # (c_02 / n_0 + c_32 / n_3) / 2 = (1/2 + 1/2) / 2.
    assert expected[0, 2] == pytest.approx(0.7 * 1 + 0.3 * 0.5)
    np.testing.assert_allclose(model.score(np.array([0, 1]), history), expected, rtol=1e-6)


@pytest.mark.skipif(KIND != "neural", reason="tests the neural template's loss formula")
def test_template_formula_neural():
    import torch

    model = make_model(NAME, {"factors": 3, "l2": 0.2, "init_std": 1.0})
    data = TrainingData(sp.csr_matrix(MATRIX))
    network = model._fresh_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))
    u, i, j = np.array([0, 2, 2]), np.array([1, 3, 1]), np.array([4, 0, 4])
    loss = model._batch_loss(network, tuple(torch.tensor(a) for a in (u, i, j)), None, 0)
    W = network.user_factors.weight.detach().double().numpy()
    H = network.item_factors.weight.detach().double().numpy()
    positive, negative = (W[u] * H[i]).sum(1), (W[u] * H[j]).sum(1)
    penalty = (W[u] ** 2).sum(1) + (H[i] ** 2).sum(1) + (H[j] ** 2).sum(1)
    naive = np.mean(np.log1p(np.exp(-positive)) + np.log1p(np.exp(negative)) + 0.1 * penalty)
    assert loss.item() == pytest.approx(naive, rel=1e-5)
