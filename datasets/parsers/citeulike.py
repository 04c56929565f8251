"""Parsers for CiteULike-a (Wang & Blei, KDD 2011) and CiteULike-t (Wang, Chen & Li, IJCAI 2013),
with the P=1 / P=10 splits published by the CDL/CVAE authors (Li & She, KDD 2017).

In every ``count id id ...`` file the 0-based line number is the owner's id (user or item).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.parsers.raw import RawDataset, RawFeatures, binary_content, contains, pairs_frame, sorted_unique
from datasets.parsers.readers import check_counts, read_count_lists, read_int_lists, require_file

SPLIT_FILES = {"p1": ("cvae-split/cf-train-1-users.dat", "cvae-split/cf-test-1-users.dat"),
               "p10": ("cvae-split/cf-train-10-users.dat", "cvae-split/cf-test-10-users.dat")}


def _count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def _users_and_splits(raw_dir: Path, dataset: str) -> tuple[pd.DataFrame, dict, dict, list[str]]:
    users, items, n_users = read_count_lists(require_file(raw_dir, "users.dat", dataset), "item")
    interactions = pairs_frame(users, items)
    given, relations = {}, {}
    n_items = int(items.max(initial=-1)) + 1
    full_keys = _pair_keys(interactions, n_items)
    for split, (train_name, test_name) in SPLIT_FILES.items():
        parts = {}
        for part, name in (("train", train_name), ("test", test_name)):
            owners, values, _ = read_count_lists(require_file(raw_dir, name, dataset), "item")
            parts[part] = pairs_frame(owners, values)
        given[split] = parts
        relations[split] = _relation(full_keys, _pair_keys(parts["train"], n_items), _pair_keys(parts["test"], n_items))
    sources = ["users.dat"] + [name for pair in SPLIT_FILES.values() for name in pair]
    return interactions, given, {"given_split_vs_users_dat": relations, "users_in_users_dat": n_users}, sources


def _pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    # user * n_items + item, not user << 32 + item: numpy's hash-based unique degrades when
    # keys differ only in their high bits
    items = frame["item"].to_numpy(np.int64)
    return sorted_unique(frame["user"].to_numpy(np.int64) * max(n_items, int(items.max(initial=-1)) + 1) + items)


def _relation(full: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """How a published split relates to users.dat (all arguments sorted unique pair keys)."""
    union = sorted_unique(np.concatenate([train, test]))
    return {
        "train_pairs": int(len(train)),
        "test_pairs": int(len(test)),
        "train_test_overlap": int(contains(test, train).sum()),
        "union_equals_users_dat": bool(np.array_equal(union, full)),
        "pairs_only_in_users_dat": int((~contains(union, full)).sum()),
        "pairs_only_in_split": int((~contains(full, union)).sum()),
    }


def parse_citeulike_a(raw_dir: Path) -> RawDataset:
    """Item content is the items x tags 0/1 matrix of ``item-tag.dat`` (the ``tags`` feature set):
    the bag of words (``mult.dat``) used by CDL/CVAE is not in the mirror."""
    raw_dir = Path(raw_dir)
    dataset = "citeulike-a"
    interactions, given, notes, sources = _users_and_splits(raw_dir, dataset)
    tag_items, tags, n_items = read_count_lists(require_file(raw_dir, "item-tag.dat", dataset), "tag")
    n_tags = int(tags.max()) + 1 if len(tags) else 0
    if (raw_dir / "tags.dat").exists():
        n_tags = max(n_tags, _count_lines(raw_dir / "tags.dat"))
        sources.append("tags.dat")
    notes["item_content_note"] = "item content is item-tag.dat (tags); the bag of words mult.dat is not available here"
    return RawDataset(
        interactions=interactions,
        source_files=sources + ["item-tag.dat"],
        item_features={"tags": RawFeatures(binary_content(tag_items, tags, n_items, n_tags), np.arange(n_items), {
            "source": "item-tag.dat", "features": "item x tag matrix of item-tag.dat (0/1)",
            "feature_names": "line order of tags.dat"})},
        given=given,
        notes=notes,
    )


def parse_citeulike_t(raw_dir: Path) -> RawDataset:
    """Item content is the LDA-C bag of words of ``mult.dat`` (``n word:count ...``): the ``bow``
    feature set (preparation adds its TF-IDF, ``bow-tfidf``)."""
    raw_dir = Path(raw_dir)
    dataset = "citeulike-t"
    interactions, given, notes, sources = _users_and_splits(raw_dir, dataset)
    path = require_file(raw_dir, "mult.dat", dataset)
    expected = "`n word:count word:count ...` (LDA-C, non-negative integers)"
    lists = read_int_lists(path, expected, allow_blank_lines=False, pairs_sep=b":")
    check_counts(path, lists, expected, per_value=2)
    words, counts = lists.values[0::2], lists.values[1::2]
    rows = np.repeat(lists.line_numbers - 1, lists.lengths // 2)
    n_words = int(words.max()) + 1 if len(words) else 0
    if (raw_dir / "vocabulary.dat").exists():
        n_words = max(n_words, _count_lines(raw_dir / "vocabulary.dat"))
        sources.append("vocabulary.dat")
    n_items = len(lists.line_numbers)
    content = sp.csr_matrix((counts.astype(np.float32), (rows, words)), shape=(n_items, n_words))
    content.sum_duplicates()
    notes["unused_files"] = "tag-item.dat, tags.dat and citations.dat are not used"
    return RawDataset(
        interactions=interactions,
        source_files=sources + ["mult.dat"],
        item_features={"bow": RawFeatures(content, np.arange(n_items), {
            "source": "mult.dat", "features": "bag of words of mult.dat (word counts)",
            "feature_names": "line order of vocabulary.dat"})},
        given=given,
        notes=notes,
    )
