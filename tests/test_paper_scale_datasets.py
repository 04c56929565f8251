"""The paper-scale datasets (MovieLens 20M, MSD Taste Profile, Netflix Prize, NCF's Pinterest-20
and ML-1M): registry entries, checksums and download sizes, every parser on small files in the
exact upstream formats (written by datasets.synthetic's writers; one malformed file per format:
one line naming it), the papers' preprocessing as defaults, the paper suites ncf-paper /
multvae-paper / ease-paper, and the claims audit saying which download each of their claims waits
for. None of the real files is obtainable on this machine; tests/test_paper_suites_end_to_end.py
runs the suites on stand-ins of them."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import datasets.__main__ as cli
from common.errors import RecAuditError
from datasets import fetch
from datasets.parsers import PARSERS
from datasets.prepare import k_core_mask, prepare_dataset
from datasets.registry import PAPER_SCALE_DATASETS, get_dataset, registered_datasets
from datasets.synthetic import msd_song_id as song_id, msd_user_id as user_id, write_ml20m, write_netflix
from datasets.synthetic import write_msd_triplets as write_triplets, write_synthetic_raw
from protocols.params import load_params
from protocols.paper_suites import enable_suite, paper_suites
from protocols.splits import make_split

REPO = Path(__file__).resolve().parent.parent
NCF_COMMIT = "4aab159e81c44b062c091bdaed0ab54ac632371f"
NCF_RAW = f"https://raw.githubusercontent.com/hexiangnan/neural_collaborative_filtering/{NCF_COMMIT}/Data/"


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- registry, checksums, sizes

def test_registry_entries_name_their_upstream_files_and_published_checksums():
    assert set(PAPER_SCALE_DATASETS) <= set(registered_datasets()) and set(PAPER_SCALE_DATASETS) <= set(PARSERS)
    ml20m = get_dataset("movielens-20m")
    (ratings,) = ml20m.files
    assert (ratings.name, ratings.member, ratings.mirror) == ("ratings.csv", "ml-20m/ratings.csv",
                                                              "movielens-20m/ratings.csv")
    assert ratings.archive.url == "https://files.grouplens.org/datasets/movielens/ml-20m.zip"
    assert ratings.archive.checksum == "md5:cd245b17a1ae2cc31bb14903e1204af3"  # GroupLens's ml-20m.zip.md5
    assert ratings.checksum is None  # no member checksum is published: fetch fails closed, printing it
    msd = get_dataset("msd-taste-profile")
    (triplets,) = msd.files
    assert triplets.archive.url == \
        "http://millionsongdataset.com/sites/default/files/challenge/train_triplets.txt.zip"
    assert triplets.member == "train_triplets.txt" and triplets.checksum is None and triplets.archive.checksum is None
    netflix = get_dataset("netflix-prize")
    assert {f.name: (f.member, f.checksum) for f in netflix.files} == {
        "training_set.tar": ("download/training_set.tar", "md5:0098ee8997ffda361a59bc0dd1bdad8b"),
        "movie_titles.txt": ("download/movie_titles.txt", "md5:d2b86d3d9ba8b491d62a85c9cf6aea39"),
    }  # the md5 of Netflix's own README
    assert netflix.files[0].archive.url == "https://archive.org/download/nf_prize_dataset.tar/nf_prize_dataset.tar.gz"
    assert netflix.files[0].archive.checksum == "md5:a8f23d2d76461211c6b4c0ca6df2547d"
    assert "no longer distributes" in netflix.description and "RECAUDIT_MIRROR" in netflix.description
    assert "combined_data" in netflix.description  # where else it can be had, and what fetch cannot verify
    pinterest = get_dataset("pinterest-20-ncf")
    assert {f.name: (f.url, f.checksum) for f in pinterest.files} == {
        "pinterest-20.train.rating": (NCF_RAW + "pinterest-20.train.rating",
                                      "gitblob:99813f8ed7486c36fa0f405e3f400db5d6fed0be"),
        "pinterest-20.test.rating": (NCF_RAW + "pinterest-20.test.rating",
                                     "sha256:3a8a8f7eb8e21cc5928b8259dd2c265269ecfa219d92ba829249956aa293d732"),
        "pinterest-20.test.negative": (NCF_RAW + "pinterest-20.test.negative",
                                       "gitblob:b752ccdc14df423b9484771440ff4a73e4a4a304"),
    }
    assert get_dataset("movielens-1m-ncf").file("ml-1m.train.rating").checksum == \
        "gitblob:31ba384fd58dac8fbd09d2dfc6616431f3563ab5"
    for name in PAPER_SCALE_DATASETS:
        spec = get_dataset(name)
        assert spec.citation and spec.licence and spec.homepage.startswith(("http://", "https://"))
        assert spec.published_users and spec.published_interactions


def test_defaults_are_the_papers_preprocessing():
    def options(name):
        return dict(get_dataset(name).default_preprocessing)

    base = {"deduplicate": True, "min_item_interactions": 0}
    once = {"k_core": "once"}  # Mult-VAE's filter_triplets: one pass each, items first
    assert options("movielens-20m") == {**base, **once, "rating_threshold": 4, "min_user_interactions": 5}
    assert options("netflix-prize") == {**base, **once, "rating_threshold": 4, "min_user_interactions": 5}
    assert options("msd-taste-profile") == {"rating_threshold": None, "deduplicate": True, **once,
                                            "min_user_interactions": 20, "min_item_interactions": 200}
    assert options("pinterest-20-ncf") == {**base, "rating_threshold": None, "min_user_interactions": 0,
                                           "k_core": "iterative"}
    assert get_dataset("movielens-20m").rating_scale == (0.5, 5) and get_dataset("netflix-prize").rating_scale == (1, 5)


def test_list_shows_each_download_size(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    cli.main(["list"])
    lines = capsys.readouterr().out.splitlines()
    rows = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip()) for line in lines[2:]}
    sizes = {name: row[5] for name, row in rows.items()}
    assert sizes["movielens-20m"] == "198.7 MB"  # ml-20m.zip's Content-Length
    assert sizes["netflix-prize"] == "697.3 MB"  # the Internet Archive's tar.gz (approximate)
    assert sizes["msd-taste-profile"] == "500.0 MB"  # estimated: no size is published
    assert sizes["pinterest-20-ncf"] == "49.0 MB" and sizes["movielens-1m-ncf"] == "24.1 MB"
    assert rows["netflix-prize"][1:4] == ["480,189", "17,770", "100,480,507"]


def _serve(monkeypatch, content: bytes) -> None:
    class Response(io.BytesIO):
        status, headers = 200, {"Content-Length": str(len(content))}

    monkeypatch.setattr(fetch, "_urlopen", lambda request, timeout: Response(content))
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_ml20m_fetch_checks_the_zip_md5_and_trusts_its_members(monkeypatch, tmp_path):
    ratings = b"userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n"
    content = _zip({"ml-20m/ratings.csv": ratings})
    _serve(monkeypatch, content)
    with pytest.raises(RecAuditError, match=r"checksum mismatch for download ml-20m\.zip: expected "
                                            r"md5:cd245b17a1ae2cc31bb14903e1204af3") as error:
        fetch.fetch_dataset("movielens-20m", tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    one_line_error(error)
    assert not (tmp_path / "raw").exists()
    # A zip that passes GroupLens's md5 vouches for its members (GroupLens publishes no member hashes).
    spec = get_dataset("movielens-20m")
    archive = dataclasses.replace(spec.files[0].archive, checksum=f"md5:{hashlib.md5(content).hexdigest()}")
    spec = dataclasses.replace(spec, files=(dataclasses.replace(spec.files[0], archive=archive),))
    fetch.fetch_dataset(spec, tmp_path / "raw", progress=False, cache=tmp_path / "cache2")
    assert (tmp_path / "raw" / "ratings.csv").read_bytes() == ratings


def test_netflix_files_are_checked_against_netflixs_md5_upstream_and_in_the_mirror(monkeypatch, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (("download/training_set.tar", b"not the training set"),
                              ("download/movie_titles.txt", b"1,2003,Dinosaur Planet\n")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    _serve(monkeypatch, buffer.getvalue())
    spec = get_dataset("netflix-prize")
    archive = dataclasses.replace(spec.files[0].archive, checksum=None)  # past the archive check: the members
    spec = dataclasses.replace(spec, files=tuple(dataclasses.replace(f, archive=archive) for f in spec.files))
    with pytest.raises(RecAuditError, match=r"checksum mismatch for netflix-prize/training_set\.tar: expected "
                                            r"md5:0098ee8997ffda361a59bc0dd1bdad8b, got md5:") as error:
        fetch.fetch_dataset(spec, tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    one_line_error(error)
    mirror = tmp_path / "mirror" / "netflix-prize"
    mirror.mkdir(parents=True)
    (mirror / "training_set.tar").write_bytes(b"x")
    (mirror / "movie_titles.txt").write_bytes(b"1,2003,Dinosaur Planet\n")
    with pytest.raises(RecAuditError, match=r"checksum mismatch for netflix-prize/training_set\.tar: .* the mirror "
                                            r"copy .*training_set\.tar is not the registered file"):
        fetch.fetch_dataset("netflix-prize", tmp_path / "raw", mirror=tmp_path / "mirror", progress=False)
    assert not (tmp_path / "raw").exists()


def test_pinterest_test_file_in_the_mirror_matches_the_registry_and_the_ncf_tree():
    from mirror_raw import mirror_root

    path = mirror_root() / "pinterest-20-ncf" / "pinterest-20.test.rating"
    if not path.is_file():
        pytest.skip("the mirror has no pinterest-20-ncf copy")
    content = path.read_bytes()
    assert f"sha256:{hashlib.sha256(content).hexdigest()}" == \
        get_dataset("pinterest-20-ncf").file("pinterest-20.test.rating").checksum
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    assert blob == "87fdbd13bced61c51f2842e2a667e83b9b0084e3"  # its id in the pinned commit's tree, like the others


# ---------------------------------------------------------------- MovieLens 20M

def ml20m_rows(seed: int = 0, n_users: int = 12, n_items: int = 15) -> list[tuple[int, int, float, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        for item in rng.choice(np.arange(1, n_items + 1), size=rng.integers(2, 12), replace=False):
            rows.append((user, int(item), float(rng.choice(np.arange(1, 11)) / 2), 1_100_000_000 + len(rows)))
    return rows


def test_ml20m_ratings_and_genres(tmp_path):
    rows = ml20m_rows()
    raw = PARSERS["movielens-20m"](write_ml20m(tmp_path / "raw", rows, movies=True))
    frame = raw.interactions
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"] and len(frame) == len(rows)
    assert frame.iloc[0].tolist() == list(rows[0])
    genres = raw.item_features["genres"]
    assert genres.meta["feature_names"] == ["Adventure", "Animation", "Comedy", "Drama", "Romance"]
    assert genres.values.toarray().tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    assert raw.items["title"].tolist()[1] == "American President, The (1995)"
    assert raw.source_files == ["ratings.csv", "movies.csv"]


def test_ml20m_prepares_with_the_multvae_preprocessing(tmp_path):
    rows = ml20m_rows(seed=1, n_users=30)
    raw_dir = write_ml20m(tmp_path / "raw", rows)
    data = prepare_dataset("movielens-20m", raw_dir, None, dict(get_dataset("movielens-20m").default_preprocessing))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    liked = frame[frame["rating"] > 3.5]  # Mult-VAE: ratings above 3.5, then users with at least 5 of them
    kept = liked[liked.groupby("user")["user"].transform("size") >= 5]
    assert len(data.interactions) == len(kept) > 0
    assert data.n_users == kept["user"].nunique() and data.n_items == kept["item"].nunique()
    assert data.interactions["rating"].min() >= 4


@pytest.mark.parametrize("line, number, expected", [
    ("1,2,3.5\n", 3, r"4 fields separated by ','"),
    ("1,2,5.5,1112486027\n", 3, r"a rating in 0\.5\.\.5 \(the dataset's scale\)"),
])
def test_ml20m_malformed_line_is_named(tmp_path, line, number, expected):
    folder = write_ml20m(tmp_path / "raw", [(1, 2, 3.5, 1112486027)])
    with open(folder / "ratings.csv", "a") as handle:
        handle.write(line)
    with pytest.raises(RecAuditError, match=rf"ratings\.csv: malformed line {number}: expected {expected}") as error:
        PARSERS["movielens-20m"](folder)
    one_line_error(error)


# ---------------------------------------------------------------- MSD Taste Profile

def test_msd_triplets_become_codes_in_sorted_order_of_the_ids(tmp_path):
    rows = [(user_id(1), song_id(7), 3), (user_id(1), song_id(2), 1), (user_id(0), song_id(7), 12)]
    raw = PARSERS["msd-taste-profile"](write_triplets(tmp_path / "raw", rows))
    users = sorted({u for u, _, _ in rows})
    songs = sorted({s for _, s, _ in rows})
    assert raw.users["user_id"].tolist() == users and raw.items["song_id"].tolist() == songs
    expected = [(users.index(u), songs.index(s), float(c)) for u, s, c in rows]
    assert list(raw.interactions.itertuples(index=False, name=None)) == expected
    assert raw.interactions["rating"].dtype == np.float32


def test_msd_streams_across_blocks(tmp_path, monkeypatch):
    import datasets.parsers.paper_scale as paper_scale

    monkeypatch.setattr(paper_scale, "BLOCK_BYTES", 256)  # several batches, ids repeated across them
    rng = np.random.default_rng(3)
    rows = [(user_id(int(u)), song_id(int(s)), int(c)) for u, s, c in
            zip(rng.integers(0, 9, 300), rng.integers(0, 40, 300), rng.integers(1, 50, 300))]
    raw = PARSERS["msd-taste-profile"](write_triplets(tmp_path / "raw", rows))
    decoded = list(zip(raw.users["user_id"].to_numpy()[raw.interactions["user"]],
                       raw.items["song_id"].to_numpy()[raw.interactions["item"]],
                       raw.interactions["rating"].astype(int)))
    assert decoded == rows


def test_msd_prepares_with_the_multvae_preprocessing(tmp_path):
    """Users with >= 20 songs and songs with >= 200 users (the registry's default), on 320
    synthetic users; RecAudit applies them as an iterative k-core."""
    rng = np.random.default_rng(5)
    rows = []
    for u in range(320):
        n_songs = 25 if u < 300 else 10  # 20 users too light
        for s in rng.choice(32, size=n_songs, replace=False):
            rows.append((user_id(u), song_id(int(s)), int(rng.integers(1, 9))))
    raw_dir = write_triplets(tmp_path / "raw", rows)
    options = dict(get_dataset("msd-taste-profile").default_preprocessing)
    data = prepare_dataset("msd-taste-profile", raw_dir, tmp_path / "out", options)
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    kept = frame[k_core_mask(frame["user"], frame["item"], 20, 200)]
    assert len(data.interactions) == len(kept) > 0 and data.n_users == kept["user"].nunique()
    counts = data.interactions.groupby("item").size()
    assert counts.min() >= 200 and data.interactions.groupby("user").size().min() >= 20
    users = pd.read_parquet(tmp_path / "out" / "users.parquet")
    assert sorted(users["user_id"]) == sorted(kept["user"].unique())  # the Echo Nest ids survive preparation


@pytest.mark.parametrize("bad, expected", [
    (f"{user_id(9)[:39]}\t{song_id(1)}\t2\n", r"a 40-digit hexadecimal user id"),
    (f"{user_id(9)}\t{song_id(1)}\n", r"a 40-digit hexadecimal user id"),
    (f"{user_id(9)}\t{song_id(1)}\t0\n", r"a play count >= 1"),
])
def test_msd_malformed_line_is_named(tmp_path, bad, expected):
    folder = write_triplets(tmp_path / "raw", [(user_id(1), song_id(2), 1), (user_id(2), song_id(3), 4)])
    with open(folder / "train_triplets.txt", "a") as handle:
        handle.write(bad + f"{user_id(3)}\t{song_id(3)}\t1\n")
    with pytest.raises(RecAuditError, match=rf"train_triplets\.txt: malformed line 3: expected .*{expected}") as error:
        PARSERS["msd-taste-profile"](folder)
    one_line_error(error)


def test_msd_truncated_file_is_refused(tmp_path):
    folder = write_triplets(tmp_path / "raw", [(user_id(1), song_id(2), 1)])
    with open(folder / "train_triplets.txt", "a") as handle:
        handle.write(f"{user_id(2)}\tSO")
    with pytest.raises(RecAuditError, match=r"malformed line 2: expected a last line that ends with a newline"):
        PARSERS["msd-taste-profile"](folder)


# ---------------------------------------------------------------- Netflix Prize

NETFLIX_MOVIES = {
    1: [(1488844, 3, "2005-09-06"), (822109, 5, "2005-05-13"), (885013, 4, "2005-10-19")],
    2: [(2059652, 4, "2005-09-05"), (1488844, 4, "2004-02-10")],
    3: [(822109, 1, "1999-12-31")],
}


def expected_netflix() -> list[tuple]:
    return [(c, m, float(r), int(pd.Timestamp(d, tz="UTC").timestamp()))
            for m, rows in NETFLIX_MOVIES.items() for c, r, d in rows]


@pytest.mark.parametrize("layout", ["tar", "folder", "combined"])
def test_netflix_layouts_give_the_same_ratings(tmp_path, layout):
    raw = PARSERS["netflix-prize"](write_netflix(tmp_path / layout, layout, NETFLIX_MOVIES))
    assert list(raw.interactions.itertuples(index=False, name=None)) == expected_netflix()
    assert raw.items["title"].tolist() == ["Dinosaur Planet", "Isle of Man TT 2004 Review", "Character, The Caf\u00e9"]
    assert raw.items["year"].iloc[0] == 2003 and pd.isna(raw.items["year"].iloc[1])  # NULL: unknown year
    assert raw.source_files[-1] == "movie_titles.txt"


def test_netflix_prepares_with_the_multvae_preprocessing(tmp_path):
    rng = np.random.default_rng(2)
    movies = {m: [(int(c), int(rng.integers(1, 6)), f"2005-0{int(rng.integers(1, 10))}-1{int(rng.integers(0, 10))}")
                  for c in rng.choice(np.arange(100, 140), size=int(rng.integers(5, 30)), replace=False)]
              for m in range(1, 25)}
    raw_dir = write_netflix(tmp_path / "raw", "tar", movies)
    data = prepare_dataset("netflix-prize", raw_dir, None, dict(get_dataset("netflix-prize").default_preprocessing))
    frame = pd.DataFrame([(c, m, r) for m, rows in movies.items() for c, r, _ in rows], columns=["u", "i", "r"])
    liked = frame[frame["r"] >= 4]
    kept = liked[liked.groupby("u")["u"].transform("size") >= 5]
    assert len(data.interactions) == len(kept) > 0 and data.n_users == kept["u"].nunique()


def test_netflix_malformed_files_are_named(tmp_path):
    folder = write_netflix(tmp_path / "tar", "tar", {1: NETFLIX_MOVIES[1], 2: [(5, 6, "2005-01-01")]})
    with pytest.raises(RecAuditError, match=r"training_set\.tar:training_set/mv_0000002\.txt: malformed line 2: "
                                            r"expected a customer id >= 0 and a rating in 1\.\.5") as error:
        PARSERS["netflix-prize"](folder)
    one_line_error(error)
    folder = tmp_path / "folder"
    write_netflix(folder, "folder", NETFLIX_MOVIES)
    (folder / "training_set" / "mv_0000002.txt").write_text("3:\n1,2,2005-01-01\n")
    with pytest.raises(RecAuditError, match=r"mv_0000002\.txt: malformed line 1: expected the first line `2:`"):
        PARSERS["netflix-prize"](folder)
    folder = write_netflix(tmp_path / "combined", "combined", NETFLIX_MOVIES)
    with open(folder / "combined_data_2.txt", "a") as handle:
        handle.write("4:\n17,3,2005-13-01\n")
    with pytest.raises(RecAuditError, match=r"combined_data_2\.txt: malformed line 4: expected a `MovieID:` line, "
                                            r"then `CustomerID,Rating,Date` lines") as error:
        PARSERS["netflix-prize"](folder)
    one_line_error(error)
    (folder / "combined_data_2.txt").write_text("3:\n822109,1,1999-12-31\n4:\n17,3")
    with pytest.raises(RecAuditError, match=r"combined_data_2\.txt: malformed line 4: expected a last line that "
                                            r"ends with a newline"):
        PARSERS["netflix-prize"](folder)
    (folder / "combined_data_2.txt").write_text("822109,1,1999-12-31\n")
    with pytest.raises(RecAuditError, match=r"combined_data_2\.txt: malformed line 1: expected a `MovieID:` line"):
        PARSERS["netflix-prize"](folder)


def test_netflix_without_its_files_says_where_to_get_them(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(RecAuditError, match=r"netflix-prize: raw file training_set\.tar is missing .*\(python -m "
                                            r"datasets fetch netflix-prize.*combined_data_1\.\.4\.txt") as error:
        PARSERS["netflix-prize"](tmp_path / "raw")
    one_line_error(error)


# ---------------------------------------------------------------- NCF's Pinterest-20 (and ML-1M's files)

def test_pinterest_gives_the_authors_split_with_99_negatives(tmp_path):
    raw_dir = write_synthetic_raw("pinterest-20-ncf", tmp_path / "raw", n_users=8, n_items=150)
    raw = PARSERS["pinterest-20-ncf"](raw_dir)
    given = raw.given["ncf"]
    assert len(given["test"]) == 8 and set(given["negatives"].groupby("user").size()) == {99}
    assert raw.notes["ncf_negatives"] == {"negatives_per_user": [99], "heads_matching_test_rows": 8, "test_rows": 8}
    assert len(raw.interactions) == len(given["train"]) + len(given["test"])


def test_pinterest_malformed_negative_line_is_named(tmp_path):
    folder = write_synthetic_raw("pinterest-20-ncf", tmp_path / "raw", n_users=8, n_items=150)
    lines = (folder / "pinterest-20.test.negative").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(",", " ", 1)
    (folder / "pinterest-20.test.negative").write_text("".join(lines))
    with pytest.raises(RecAuditError, match=r"pinterest-20\.test\.negative: malformed line 3: expected "
                                            r"`\(user,item\)`") as error:
        PARSERS["pinterest-20-ncf"](folder)
    one_line_error(error)


# ---------------------------------------------------------------- the paper suites

def paper_suite_splits(name: str) -> dict:
    return paper_suites(load_params(REPO / "params.yaml"))[name]["splits"]


@pytest.mark.parametrize("dataset", ["movielens-1m-ncf", "pinterest-20-ncf"])
def test_ncf_paper_splits_run_on_the_authors_files(tmp_path, dataset):
    raw_dir = write_synthetic_raw(dataset, tmp_path / "raw", n_users=12, seed=4)
    data = prepare_dataset(dataset, raw_dir, None, dict(get_dataset(dataset).default_preprocessing))
    entry = dict(paper_suite_splits("ncf-paper")[f"{dataset}/leave-one-out"])
    assert (entry.pop("dataset"), entry.pop("protocol")) == (dataset, "given")
    split = make_split(data, "given", 42, entry)
    assert len(split.test) == 12 and split.test_negatives.groupby("user").size().eq(99).all()
    assert split.validation_negatives.groupby("user").size().eq(99).all()


@pytest.mark.parametrize("suite", ["multvae-paper", "ease-paper"])
def test_strong_paper_splits_hold_out_the_papers_user_counts(suite):
    splits = paper_suite_splits(suite)
    assert {key: (s["dataset"], s["protocol"], s["heldout_users"], s["input_fraction"]) for key, s in splits.items()} \
        == {"movielens-20m/strong": ("movielens-20m", "strong", 10_000, 0.8),
            "netflix-prize/strong": ("netflix-prize", "strong", 40_000, 0.8),
            "msd-taste-profile/strong": ("msd-taste-profile", "strong", 50_000, 0.8)}


def test_the_strong_split_runs_on_prepared_ml20m(tmp_path):
    rng = np.random.default_rng(7)
    rows = [(user, int(item), float(rng.choice([3.5, 4.0, 4.5, 5.0])), 1_100_000_000 + user)
            for user in range(1, 41) for item in rng.choice(np.arange(1, 31), size=12, replace=False)]
    data = prepare_dataset("movielens-20m", write_ml20m(tmp_path / "raw", rows), None,
                           dict(get_dataset("movielens-20m").default_preprocessing))
    entry = dict(paper_suite_splits("multvae-paper")["movielens-20m/strong"], heldout_users=5)
    split = make_split(data, entry.pop("protocol"), 42, {k: v for k, v in entry.items() if k != "dataset"})
    assert split.test["user"].nunique() <= 5 and len(split.test_input) > 0


@pytest.mark.parametrize("suites", [["ncf-paper"], ["multvae-paper"], ["ease-paper"],
                                    ["multvae-paper", "ease-paper", "ncf-paper"]])
def test_enabled_paper_suites_load_and_name_registered_datasets(tmp_path, suites):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    for name in suites:
        enable_suite(path, name)
    params = load_params(path)
    selected = paper_suites(params)[suites[-1]]
    assert params["suite"]["splits"] == selected["suite"]["splits"]
    for key in params["suite"]["splits"]:
        assert params["splits"][key]["dataset"] in params["datasets"] and params["splits"][key]["dataset"] in \
            registered_datasets()
    assert yaml.safe_load(path.read_text())["suite"] == selected["suite"]


def test_reports_and_tuning_follow_the_papers():
    suites = paper_suites(load_params(REPO / "params.yaml"))
    assert suites["ncf-paper"]["suite"]["reports"] == {"metrics": ["hr@10", "ndcg@10"]}
    assert {"gmf-paper", "mlp-paper", "neumf-paper"} <= set(suites["ncf-paper"]["suite"]["models"])
    # The authors' training setup is the constructors' defaults: the labels fix nothing else.
    assert suites["ncf-paper"]["models"] == {"gmf-paper": {"model": "gmf"}, "mlp-paper": {"model": "mlp"},
                                             "neumf-paper": {"model": "neumf"}}
    from neural.ncf import NeuMF
    assert (NeuMF().batch_size, NeuMF().epochs, NeuMF().negatives, NeuMF().lr) == (256, 20, 4, 0.001)
    for name in ("multvae-paper", "ease-paper"):
        assert suites[name]["suite"]["reports"] == {"metrics": ["recall_mv@20", "recall_mv@50", "ndcg@100"]}
        assert suites[name]["suite"]["tuning"] == {"metric": "ndcg@100"}
    assert {"ease", "ease-nonnegative"} <= set(suites["ease-paper"]["suite"]["models"])
    assert {"multvae", "multdae"} <= set(suites["multvae-paper"]["suite"]["models"])


def test_audit_says_which_download_each_paper_scale_claim_waits_for(monkeypatch):
    """Every claim of NCF, Mult-VAE, EASE and SANSA on a registered dataset maps to a split of a
    paper suite; with no results, the audit names the download (size and URL) and the suite."""
    from protocols.registry import registered_models
    from reports.audit import Availability, not_run_reasons
    from reports.claims import load_claims

    params = load_params(REPO / "params.yaml")
    claims = [c for key in ("ncf", "multvae", "ease", "sansa") for c in load_claims(paper=key)[0].claims
              if c.dataset != "amazon-books"]  # SANSA's BARS Amazon-Books is not registered
    available = Availability.current(params, {c.dataset for c in claims}, None)
    suite_of = {"movielens-1m-ncf": "ncf-paper", "pinterest-20-ncf": "ncf-paper", "movielens-20m": "ease-paper",
                "netflix-prize": "ease-paper", "msd-taste-profile": "ease-paper"}
    assert {c.dataset for c in claims} == set(suite_of)
    for claim in claims:
        if claim.model not in registered_models():
            continue  # a model another change registers (the audit says so itself)
        spec = get_dataset(claim.dataset)
        url = spec.downloads()[0].url
        reasons = not_run_reasons(claim, available, None)
        assert reasons[0].startswith(f"data not downloaded: {claim.dataset}, ") and url in reasons[0], reasons
        assert reasons[1] == (f"split {claim.protocol} is in the paper suite {suite_of[claim.dataset]}: "
                              f"`python -m protocols enable-suite {suite_of[claim.dataset]}` then `dvc repro`")
