"""prepare_dataset: options, deduplication, threshold, k-core, re-indexing, given splits, meta."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.canonical import load_prepared
from common.errors import RecAuditError
from datasets.prepare import deduplicate, k_core_mask, prepare_dataset, preprocess, resolve_options
from datasets.synthetic import write_synthetic_raw
from mirror_raw import link_raw


# ----- options ------------------------------------------------------------------------


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(RecAuditError, match=r"unknown preprocessing option\(s\) min_rating; valid options: "
                                            r"rating_threshold, deduplicate, min_user_interactions, min_item_interactions"):
        resolve_options({"min_rating": 4})


@pytest.mark.parametrize("options", [
    {"rating_threshold": "4"}, {"rating_threshold": True}, {"deduplicate": 1},
    {"min_user_interactions": -1}, {"min_item_interactions": 2.5},
])
def test_wrong_option_types(options):
    with pytest.raises(RecAuditError, match="must be"):
        resolve_options(options)


def test_unknown_dataset_lists_known_names(tmp_path):
    with pytest.raises(RecAuditError, match=r"unknown dataset 'movielens-2m'; known datasets: .*movielens-100k"):
        prepare_dataset("movielens-2m", tmp_path, None)


def test_missing_raw_folder(tmp_path):
    with pytest.raises(RecAuditError, match=r"run `python -m datasets fetch movielens-1m` first"):
        prepare_dataset("movielens-1m", tmp_path / "absent", None)


# ----- preprocessing steps (golden values by hand) ------------------------------------


def test_deduplicate_keeps_the_latest_by_timestamp_then_the_last_in_file():
    frame = pd.DataFrame({"user": [1, 1, 1, 1, 2], "item": [7, 7, 8, 7, 7],
                          "rating": [5.0, 2.0, 4.0, 3.0, 1.0], "timestamp": [10, 20, 5, 15, 20]})
    kept = deduplicate(frame)
    assert kept["rating"].tolist() == [2.0, 4.0, 1.0]  # (1,7) at t=20, (1,8), (2,7); file order kept
    tie = pd.DataFrame({"user": [1, 1], "item": [7, 7], "rating": [5.0, 2.0], "timestamp": [10, 10]})
    assert deduplicate(tie)["rating"].tolist() == [2.0]
    no_time = frame.drop(columns="timestamp")
    assert deduplicate(no_time)["rating"].tolist() == [4.0, 3.0, 1.0]


def test_dedup_runs_before_threshold():
    # the user's latest opinion (2 stars) wins, so the threshold then drops the pair
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [7, 7, 7], "rating": [5.0, 2.0, 4.0], "timestamp": [1, 2, 1]})
    kept, steps = preprocess(frame, {"rating_threshold": 4})
    assert kept[["user", "item"]].values.tolist() == [[2, 7]]
    assert [step["interactions"] for step in steps] == [3, 2, 1]
    assert steps[2]["step"] == "rating >= 4"


def test_threshold_on_implicit_data_is_refused():
    frame = pd.DataFrame({"user": [1], "item": [2]})
    with pytest.raises(RecAuditError, match="no ratings"):
        preprocess(frame, {"rating_threshold": 1})


def test_k_core_golden():
    # user 3 has one interaction; dropping it leaves item 30 with one, which then goes too
    users = np.array([1, 1, 2, 2, 3, 1])
    items = np.array([10, 20, 10, 20, 30, 30])
    assert k_core_mask(users, items, 2, 2).tolist() == [True, True, True, True, False, False]


def naive_k_core(pairs, min_user, min_item):
    rows = list(range(len(pairs)))
    while True:
        user_count = Counter(pairs[r][0] for r in rows)
        item_count = Counter(pairs[r][1] for r in rows)
        kept = [r for r in rows if user_count[pairs[r][0]] >= min_user and item_count[pairs[r][1]] >= min_item]
        if len(kept) == len(rows):
            return set(kept)
        rows = kept


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=120),
       min_user=st.integers(0, 5), min_item=st.integers(0, 5))
def test_k_core_properties(pairs, min_user, min_item):
    users = np.array([p[0] for p in pairs], dtype=np.int64)
    items = np.array([p[1] for p in pairs], dtype=np.int64)
    mask = k_core_mask(users, items, min_user, min_item)
    kept_users, kept_items = users[mask], items[mask]
    if mask.any():
        assert np.bincount(kept_users)[np.unique(kept_users)].min() >= min_user
        assert np.bincount(kept_items)[np.unique(kept_items)].min() >= min_item
    assert k_core_mask(kept_users, kept_items, min_user, min_item).all()  # idempotent
    assert set(np.flatnonzero(mask)) == naive_k_core(pairs, min_user, min_item)  # the largest such core


# ----- whole pipeline on synthetic ML-1M / NCF raw files -----------------------------


def test_contiguous_ids_and_round_trip_through_the_maps(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=25, seed=4)
    data = prepare_dataset("movielens-1m", raw_dir, tmp_path / "out", {})
    back = load_prepared(tmp_path / "out")
    inter = back.interactions
    assert sorted(inter["user"].unique()) == list(range(back.n_users))
    assert sorted(inter["item"].unique()) == list(range(back.n_items))
    assert back.users["original_id"].map(int).is_monotonic_increasing
    assert back.items["original_id"].map(int).is_monotonic_increasing
    user_of = back.users.set_index("user")["original_id"].map(int)
    item_of = back.items.set_index("item")["original_id"].map(int)
    restored = set(zip(user_of[inter["user"]].tolist(), item_of[inter["item"]].tolist(),
                       inter["rating"].astype(int).tolist(), inter["timestamp"].tolist()))
    original = {tuple(int(v) for v in line.split("::")) for line in (raw_dir / "ratings.dat").read_text().splitlines()}
    assert restored == original
    assert set(back.item_features) == {"genres"}
    genres = back.item_features["genres"]
    assert genres.values.shape == (back.n_items, data.item_features["genres"].dim)
    assert genres.sha256 == data.item_features["genres"].sha256 and genres.present.all()
    titles = back.items.set_index("original_id")["title"]
    movies = dict(line.split("::")[:2] for line in (raw_dir / "movies.dat").read_bytes().decode("iso-8859-1").splitlines())
    assert all(titles[movie] == movies[movie] for movie in titles.index)


def test_meta_records_options_steps_checksums_and_parser(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=25, seed=5)
    prepare_dataset("movielens-1m", raw_dir, tmp_path / "out", {"rating_threshold": 4, "min_user_interactions": 2})
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["options"] == {"rating_threshold": 4, "deduplicate": True, "min_user_interactions": 2,
                               "min_item_interactions": 0, "k_core": "iterative"}
    assert [step["step"] for step in meta["preprocessing"]] == [
        "parsed", "deduplicate", "rating >= 4", "k-core (users >= 2, items >= 0)"]
    assert meta["preprocessing"][-1]["interactions"] == meta["n_interactions"]
    expected = hashlib.sha256((raw_dir / "ratings.dat").read_bytes()).hexdigest()
    assert meta["source_files"]["ratings.dat"]["sha256"] == expected
    assert meta["parser"] == "datasets.parsers.movielens.parse_movielens_1m"
    ratings = pd.read_csv(raw_dir / "ratings.dat", sep="::", engine="python", header=None)
    assert meta["preprocessing"][2]["interactions"] == int((ratings[2] >= 4).sum())


def test_given_split_follows_preprocessing(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-ncf", tmp_path / "raw", n_users=40, n_items=160, seed=6)
    data = prepare_dataset("movielens-1m-ncf", raw_dir, tmp_path / "out", {"min_item_interactions": 3})
    back = load_prepared(tmp_path / "out")
    keys = set(zip(back.interactions["user"], back.interactions["item"]))
    train, test, negatives = (back.given["ncf"][part] for part in ("train", "test", "negatives"))
    assert set(zip(train["user"], train["item"])) | set(zip(test["user"], test["item"])) == keys
    assert len(train) + len(test) == len(back.interactions)
    assert negatives["item"].between(0, back.n_items - 1).all()
    report = data.meta["given_splits"]["ncf"]
    raw_rows = sum(1 for _ in open(raw_dir / "ml-1m.train.rating")) + sum(1 for _ in open(raw_dir / "ml-1m.test.rating"))
    assert report["train"]["rows_kept"] + report["test"]["rows_kept"] == len(back.interactions)
    assert raw_rows - len(back.interactions) == report["train"]["rows_in_file"] + report["test"]["rows_in_file"] \
        - report["train"]["rows_kept"] - report["test"]["rows_kept"] > 0
    assert not keys & set(zip(negatives["user"], negatives["item"]))
    # items named only as candidates stay in the catalogue, so each user keeps 99 candidates
    assert data.meta["items_only_in_given_negatives"] > 0


def test_failed_prepare_writes_nothing(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=5)
    with open(raw_dir / "ratings.dat", "a") as handle:
        handle.write("1::2::x::3\n")
    with pytest.raises(RecAuditError, match="malformed line"):
        prepare_dataset("movielens-1m", raw_dir, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "raw"]


def test_same_input_same_bytes(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=15, seed=8)
    for out in ("a", "b"):
        prepare_dataset("movielens-1m", raw_dir, tmp_path / out, {"min_user_interactions": 3})
    for name in ("interactions.parquet", "users.parquet", "items.parquet", "features/genres/values.npz",
                 "features/genres/present.npy", "features/genres/meta.json", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ----- real data ------------------------------------------------------------------------


@pytest.mark.slow
def test_movielens_100k_threshold_and_core_against_pandas(tmp_path):
    raw_dir = link_raw("movielens-100k", tmp_path)
    data = prepare_dataset("movielens-100k", raw_dir, tmp_path / "out", {"rating_threshold": 4})
    assert len(data.interactions) == 34174 + 21201  # 4- and 5-star counts of the ML-100K ratings
    data = prepare_dataset("movielens-100k", raw_dir, None, {"rating_threshold": 4, "min_user_interactions": 20,
                                                             "min_item_interactions": 20})
    naive = pd.read_csv(raw_dir / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    naive = naive[naive["r"] >= 4]
    while True:  # independent k-core with pandas groupby
        ok = (naive.groupby("u")["i"].transform("size") >= 20) & (naive.groupby("i")["u"].transform("size") >= 20)
        if ok.all():
            break
        naive = naive[ok]
    assert (data.n_users, data.n_items, len(data.interactions)) == (naive["u"].nunique(), naive["i"].nunique(), len(naive))
    features = data.item_features["genres"]
    assert features.values.shape == (data.n_items, 19)
    genres = data.items.set_index("original_id")["genres"]
    assert genres["1"] == "Animation|Children's|Comedy"
    assert features.dense()[0].tolist() == [float(g in genres.iloc[0].split("|")) for g in features.meta["feature_names"]]


@pytest.mark.slow
def test_citeulike_a_prepared(tmp_path):
    data = prepare_dataset("citeulike-a", link_raw("citeulike-a", tmp_path), tmp_path / "out", {})
    back = load_prepared(tmp_path / "out")
    assert (back.n_users, back.n_items, len(back.interactions)) == (5551, 16980, 204_986)
    assert set(back.item_features) == {"tags"}
    tags = back.item_features["tags"]
    assert tags.values.shape == (16980, 46391) and tags.meta["source"] == "item-tag.dat"
    assert set(np.unique(tags.values.data)) == {1.0}
    assert back.meta["item_features"]["tags"]["n_present"] == int(tags.present.sum()) == 13519  # non-empty lines of item-tag.dat (awk)
    assert {split: len(parts["train"]) for split, parts in back.given.items()} == {"p1": 5551, "p10": 55_510}
    assert data.meta["given_splits"]["p1"]["train_test_overlap_pairs"] == 0
    assert "mult.dat" in back.meta["notes"]["item_content_note"]


def test_single_pass_filters_items_then_users_like_multvae():
    """Mult-VAE's filter_triplets (items >= 2, then users >= 2 on what is left) keeps user 1's
    two rows although items a and b then hold one row each; the iterative k-core empties it."""
    import pandas as pd

    from datasets.prepare import k_core_mask, preprocess, single_pass_mask

    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "b"],
                          "rating": [5.0] * 5, "timestamp": range(5)})
    # c has one row: dropped; then user 2 and user 3 hold one row each: dropped.
    assert single_pass_mask(frame["user"], frame["item"], 2, 2).tolist() == [True, True, False, False, False]
    assert not k_core_mask(frame["user"], frame["item"], 2, 2).any()
    kept, steps = preprocess(frame, {"min_user_interactions": 2, "min_item_interactions": 2, "k_core": "once"})
    assert kept["item"].tolist() == ["a", "b"] and kept["user"].tolist() == [1, 1]
    assert steps[-1] == {"step": "one pass (items >= 2, then users >= 2)", "users": 1, "items": 2, "interactions": 2}


def test_k_core_mode_is_checked():
    import pandas as pd

    from common.errors import RecAuditError
    from datasets.prepare import preprocess

    frame = pd.DataFrame({"user": [1], "item": [1], "rating": [5.0], "timestamp": [0]})
    with pytest.raises(RecAuditError, match="k_core must be one of iterative, once, got 'twice'"):
        preprocess(frame, {"k_core": "twice"})
