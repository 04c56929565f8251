"""DVBPR: CNN-F's TensorFlow SAME arithmetic by hand, the loss against the written objective
(regularisers not swapped, a sum over the batch), the sampler, planted visual structure on
synthetic images (against pop and against shuffled images), cold items, cached item vectors,
determinism and refusals."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from datasets.item_data import ItemImages
from neural._dvbpr_network import CNNF, flattened_size, same_padding
from neural.dvbpr import DVBPR, item_pixels
from neural.sampling import NegativeSampler
from neural_synthetic import Popularity, as_validation, torch_threads
from protocols.contract import TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
from protocols.early_stopping import validation_value

SMALL = {"factors": 8, "image_size": 32, "hidden_units": 32, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


# ----- CNN-F, by hand --------------------------------------------------------------------------
def test_same_padding_and_flattened_sizes_by_hand():
    # 224 / 4 -> 56 outputs need (56 - 1) * 4 + 11 = 231 inputs: 7 pixels of padding, 3 before and 4 after.
    assert same_padding(224, 11, 4) == (3, 4)
    assert same_padding(28, 5, 1) == (2, 2)
    assert same_padding(7, 3, 1) == (1, 1)
    # 224 -> conv/4 56 -> pool 28 -> pool 14 -> pool 7: the released code's 7*7*256.
    assert flattened_size(224) == 7 * 7 * 256
    # 64 -> 16 -> 8 -> 4 -> 2; 33 -> 9 -> 5 -> 3 -> 2 (ceil at every step).
    assert flattened_size(64) == 2 * 2 * 256
    assert flattened_size(33) == 2 * 2 * 256


def test_cnnf_layers_and_output_shape():
    network = CNNF(64, 10, hidden_units=16)
    network.reset_parameters(torch.Generator().manual_seed(0))
    shapes = [tuple(layer.weight.shape) for layer in network.convolutions]
    assert shapes == [(64, 3, 11, 11), (256, 64, 5, 5), (256, 256, 3, 3), (256, 256, 3, 3), (256, 256, 3, 3)]
    assert network.hidden1.weight.shape == (16, 1024) and network.output.weight.shape == (10, 16)
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in network.convolutions)
    # Xavier-uniform bound of the first convolution: sqrt(6 / (3*121 + 64*121)).
    bound = np.sqrt(6.0 / (3 * 121 + 64 * 121))
    weight = network.convolutions[0].weight.detach()
    assert float(weight.abs().max()) <= bound and float(weight.abs().max()) > 0.9 * bound
    network.eval()
    assert network(torch.zeros(5, 3, 64, 64)).shape == (5, 10)


def test_first_convolution_pads_like_tensorflow_same():
    """A 1-channel-in impulse at the last pixel is seen by the last output only if the extra
    pixel of padding goes after (TensorFlow's SAME)."""
    network = CNNF(32, 2, hidden_units=4)
    network.reset_parameters(torch.Generator().manual_seed(0))
    convolution = network.convolutions[0]
    with torch.no_grad():
        convolution.weight.zero_()
        convolution.weight[0, 0] = 1.0  # sums the 11x11 window of channel 0
    image = torch.zeros(1, 3, 32, 32)
    image[0, 0, 0, 0] = 1.0
    image[0, 0, 31, 31] = 2.0
    before, after = same_padding(32, 11, 4)  # 32 -> 8 outputs need 39 inputs: 7 = 3 + 4
    assert (before, after) == (3, 4)
    padded = torch.nn.functional.pad(image, (before, after, before, after))
    out = convolution(padded)[0, 0].detach()
    assert out.shape == (8, 8)
    # Output (0, 0) covers padded rows 0..10 = image rows -3..7; output (7, 7) covers rows 25..35 = image rows 25..31.
    assert float(out[0, 0]) == 1.0 and float(out[7, 7]) == 2.0


# ----- the objective ---------------------------------------------------------------------------
def planted_images(tmp_path, n_items, groups, seed, missing=()):
    """16x16 PNGs, one colour per group plus noise; ``missing`` items have no image."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(groups, 3))
    rows = []
    for item in range(n_items):
        if item in missing:
            continue
        pixels = np.clip(palette[item % groups] + rng.integers(-25, 26, size=(16, 16, 3)), 0, 255).astype(np.uint8)
        path = tmp_path / f"{item}.png"
        Image.fromarray(pixels).save(path)
        rows.append((item, path.name, hashlib.sha256(path.read_bytes()).hexdigest()))
    return ItemImages.from_table(pd.DataFrame(rows, columns=["item", "image_path", "sha256"]), n_items, tmp_path)


def tiny(tmp_path):
    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 1, 0],
                                    [0, 1, 1, 0, 0, 0],
                                    [1, 0, 0, 1, 0, 0],
                                    [0, 0, 1, 1, 1, 0]], dtype=np.float32))
    return TrainingData(train, images=planted_images(tmp_path, 6, 3, seed=1, missing=(4,)))


def fresh(model, data):
    model._check_params()
    return model._fresh_network(data, torch.Generator().manual_seed(0), torch.device("cpu"))


BATCH = (torch.tensor([0, 1, 2, 3, 3]), torch.tensor([1, 2, 3, 2, 4]), torch.tensor([5, 4, 5, 0, 1]))


@pytest.mark.parametrize("latent_factors", [0, 3])
def test_loss_is_the_released_objective_with_regularisers_in_place(tmp_path, latent_factors):
    data = tiny(tmp_path)
    model = DVBPR(**SMALL, latent_factors=latent_factors, lambda_cnn=0.0, lambda_theta=0.0)
    network = fresh(model, data)
    network.eval()  # dropout off: the same Phi in every call
    u, i, j = BATCH
    with torch.no_grad():
        phi = network.cnn((network.pixels.float() - 127.5) / 127.5)
        x = (network.theta_user[u] * (phi[i] - phi[j])).sum(1)
        if latent_factors:
            gamma_i = network.gamma_item * network.warm[:, None]
            x = x + (network.gamma_user[u] * (gamma_i[i] - gamma_i[j])).sum(1)
        bpr = float(-torch.log(torch.sigmoid(x)).sum())  # a sum over the batch, not a mean
        base = float(model._batch_loss(network, BATCH, None, 0))
        assert base == pytest.approx(bpr, rel=1e-5)
        weights = sum(float(w.pow(2).sum()) for w in network.cnn.weights())
        thetas = float(network.theta_user[u].pow(2).sum())  # once per triple: user 3 twice
        if latent_factors:
            gammas = gamma_i
            thetas += float(network.gamma_user[u].pow(2).sum() + gammas[i].pow(2).sum() + gammas[j].pow(2).sum())
        model.lambda_cnn, model.lambda_theta = 1e-3, 0.0
        assert float(model._batch_loss(network, BATCH, None, 0)) - base == pytest.approx(0.5e-3 * weights, rel=1e-4)
        model.lambda_cnn, model.lambda_theta = 0.0, 1.0
        assert float(model._batch_loss(network, BATCH, None, 0)) - base == pytest.approx(0.5 * thetas, rel=1e-4)
    # Biases are never regularised.
    assert all(w.dim() >= 2 for w in network.cnn.weights())


def test_initial_user_vectors_are_uniform_over_a_hundredth(tmp_path):
    network = fresh(DVBPR(**SMALL), tiny(tmp_path))
    theta = network.theta_user.detach()
    assert float(theta.min()) >= 0 and float(theta.max()) < 0.01


def test_missing_images_are_mid_grey_and_pixels_are_stretched(tmp_path):
    data = tiny(tmp_path)
    pixels = item_pixels(data.images, 32)
    assert pixels.shape == (6, 3, 32, 32) and pixels.dtype == torch.uint8
    assert int(pixels[4].min()) == int(pixels[4].max()) == 128
    image = np.asarray(Image.open(tmp_path / "0.png"), dtype=np.float32)
    # A 16x16 image stretched to 32x32 keeps its mean colour (bilinear resampling).
    assert np.allclose(pixels[0].float().mean(dim=(1, 2)).numpy(), image.mean(axis=(0, 1)), atol=2.0)


# ----- sampling --------------------------------------------------------------------------------
def test_sampler_draws_users_uniformly_and_valid_positives_and_negatives():
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 40)) < np.linspace(0.05, 0.6, 30)[:, None]).astype(np.float32)
    dense[0] = 0  # no items: never drawn
    dense[1] = 1  # every item: no negatives, never drawn
    train = sp.csr_matrix(dense)
    sampler = NegativeSampler(train)
    users, positives, negatives = sampler.user_uniform_triples(56_000, np.random.default_rng(1))
    assert not np.isin(users, [0, 1]).any()
    counts = np.bincount(users, minlength=30)[2:]
    # Uniform over users (not over interactions): 28 users, 2,000 draws each on average.
    assert counts.min() > 1800 and counts.max() < 2200
    assert dense[users, positives].all() and not dense[users, negatives].any()
    # i uniform among u's items: user 29's items each about equally often.
    items_of_29 = positives[users == 29]
    share = np.bincount(items_of_29, minlength=40)[dense[29] > 0] / len(items_of_29)
    assert np.allclose(share, 1 / dense[29].sum(), atol=0.03)


# ----- learning --------------------------------------------------------------------------------
def planted_visual(tmp_path, n_users=160, n_items=60, groups=3, seed=0):
    """Users like the items of one colour group; a quarter of the items never appear in training."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, groups, n_users)
    item_group = np.arange(n_items) % groups
    likes = rng.random((n_users, n_items)) < np.where(user_group[:, None] == item_group[None, :], 0.35, 0.03)
    cold = rng.random(n_items) < 0.25
    held_out = likes & ((rng.random(likes.shape) < 0.25) | cold[None, :])
    train = sp.csr_matrix(likes & ~held_out, dtype=np.float32)
    test = sp.csr_matrix(held_out, dtype=np.float32)
    images = planted_images(tmp_path, n_items, groups, seed=seed + 5)
    return train, test, images, cold


LEARNING = {**SMALL, "lr": 1e-3, "lambda_theta": 1e-3, "lambda_cnn": 1e-4, "epochs": 6, "batch_size": 64}


def test_learns_planted_visual_structure_and_scores_cold_items(tmp_path):
    train, test, images, cold = planted_visual(tmp_path)
    shuffled_root = tmp_path / "shuffled"
    shuffled_root.mkdir()
    order = np.random.default_rng(9).permutation(images.n_items)
    shuffled = ItemImages(root=images.root, paths=tuple(images.paths[k] for k in order),
                          sha256=tuple(images.sha256[k] for k in order))
    validation = as_validation(train, test)
    model = DVBPR(**LEARNING).fit(TrainingData(train, images=images))
    blind = DVBPR(**LEARNING).fit(TrainingData(train, images=shuffled))
    ndcg = {name: validation_value(m, validation) for name, m in
            (("dvbpr", model), ("shuffled", blind), ("pop", Popularity(train)))}
    assert ndcg["dvbpr"] > ndcg["pop"] + 0.05, ndcg
    assert ndcg["dvbpr"] > ndcg["shuffled"] + 0.05, ndcg
    # Cold items (no training interaction) rank through their images: the top 3 cold items hold
    # held-out likes far above chance (the ceiling is about 0.35, the in-group like rate).
    cold_test = test[:, np.flatnonzero(cold)]
    users = np.flatnonzero((np.diff(cold_test.indptr) > 0) & (np.diff(train.indptr) > 0))
    scores = model.score(users, train[users])[:, cold]
    top = np.argsort(-scores, axis=1)[:, :3]
    hits = np.take_along_axis(cold_test[users].toarray(), top, axis=1).mean()
    assert hits > 1.6 * cold_test[users].toarray().mean(), hits


def test_scores_come_from_cached_item_vectors_without_pixels(tmp_path):
    train, test, images, _ = planted_visual(tmp_path, n_users=40, n_items=24)
    model = DVBPR(**{**SMALL, "epochs": 1}).fit(TrainingData(train, images=images))
    network = model.network_
    assert network.pixels is None and network.item_vectors.shape == (24, 8)
    with torch.no_grad():
        phi = network.cnn((item_pixels(images, 32).float() - 127.5) / 127.5)
        expected = (network.theta_user[:5] @ phi.T).numpy()
    assert np.allclose(model.score(np.arange(5), train[:5]), expected, atol=1e-5)
    candidates = np.array([[0, 3, 7], [1, 2, 23], [5, 5, 6], [0, 1, 2], [9, 8, 7]])
    assert np.allclose(model.score_candidates(np.arange(5), train[:5], candidates),
                       np.take_along_axis(expected, candidates, axis=1), atol=1e-5)


def test_same_seed_same_scores_and_a_pickled_model_scores_alike(tmp_path):
    import pickle

    train, _, images, _ = planted_visual(tmp_path, n_users=30, n_items=18)
    first = DVBPR(**{**SMALL, "epochs": 1}).fit(TrainingData(train, images=images))
    second = DVBPR(**{**SMALL, "epochs": 1}).fit(TrainingData(train, images=images))
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    assert np.array_equal(first.score(users, train[users]), second.score(users, train[users]))
    restored = pickle.loads(pickle.dumps(first))
    assert np.array_equal(restored.score(users, train[users]), first.score(users, train[users]))


def test_refuses_data_without_images_and_bad_parameters():
    train = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.raises(UnsupportedProtocolError, match=r"needs item images"):
        check_requirements(DVBPR(), TaskProfile.of(TrainingData(train), np.arange(4)))
    with pytest.raises(UnsupportedProtocolError, match=r"needs item images"):
        DVBPR(**SMALL).fit(TrainingData(train))
    with pytest.raises(Exception, match=r"image_size=16 is invalid; use an integer >= 32"):
        DVBPR(image_size=16)._check_params()
