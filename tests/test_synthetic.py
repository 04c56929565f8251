"""Synthetic generator: determinism, shape, power-law popularity and planted structure."""
from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from datasets.canonical import load_prepared, write_prepared
from common.errors import RecAuditError
from datasets.synthetic import make_synthetic, write_synthetic_raw


def as_matrix(data) -> sp.csr_matrix:
    inter = data.interactions
    return sp.csr_matrix((np.ones(len(inter)), (inter["user"], inter["item"])), shape=(data.n_users, data.n_items))


def test_same_seed_same_data_different_seed_different_data():
    kwargs = dict(content_features=50, ratings=True)
    first, second = make_synthetic(300, 200, 0.05, 11, **kwargs), make_synthetic(300, 200, 0.05, 11, **kwargs)
    other = make_synthetic(300, 200, 0.05, 12, **kwargs)
    assert first.interactions.equals(second.interactions)
    assert (first.item_features["bow"].csr() != second.item_features["bow"].csr()).nnz == 0
    assert not first.interactions[["user", "item"]].equals(other.interactions[["user", "item"]])


def test_shape_density_ids_and_no_duplicates():
    data = make_synthetic(500, 400, 0.04, 3, min_user_interactions=3)
    inter = data.interactions
    assert list(inter.columns) == ["user", "item", "timestamp"]
    assert inter["user"].between(0, 499).all() and inter["item"].between(0, 399).all()
    assert not inter.duplicated(["user", "item"]).any()
    assert abs(len(inter) / (500 * 400) - 0.04) < 0.04 * 0.05
    assert inter.groupby("user").size().reindex(range(500), fill_value=0).min() >= 3
    assert data.users["original_id"].tolist() == [str(u) for u in range(500)]


def test_item_popularity_is_heavy_tailed():
    data = make_synthetic(2000, 1000, 0.02, 5, popularity_exponent=1.0)
    counts = np.sort(np.bincount(data.interactions["item"], minlength=1000))[::-1]
    top_share = counts[:100].sum() / counts.sum()
    assert top_share > 0.4  # a uniform catalogue would give the top 10% of items about 10%
    flat = make_synthetic(2000, 1000, 0.02, 5, popularity_exponent=0.0, item_concentration=50.0)
    flat_counts = np.sort(np.bincount(flat.interactions["item"], minlength=1000))[::-1]
    assert flat_counts[:100].sum() / flat_counts.sum() < 0.2


def recall_at_10(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    scores = np.where(train.toarray() > 0, -np.inf, scores)
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    hits = np.take_along_axis(test.toarray(), top, axis=1).sum(axis=1)
    relevant = np.asarray(test.sum(axis=1)).ravel()
    users = relevant > 0
    return float(np.mean(hits[users] / np.minimum(relevant[users], 10)))


def holdout(matrix: sp.csr_matrix, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    coo = matrix.tocoo()
    held = np.random.default_rng(seed).random(coo.nnz) < 0.2
    build = lambda mask: sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=matrix.shape)  # noqa: E731
    return build(~held), build(held)


def test_planted_structure_rank_k_svd_beats_popularity():
    data = make_synthetic(800, 500, 0.04, 21, n_factors=8)
    train, test = holdout(as_matrix(data), seed=0)
    u, s, vt = svds(train.astype(np.float64), k=8, random_state=0)
    svd = recall_at_10((u * s) @ vt, train, test)
    popularity = recall_at_10(np.tile(np.asarray(train.sum(axis=0)), (train.shape[0], 1)), train, test)
    assert svd > 1.7 * popularity, (svd, popularity)  # about 2.1-2.5x over seeds


def test_content_carries_the_latent_factors():
    data = make_synthetic(800, 500, 0.04, 22, content_features=300)
    train, test = holdout(as_matrix(data), seed=1)
    content = data.item_features["bow"].dense()
    content /= np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)
    by_content = recall_at_10(train @ (content @ content.T), train, test)  # content-based item kNN
    by_chance = recall_at_10(np.random.default_rng(0).random(train.shape), train, test)
    assert data.item_features["bow"].values.shape == (500, 300) and data.item_features["bow"].values.nnz > 0
    assert by_content > 3 * by_chance, (by_content, by_chance)


def test_ratings_follow_affinity_and_round_trip(tmp_path):
    data = make_synthetic(300, 200, 0.05, 2, ratings=True, timestamps=False)
    assert set(np.unique(data.interactions["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert "timestamp" not in data.interactions
    write_prepared(data, tmp_path / "syn")
    back = load_prepared(tmp_path / "syn")
    assert back.interactions.equals(data.interactions)
    assert back.meta["synthetic"]["seed"] == 2


def test_images_are_written_small_and_labelled(tmp_path):
    from PIL import Image

    data = make_synthetic(50, 20, 0.2, 1, images=True, image_dir=tmp_path / "img", image_size=8)
    assert data.item_images["image_path"].tolist() == [f"{i}.png" for i in range(20)]
    with Image.open(tmp_path / "img" / "3.png") as image:
        assert image.size == (8, 8) and image.mode == "RGB"


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_users=10, n_items=10, density=0.9, seed=0), "density"),
    (dict(n_users=0, n_items=10, density=0.1, seed=0), "n_users"),
    (dict(n_users=10, n_items=10, density=0.1, seed=0, images=True), "image_dir"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(RecAuditError, match=message):
        make_synthetic(**kwargs)


def test_unknown_raw_kind(tmp_path):
    with pytest.raises(RecAuditError, match="unknown synthetic raw kind 'netflix'; known synthetic raw kinds: "
                                            ".*movielens-1m, "):
        write_synthetic_raw("netflix", tmp_path)


@pytest.mark.slow
def test_large_shape_is_fast():
    start = time.perf_counter()
    data = make_synthetic(138_000, 20_000, 0.005, 0)
    elapsed = time.perf_counter() - start
    assert abs(len(data.interactions) / (138_000 * 20_000) - 0.005) < 0.0005
    assert elapsed < 60, elapsed
