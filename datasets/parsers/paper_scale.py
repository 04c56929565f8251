"""Parsers for the paper-scale datasets: MovieLens 20M, the Million Song Dataset's Taste Profile,
the Netflix Prize training set and the NCF authors' Pinterest-20 files.

Formats, as the publishers document them:

- ``ratings.csv`` (ML-20M README): a header ``userId,movieId,rating,timestamp``, then one rating
  per line (0.5-5 stars in half steps, seconds since the epoch). ``movies.csv`` (``movieId,
  title,genres``, titles quoted where they hold a comma) gives the ``genres`` feature set when a
  person places it in the raw folder (it is not fetched).
- ``train_triplets.txt`` (Taste Profile page): ``user<TAB>song<TAB>play count`` per line, users
  as 40 hexadecimal digits, songs as Echo Nest ids (``SO`` + 16 upper-case letters or digits).
  48 million lines, 3 GB: it is streamed, and the string ids become integer codes in sorted order
  of the strings (``users``/``items`` keep the strings in ``user_id``/``song_id``), so nothing
  holds 48 million Python strings.
- Netflix Prize (its README): ``training_set.tar`` holds ``training_set/mv_0000001.txt`` ...
  ``mv_0017770.txt``, each a first line ``MovieID:`` then ``CustomerID,Rating,Date`` lines
  (ratings 1-5, dates ``YYYY-MM-DD``); ``movie_titles.txt`` is ``MovieID,YearOfRelease,Title``
  (ISO-8859-1; ``NULL`` for an unknown year; titles may hold commas). The parser reads, in this
  order of preference, ``training_set.tar``, a ``training_set/`` folder of the ``mv_*.txt`` files,
  or Kaggle's ``combined_data_1.txt`` ... ``combined_data_4.txt`` (the same ``MovieID:`` blocks,
  one after another). A date becomes the timestamp of its midnight (UTC).
- ``pinterest-20.{train,test}.rating`` / ``.test.negative``: the NCF authors' format, read as for
  their ML-1M files (:mod:`datasets.parsers.splits`).

Every malformed file raises one line naming the file (for a tar member: ``archive:member``),
the 1-based line and what was expected.
"""
from __future__ import annotations

import datetime
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from common.errors import RecAuditError
from datasets.parsers.raw import RawDataset, RawFeatures, split_genres
from datasets.parsers.readers import line_text, malformed, rating_ranges, read_table, require_file
from datasets.parsers.splits import read_negative_file, read_rating_file

SECONDS_PER_DAY = 86_400
BLOCK_BYTES = 1 << 26  # streaming reads of the 3 GB triplets file, 64 MiB at a time


# ----- MovieLens 20M -----------------------------------------------------------------


