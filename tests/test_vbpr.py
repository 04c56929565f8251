"""VBPR: the loss and its gradient against the written BPR-Opt (with the authors' lambda/10
rule), one SGD step against the authors' update, the epoch sampler, cold and featureless
items, planted visual structure, determinism and refusals."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from datasets.item_data import make_feature_set
from neural.sampling import NegativeSampler
from neural.vbpr import VBPR, user_uniform_triples
from neural_synthetic import Popularity, as_validation, torch_threads
from protocols.contract import TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
from protocols.early_stopping import validation_value

KEY = "image-features@000000000000"


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def with_features(train, features, present=None, key=KEY, **others) -> TrainingData:
    sets = {key: make_feature_set(key, features, present), **{k: make_feature_set(k, v) for k, v in others.items()}}
    return TrainingData(sp.csr_matrix(train, dtype=np.float32), item_features=sets)


def tiny():
    """4 users x 6 items; item 5 has no training interaction (cold), item 4 no features."""
    train = np.array([[1, 1, 0, 0, 1, 0],
                      [0, 1, 1, 0, 0, 0],
                      [1, 0, 0, 1, 0, 0],
                      [0, 0, 1, 1, 1, 0]], dtype=np.float32)
    rng = np.random.default_rng(3)
    features = rng.uniform(0.0, 2.0, (6, 5)).astype(np.float32)
    present = np.array([True, True, True, True, False, True])
    return with_features(train, features, present)


def fresh(model, data):
    model._check_params()
    return model._fresh_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))


TRIPLES = (np.array([0, 0, 1, 2, 3, 3]), np.array([1, 4, 2, 3, 2, 4]), np.array([5, 2, 4, 5, 0, 1]))


def written_objective(p, f, warm, u, i, j, lambda_theta, lambda_beta, lambda_e, cornac=False):
    """BPR-Opt of He and McAuley (Eq. 3 and 7) with the regularisation of their C++ code, in
    plain torch on leaf tensors: mean over the triples, lambda/10 on the negative's gamma
    (``cornac``: on the negative's bias instead, Cornac's variant)."""
    def x(users, items):
        return (warm[items] * (p["beta"][items] + (p["gamma_u"][users] * p["gamma_i"][items]).sum(1))
                + (p["theta_u"][users] * (f[items] @ p["E"].T)).sum(1) + f[items] @ p["beta_v"])

    gamma_i, gamma_j = warm[i, None] * p["gamma_i"][i], warm[j, None] * p["gamma_i"][j]
    beta_i, beta_j = warm[i] * p["beta"][i], warm[j] * p["beta"][j]
    per_triple = (-torch.log(torch.sigmoid(x(u, i) - x(u, j)))
                  + lambda_theta / 2 * ((p["gamma_u"][u] ** 2).sum(1) + (p["theta_u"][u] ** 2).sum(1)
                                        + (gamma_i ** 2).sum(1))
                  + lambda_theta / (1 if cornac else 10) / 2 * (gamma_j ** 2).sum(1)
                  + lambda_beta / 2 * (beta_i ** 2 + beta_j ** 2 / (10 if cornac else 1)))
    return per_triple.mean() + lambda_e / 2 * ((p["E"] ** 2).sum() + (p["beta_v"] ** 2).sum())


NAMES = {"gamma_u": "gamma_user", "gamma_i": "gamma_item", "theta_u": "theta_user", "E": "embedding",
         "beta": "beta_item", "beta_v": "beta_visual"}


def test_gradient_matches_autograd_of_the_written_objective():
    data = tiny()
    model = VBPR(factors=3, visual_factors=2, lambda_theta=0.3, lambda_beta=0.2, lambda_e=0.05, init_std=0.5)
    network = fresh(model, data)
    with torch.no_grad():  # non-zero biases, so that every regulariser acts
        network.beta_item.copy_(torch.linspace(-1, 1, 6))
        network.beta_visual.copy_(torch.linspace(0.5, -0.5, 5))
    batch = tuple(torch.tensor(a) for a in TRIPLES)
    loss = model._batch_loss(network, batch, None, 0)
    loss.backward()

    params = {short: getattr(network, name).detach().double().clone().requires_grad_(True)
              for short, name in NAMES.items()}
    f = network.features.double()
    warm = network.warm.double()
    expected = written_objective(params, f, warm, *batch, 0.3, 0.2, 0.05)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for short, name in NAMES.items():
        np.testing.assert_allclose(getattr(network, name).grad.numpy(), params[short].grad.numpy(),
                                   rtol=1e-5, atol=1e-7, err_msg=name)
    # The tiny case exercises a cold item and an item without features ...
    cold, featureless = 5, 4
    assert network.warm[cold] == 0 and torch.all(network.features[featureless] == 0)
    # ... and tells the authors' /10 (on gamma_j) from Cornac's (on beta_j).
    cornac = {short: value.detach().clone().requires_grad_(True) for short, value in params.items()}
    written_objective(cornac, f, warm, *batch, 0.3, 0.2, 0.05, cornac=True).backward()
    for short, name in (("gamma_i", "gamma_item"), ("beta", "beta_item")):
        assert not np.allclose(getattr(network, name).grad.numpy(), cornac[short].grad.numpy(), rtol=1e-3), name


def test_one_sgd_step_is_the_authors_update():
    """VBPR::updateFactors: theta += lr (sigma(-x_uij) dx_uij/dtheta - lambda theta), with
    lambda/10 for gamma_j, biasReg for both biases and lambda2 for E and beta'."""
    lr, lam, bias_reg, lam2 = 0.05, 0.4, 0.3, 0.02
    data = tiny()
    model = VBPR(factors=3, visual_factors=2, lambda_theta=lam, lambda_beta=bias_reg, lambda_e=lam2, init_std=0.5)
    network = fresh(model, data)
    with torch.no_grad():
        network.beta_item.copy_(torch.linspace(-1, 1, 6))
        network.beta_visual.copy_(torch.linspace(0.5, -0.5, 5))
    old = {name: getattr(network, name).detach().double().numpy().copy() for name in NAMES.values()}
    f = network.features.double().numpy()
    u, i, j = 3, 2, 0  # both items warm and with features
    model._batch_loss(network, tuple(torch.tensor([a]) for a in (u, i, j)), None, 0).backward()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter -= lr * parameter.grad

    g_u, g_i, g_j = old["gamma_user"][u], old["gamma_item"][i], old["gamma_item"][j]
    t_u, E, b, b_v = old["theta_user"][u], old["embedding"], old["beta_item"], old["beta_visual"]
    diff = f[i] - f[j]
    x_uij = b[i] - b[j] + g_u @ (g_i - g_j) + t_u @ (E @ diff) + b_v @ diff
    deri = 1 / (1 + np.exp(x_uij))
    expected = [
        ("beta_item", i, b[i] + lr * (deri - bias_reg * b[i])),
        ("beta_item", j, b[j] + lr * (-deri - bias_reg * b[j])),
        ("gamma_user", u, g_u + lr * (deri * (g_i - g_j) - lam * g_u)),
        ("gamma_item", i, g_i + lr * (deri * g_u - lam * g_i)),
        ("gamma_item", j, g_j + lr * (-deri * g_u - lam / 10 * g_j)),
        ("theta_user", u, t_u + lr * (deri * (E @ diff) - lam * t_u)),
        ("embedding", slice(None), E + lr * (deri * np.outer(t_u, diff) - lam2 * E)),
        ("beta_visual", slice(None), b_v + lr * (deri * diff - lam2 * b_v)),
    ]
    for name, index, value in expected:
        np.testing.assert_allclose(getattr(network, name)[index].detach().numpy(), value, rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_user_uniform_epoch_is_the_authors_sampling():
    rng = np.random.default_rng(0)
    dense = rng.random((40, 30)) < np.linspace(0.05, 0.6, 40)[:, None]  # degrees from ~1 to ~18
    dense[np.arange(40), rng.integers(0, 30, 40)] = True
    dense[5] = False
    train = sp.csr_matrix(dense.astype(np.float32))
    sampler = NegativeSampler(train)
    users, positives, negatives = user_uniform_triples(sampler, 4000, np.random.default_rng(1))
    dense = train.toarray()
    assert len(users) == 4000 and np.all(dense[users, positives] > 0) and not np.any(dense[users, negatives])
    assert 5 not in users  # no items: never drawn
    counts = np.delete(np.bincount(users, minlength=40), 5)
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()  # users uniform, not by degree
    for user in np.unique(users):
        drawn = positives[users == user]  # in draw order
        degree = int(dense[user].sum())
        for start in range(0, len(drawn) - degree + 1, degree):  # each full round is a permutation
            assert sorted(drawn[start:start + degree]) == list(np.flatnonzero(dense[user])), user


def test_epoch_draws_as_many_triples_as_interactions():
    data = tiny()
    for sampling in ("user", "interaction"):
        model = VBPR(batch_size=4, sampling=sampling)
        batches = list(model._epoch_batches(model._training_data(data), np.random.default_rng(0), None,
                                            torch.device("cpu")))
        assert sum(len(b[0]) for b in batches) == data.interactions.nnz


def test_cold_items_are_scored_through_their_features_and_featureless_items_have_zero_features():
    data = tiny()
    model = VBPR(factors=3, visual_factors=2, epochs=3, batch_size=4, device="cpu", feature_scaling="none").fit(data)
    network = model.network_
    scores = model.score(np.arange(4), data.interactions)
    E, b_v = network.embedding.detach().numpy(), network.beta_visual.detach().numpy()
    theta = network.theta_user.detach().numpy()
    f_cold = data.features(KEY).values[5]
    np.testing.assert_allclose(scores[:, 5], theta @ (E @ f_cold) + b_v @ f_cold, rtol=1e-5, atol=1e-6)
    assert np.all(network.features[4].numpy() == 0)
    beta, gamma = network.beta_item.detach().numpy(), network.gamma_item.detach().numpy()
    np.testing.assert_allclose(scores[:, 4], beta[4] + network.gamma_user.detach().numpy() @ gamma[4],
                               rtol=1e-5, atol=1e-6)


def test_max_scaling_divides_by_the_largest_feature():
    data = tiny()
    values = VBPR()._item_feature_matrix(data)
    raw = data.features(KEY).values
    np.testing.assert_allclose(values, raw / np.abs(raw).max(), rtol=1e-6)
    np.testing.assert_array_equal(VBPR(feature_scaling="none")._item_feature_matrix(data), raw)


# ----- planted visual structure -----------------------------------------------------------
def planted_visual(n_users=300, n_items=120, groups=4, dim=16, p_in=0.3, p_out=0.02, cold=0.25, holdout=0.2,
                   seed=0):
    """Users and items in hidden groups; users like the items of their group. The item
    features carry the group (its one-hot direction plus noise), so they decide who likes an
    item. A quarter of the items are cold (every interaction held out), and a fifth of the
    other interactions is held out too. Returns train, test, features, cold mask."""
    rng = np.random.default_rng(seed)
    user_group, item_group = rng.integers(0, groups, n_users), rng.integers(0, groups, n_items)
    popularity = rng.uniform(0.5, 1.5, n_items)
    probability = np.where(user_group[:, None] == item_group, p_in, p_out) * popularity
    interactions = rng.random((n_users, n_items)) < probability
    cold_items = rng.random(n_items) < cold
    held = interactions & ((rng.random(interactions.shape) < holdout) | cold_items[None, :])
    noise = 0.3 * rng.standard_normal((n_items, dim)).astype(np.float32)
    features = np.eye(groups, dim, dtype=np.float32)[item_group] + noise
    return (sp.csr_matrix(interactions & ~held, dtype=np.float32), sp.csr_matrix(held, dtype=np.float32),
            features, cold_items)


LEARNING = dict(epochs=30, lr=0.005, batch_size=256, device="cpu")


@pytest.mark.parametrize("seed", [0, 1])
def test_learns_planted_visual_structure(seed):
    train, test, features, cold = planted_visual(seed=seed)
    shuffled = features[np.random.default_rng(seed + 100).permutation(len(features))]
    everything = as_validation(train, test)
    cold_only = as_validation(train, sp.csr_matrix(test.multiply(cold[None, :].astype(np.float32))))
    model = VBPR(**LEARNING).fit(with_features(train, features))
    blind = VBPR(**LEARNING).fit(with_features(train, shuffled))
    pop = Popularity(train)
    ndcg = {name: (validation_value(m, everything, "ndcg@10"), validation_value(m, cold_only, "ndcg@10"))
            for name, m in (("vbpr", model), ("shuffled", blind), ("pop", pop))}
    print("planted visual structure, seed", seed, {k: tuple(round(x, 4) for x in v) for k, v in ndcg.items()})
    assert ndcg["vbpr"][0] > ndcg["pop"][0] + 0.08, ndcg
    assert ndcg["vbpr"][0] > ndcg["shuffled"][0] + 0.03, ndcg
    assert ndcg["pop"][1] == 0 and ndcg["vbpr"][1] > ndcg["shuffled"][1] + 0.03, ndcg  # cold items: features only
    losses = [record["loss"] for record in model.history_]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]


