"""NCF specifics: tower sizes, the log loss against a naive formula, all-item scoring, the
sampled instances, and NeuMF's pre-training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import neural.training

from neural.ncf import GMF, MLP, NeuMF
from neural_synthetic import planted, torch_threads
from protocols.contract import TrainingData


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return planted(n_users=60, n_items=40, groups=3, seed=3)[0]


def _shape_only(n_users, n_items) -> TrainingData:
    """Training data of the given shape and nothing else: what ``_build_network`` reads."""
    return TrainingData(sp.csr_matrix((n_users, n_items), dtype=np.float32))


def test_paper_tower_is_64_32_16_8():
    model = NeuMF(factors=8, mlp_layers=3)
    assert model._mlp_sizes() == (64, 32, 16, 8)
    network = model._build_network(_shape_only(10, 20))
    gmf_tower, mlp_tower = network.towers
    assert gmf_tower.user_embedding.weight.shape == (10, 8)
    assert mlp_tower.user_embedding.weight.shape == (10, 32) and mlp_tower.item_embedding.weight.shape == (20, 32)
    assert [tuple(layer.weight.shape) for layer in mlp_tower.hidden] == [(32, 64), (16, 32), (8, 16)]
    assert tuple(network.output.weight.shape) == (1, 16)


def test_log_loss_matches_naive_formula(data):
    model = GMF(factors=3, device="cpu")
    network = model._fresh_network(TrainingData(data), torch.Generator().manual_seed(0), torch.device("cpu"))
    with torch.no_grad():  # larger weights than the initial ones, so the loss is not ~log 2
        for parameter in network.parameters():
            parameter.normal_(0, 1.0, generator=torch.Generator().manual_seed(parameter.numel()))
    users, items = np.array([0, 1, 2, 2]), np.array([3, 1, 0, 5])
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    loss = model._batch_loss(network, (torch.tensor(users), torch.tensor(items),
                                       torch.tensor(labels, dtype=torch.float32)), None, 0)
    tower = network.towers[0]
    p_u = tower.user_embedding.weight.detach().double().numpy()[users]
    q_i = tower.item_embedding.weight.detach().double().numpy()[items]
    h = network.output.weight.detach().double().numpy()[0]
    b = network.output.bias.detach().double().numpy()[0]
    probability = 1 / (1 + np.exp(-((p_u * q_i) @ h + b)))
    naive = -np.mean(labels * np.log(probability) + (1 - labels) * np.log(1 - probability))
    assert loss.item() == pytest.approx(naive, rel=1e-5)


def test_all_item_scores_equal_pairwise_forward(data):
    model = NeuMF(factors=4, mlp_layers=3, epochs=1, batch_size=64, device="cpu").fit(data)
    users = np.array([0, 3, 9])
    scores = model.score(users, data[users])
    network = model.network_
    with torch.no_grad():
        pairs = network(torch.tensor(np.repeat(users, 40)), torch.tensor(np.tile(np.arange(40), 3)))
    np.testing.assert_allclose(scores, pairs.view(3, 40).numpy(), rtol=1e-5, atol=1e-6)


def test_one_epoch_holds_every_positive_and_four_negatives_each(data):
    model = GMF(negatives=4, batch_size=100, device="cpu")
    batches = list(model._epoch_batches(model._training_data(TrainingData(data)), np.random.default_rng(0), None,
                                        torch.device("cpu")))
    labels = torch.cat([b[2] for b in batches])
    assert len(batches) == int(np.ceil(5 * data.nnz / 100))
    assert int(labels.sum()) == data.nnz and len(labels) == 5 * data.nnz
    users, items = torch.cat([b[0] for b in batches]).numpy(), torch.cat([b[1] for b in batches]).numpy()
    assert np.array_equal(data.toarray()[users, items] > 0, labels.numpy() > 0)


def test_pretraining_combines_gmf_and_mlp_with_alpha(data):
    common = dict(factors=4, negatives=2, epochs=2, batch_size=64, lr=0.01, device="cpu")
    model = NeuMF(**common, mlp_layers=2, pretrain=True, pretrain_alpha=0.3, seed=5)
    model.n_users_, model.n_items_ = data.shape
    network = model._initial_network(TrainingData(data), torch.Generator().manual_seed(0), torch.device("cpu"))
    gmf_seed, mlp_seed = np.random.default_rng([5, 1]).integers(0, 2**31, size=2)
    gmf = GMF(**common, seed=int(gmf_seed)).fit(data).network_
    mlp = MLP(**common, mlp_layers=2, seed=int(mlp_seed)).fit(data).network_
    assert torch.equal(network.towers[0].user_embedding.weight, gmf.towers[0].user_embedding.weight)
    assert torch.equal(network.towers[1].hidden[1].weight, mlp.towers[0].hidden[1].weight)
    expected = torch.cat([0.3 * gmf.output.weight, 0.7 * mlp.output.weight], dim=1)
    assert torch.allclose(network.output.weight, expected)
    assert torch.allclose(network.output.bias, 0.3 * gmf.output.bias + 0.7 * mlp.output.bias)
    assert isinstance(model._make_optimizer(network), torch.optim.SGD)
    assert isinstance(NeuMF()._make_optimizer(network), torch.optim.Adam)


def test_pretrained_neumf_resumes_with_its_parts(data, tmp_path, monkeypatch):
    settings = dict(factors=2, mlp_layers=1, epochs=3, batch_size=64, pretrain=True, device="cpu")
    whole = NeuMF(**settings).fit(data)
    assert set(whole.pretrain_history_) == {"gmf", "mlp"}
    assert whole.pretrain_best_epochs_ == {"gmf": 3, "mlp": 3}

    save = neural.training.save_checkpoint

    def save_then_interrupt(directory, payload):  # NeuMF's own first epoch, after GMF and MLP
        save(directory, payload)
        if Path(directory) == tmp_path and payload["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(neural.training, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        NeuMF(**settings, checkpoint_dir=str(tmp_path)).fit(data)
    monkeypatch.undo()
    resumed = NeuMF(**settings, checkpoint_dir=str(tmp_path)).fit(data)
    def losses(model):
        return {name: [r["loss"] for r in history] for name, history in model.pretrain_history_.items()}

    assert resumed.resumed_from_epoch_ == 1 and losses(resumed) == losses(whole)
    users = np.arange(10)
    assert np.array_equal(resumed.score(users, data[users]), whole.score(users, data[users]))


def test_a_refit_with_the_frozen_epochs_reproduces_the_early_stopped_pretrained_fit():
    from neural_synthetic import as_validation

    train, heldout = planted(n_users=60, n_items=40, groups=3, seed=3)[:2]
    settings = dict(factors=4, mlp_layers=2, negatives=2, batch_size=64, lr=0.05, pretrain=True,
                    finetune_optimizer="adam", device="cpu", seed=7)
    data = TrainingData(train, validation=as_validation(train, heldout))
    stopped = NeuMF(**settings, epochs=12, patience=2).fit(data)
    frozen = stopped.frozen_params_
    assert set(frozen) == {"gmf_epochs", "mlp_epochs"}
    assert frozen == {f"{name}_epochs": epochs for name, epochs in stopped.pretrain_best_epochs_.items()}
    assert any(len(history) > stopped.pretrain_best_epochs_[name]  # early stopping ran past the best epoch
               for name, history in stopped.pretrain_history_.items())
    # the parts stop on the metric of the validation data, as NeuMF does
    assert all(record["ndcg@10"] is not None for history in stopped.pretrain_history_.values() for record in history)
    refit = NeuMF(**settings, **frozen, epochs=stopped.best_epoch_, patience=None).fit(train)
    assert {name: len(h) for name, h in refit.pretrain_history_.items()} == stopped.pretrain_best_epochs_
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    assert np.array_equal(refit.score(users, train[users]), stopped.score(users, train[users]))
    assert NeuMF(pretrain=False).fit(train).frozen_params_ == {}