def parse_movielens_20m(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    dataset = "movielens-20m"
    ratings = read_table(
        require_file(raw_dir, "ratings.csv", dataset),
        {"user": "int", "item": "int", "rating": "float", "timestamp": "int"},
        sep=",", header="userId,movieId,rating,timestamp", ranges=rating_ranges(dataset),
    )
    ratings = ratings.astype({"user": np.int32, "item": np.int32, "rating": np.float32})
    raw = RawDataset(interactions=ratings, source_files=["ratings.csv"],
                     notes={"files": "ratings.csv only (the papers use nothing else)"})
    if (raw_dir / "movies.csv").exists():
        movies = read_table(raw_dir / "movies.csv", {"item": "int", "title": "str", "genres": "str"},
                            sep=",", header="movieId,title,genres", quoted=True)
        content_items, content, names = split_genres(movies["item"], movies["genres"],
                                                     empty=("(no genres listed)",))
        raw.items = movies
        raw.item_features["genres"] = RawFeatures(content, content_items, {
            "source": "movies.csv", "features": "genres of movies.csv (0/1); '(no genres listed)' is no genre",
            "feature_names": names})
        raw.source_files.append("movies.csv")
        raw.notes["files"] = "ratings.csv, movies.csv (genres)"
    return raw


# ----- Million Song Dataset: Taste Profile ----------------------------------------------

TRIPLETS = "train_triplets.txt"
TRIPLET_EXPECTED = ("`user<TAB>song<TAB>play count`: a 40-digit hexadecimal user id, an 18-character song id "
                    "(SO + 16 upper-case letters or digits), a play count >= 1")
USER_PATTERN = "^[0-9a-f]{40}$"
SONG_PATTERN = "^SO[0-9A-Z]{16}$"


def parse_msd_taste_profile(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    path = require_file(raw_dir, TRIPLETS, "msd-taste-profile")
    (users, user_ids), (songs, song_ids), plays = read_triplets(path)
    return RawDataset(
        interactions=pd.DataFrame({"user": users, "item": songs, "rating": plays}),
        source_files=[TRIPLETS],
        users=pd.DataFrame({"user": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids}),
        items=pd.DataFrame({"item": np.arange(len(song_ids), dtype=np.int32), "song_id": song_ids}),
        notes={"rating": "play count (train_triplets.txt), not a star rating",
               "ids": "users and songs are integer codes in sorted order of their ids; users.parquet and "
                      "items.parquet keep the ids (user_id, song_id)"},
    )


class _Codes:
    """String ids -> integer codes, in the order first seen; :meth:`sorted` renumbers them in
    sorted order of the strings."""

    def __init__(self):
        self.index: dict[str, int] = {}
        self.parts: list[np.ndarray] = []

    def add(self, column: pa.Array) -> None:
        encoded = pc.dictionary_encode(column)
        index = self.index
        local = np.fromiter((index.setdefault(name, len(index)) for name in encoded.dictionary.to_pylist()),
                            dtype=np.int32, count=len(encoded.dictionary))
        self.parts.append(local[encoded.indices.to_numpy(zero_copy_only=False)])

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes of every row, the id strings by code), codes in sorted order of the strings."""
        names = np.array(list(self.index), dtype=object)
        order = np.argsort(names.astype(str), kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        codes = rank[np.concatenate(self.parts)] if self.parts else np.zeros(0, dtype=np.int32)
        return codes, names[order]


def read_triplets(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Stream ``train_triplets.txt``; returns (user codes, user ids), (song codes, song ids), each
    code in sorted order of the ids, and the play counts (float32). A malformed line raises one
    line naming it."""
    path = Path(path)
    size = path.stat().st_size
    if size:
        with open(path, "rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.seek(0)
                number = sum(1 for _ in handle)
                raise malformed(path, number, "a last line that ends with a newline: the file looks truncated",
                                line_text(path, number))
    users, songs, plays = _Codes(), _Codes(), []
    row = 0
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["user", "song", "plays"], block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"user": pa.string(), "song": pa.string(), "plays": pa.int64()},
                strings_can_be_null=False),
        )
        for batch in reader:
            user, song, count = batch.column(0), batch.column(1), batch.column(2)
            valid = pc.and_(pc.and_(pc.match_substring_regex(user, USER_PATTERN),
                                    pc.match_substring_regex(song, SONG_PATTERN)),
                            pc.greater_equal(pc.fill_null(count, 0), 1))
            if not pc.all(valid).as_py():
                first = int(np.argmin(valid.to_numpy(zero_copy_only=False)))
                raise malformed(path, row + first + 1, TRIPLET_EXPECTED, line_text(path, row + first + 1))
            users.add(user)
            songs.add(song)
            plays.append(count.to_numpy().astype(np.float32))
            row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _raise_first_bad_triplet(path)
        raise RecAuditError(f"{path}: cannot be read as {TRIPLET_EXPECTED}: {error}") from None
    counts = np.concatenate(plays) if plays else np.zeros(0, dtype=np.float32)
    return users.sorted(), songs.sorted(), counts