def test_same_seed_bit_identical_other_seed_different():
    train, _, features, _ = planted_visual(n_users=60, n_items=40, seed=4)
    data = with_features(train, features)
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    first, second, other = (VBPR(factors=4, visual_factors=4, epochs=3, batch_size=64, device="cpu", seed=seed)
                            .fit(data).score(users, train[users]) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_checkpoint_resume_and_early_stopping_keep_the_features_out_of_the_state(tmp_path):
    train, test, features, _ = planted_visual(n_users=60, n_items=40, seed=6)
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    data = with_features(train, features)
    data = TrainingData(train, validation=as_validation(train, test), item_features=data.item_features)
    make = lambda **kw: VBPR(factors=4, visual_factors=4, batch_size=64, device="cpu", seed=2, **kw)  # noqa: E731
    uninterrupted = make(epochs=4).fit(data)
    make(epochs=2, checkpoint_dir=str(tmp_path)).fit(data)  # the "interrupted" run
    resumed = make(epochs=4, checkpoint_dir=str(tmp_path)).fit(data)
    assert resumed.resumed_from_epoch_ == 2 and resumed.best_epoch_ == uninterrupted.best_epoch_
    np.testing.assert_array_equal(resumed.score(users, train[users]), uninterrupted.score(users, train[users]))
    assert "features" not in uninterrupted.network_.state_dict()  # snapshots hold learned parameters only


# ----- requirements and refusals ------------------------------------------------------------
def test_requirements_and_refusals():
    train, _, features, _ = planted_visual(n_users=30, n_items=20, seed=5)
    needs = VBPR().requirements()
    assert needs.user_embeddings and needs.feature_kind == "dense"
    assert VBPR(features="posters").requirements().item_features == "posters"
    tags = sp.random(20, 8, density=0.3, random_state=0, format="csr", dtype=np.float32)
    # the only dense set is found among sparse ones
    model = VBPR(factors=2, visual_factors=2, epochs=1, device="cpu").fit(with_features(train, features, tags=tags))
    assert model.features_key_ == KEY
    # several dense sets: name one
    two = with_features(train, features, other=features + 1)
    with pytest.raises(UnsupportedProtocolError, match=r"several dense .*\(needs dense item features"):
        VBPR(epochs=1, device="cpu").fit(two)
    VBPR(factors=2, visual_factors=2, epochs=1, device="cpu", features="other").fit(two)
    # only sparse content: refused before training
    only_tags = TrainingData(train, item_features={"tags": make_feature_set("tags", tags)})
    with pytest.raises(UnsupportedProtocolError, match=r"\(needs dense item features\)"):
        VBPR(epochs=1, device="cpu").fit(only_tags)
    with pytest.raises(UnsupportedProtocolError, match=r"needs dense item features"):
        check_requirements(VBPR(features="tags"), TaskProfile.of(only_tags, np.flatnonzero(np.diff(train.indptr))))


def test_importing_the_model_does_not_import_torch():
    code = "import sys, neural.vbpr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
