"""CuratorNet: every sampling guideline against its definition on a hand-made purchase log, the
cluster-biased sampler's rate, the network against the written formula, the rate list and its
replay, planted visual structure (against pop and shuffled features), new users without
retraining, and refusals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from datasets.item_data import make_feature_set
from neural.curatornet import CuratorNet, item_artists, triple_batches
from neural.curatornet_sampling import GuidelineSampler, VisualClusters, uniform_triples, visual_clusters
from neural_synthetic import Popularity, as_validation, torch_threads
from protocols.contract import TrainingData, UnsupportedProtocolError
from protocols.early_stopping import validation_value

KEY = "image-features@000000000000"


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


# ----- a hand-made purchase log ------------------------------------------------------------------
# 12 items in 4 visual clusters (3 each) by 4 artists; cluster c = items 3c..3c+2, artist = item % 4.
CLUSTER = np.repeat(np.arange(4), 3)
ARTIST = np.arange(12) % 4
# Purchases (user, item, time): equal times make a basket.
LOG = [(0, 0, 1), (0, 1, 1), (0, 4, 2), (0, 5, 3), (0, 3, 3),
       (1, 6, 5), (1, 7, 6), (1, 8, 6),
       (2, 9, 1), (2, 2, 1), (2, 10, 4), (2, 11, 9)]


def log_matrices():
    users, items, times = (np.array(column) for column in zip(*LOG))
    train = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(3, 12))
    stamps = sp.csr_matrix((times.astype(np.float64), (users, items)), shape=(3, 12))
    return train, stamps


def hand_clusters():
    rng = np.random.default_rng(0)
    unit = rng.normal(size=(12, 6)) + 3 * np.eye(4)[CLUSTER] @ rng.normal(size=(4, 6))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return VisualClusters(cluster=CLUSTER.copy(), unit=unit)


def baskets_of(user):
    rows = sorted((t, i) for u, i, t in LOG if u == user)
    out = {}
    for t, i in rows:
        out.setdefault(t, []).append(i)
    return [sorted(b) for _, b in sorted(out.items())]


@pytest.fixture(scope="module")
def drawn():
    train, stamps = log_matrices()
    sampler = GuidelineSampler(train, stamps, hand_clusters(), ARTIST)
    return sampler, sampler.sample(60, np.random.default_rng(1)), train


def test_every_guideline_is_drawn(drawn):
    _, triples, _ = drawn
    assert set(np.unique(triples.guideline)) == {1, 2, 3, 4, 5, 6}


def test_each_triple_meets_its_guideline(drawn):
    sampler, triples, train = drawn
    bought = {u: set(train[u].indices) for u in range(3)}
    for k in range(len(triples)):
        g, u, p, n = int(triples.guideline[k]), int(triples.user[k]), int(triples.positive[k]), int(triples.negative[k])
        profile = sorted(int(i) for i in triples.profile(k))
        assert p != n and not sampler.clusters.same(np.array([p]), np.array([n]))[0]
        if g in (2, 4):
            assert u == -1 and len(profile) == 1
        else:
            assert n not in bought[u], (g, u, n)
        user_clusters = {CLUSTER[i] for i in bought.get(u, ())}
        user_artists = {ARTIST[i] for i in bought.get(u, ())}
        if g == 1:
            assert profile == sorted(bought[u]) and p in bought[u]
        elif g == 2:
            assert profile == [p]
        elif g == 3:
            assert profile == sorted(bought[u]) and p not in bought[u]
            assert CLUSTER[p] in user_clusters and ARTIST[p] in user_artists
        elif g == 4:
            query = profile[0]
            assert p != query and ARTIST[p] == ARTIST[query] and ARTIST[n] != ARTIST[query]
            assert sampler.clusters.validate_triple(np.array([query]), np.array([p]), np.array([n]), 0.1)[0]
        elif g == 5:
            baskets = baskets_of(u)
            prefixes = [sorted(sum(baskets[:b + 1], [])) for b in range(len(baskets) - 1)]
            b = prefixes.index(profile)  # the profile is every item up to some basket
            assert p in baskets[b + 1]
        elif g == 6:
            baskets = baskets_of(u)
            b = next(b for b, basket in enumerate(baskets) if p in basket)
            assert len(baskets[b]) >= 2
            assert profile == sorted(set(sum(baskets[:b + 1], [])) - {p})
        if g in (3, 5, 6):
            assert CLUSTER[n] not in user_clusters and ARTIST[n] not in user_artists, (g, u, n)


def test_no_triple_twice(drawn):
    _, triples, _ = drawn
    keys = {(int(triples.profile_of[k]), int(triples.positive[k]), int(triples.negative[k])) for k in range(len(triples))}
    assert len(keys) == len(triples)


def test_cluster_biased_negatives_come_from_the_positives_cluster_at_the_set_rate():
    rng = np.random.default_rng(3)
    n_items, n_clusters = 4000, 20  # 200 items a cluster: a repeated triple (dropped) is rare
    cluster = np.arange(n_items) % n_clusters
    unit = rng.normal(size=(n_items, 5))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    train = sp.csr_matrix((1, n_items), dtype=np.float32)
    sampler = GuidelineSampler(train, None, VisualClusters(cluster, unit), None, fine_grained=0.6)
    triples = sampler.sample(40_000, rng, guidelines=(2,))
    same = cluster[triples.positive] == cluster[triples.negative]
    # P(same cluster) = 0.6 + 0.4 / 20 (the positive itself, redrawn, is 1 in 200 of its cluster).
    assert same.mean() == pytest.approx(0.62, abs=0.015)


def test_baskets_without_timestamps_are_one_per_user():
    train, _ = log_matrices()
    sampler = GuidelineSampler(train, None, hand_clusters(), ARTIST)
    assert len(sampler.basket_start) == 3
    triples = sampler.sample(30, np.random.default_rng(0))
    assert 5 not in set(triples.guideline)


def test_visual_clusters_use_200_components_not_2():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 250)).astype(np.float32)
    clusters = visual_clusters(features, n_components=200, n_clusters=10, runs=2, seed=0)
    assert clusters.unit.shape == (300, 200)
    assert np.allclose(np.linalg.norm(clusters.unit, axis=1), 1.0, atol=1e-6)
    assert clusters.n_clusters == 10


def test_batches_respect_the_item_budget_and_sort_by_profile_size(drawn):
    _, triples, _ = drawn
    batches = triple_batches(triples, 40, np.random.default_rng(0))
    assert sum(b[-1] for b in batches) == len(triples)
    sizes = [np.bincount(b[0], minlength=b[-1]) for b in batches]
    assert all((s + 3).sum() <= 40 or len(s) == 1 for s in sizes)
    flat = np.concatenate(sizes)
    assert np.all(np.diff(flat) >= 0)


# ----- the network ------------------------------------------------------------------------------
def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * np.where(x > 0, x, alpha * (np.exp(x) - 1))


def test_user_and_item_vectors_match_the_written_network():
    from neural._curatornet_network import CuratorNetwork

    features = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    network = CuratorNetwork(features, item_units=(4, 3), user_units=(5, 3))
    network.reset_parameters(torch.Generator().manual_seed(0))
    w = [(layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy())
         for layer in (*network.item_tower, *network.user_tower)]
    item = selu(selu(features @ w[0][0].T + w[0][1]) @ w[1][0].T + w[1][1])
    profiles = [[0, 2, 5], [1]]
    pooled = np.array([np.r_[item[p].mean(0), item[p].max(0)] for p in profiles])
    user = selu(selu(pooled @ w[2][0].T + w[2][1]) @ w[3][0].T + w[3][1])
    with torch.no_grad():
        items = network.all_item_vectors()
        rows = torch.tensor([0, 0, 0, 1])
        got = network.users(rows, items[torch.tensor([0, 2, 5, 1])], 2)
    assert np.allclose(items.numpy(), item, atol=1e-5)
    assert np.allclose(got.numpy(), user, atol=1e-5)


def test_loss_is_mean_bpr_plus_half_weight_decay():
    model = CuratorNet(weight_decay=0.0)
    features = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    from neural._curatornet_network import CuratorNetwork

    network = CuratorNetwork(features, item_units=(3, 3), user_units=(3,))
    network.reset_parameters(torch.Generator().manual_seed(1))
    batch = (torch.tensor([0, 0, 1]), torch.tensor([1, 2, 3]), torch.tensor([0, 4]), torch.tensor([3, 1]), 2)
    with torch.no_grad():
        items = network.items(torch.arange(5))
        users = network.users(batch[0], items[batch[1]], 2)
        delta = (users * items[batch[2]]).sum(1) - (users * items[batch[3]]).sum(1)
        bpr = float(torch.log1p(torch.exp(-delta)).mean())
        assert float(model._batch_loss(network, batch, None, 0)) == pytest.approx(bpr, rel=1e-5)
        model.weight_decay = 1e-2
        weights = sum(float(w.pow(2).sum()) for w in network.weights())
        assert float(model._batch_loss(network, batch, None, 0)) == pytest.approx(bpr + 0.5e-2 * weights, rel=1e-5)


def test_learning_rates_are_the_released_decaying_list():
    rates = CuratorNet()._learning_rates()
    assert len(rates) == 10 and rates[0] == 1e-4
    assert rates[-1] == pytest.approx(1e-4 * 0.6 ** 9) and rates[-1] >= 1e-6


# ----- learning ---------------------------------------------------------------------------------
def planted(seed=0, n_users=200, n_items=90, groups=3, dim=12):
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, groups, n_users)
    item_group = np.arange(n_items) % groups
    centres = rng.normal(size=(groups, dim)) * 2
    features = (centres[item_group] + rng.normal(size=(n_items, dim))).astype(np.float32)
    likes = rng.random((n_users, n_items)) < np.where(user_group[:, None] == item_group[None, :], 0.3, 0.02)
    held_out = likes & (rng.random(likes.shape) < 0.25)
    return sp.csr_matrix(likes & ~held_out, dtype=np.float32), sp.csr_matrix(held_out, dtype=np.float32), features


LEARNING = {"samples_per_guideline": 3000, "clusters": 6, "pca_components": 8, "cluster_runs": 1, "epochs": 6,
            "lr": 3e-3, "batch_size": 20_000, "device": "cpu"}


def with_features(train, features, **kwargs):
    return TrainingData(train, item_features={KEY: make_feature_set(KEY, features)}, **kwargs)


@pytest.mark.parametrize("sampling", ["guidelines", "uniform"])
def test_learns_planted_visual_structure(sampling):
    train, test, features = planted()
    shuffled = features[np.random.default_rng(5).permutation(len(features))]
    validation = as_validation(train, test)
    model = CuratorNet(sampling=sampling, **LEARNING).fit(with_features(train, features))
    blind = CuratorNet(sampling=sampling, **LEARNING).fit(with_features(train, shuffled))
    ndcg = {name: validation_value(m, validation) for name, m in
            (("curatornet", model), ("shuffled", blind), ("pop", Popularity(train)))}
    assert ndcg["curatornet"] > ndcg["pop"] + 0.05, ndcg
    assert ndcg["curatornet"] > ndcg["shuffled"] + 0.05, ndcg


def test_new_users_are_scored_from_their_history_without_retraining():
    train, _, features = planted(n_users=60)
    model = CuratorNet(**{**LEARNING, "epochs": 1}).fit(with_features(train, features))
    history = sp.csr_matrix(np.eye(1, 90, 7, dtype=np.float32) + np.eye(1, 90, 10, dtype=np.float32))
    unseen = model.score(np.array([10_000]), history)
    network = model.network_
    with torch.no_grad():
        items = network.all_item_vectors()
        user = network.users(torch.tensor([0, 0]), items[torch.tensor([7, 10])], 1)
    assert np.allclose(unseen, (user @ items.T).float().numpy(), atol=1e-6)


def test_refit_replays_the_rate_drops_of_tuning():
    train, test, features = planted(n_users=80)
    validation = as_validation(train, test)
    data = with_features(train, features).with_validation(validation)
    tuned = CuratorNet(**{**LEARNING, "epochs": 5, "patience": 1, "lr": 1e-2}).fit(data)
    assert tuned.frozen_params_ == {"rate_drops": [e for e in tuned.rate_drops_ if e < tuned.best_epoch_]}
    replay = CuratorNet(**{**LEARNING, "epochs": 5, "lr": 1e-2, "rate_drops": [1, 3]}).fit(with_features(train, features))
    assert replay.rate_drops_ == [1, 3]


def test_artist_column_and_refusals():
    train, _, features = planted(n_users=20, n_items=6)
    items = pd.DataFrame({"item": [0, 1, 2, 3, 4, 5], "genres": ["A|B", "A", "A|B", None, "", "C"]})
    data = with_features(train, features, items=items)
    assert item_artists("curatornet", data, "genres").tolist() == [0, 1, 0, -1, -1, 2]
    with pytest.raises(UnsupportedProtocolError, match=r"needs item attribute 'director'"):
        CuratorNet(artist="director", **LEARNING).fit(data)
    with pytest.raises(UnsupportedProtocolError, match=r"needs item features"):
        CuratorNet(**LEARNING).fit(TrainingData(train))
    with pytest.raises(Exception, match=r"sampling='random' is invalid"):
        CuratorNet(sampling="random", **LEARNING).fit(data)


def test_uniform_triples_are_positives_over_negatives():
    train, _, _ = planted(n_users=30)
    triples = uniform_triples(train, 500, np.random.default_rng(0))
    dense = train.toarray()
    assert dense[triples.user, triples.positive].all() and not dense[triples.user, triples.negative].any()
    assert all(sorted(triples.profile(k)) == sorted(train[triples.user[k]].indices) for k in range(0, 500, 50))


def test_each_guideline_keeps_at_most_its_target_with_many_small_baskets():
    """One basket per interaction (distinct times): the notebook's ceilings would give every
    basket transition a draw; each guideline keeps at most the target."""
    train, _, features = planted(n_users=80)
    rows = np.repeat(np.arange(80), np.diff(train.indptr))
    stamps = sp.csr_matrix((np.arange(train.nnz, dtype=np.float64) + 1, (rows, train.indices)), shape=train.shape)
    clusters = visual_clusters(features, n_components=8, n_clusters=6, runs=1)
    triples = GuidelineSampler(train, stamps, clusters, np.arange(90) % 7).sample(50, np.random.default_rng(0))
    counts = np.bincount(triples.guideline, minlength=7)[1:]
    assert counts.max() <= 50 and counts[4] > 0 and counts[0] > 0  # guideline 5 drawn, capped
