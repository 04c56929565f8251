"""Parsers for the GroupLens MovieLens releases (100K, 1M, latest-small) and their poster sets.

Formats are those of the READMEs shipped with each release (Harper & Konstan, ACM TiiS 2015).
Every release gives a ``genres`` feature set (0/1). Posters (copyrighted: research use only):
ML-100K items through ``ml100k_item_to_ml1m_movie.tsv`` (exact-title join to ML-1M ids) and
``MovieImages/<ML-1M id>.jpg``; ML-1M movies through ``MovieImages/<MovieID>.jpg``;
ml-latest-small movies through ``ml-latest-small-images/index.tsv``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common.errors import RecAuditError
from datasets.parsers.raw import RawDataset, RawFeatures, pairs_frame, split_genres
from datasets.parsers.readers import rating_ranges, read_table, read_user_lists, require_file, require_folder
from datasets.parsers.splits import read_rating_file

RATING_COLUMNS = {"user": "int", "item": "int", "rating": "float", "timestamp": "int"}
# The genre order of u.item's 19 flags, as listed in u.genre and the ML-100K README.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
ML100K_ITEM_COLUMNS = {
    "item": "int", "title": "str", "release_date": "str", "video_release_date": "str", "imdb_url": "str",
    **{f"genre_{index}": "int" for index in range(len(ML100K_GENRES))},
}


# ----- MovieLens 100K ---------------------------------------------------------------


def _movielens_100k(raw_dir: Path, dataset: str, side_files_required: bool) -> RawDataset:
    ratings = read_table(require_file(raw_dir, "u.data", dataset), RATING_COLUMNS, ranges=rating_ranges(dataset))
    item_table = read_table(require_file(raw_dir, "u.item", dataset), ML100K_ITEM_COLUMNS, sep="|", encoding="iso-8859-1")
    sources = ["u.data", "u.item"]
    notes: dict = {}

    genre_names = list(ML100K_GENRES)
    genre_path = raw_dir / "u.genre"
    if side_files_required or genre_path.exists():
        genre_table = read_table(require_file(raw_dir, "u.genre", dataset), {"name": "str", "index": "int"}, sep="|")
        genre_names = genre_table.sort_values("index")["name"].tolist()
        sources.append("u.genre")
    flags = item_table[[f"genre_{index}" for index in range(len(ML100K_GENRES))]].to_numpy(dtype=np.float32)
    items = item_table[["item", "title", "release_date", "imdb_url"]].copy()
    items["genres"] = _flags_to_labels(flags, genre_names)

    users = None
    user_path = raw_dir / "u.user"
    if side_files_required or user_path.exists():
        users = read_table(
            require_file(raw_dir, "u.user", dataset),
            {"user": "int", "age": "int", "gender": "str", "occupation": "str", "zip_code": "str"},
            sep="|",
        )
        sources.append("u.user")
    else:
        notes["user_side_information"] = "u.user absent from the raw folder: no user demographics"

    return RawDataset(
        interactions=ratings,
        source_files=sources,
        users=users,
        items=items,
        item_features={"genres": RawFeatures(
            sp.csr_matrix(flags), item_table["item"].to_numpy(),
            {"source": "u.item", "features": "genre flags of u.item (0/1), in the order of u.genre",
             "feature_names": genre_names})},
        notes=notes,
    )


def _flags_to_labels(flags: np.ndarray, names: list[str]) -> list[str]:
    rows, columns = np.nonzero(flags)
    labels = pd.Series(np.asarray(names, dtype=object)[columns]).groupby(rows).agg("|".join)
    return labels.reindex(range(len(flags)), fill_value="").tolist()


def parse_movielens_100k(raw_dir: Path) -> RawDataset:
    """ML-100K with its posters where the raw folder has them (``python -m datasets fetch`` puts
    them there); a raw folder without ``ml100k_item_to_ml1m_movie.tsv`` gives no images."""
    raw_dir = Path(raw_dir)
    dataset = "movielens-100k"
    raw = _movielens_100k(raw_dir, dataset, side_files_required=True)
    if (raw_dir / ML100K_POSTER_MAP).exists():
        _add_ml100k_posters(raw, raw_dir, dataset)
    else:
        raw.notes["images"] = f"{ML100K_POSTER_MAP} absent from the raw folder: no item images"
    return raw


def parse_movielens_100k_posters(raw_dir: Path) -> RawDataset:
    """ML-100K ratings with ML-1M posters, joined through ``ml100k_item_to_ml1m_movie.tsv``."""
    raw_dir = Path(raw_dir)
    dataset = "movielens-100k-posters"
    raw = _movielens_100k(raw_dir, dataset, side_files_required=False)
    _add_ml100k_posters(raw, raw_dir, dataset)
    return raw


ML100K_POSTER_MAP = "ml100k_item_to_ml1m_movie.tsv"


def _add_ml100k_posters(raw: RawDataset, raw_dir: Path, dataset: str) -> None:
    mapping = read_table(
        require_file(raw_dir, ML100K_POSTER_MAP, dataset),
        {"item": "int", "ml1m_movie_id": "int", "has_image": "int"},
        header="ml100k_item_id\tml1m_movie_id\thas_image",
    )
    raw.items = raw.items.merge(mapping[["item", "ml1m_movie_id"]], on="item", how="left")
    raw.items["ml1m_movie_id"] = raw.items["ml1m_movie_id"].astype("Int64")
    paths = _poster_paths(raw_dir, raw.items["ml1m_movie_id"], dataset)
    raw.item_images = pd.DataFrame({"item": raw.items["item"].to_numpy(), "image_path": pd.Series(paths, dtype=object)})
    listed = mapping.loc[mapping["has_image"] == 1, "item"]
    found = raw.item_images.loc[raw.item_images["image_path"].notna(), "item"]
    raw.notes["images"] = {
        "source": f"{ML100K_POSTER_MAP} (exact-title join to ML-1M ids) and MovieImages/<ML-1M id>.jpg",
        "items_with_image": int(len(found)),
        "items_without_ml1m_match": int(raw.items["ml1m_movie_id"].isna().sum()),
        "listed_with_image_but_file_missing": int((~listed.isin(found)).sum()),
    }
    raw.source_files += [ML100K_POSTER_MAP, "MovieImages/"]


def _poster_paths(raw_dir: Path, movie_ids: pd.Series, dataset: str) -> list[str | None]:
    """``MovieImages/<id>.jpg`` where that file exists, else None."""
    folder = require_folder(raw_dir, "MovieImages", dataset)
    present = set(os.listdir(folder))
    names = movie_ids.astype("string").radd("MovieImages/").add(".jpg")
    exists = names.str.slice(len("MovieImages/")).isin(present).fillna(False).to_numpy(dtype=bool)
    return [name if ok else None for name, ok in zip(names.tolist(), exists)]


def parse_movielens_100k_mcrec(raw_dir: Path) -> RawDataset:
    """MCRec's ML-100K split: ``ml-100k.train.rating`` (``user\titem\trating``) and
    ``ml-100k.test.rating`` (``user item item ...``, items only; a tab-separated rating file
    is accepted too). The published test file carries no ratings, so the prepared data is
    implicit (as MCRec treats it)."""
    raw_dir = Path(raw_dir)
    dataset = "movielens-100k-mcrec"
    train = read_rating_file(require_file(raw_dir, "ml-100k.train.rating", dataset))[["user", "item"]]
    test_path = require_file(raw_dir, "ml-100k.test.rating", dataset)
    with open(test_path, "rb") as handle:
        tabular = b"\t" in handle.readline()  # a `user\titem\trating...` copy instead of item lists
    if tabular:
        test = read_rating_file(test_path)[["user", "item"]]
    else:
        test = pairs_frame(*read_user_lists(test_path))
    return RawDataset(
        interactions=pd.concat([train, test], ignore_index=True),
        source_files=["ml-100k.train.rating", "ml-100k.test.rating"],
        given={"mcrec": {"train": train, "test": test}},
        notes={"ratings": "dropped: ml-100k.test.rating lists items only, so the data is implicit"},
    )


# ----- MovieLens latest-small --------------------------------------------------------


def parse_ml_latest_small(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    dataset = "ml-latest-small"
    ratings = read_table(
        require_file(raw_dir, "ratings.csv", dataset), RATING_COLUMNS, sep=",",
        header="userId,movieId,rating,timestamp", ranges=rating_ranges(dataset),
    )
    movies = read_table(
        require_file(raw_dir, "movies.csv", dataset), {"item": "int", "title": "str", "genres": "str"},
        sep=",", header="movieId,title,genres", quoted=True,
    )
    sources = ["ratings.csv", "movies.csv"]
    items = movies
    if (raw_dir / "links.csv").exists():
        links = read_table(
            raw_dir / "links.csv", {"item": "int", "imdb_id": "str", "tmdb_id": "str"},
            sep=",", header="movieId,imdbId,tmdbId",
        )
        items = movies.merge(links, on="item", how="left")
        sources.append("links.csv")
    content_items, content, names = split_genres(movies["item"], movies["genres"], empty=("(no genres listed)",))
    raw = RawDataset(
        interactions=ratings,
        source_files=sources,
        items=items,
        item_features={"genres": RawFeatures(content, content_items, {
            "source": "movies.csv", "features": "genres of movies.csv (0/1); '(no genres listed)' is no genre",
            "feature_names": names})},
        notes={"tags": "tags.csv is not used"},
    )
    if (raw_dir / ML_LATEST_SMALL_POSTER_INDEX).exists():
        _add_indexed_posters(raw, raw_dir, dataset)
    else:
        raw.notes["images"] = f"{ML_LATEST_SMALL_POSTER_INDEX} absent from the raw folder: no item images"
    return raw


ML_LATEST_SMALL_POSTER_INDEX = "ml-latest-small-images/index.tsv"


def _add_indexed_posters(raw: RawDataset, raw_dir: Path, dataset: str) -> None:
    """``index.tsv`` (``movieId``, ``image_path`` relative to the raw folder) -> the image table;
    a listed file that is absent from the raw folder counts as no image (and is counted)."""
    path = require_file(raw_dir, ML_LATEST_SMALL_POSTER_INDEX, dataset)
    index = read_table(path, {"item": "int", "image_path": "str"}, header="movieId\timage_path")
    unsafe = [p for p in index["image_path"] if not _is_plain_relative(p)]
    if unsafe:
        raise RecAuditError(f"{path}: image path {unsafe[0]!r} is not a plain relative path; the file is corrupt "
                            f"or not the expected one, fetch it again")
    index = index.drop_duplicates("item", keep="first")
    exists = np.array([(raw_dir / p).is_file() for p in index["image_path"]], dtype=bool)
    paths = index.set_index("item")["image_path"].where(pd.Series(exists, index=index["item"].to_numpy()))
    paths = paths.reindex(raw.items["item"].to_numpy())
    raw.item_images = pd.DataFrame({"item": raw.items["item"].to_numpy(),
                                    "image_path": pd.Series([None if pd.isna(v) else str(v) for v in paths],
                                                            dtype=object)})
    raw.notes["images"] = {
        "source": f"{ML_LATEST_SMALL_POSTER_INDEX}: ML-1M poster where there is one, else the ml-latest-small poster",
        "items_with_image": int(raw.item_images["image_path"].notna().sum()),
        "listed_but_file_missing": int((~exists).sum()),
        "listed_but_not_in_movies_csv": int((~index["item"].isin(raw.items["item"])).sum()),
    }
    folders = sorted({p.rsplit("/", 1)[0] + "/" for p in index["image_path"][exists]})
    raw.source_files += [ML_LATEST_SMALL_POSTER_INDEX, *folders]


def _is_plain_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and ":" not in path \
        and all(part not in ("", ".", "..") for part in parts)


# ----- MovieLens 1M ------------------------------------------------------------------


def _movielens_1m(raw_dir: Path, dataset: str) -> RawDataset:
    ratings = read_table(require_file(raw_dir, "ratings.dat", dataset), RATING_COLUMNS, sep="::",
                         ranges=rating_ranges(dataset))
    movies = read_table(
        require_file(raw_dir, "movies.dat", dataset), {"item": "int", "title": "str", "genres": "str"},
        sep="::", encoding="iso-8859-1",
    )
    users = read_table(
        require_file(raw_dir, "users.dat", dataset),
        {"user": "int", "gender": "str", "age": "int", "occupation": "int", "zip_code": "str"},
        sep="::",
    )
    content_items, content, names = split_genres(movies["item"], movies["genres"])
    return RawDataset(
        interactions=ratings,
        source_files=["ratings.dat", "movies.dat", "users.dat"],
        users=users,
        items=movies,
        item_features={"genres": RawFeatures(content, content_items, {
            "source": "movies.dat", "features": "genres of movies.dat (0/1)", "feature_names": names})},
    )


def parse_movielens_1m(raw_dir: Path) -> RawDataset:
    return _movielens_1m(Path(raw_dir), "movielens-1m")


def parse_movielens_1m_posters(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    dataset = "movielens-1m-posters"
    raw = _movielens_1m(raw_dir, dataset)
    paths = _poster_paths(raw_dir, raw.items["item"].astype("Int64"), dataset)
    raw.item_images = pd.DataFrame({"item": raw.items["item"].to_numpy(), "image_path": pd.Series(paths, dtype=object)})
    raw.notes["images"] = {"source": "MovieImages/<MovieID>.jpg",
                           "items_with_image": int(sum(path is not None for path in paths))}
    raw.source_files.append("MovieImages/")
    return raw
