"""Item images and named content feature sets in the prepared data: the on-disk format, TF-IDF
golden values, coverage on the real (mirrored) data, and no machine path in any meta file."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets.canonical import PreparedData, load_prepared
from common.errors import RecAuditError
from datasets.fetch import fetch_dataset
from datasets.item_data import ItemImages, make_feature_set, read_feature_set
from datasets.prepare import prepare_dataset, tfidf
from datasets.registry import MANIFEST_DIR, get_dataset
from datasets.synthetic import write_synthetic_raw
from mirror_raw import link_raw, mirror_root

MIRROR = os.environ.get("RECAUDIT_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="needs the real-data mirror: set RECAUDIT_MIRROR")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def json_strings(value):
    """Every string (keys included) inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)


def assert_no_machine_path(prepared: Path, *paths: Path) -> None:
    """No string in meta.json or any feature set's meta.json contains one of ``paths``."""
    forbidden = {str(p) for path in paths for p in (Path(path), Path(path).resolve())}
    metas = [prepared / "meta.json", *sorted((prepared / "features").glob("*/meta.json"))]
    for meta in metas:
        for text in json_strings(json.loads(meta.read_text())):
            assert not any(bad in text for bad in forbidden), f"{meta.relative_to(prepared)}: {text!r}"
            assert not text.startswith("/"), f"{meta.relative_to(prepared)}: {text!r}"


# ----- TF-IDF: golden values by hand -------------------------------------------------------


def test_tfidf_golden_values():
    counts = sp.csr_matrix(np.array([[2, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 3]], dtype=np.float32))
    weights, present = tfidf(counts)
    # items with text: 0, 1, 3 -> N = 3; df = (2, 2, 1); idf = (ln 1.5, ln 1.5, ln 3)
    assert present.tolist() == [True, True, False, True]
    a, c = math.log(1.5), math.log(3)
    row3 = np.array([1 * a, 0, 3 * c]) / math.sqrt(a * a + 9 * c * c)
    expected = np.array([[2 / math.sqrt(5), 1 / math.sqrt(5), 0], [0, 1, 0], [0, 0, 0], row3])
    np.testing.assert_allclose(weights.toarray(), expected, rtol=1e-6, atol=1e-7)
    assert weights.dtype == np.float32 and sp.isspmatrix_csr(weights)


def test_tfidf_word_in_every_text_weighs_nothing_and_n_counts_only_items_with_text():
    counts = sp.csr_matrix(np.array([[1, 1], [4, 0], [0, 0], [0, 0]], dtype=np.float32))
    weights, present = tfidf(counts)
    # N = 2 (not 4): word 0 is in both texts -> idf 0; word 1: ln 2
    assert present.tolist() == [True, True, False, False]
    np.testing.assert_allclose(weights.toarray(), [[0, 1], [0, 0], [0, 0], [0, 0]], atol=1e-7)
    features = make_feature_set("bow-tfidf", weights, present)
    assert features.present.tolist() == [True, True, False, False]  # item 1 has text, but no weighted word


def test_tfidf_refuses_negative_counts():
    with pytest.raises(RecAuditError, match="negative counts"):
        tfidf(sp.csr_matrix(np.array([[1, -1]], dtype=np.float32)))


# ----- format on synthetic raw files ----------------------------------------------------------


