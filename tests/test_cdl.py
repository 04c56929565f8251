"""CDL: planted content structure (beats popularity and itself on shuffled content), the ALS
sweep against a dense solve of its normal equations, the batch loss against a naive formula,
the release's Adadelta, falling losses, determinism and resumption from a checkpoint.

``content_planted`` and ``recall_at`` are shared with ``test_cvae.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from common.errors import RecAuditError
from datasets.item_data import TrainingData, make_feature_set
from neural.cdl import CDL, scaled_content
from neural.training import sparse_rows
from neural_synthetic import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


# ----- planted data: the content decides which users like an item -------------------------------
def content_planted(n_users: int = 200, n_items: int = 240, groups: int = 8, words_per_group: int = 20,
                    noise_words: int = 20, train_per_user: int = 3, test_per_user: int = 3,
                    cold_fraction: float = 0.5, seed: int = 0):
    """(train, test, content): items and users in ``groups`` hidden groups; an item's bag of
    words holds 6 words of its group's vocabulary and 2 noise words (counts 1-3); a user's
    training and test items all come from the user's group, training items only from the
    warm half of each group, so about half the test items are cold (no training interaction)
    and every item is seen by few users: only the content tells which group a cold item is in.
    """
    rng = np.random.default_rng(seed)
    item_group = np.arange(n_items) % groups
    user_group = rng.integers(groups, size=n_users)
    own = item_group[:, None] * words_per_group + np.argsort(rng.random((n_items, words_per_group)), axis=1)[:, :6]
    noise = groups * words_per_group + np.argsort(rng.random((n_items, noise_words)), axis=1)[:, :2]
    words = np.hstack([own, noise])
    content = sp.csr_matrix((rng.integers(1, 4, size=words.size).astype(np.float32),
                             (np.repeat(np.arange(n_items), words.shape[1]), words.ravel())),
                            shape=(n_items, groups * words_per_group + noise_words))
    cold = np.zeros(n_items, dtype=bool)
    for group in range(groups):  # the same share of cold items in every group
        members = rng.permutation(np.flatnonzero(item_group == group))
        cold[members[:int(cold_fraction * len(members))]] = True
    train = np.zeros((n_users, n_items), dtype=bool)
    test = np.zeros((n_users, n_items), dtype=bool)
    for user in range(n_users):
        mine = np.flatnonzero(item_group == user_group[user])
        train[user, rng.choice(mine[~cold[mine]], train_per_user, replace=False)] = True
        test[user, rng.choice(np.setdiff1d(mine, np.flatnonzero(train[user])), test_per_user, replace=False)] = True
    return sp.csr_matrix(train, dtype=np.float32), sp.csr_matrix(test, dtype=np.float32), content


def recall_at(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 10) -> float:
    """Mean over users with test items of hits@k / min(k, |test|), training items excluded."""
    scores = np.where(train.toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    truth = test.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    n = truth.sum(axis=1)
    return float(np.mean(hits[n > 0] / np.minimum(n[n > 0], k)))


def with_content(train, content, name="bow") -> TrainingData:
    return TrainingData(train, item_features={name: make_feature_set(name, content)})


def planted_comparison(model_factory, seed: int = 0) -> dict:
    """recall@10 of the model, of popularity and of the model fitted on content shuffled across items."""
    train, test, content = content_planted(seed=seed)
    users = np.arange(train.shape[0])
    popularity = np.tile(np.asarray(train.sum(axis=0)).ravel(), (len(users), 1))
    shuffled = content[np.random.default_rng(1).permutation(content.shape[0])]
    return {"model": recall_at(model_factory().fit(with_content(train, content)).score(users, train), train, test),
            "pop": recall_at(popularity, train, test),
            "shuffled": recall_at(model_factory().fit(with_content(train, shuffled)).score(users, train), train,
                                  test)}


SMALL = {"factors": 8, "hidden": (16,), "pretrain_epochs": 100, "epochs": 30, "batch_size": 32, "lr": 10.0,
         "device": "cpu"}


def test_learns_planted_content_structure():
    # lr=10 scales the release's Adadelta step: its first updates are ~1e-4 and this data gives
    # it 8 batches an epoch (CiteULike-t gives 200).
    result = planted_comparison(lambda: CDL(**SMALL))
    print("cdl planted recall@10:", result)
    assert result["model"] > 3 * result["pop"] and result["model"] > result["pop"] + 0.2
    assert result["model"] > result["shuffled"] + 0.2


# ----- the closed-form sweep -------------------------------------------------------------------
def dense_sweep(R, V, theta, a, b, lambda_u, lambda_v):
    """U then V from the normal equations written with the dense confidence matrix."""
    C = np.where(R > 0, a, b)
    warm = R.sum(axis=0) > 0
    k = V.shape[1]
    U = np.zeros((R.shape[0], k))
    for i in range(R.shape[0]):
        Vw, c, r = V[warm], C[i, warm], R[i, warm]
        U[i] = np.linalg.solve(Vw.T @ (c[:, None] * Vw) + lambda_u * np.eye(k), Vw.T @ (c * r))
    V_new = np.zeros_like(V)
    for j in range(R.shape[1]):
        c, r = C[:, j], R[:, j]
        V_new[j] = np.linalg.solve(U.T @ (c[:, None] * U) + lambda_v * np.eye(k), U.T @ (c * r) + lambda_v * theta[j])
    return U, V_new


def test_als_sweep_equals_dense_solve_of_its_normal_equations():
    from neural._cdl_network import ALSPlan, als_sweep

    rng = np.random.default_rng(3)
    R = (rng.random((7, 9)) < 0.35).astype(np.float32)
    R[:, 4] = 0  # a cold item
    R[5] = 0  # a user without interactions
    R[0, 0] = 1.0
    V, theta = rng.standard_normal((9, 3)), rng.standard_normal((9, 3))
    a, b, lambda_u, lambda_v = 1.0, 0.01, 0.7, 10.0
    plan = ALSPlan(sp.csr_matrix(R), 3)
    U_t, V_t = als_sweep(plan, torch.from_numpy(V), torch.from_numpy(theta), a, b, lambda_u, lambda_v)
    U_d, V_d = dense_sweep(R, V, theta, a, b, lambda_u, lambda_v)
    np.testing.assert_allclose(U_t.numpy(), U_d, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(V_t.numpy(), V_d, rtol=1e-9, atol=1e-12)
    assert np.all(U_t.numpy()[5] == 0)
    # the cold item is its content's code, shrunk: (b U^T U + lambda_v I)^-1 lambda_v theta_j
    expected = np.linalg.solve(b * U_d.T @ U_d + lambda_v * np.eye(3), lambda_v * theta[4])
    np.testing.assert_allclose(V_t.numpy()[4], expected, rtol=1e-9)


def mf_objective(R, U, V, theta, a, b, lambda_u, lambda_v):
    C = np.where(R > 0, a, b)
    return 0.5 * np.sum(C * (R - U @ V.T) ** 2) + 0.5 * lambda_u * np.sum(U ** 2) \
        + 0.5 * lambda_v * np.sum((V - theta) ** 2)


def test_sweeps_never_increase_the_weighted_mf_objective():
    from neural._cdl_network import ALSPlan, als_sweep

    rng = np.random.default_rng(4)
    R = (rng.random((30, 20)) < 0.2).astype(np.float32)
    R[np.arange(20), np.arange(20)] = 1  # every item warm: the sweep is exact coordinate descent
    theta = rng.standard_normal((20, 4))
    plan = ALSPlan(sp.csr_matrix(R), 4)
    V, U = torch.from_numpy(theta.copy()), np.zeros((30, 4))
    values = [mf_objective(R, U, V.numpy(), theta, 1.0, 0.01, 1.0, 10.0)]
    for _ in range(5):
        U_t, V = als_sweep(plan, V, torch.from_numpy(theta), 1.0, 0.01, 1.0, 10.0)
        values.append(mf_objective(R, U_t.numpy(), V.numpy(), theta, 1.0, 0.01, 1.0, 10.0))
    assert all(later <= earlier + 1e-9 for earlier, later in zip(values, values[1:])), values
    assert values[-1] < values[0]


# ----- the SDAE and its optimiser --------------------------------------------------------------
def test_batch_loss_without_noise_matches_naive_formula():
    train, _, content = content_planted(n_users=20, n_items=24, groups=3)
    model = CDL(factors=3, hidden=(5,), corruption=0.0, dropout=0.0, lambda_v=7.0, lambda_n=20.0)
    data = with_content(train, content)
    network = model._fresh_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))
    V = np.random.default_rng(0).standard_normal((24, 3))
    with torch.no_grad():
        network.item_factors.copy_(torch.from_numpy(V))
        for bias in network.sdae.biases:  # away from their zero start, so that every term shows
            bias.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    prepared = model._training_data(data)
    rows = np.array([1, 4, 5, 20])
    batch = (sparse_rows(prepared.content, rows, torch.device("cpu")), torch.from_numpy(rows))
    loss = model._batch_loss(network, batch, torch.Generator(), 0).item()
    p = {name: t.detach().double().numpy() for name, t in network.named_parameters()}
    x = prepared.content[rows].toarray().astype(np.float64)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h1 = sigmoid(x @ p["sdae.weights.0"] + p["sdae.biases.1"])
    code = sigmoid(h1 @ p["sdae.weights.1"] + p["sdae.biases.2"])
    r1 = sigmoid(code @ p["sdae.weights.1"].T + p["sdae.biases.1"])
    y = sigmoid(r1 @ p["sdae.weights.0"].T + p["sdae.biases.0"])
    cross_entropy = -(x * np.log(y) + (1 - x) * np.log(1 - y)).sum(axis=1).mean()
    coupling = 0.5 * ((code - V[rows]) ** 2).sum(axis=1).mean()
    assert loss == pytest.approx(cross_entropy + 7.0 / 20.0 * coupling, rel=1e-5)


def test_deepmat_adadelta_matches_its_update_rule():
    from neural._cdl_network import DeepmatAdadelta

    rho, eps, decay, lr = 0.99, 1e-8, 1e-4, 2.0
    start = np.array([0.5, -1.0, 2.0, 0.0])
    parameter = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = DeepmatAdadelta([parameter], lr=lr, rho=rho, eps=eps, weight_decay=decay)
    theta, s, d = start.copy(), np.zeros(4), np.zeros(4)
    for step, grad in enumerate([np.array([1.0, -2.0, 0.5, 0.0]), np.array([0.3, 0.1, -1.0, 2.0])]):
        parameter.grad = torch.tensor(grad)
        optimizer.step()
        r = 0.0 if step == 0 else rho  # the first update fills the averages
        s = r * s + (1 - r) * grad ** 2
        delta = (grad + decay * theta) * np.sqrt(d + eps) / np.sqrt(s + eps)
        theta = theta - lr * delta
        d = r * d + (1 - r) * delta ** 2
        np.testing.assert_allclose(parameter.detach().numpy(), theta, rtol=1e-12)


def test_word_max_scaling_and_non_negative_content():
    content = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [4.0, 3.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    data = with_content(sp.csr_matrix((1, 3), dtype=np.float32), content)
    np.testing.assert_allclose(scaled_content("cdl", data, None, "word-max").toarray(),
                               [[0.5, 0, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(scaled_content("cdl", data, None, "item-max").toarray(),
                               [[1, 0, 0.5], [1, 0.75, 0], [0, 0, 0]])
    np.testing.assert_allclose(scaled_content("cdl", data, None, "binary").toarray(),
                               [[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    negative = with_content(sp.csr_matrix((1, 3), dtype=np.float32), sp.csr_matrix(-content.toarray()))
    with pytest.raises(RecAuditError, match="non-negative"):
        scaled_content("cdl", negative, None, "word-max")


# ----- the fit: losses, cold items, determinism, resumption ------------------------------------
TINY = {"factors": 4, "hidden": (8,), "pretrain_epochs": 5, "epochs": 6, "batch_size": 32, "lr": 10.0,
        "device": "cpu"}


@pytest.fixture(scope="module")
def tiny():
    train, test, content = content_planted(n_users=60, n_items=80, groups=4)
    return train, test, with_content(train, content)


def test_loss_falls_and_v_starts_at_theta(tiny):
    train, _, data = tiny
    model = CDL(**TINY).fit(data)
    losses = [record["loss"] for record in model.history_]
    assert losses[-1] < losses[0]
    initial = CDL(**TINY)._initial_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))
    theta = initial.encode_items(CDL(**TINY)._training_data(data).content, torch.device("cpu"))
    np.testing.assert_array_equal(initial.item_factors.numpy(), theta.double().numpy())
    assert not initial.user_factors.any()


def test_cold_items_are_scored_through_their_content(tiny):
    train, _, data = tiny
    model = CDL(**TINY).fit(data)
    cold = np.flatnonzero(np.asarray(train.sum(axis=0)).ravel() == 0)
    assert len(cold) > 5
    network = model.network_
    theta = network.encode_items(model._training_data(data).content, torch.device("cpu")).double().numpy()
    U = model.user_factors
    expected = np.linalg.solve(0.01 * U.T @ U + 10.0 * np.eye(4), 10.0 * theta[cold].T).T
    # V after the last sweep used the theta computed before it, which is the final network's
    np.testing.assert_allclose(model.item_factors[cold], expected, rtol=1e-6, atol=1e-9)


def test_same_seed_same_scores_other_seed_other_scores(tiny):
    train, _, data = tiny
    users = np.arange(train.shape[0])
    first = CDL(**TINY, seed=3).fit(data).score(users, train)
    np.testing.assert_array_equal(first, CDL(**TINY, seed=3).fit(data).score(users, train))
    assert not np.array_equal(first, CDL(**TINY, seed=4).fit(data).score(users, train))


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tiny, tmp_path):
    train, _, data = tiny
    users = np.arange(train.shape[0])
    whole = CDL(**TINY).fit(data)
    CDL(**{**TINY, "epochs": 3}, checkpoint_dir=str(tmp_path)).fit(data)
    resumed = CDL(**TINY, checkpoint_dir=str(tmp_path)).fit(data)
    assert resumed.resumed_from_epoch_ == 3 and resumed.epochs_run_ == TINY["epochs"]
    np.testing.assert_array_equal(resumed.score(users, train), whole.score(users, train))
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in whole.history_]


def test_validation_keeps_the_best_epoch(tiny):
    from neural_synthetic import as_validation

    train, test, data = tiny
    model = CDL(**TINY, patience=2).fit(data.with_validation(as_validation(train, test)))
    assert 1 <= model.best_epoch_ <= model.epochs_run_
    assert all(record["ndcg@10"] is not None for record in model.history_)


def test_reads_the_named_feature_set_default_the_datasets_text():
    train, _, content = content_planted(n_users=20, n_items=24, groups=3)
    data = TrainingData(train, item_features={"bow": make_feature_set("bow", content),
                                              "bow-tfidf": make_feature_set("bow-tfidf", content * 0.5)})
    default, named = CDL(), CDL(features="bow")
    np.testing.assert_allclose(default._training_data(data).content.toarray(),
                               named._training_data(data).content.toarray())  # word-max removes the scale
    assert default.features_key_ == "bow-tfidf" and named.features_key_ == "bow"
    assert default.requirements().item_features == "*" and named.requirements().item_features == "bow"
    assert default.requirements().user_embeddings