def _raise_first_bad_triplet(path: Path) -> None:
    """Error path only: walk the file and raise for the first line that is not a triplet."""
    pattern = re.compile(rb"[0-9a-f]{40}\tSO[0-9A-Z]{16}\t0*[1-9][0-9]*")
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not pattern.fullmatch(line.rstrip(b"\n")):
                raise malformed(path, number, TRIPLET_EXPECTED, line.rstrip(b"\n"))


# ----- Netflix Prize ------------------------------------------------------------------

NETFLIX = "netflix-prize"
TRAINING_TAR = "training_set.tar"
TRAINING_DIR = "training_set"
COMBINED = tuple(f"combined_data_{k}.txt" for k in range(1, 5))
MOVIE_FILE = re.compile(r"(?:^|/)mv_(\d{7})\.txt$")
HEADER_LINE = re.compile(rb"^(\d+):[ \t]*$", re.MULTILINE)
RATING_LINE = re.compile(rb"\d+,\d+,\d{4}-\d{2}-\d{2}")
BLOCK_EXPECTED = "a `MovieID:` line, then `CustomerID,Rating,Date` lines (Date as YYYY-MM-DD)"


def parse_netflix_prize(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    scale = rating_ranges(NETFLIX).get("rating")
    if (raw_dir / TRAINING_TAR).is_file():
        parts, sources, layout = _netflix_tar(raw_dir / TRAINING_TAR, scale), [TRAINING_TAR], "training_set.tar"
    elif (raw_dir / TRAINING_DIR).is_dir():
        files = sorted(p for p in (raw_dir / TRAINING_DIR).iterdir() if MOVIE_FILE.search(p.name))
        if not files:
            raise RecAuditError(f"{raw_dir / TRAINING_DIR}: no mv_NNNNNNN.txt files; the folder is not Netflix's "
                                "training set, fetch it again (python -m datasets fetch netflix-prize)")
        parts = [_movie_file(f.read_bytes(), f, _movie_of(f.name), scale) for f in files]
        sources, layout = [f"{TRAINING_DIR}/"], "training_set/mv_*.txt"
    elif any((raw_dir / name).is_file() for name in COMBINED):
        present = [name for name in COMBINED if (raw_dir / name).is_file()]
        parts = [read_movie_blocks((raw_dir / name).read_bytes(), raw_dir / name, scale) for name in present]
        sources, layout = present, "Kaggle combined_data_*.txt"
    else:
        raise RecAuditError(
            f"{NETFLIX}: raw file {TRAINING_TAR} is missing from {raw_dir}; fetch it (python -m datasets fetch "
            f"{NETFLIX}), or copy Netflix's {TRAINING_TAR} (or its {TRAINING_DIR}/ folder, or Kaggle's "
            "combined_data_1..4.txt) there")
    items, users, ratings, days = (np.concatenate([part[k] for part in parts]) for k in range(4))
    raw = RawDataset(
        interactions=pd.DataFrame({"user": users, "item": items, "rating": ratings.astype(np.float32),
                                   "timestamp": days.astype(np.int64) * SECONDS_PER_DAY}),
        source_files=sources,
        notes={"layout": layout, "timestamp": "the rating's date at midnight UTC (Netflix gives dates only)"},
    )
    titles = next((name for name in ("movie_titles.txt", "movie_titles.csv") if (raw_dir / name).is_file()), None)
    if titles is not None:
        raw.items = read_movie_titles(raw_dir / titles)
        raw.source_files.append(titles)
    return raw


def _movie_of(name: str) -> int:
    return int(MOVIE_FILE.search(name).group(1))


def _netflix_tar(path: Path, scale) -> list[tuple[np.ndarray, ...]]:
    parts = []
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                found = MOVIE_FILE.search(member.name)
                if not member.isfile() or found is None:
                    continue
                with archive.extractfile(member) as stream:
                    content = stream.read()
                parts.append(_movie_file(content, Path(f"{path}:{member.name}"), int(found.group(1)), scale))
    except tarfile.TarError as error:
        raise RecAuditError(f"{path}: not a readable tar archive ({error}); the file is corrupt or not Netflix's "
                            "training_set.tar, fetch it again") from None
    if not parts:
        raise RecAuditError(f"{path}: holds no training_set/mv_NNNNNNN.txt file; it is not Netflix's "
                            "training_set.tar, fetch it again")
    return parts


def _movie_file(content: bytes, where: Path, movie: int, scale) -> tuple[np.ndarray, ...]:
    """One ``mv_NNNNNNN.txt``: a single block whose header must name the file's movie."""
    part = read_movie_blocks(content, where, scale, strict_end=False)
    if len(part[4]) != 1 or part[4][0] != movie:
        raise malformed(where, 1, f"the first line `{movie}:` (the movie of the file name) and no other `MovieID:` "
                                  "line", content.split(b"\n", 1)[0])
    return part


def read_movie_blocks(content: bytes, where: Path, scale=None, strict_end: bool = True) -> tuple[np.ndarray, ...]:
    """``MovieID:`` blocks of ``CustomerID,Rating,Date`` lines -> (items int32, users int32,
    ratings int8, days since the epoch int32, the movie ids of the blocks in file order).

    ``strict_end``: a last line without its newline is refused as a truncated file (else it is
    accepted, as for one movie's file inside a checked archive). ``scale`` (lowest, highest)
    bounds the ratings."""
    where = Path(where)
    if b"\r" in content:
        content = content.replace(b"\r\n", b"\n")
    if not content.strip():
        raise RecAuditError(f"{where}: is empty; the file is corrupt or not the expected one, fetch it again")
    if not content.endswith(b"\n"):
        if strict_end:
            lines = content.split(b"\n")
            raise malformed(where, len(lines), "a last line that ends with a newline: the file looks truncated",
                            lines[-1])
        content += b"\n"
    headers = list(HEADER_LINE.finditer(content))
    if not headers or headers[0].start() != 0:
        raise malformed(where, 1, BLOCK_EXPECTED, content.split(b"\n", 1)[0])
    movies = np.fromiter((int(h.group(1)) for h in headers), dtype=np.int64, count=len(headers))
    ends = [h.start() for h in headers[1:]] + [len(content)]
    bodies = [content[h.end() + 1:end] for h, end in zip(headers, ends)]
    lengths = np.fromiter((body.count(b"\n") for body in bodies), dtype=np.int64, count=len(bodies))
    joined = b"".join(bodies)
    columns = {"user": pa.int64(), "rating": pa.int64(), "date": pa.date32()}
    if not joined:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, empty.astype(np.int8), empty, movies
    try:
        table = pacsv.read_csv(
            io.BytesIO(joined),
            read_options=pacsv.ReadOptions(column_names=list(columns)),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=columns, strings_can_be_null=False),
        )
        if any(table.column(name).null_count for name in columns) or table.num_rows != lengths.sum():
            raise pa.ArrowInvalid("empty values or lines")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _raise_first_bad_rating_line(content, where)
        raise RecAuditError(f"{where}: cannot be read as {BLOCK_EXPECTED}: {error}") from None
    users = table.column("user").to_numpy()
    ratings = table.column("rating").to_numpy()
    days = table.column("date").cast(pa.int32()).to_numpy()
    lowest, highest = scale if scale is not None else (-np.inf, np.inf)
    bad = (users < 0) | (users > np.iinfo(np.int32).max) | (ratings < lowest) | (ratings > highest)
    if bad.any():
        row = int(np.argmax(bad))
        block = int(np.searchsorted(np.cumsum(lengths), row, side="right"))
        number = _line_of_row(content, headers, lengths, row, block)
        what = f"a customer id >= 0 and a rating in {lowest:g}..{highest:g} (the dataset's scale)" \
            if scale is not None else "a customer id >= 0"
        raise malformed(where, number, what, line_text_of(content, number))
    items = np.repeat(movies, lengths)
    if len(items) and (items.min() < 0 or items.max() > np.iinfo(np.int32).max):
        raise RecAuditError(f"{where}: a movie id outside 0..{np.iinfo(np.int32).max}; the file is corrupt")
    return items.astype(np.int32), users.astype(np.int32), ratings.astype(np.int8), days.astype(np.int32), movies