def test_prepared_images_and_features_on_synthetic_ml1m_posters(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-posters", tmp_path / "raw", n_users=30, n_items=60, seed=3)
    data = prepare_dataset("movielens-1m-posters", raw_dir, tmp_path / "out", {"min_item_interactions": 2})
    out = tmp_path / "out"
    table = pd.read_parquet(out / "item_images.parquet")
    assert list(table.columns) == ["item", "image_path", "sha256"]
    assert table["item"].tolist() == list(range(data.n_items))
    with_image = table.dropna(subset=["image_path"])
    assert table["sha256"].isna().tolist() == table["image_path"].isna().tolist()
    assert all(sha256_of(raw_dir / path) == digest for path, digest in zip(with_image["image_path"], with_image["sha256"]))
    # the paths are the posters of exactly the prepared items' movies that have one
    movie_of = data.items.set_index("item")["original_id"]
    on_disk = {p.name for p in (raw_dir / "MovieImages").iterdir()}
    expected = [f"MovieImages/{movie_of[i]}.jpg" if f"{movie_of[i]}.jpg" in on_disk else None for i in range(data.n_items)]
    assert [None if pd.isna(path) else path for path in table["image_path"]] == expected
    meta = json.loads((out / "meta.json").read_text())
    interactions = pd.read_parquet(out / "interactions.parquet")
    covered = interactions["item"].isin(with_image["item"])
    assert meta["item_images"]["items_with_image"] == len(with_image) > 0
    assert meta["item_images"]["items_without_image"] == data.n_items - len(with_image) > 0
    assert meta["item_images"]["interactions_with_image"] == int(covered.sum())
    assert meta["item_images"]["interaction_share_with_image"] == pytest.approx(covered.mean(), abs=1e-6)
    assert meta["feature_sets"] == ["genres"] and sorted(p.name for p in (out / "features").iterdir()) == ["genres"]
    genres = read_feature_set(out / "features" / "genres")
    assert genres.meta["source"] == "movies.dat" and "genres" in genres.meta["features"]
    assert genres.meta["dataset"] == "movielens-1m-posters" and genres.dim == len(genres.meta["feature_names"])
    assert meta["item_features"]["genres"]["sha256"] == genres.sha256
    assert_no_machine_path(out, raw_dir, tmp_path)


def test_a_png_named_jpg_is_hashed_like_any_other_file(tmp_path):
    """MovieImages/3575.jpg of the real set is PNG data: the table records its bytes' hash, nothing decodes it."""
    raw_dir = write_synthetic_raw("movielens-1m-posters", tmp_path / "raw", n_users=20, n_items=30, seed=1)
    first = sorted((raw_dir / "MovieImages").iterdir())[0]
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    first.write_bytes(png)
    data = prepare_dataset("movielens-1m-posters", raw_dir, None, {})
    row = data.item_images[data.item_images["image_path"] == f"MovieImages/{first.name}"]
    assert row["sha256"].tolist() == [hashlib.sha256(png).hexdigest()]
    assert get_dataset("movielens-1m-posters").file("MovieImages/3575.jpg").checksum.startswith("sha256:")


def test_an_image_the_parser_names_but_the_raw_folder_lacks_is_an_error(tmp_path):
    from datasets.prepare import remap_images

    images = pd.DataFrame({"item": [1, 2], "image_path": ["MovieImages/none.jpg", None]})
    with pytest.raises(RecAuditError, match=r"image MovieImages/none\.jpg of item 1 is missing"):
        remap_images(images, pd.Index([1, 2]), tmp_path)


def test_feature_sets_round_trip_and_are_verified(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=20, seed=4)
    data = prepare_dataset("movielens-1m", raw_dir, tmp_path / "out", {})
    back = load_prepared(tmp_path / "out")
    assert set(back.item_features) == {"genres"} and back.item_images is None
    assert back.item_features["genres"].sha256 == data.item_features["genres"].sha256
    assert (back.item_features["genres"].csr() != data.item_features["genres"].csr()).nnz == 0
    values = tmp_path / "out" / "features" / "genres" / "values.npz"
    matrix = sp.load_npz(values).tocsr()
    matrix.data[0] = 5.0
    sp.save_npz(values, matrix, compressed=False)
    with pytest.raises(RecAuditError, match="does not match its meta.json"):
        load_prepared(tmp_path / "out")


def test_old_prepared_folder_asks_to_prepare_again(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=10, seed=5)
    prepare_dataset("movielens-1m", raw_dir, tmp_path / "out", {})
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    del meta["feature_sets"]
    (tmp_path / "out" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "out" / "item_content.npz").write_bytes(b"")
    with pytest.raises(RecAuditError, match="prepared by an older version"):
        load_prepared(tmp_path / "out")


def test_image_table_needs_one_row_per_item_in_range():
    data = PreparedData("x", pd.DataFrame({"user": [0], "item": [0]}), 1, 3, pd.DataFrame({"user": [0]}),
                        pd.DataFrame({"item": range(3)}),
                        item_images=pd.DataFrame({"item": [2], "image_path": ["a.jpg"]}))
    assert data.item_images["image_path"].tolist() == [None, None, "a.jpg"]
    assert data.item_images["sha256"].tolist() == [None, None, None]
    with pytest.raises(RecAuditError, match="outside 0..2"):
        PreparedData("x", pd.DataFrame({"user": [0], "item": [0]}), 1, 3, pd.DataFrame({"user": [0]}),
                     pd.DataFrame({"item": range(3)}), item_images=pd.DataFrame({"item": [3], "image_path": ["a"]}))


# ----- real data (fetched from the mirror, then prepared) -------------------------------------


@pytest.fixture(scope="module")
def movielens_100k(tmp_path_factory):
    mirror = mirror_root()
    folder = tmp_path_factory.mktemp("ml100k")
    fetch_dataset("movielens-100k", folder / "raw", mirror=mirror, progress=False)
    data = prepare_dataset("movielens-100k", folder / "raw", folder / "prepared",
                           get_dataset("movielens-100k").default_preprocessing)
    return folder, data


@needs_mirror
@pytest.mark.slow
def test_movielens_100k_posters_in_the_prepared_data(movielens_100k):
    folder, data = movielens_100k
    table = pd.read_parquet(folder / "prepared" / "item_images.parquet")
    assert list(table.columns) == ["item", "image_path", "sha256"] and table["item"].tolist() == list(range(1682))
    with_image = table.dropna(subset=["image_path"])
    assert len(with_image) == 1618  # SOURCES.md: 1,618 of 1,682 items
    registry = {f.name: f.checksum for f in get_dataset("movielens-100k").files}
    for path, digest in zip(with_image["image_path"], with_image["sha256"]):
        assert sha256_of(folder / "raw" / path) == digest and registry[path] == f"sha256:{digest}"
    # item 1 (Toy Story) is ML-1M movie 1
    assert table.loc[0, "image_path"] == "MovieImages/1.jpg"
    meta = json.loads((folder / "prepared" / "meta.json").read_text())
    images = meta["item_images"]
    assert (images["items_with_image"], images["items_without_image"]) == (1618, 64)
    assert images["interactions_with_image"] == 96_593  # SOURCES.md: 96,593 of 100,000 u.data ratings
    assert images["interaction_share_with_image"] == pytest.approx(0.96593)
    assert "image_root" not in json.dumps(meta)
    back = load_prepared(folder / "prepared")
    loaded = ItemImages.from_table(back.item_images, back.n_items, folder / "raw")
    assert loaded.present.sum() == 1618 and loaded.path(0).is_file()


@needs_mirror
@pytest.mark.slow
def test_movielens_100k_feature_sets(movielens_100k):
    folder, data = movielens_100k
    assert sorted(p.name for p in (folder / "prepared" / "features").iterdir()) == ["genres"]
    genres = read_feature_set(folder / "prepared" / "features" / "genres")
    assert (genres.n_items, genres.dim, int(genres.values.nnz)) == (1682, 19, 2893)
    assert genres.present.all()  # every u.item row has a genre flag (two only "unknown")
    assert genres.meta["source"] == "u.item" and genres.meta["feature_names"][0] == "unknown"


@needs_mirror
@pytest.mark.slow
def test_no_machine_path_in_any_prepared_meta(movielens_100k):
    folder, _ = movielens_100k
    assert_no_machine_path(folder / "prepared", folder / "raw", folder, mirror_root())
    meta = json.loads((folder / "prepared" / "meta.json").read_text())
    assert set(meta["source_files"]) >= {"u.data", "ml100k_item_to_ml1m_movie.tsv", "MovieImages/"}
    assert meta["source_files"]["MovieImages/"]["files"] == 1600


@needs_mirror
@pytest.mark.slow
def test_ml_latest_small_posters_and_genres(tmp_path):
    fetch_dataset("ml-latest-small", tmp_path / "raw", mirror=mirror_root(), progress=False)
    data = prepare_dataset("ml-latest-small", tmp_path / "raw", tmp_path / "prepared", {})
    # independent reading: rated movies listed in index.tsv
    root = mirror_root()
    ratings = pd.read_csv(root / "ml-latest-small" / "ratings.csv")
    index = pd.read_csv(root / "ml-latest-small-images" / "index.tsv", sep="\t")
    rated = np.sort(ratings["movieId"].unique())
    assert data.n_items == len(rated) == 9724
    with_image = data.item_images.dropna(subset=["image_path"])
    assert len(with_image) == int(np.isin(rated, index["movieId"]).sum()) == 5559  # of 5,563: 4 are never rated
    meta = data.meta["item_images"]
    assert meta["interactions_with_image"] == int(ratings["movieId"].isin(index["movieId"]).sum()) == 94_388
    assert meta["interaction_share_with_image"] == pytest.approx(94_388 / 100_836, abs=1e-6)
    path_of = index.set_index("movieId")["image_path"]
    original = data.items["original_id"].astype(int)
    assert with_image["image_path"].tolist() == path_of[original[with_image["item"]]].tolist()
    hashes = {f.name: f.checksum for f in get_dataset("ml-latest-small").files}
    for path, digest in zip(with_image["image_path"], with_image["sha256"]):
        assert hashes[path] == f"sha256:{digest}"
    assert sha256_of(tmp_path / "raw" / with_image["image_path"].iloc[-1]) == with_image["sha256"].iloc[-1]
    genres = data.item_features["genres"]
    assert genres.dim == 19 and genres.n_items == 9724
    assert int((~genres.present).sum()) == 34  # rated movies with "(no genres listed)"
    assert_no_machine_path(tmp_path / "prepared", tmp_path / "raw", tmp_path, root)


@needs_mirror
@pytest.mark.slow
def test_citeulike_t_bag_of_words_and_its_tfidf(tmp_path):
    raw_dir = link_raw("citeulike-t", tmp_path)
    prepare_dataset("citeulike-t", raw_dir, tmp_path / "prepared", {})
    assert sorted(p.name for p in (tmp_path / "prepared" / "features").iterdir()) == ["bow", "bow-tfidf"]
    back = load_prepared(tmp_path / "prepared")
    bow, weighted = back.item_features["bow"], back.item_features["bow-tfidf"]
    assert (bow.n_items, bow.dim) == (weighted.n_items, weighted.dim) == (25_584, 20_000)
    assert np.array_equal(bow.present, weighted.present)
    assert weighted.meta["derived_from"] == "bow" and "ln(N / df)" in weighted.meta["features"]
    # an independent TF-IDF of one item, straight from mult.dat
    original = back.items["original_id"].astype(int).to_numpy()
    lines = (raw_dir / "mult.dat").read_text().splitlines()
    texts = {item: dict(map(int, pair.split(":")) for pair in lines[item].split()[1:]) for item in original}
    texts = {item: words for item, words in texts.items() if words}
    assert len(texts) == int(bow.present.sum())
    df = {}
    for words in texts.values():
        for word in words:
            df[word] = df.get(word, 0) + 1
    item = 10
    x = {w: c * math.log(len(texts) / df[w]) for w, c in texts[original[item]].items()}
    norm = math.sqrt(sum(v * v for v in x.values()))
    row = weighted.csr()[item].toarray().ravel()
    np.testing.assert_allclose(row[list(x)], [v / norm for v in x.values()], rtol=1e-5)
    assert np.count_nonzero(row) == sum(v != 0 for v in x.values())
    norms = np.sqrt(np.asarray(weighted.csr().multiply(weighted.csr()).sum(axis=1)).ravel())
    assert np.allclose(norms[weighted.present & (np.diff(weighted.csr().indptr) > 0)], 1, atol=1e-5)
    counts = bow.csr()[item].toarray().ravel()
    assert {int(w): int(counts[w]) for w in np.flatnonzero(counts)} == texts[original[item]]
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["item_features"]["bow-tfidf"]["n_present"] == len(texts)
    assert meta["item_features"]["bow"]["rows_dropped_no_interactions"] == 25_975 - 25_584


# ----- manifests against the mirror -------------------------------------------------------------


@needs_mirror
def test_ml100k_poster_manifest_is_what_the_title_map_names():
    root = mirror_root()
    mapping = pd.read_csv(root / "movielens-1m-images" / "ml100k_item_to_ml1m_movie.tsv", sep="\t")
    needed = sorted(mapping.loc[mapping["has_image"] == 1, "ml1m_movie_id"].unique())
    listed = (MANIFEST_DIR / "movielens-100k-posters.txt").read_text().split()
    assert listed == [f"MovieImages/{movie}.jpg" for movie in needed] and len(listed) == 1600
    assert all((root / "movielens-1m-images" / name).is_file() for name in listed)


@needs_mirror
def test_ml_latest_small_manifest_is_the_index_with_the_files_hashes():
    root = mirror_root()
    index = pd.read_csv(root / "ml-latest-small-images" / "index.tsv", sep="\t")
    lines = [line.split("  ", 1) for line in (MANIFEST_DIR / "ml-latest-small-images.sha256").read_text().splitlines()]
    assert [path for _, path in lines] == index["image_path"].tolist()
    assert all(sha256_of(root / path) == digest for digest, path in lines)
    posters = sorted(p.name for p in (root / "ml-latest-small-images" / "posters").iterdir())
    assert sorted(path.rsplit("/", 1)[1] for _, path in lines if "/posters/" in path) == posters
