"""Parsers for the ML-1M splits published with NCF, SpectralCF and LCFN.

Each dataset's interactions are the union of the published train and test files (the
original ML-1M ratings are not needed); the files themselves become the given split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets.parsers.raw import RawDataset, pairs_frame
from datasets.parsers.readers import (
    first_line_of, line_text, malformed, read_table, read_user_lists, require_file, tokenize_lines,
)


def read_rating_file(path: Path) -> pd.DataFrame:
    """Tab-separated ``user item rating [timestamp]`` (NCF, MCRec); the first line decides
    whether the timestamp column is there."""
    with open(path, "rb") as handle:
        first = handle.readline()
    columns = {"user": "int", "item": "int", "rating": "float"}
    if first.count(b"\t") == 3:
        columns["timestamp"] = "int"
    return read_table(path, columns)


def read_negative_file(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """NCF's ``(user,item)\tneg\tneg ...`` lines -> (the (user, item) heads, the negatives)."""
    expected = "`(user,item)` then tab-separated negative item ids"
    tokens, lines, n_lines = tokenize_lines(Path(path).read_bytes())
    first = np.ones(len(lines), dtype=bool)
    first[1:] = lines[1:] != lines[:-1]
    heads, head_lines = tokens[first], lines[first]
    user, comma, item = (np.char.partition(np.char.strip(heads, b"()"), b",")[:, k] for k in range(3))
    well_formed = (np.char.startswith(heads, b"(") & np.char.endswith(heads, b")") & (comma == b",")
                   & np.char.isdigit(user) & np.char.isdigit(item))
    if not well_formed.all():
        number = first_line_of(well_formed, head_lines)
        raise malformed(path, number, expected, line_text(path, number))
    digits = np.char.isdigit(tokens) | first
    if not digits.all():
        number = first_line_of(digits, lines)
        raise malformed(path, number, expected, line_text(path, number))
    head_users, head_items = user.astype(np.int64), item.astype(np.int64)
    negatives = tokens[~first].astype(np.int64)
    lengths = np.bincount(lines, minlength=n_lines)[head_lines] - 1
    return pairs_frame(head_users, head_items), pairs_frame(np.repeat(head_users, lengths), negatives)


def parse_movielens_1m_ncf(raw_dir: Path) -> RawDataset:
    """NCF (He et al., WWW 2017): leave-one-out ML-1M with 99 sampled negatives per test user."""
    raw_dir = Path(raw_dir)
    dataset = "movielens-1m-ncf"
    train = read_rating_file(require_file(raw_dir, "ml-1m.train.rating", dataset))
    test = read_rating_file(require_file(raw_dir, "ml-1m.test.rating", dataset))
    heads, negatives = read_negative_file(require_file(raw_dir, "ml-1m.test.negative", dataset))
    per_user = negatives.groupby("user").size()
    test_pairs = set(zip(test["user"].tolist(), test["item"].tolist()))
    head_pairs = set(zip(heads["user"].tolist(), heads["item"].tolist()))
    notes = {
        "ncf_negatives": {
            "negatives_per_user": sorted({int(n) for n in per_user.unique()}),
            "heads_matching_test_rows": len(head_pairs & test_pairs),
            "test_rows": int(len(test)),
        }
    }
    return RawDataset(
        interactions=pd.concat([train, test], ignore_index=True),
        source_files=["ml-1m.train.rating", "ml-1m.test.rating", "ml-1m.test.negative"],
        given={"ncf": {"train": train, "test": test, "negatives": negatives}},
        notes=notes,
    )


def _user_list_split(raw_dir: Path, dataset: str, split: str, train_name: str, test_name: str) -> RawDataset:
    train = pairs_frame(*read_user_lists(require_file(raw_dir, train_name, dataset)))
    test = pairs_frame(*read_user_lists(require_file(raw_dir, test_name, dataset)))
    return RawDataset(
        interactions=pd.concat([train, test], ignore_index=True),
        source_files=[train_name, test_name],
        given={split: {"train": train, "test": test}},
        notes={"implicit": "the published files list interacted items only: no ratings, no timestamps"},
    )


def parse_movielens_1m_spectralcf(raw_dir: Path) -> RawDataset:
    """SpectralCF (Zheng et al., RecSys 2018) ML-1M split, as copied by Ferrari Dacrema et al."""
    return _user_list_split(Path(raw_dir), "movielens-1m-spectralcf", "spectralcf", "train_users.dat", "test_users.dat")


def parse_movielens_1m_lcfn(raw_dir: Path) -> RawDataset:
    """LCFN (Yu & Qin, ICML 2020) ML-1M split (BARS ``Movielens1M_m1``)."""
    return _user_list_split(Path(raw_dir), "movielens-1m-lcfn", "lcfn", "train.txt", "test.txt")