def _line_of_row(content: bytes, headers, lengths, row: int, block: int) -> int:
    """1-based line of data row ``row`` that lies in block ``block``."""
    header_line = content.count(b"\n", 0, headers[block].start()) + 1
    before = int(lengths[:block].sum())
    return header_line + 1 + (row - before)


def line_text_of(content: bytes, number: int) -> bytes:
    lines = content.split(b"\n", number)
    return lines[number - 1] if number <= len(lines) else b""


def _raise_first_bad_rating_line(content: bytes, where: Path) -> None:
    """Error path only: raise for the first line that is neither a header nor a rating line
    with a real date."""
    for number, line in enumerate(content.split(b"\n")[:-1], start=1):
        if HEADER_LINE.fullmatch(line):
            continue
        if RATING_LINE.fullmatch(line):
            try:
                datetime.date.fromisoformat(line.rsplit(b",", 1)[1].decode())
                continue
            except ValueError:
                pass
        raise malformed(where, number, BLOCK_EXPECTED, line)


def read_movie_titles(path: Path) -> pd.DataFrame:
    """``MovieID,YearOfRelease,Title`` (ISO-8859-1; the title may hold commas; ``NULL`` year)."""
    path = Path(path)
    items, years, titles = [], [], []
    for number, line in enumerate(path.read_bytes().decode("iso-8859-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",", 2)
        if len(fields) != 3 or not fields[0].isdigit() or not (fields[1].isdigit() or fields[1] == "NULL"):
            raise malformed(path, number, "`MovieID,YearOfRelease,Title` (YearOfRelease a year or NULL)", line)
        items.append(int(fields[0]))
        years.append(None if fields[1] == "NULL" else int(fields[1]))
        titles.append(fields[2])
    return pd.DataFrame({"item": np.asarray(items, dtype=np.int64), "year": pd.array(years, dtype="Int64"),
                         "title": pd.Series(titles, dtype=object)})


# ----- NCF's Pinterest-20 -------------------------------------------------------------


def parse_pinterest_20_ncf(raw_dir: Path) -> RawDataset:
    """NCF (He et al., WWW 2017): Pinterest users with >= 20 pins, leave-one-out, 99 sampled
    negatives per test user; ``pinterest-20.*`` in the format of the authors' ML-1M files."""
    raw_dir = Path(raw_dir)
    dataset = "pinterest-20-ncf"
    names = [f"pinterest-20.{part}" for part in ("train.rating", "test.rating", "test.negative")]
    train = read_rating_file(require_file(raw_dir, names[0], dataset))
    test = read_rating_file(require_file(raw_dir, names[1], dataset))
    heads, negatives = read_negative_file(require_file(raw_dir, names[2], dataset))
    per_user = negatives.groupby("user").size()
    test_pairs = set(zip(test["user"].tolist(), test["item"].tolist()))
    head_pairs = set(zip(heads["user"].tolist(), heads["item"].tolist()))
    return RawDataset(
        interactions=pd.concat([train, test], ignore_index=True),
        source_files=names,
        given={"ncf": {"train": train, "test": test, "negatives": negatives}},
        notes={"ncf_negatives": {"negatives_per_user": sorted({int(n) for n in per_user.unique()}),
                                 "heads_matching_test_rows": len(head_pairs & test_pairs),
                                 "test_rows": int(len(test))},
               "implicit": "every pin is a positive (rating 1); the files carry no time (timestamp 0)"},
    )


PAPER_SCALE_PARSERS = {
    "movielens-20m": parse_movielens_20m,
    "msd-taste-profile": parse_msd_taste_profile,
    "netflix-prize": parse_netflix_prize,
    "pinterest-20-ncf": parse_pinterest_20_ncf,
}
