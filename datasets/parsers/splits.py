"""Parsers for the ML-1M splits published with NCF, SpectralCF and LCFN.

Each dataset's interactions are the union of the published train and test files (the
original ML-1M ratings are not needed); the files themselves become the given split.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.parsers.raw import RawDataset, pairs_frame
from datasets.parsers.readers import malformed, read_table, read_user_lists, require_file
from datasets.errors import RecAuditError

NEGATIVE_HEAD = re.compile(rb"\((\d+),(\d+)\)")


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
    """NCF's ``(user,item)\\tneg\\tneg ...`` lines -> (the (user, item) heads, the negatives)."""
    expected = "`(user,item)` then tab-separated negative item ids"
    lines = Path(path).read_bytes().splitlines()
    fields = [line.split(b"\t") for line in lines if line.strip()]
    numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
    heads = [NEGATIVE_HEAD.fullmatch(row[0]) for row in fields]
    for head, number in zip(heads, numbers):
        if head is None:
            raise malformed(path, number, expected, lines[number - 1])
    lengths = np.fromiter((len(row) - 1 for row in fields), dtype=np.int64, count=len(fields))
    flat = np.array([token for row in fields for token in row[1:]])
    try:
        negatives = flat.astype(np.int64) if len(flat) else np.zeros(0, dtype=np.int64)
    except ValueError:
        for row, number in zip(fields, numbers):
            if not all(token.strip().isdigit() for token in row[1:]):
                raise malformed(path, number, expected, lines[number - 1]) from None
        raise RecAuditError(f"{path}: cannot be read as {expected}") from None
    head_users = np.array([int(head.group(1)) for head in heads], dtype=np.int64)
    head_items = np.array([int(head.group(2)) for head in heads], dtype=np.int64)
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
