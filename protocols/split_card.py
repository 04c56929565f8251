"""The split card (``card.json``): what a split is, how it was made, and whether it is sound.

Besides protocol, params, seed and the prepared id space (``n_users``, ``n_items``), the card
holds, per part, its rows, users, items and a content hash, and sanity figures:

- ``duplicate_pairs_across_parts``: (user, item) pairs found in two interaction parts. Must be
  0; :func:`make_card` raises otherwise.
- ``*_interactions_item_not_in_train``: held-out interactions whose item never occurs in train.
- ``popularity``: Kendall's tau-b between train and test item popularity (interaction counts,
  0 for an item absent from one side) over the items in either part, and the Gini coefficient
  of item popularity of each part (see :func:`gini`).
- ``timestamps`` (when the data has them): latest train and earliest validation/test
  timestamps and how many train interactions are later than the earliest held-out one (must
  be 0 for ``temporal``; :func:`make_card` raises otherwise).
- ``negatives``: per-user counts, repeats within a user and negatives that are positives of
  that user (must be 0 for sampled protocols other than ``given``, whose negatives are the
  authors' and are only reported).

Part hashes are sha256 over a canonical byte form of the frame exactly as written (for each
column: ``name:dtype:rows`` then the little-endian values), so they do not depend on the
parquet writer's version.

``side`` lists what the split carries besides interactions, by hash: the item table
(``items_sha256``), the image manifest (``images``: its sha256 over every item's path and file
sha256, and the item counts) and each content feature set (``feature_sets``: key -> sha256).
Two splits that differ only in item content therefore have different cards. No machine path is
recorded anywhere in a card.

``card_sha256``, added when the split is written, is the sha256 of the card's own content
(:func:`card_sha256`: canonical JSON of every other key), so an edited card is told apart from
the one the split was written with. Loading a split (:func:`protocols.split_data.load_split`)
checks the card's fields, each part it reads against the part's hash and counts, the ids
against ``n_users``/``n_items``, and finally this hash.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from common.errors import RecAuditError
from protocols.splitting.keys import contains, pair_keys, sorted_unique

INTERACTION_PARTS = ("train", "validation", "test", "validation_input", "test_input")
NEGATIVE_PARTS = ("validation_negatives", "test_negatives")
HASH_METHOD = "sha256 over 'column:dtype:rows' + little-endian values per column (protocols.split_card.part_sha256)"


def make_card(parts: Mapping[str, pd.DataFrame], protocol: str, params: Mapping, seed: int,
              dataset_meta: Mapping, excluded: Mapping | None = None, rules: Mapping | None = None,
              positives: pd.DataFrame | None = None, side: Mapping | None = None) -> dict:
    """Build the card of a split whose parts are given in their written form.

    ``dataset_meta`` needs ``name``, ``n_users`` and ``n_items`` (``n_interactions`` optional);
    ``positives`` are all known interactions of the dataset, used to check the negatives.
    """
    n_items = int(dataset_meta["n_items"])
    frames = {part: parts[part] for part in (*INTERACTION_PARTS, *NEGATIVE_PARTS) if part in parts}
    where = f"{protocol} split of {dataset_meta['name']!r}"
    card = {
        "protocol": protocol,
        "params": {key: _plain(value) for key, value in params.items()},
        "seed": int(seed),
        "dataset": dataset_meta["name"],
        "n_users": int(dataset_meta["n_users"]),
        "n_items": n_items,
        "n_interactions": _plain(dataset_meta.get("n_interactions")),
        "hash_method": HASH_METHOD,
        "parts": {part: describe_part(frame) for part, frame in frames.items()},
        "excluded": {key: dict(value) for key, value in (excluded or {}).items()},
        "rules": dict(rules or {}),
        "side": dict(side or {"items_sha256": None, "images": None, "feature_sets": {}}),
    }
    in_train = params.get("validation_rule") == "in-train"
    card["validation_in_train"] = in_train
    sanity = {"duplicate_pairs_across_parts": _check_disjoint(frames, n_items, where,
                                                              allowed={("train", "validation")} if in_train else set())}
    sanity.update(_unseen_items(frames, n_items))
    sanity["popularity"] = _popularity(frames, n_items)
    sanity["timestamps"] = _timestamps(frames, protocol == "temporal", where)
    sanity["negatives"] = _negatives(frames, positives, n_items, strict=protocol != "given", where=where)
    card["sanity"] = sanity
    return card


def side_description(items: pd.DataFrame | None, images: pd.DataFrame | None, feature_sets: Mapping) -> dict:
    """The card's ``side`` section (see the module docstring)."""
    from datasets.item_data import image_manifest_sha256

    described = {"items_sha256": None if items is None else table_sha256(items), "images": None,
                 "feature_sets": {key: features.sha256 for key, features in sorted(feature_sets.items())}}
    if images is not None:
        paths = [None if pd.isna(path) else str(path) for path in images["image_path"]]
        hashes = list(images["sha256"]) if "sha256" in images.columns else [None] * len(paths)
        ordered = np.argsort(images["item"].to_numpy(), kind="stable")
        paths, hashes = [paths[i] for i in ordered], [None if pd.isna(hashes[i]) else hashes[i] for i in ordered]
        described["images"] = {"manifest_sha256": image_manifest_sha256(paths, hashes),
                               "items_with_image": int(sum(path is not None for path in paths))}
    return described


def table_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a table of any column types: column names, then pandas' per-row hashes."""
    digest = hashlib.sha256(("\t".join(map(str, frame.columns)) + "\n").encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().astype("<u8").tobytes())
    return digest.hexdigest()


def gini(counts) -> float | None:
    """Gini coefficient of the positive entries of ``counts`` (items that occur in a part).

    With the values sorted ascending, x_(1) <= ... <= x_(n):
    G = sum_i (2i - n - 1) x_(i) / (n * sum_i x_(i)), which equals the mean absolute difference
    over all ordered pairs divided by twice the mean. 0: every item equally popular; it
    approaches 1 when one item takes every interaction. ``None`` for an empty part.
    """
    values = np.sort(np.asarray(counts, dtype=np.float64))
    values = values[values > 0]
    n = len(values)
    if n == 0:
        return None
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float(weights @ values / (n * values.sum()))


def describe_part(frame: pd.DataFrame) -> dict:
    """A part's entry in the card: rows, distinct users and items, content hash."""
    return {"rows": int(len(frame)), "users": _distinct(frame["user"]), "items": _distinct(frame["item"]),
            "sha256": part_sha256(frame)}


def card_sha256(card: Mapping) -> str:
    """sha256 of the card's content: the canonical JSON (sorted keys, no spaces) of every key but
    ``card_sha256`` itself."""
    content = {key: value for key, value in card.items() if key != "card_sha256"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def part_sha256(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for column in frame.columns:
        values = frame[column].to_numpy()
        little_endian = values.astype(values.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{column}:{little_endian.dtype.str}:{len(values)}\n".encode())
        digest.update(np.ascontiguousarray(little_endian).tobytes())
    return digest.hexdigest()


def summary_line(card: Mapping, key: str | None = None) -> str:
    """One line with the card's key figures, for the command line."""
    parts = card["parts"]
    sizes = ", ".join(f"{part} {parts[part]['rows']}" for part in (*INTERACTION_PARTS, "test_negatives")
                      if part in parts and parts[part]["rows"])
    sanity = card["sanity"]
    popularity = sanity["popularity"]
    figures = [f"test interactions with items unseen in train {sanity['test_interactions_item_not_in_train']}",
               f"popularity tau {_fmt(popularity['kendall_tau_train_test'])}",
               f"gini train {_fmt(popularity['gini']['train'])} test {_fmt(popularity['gini']['test'])}"]
    excluded = ", ".join(f"{name} {entry['count']}" for name, entry in card["excluded"].items() if entry["count"])
    return (f"{key or card['dataset']}: {card['protocol']} seed {card['seed']}: {sizes} rows; "
            + "; ".join(figures) + f"; excluded: {excluded or 'none'}")


# ----- the figures ---------------------------------------------------------------------
def _check_disjoint(frames, n_items, where, allowed=frozenset()) -> int:
    """0, or raise: no pair of parts may share a (user, item) pair, except the ``allowed`` pairs
    of parts (validation kept inside train, a protocol rule the card records)."""
    keys = {part: sorted_unique(pair_keys(frames[part], n_items)) for part in INTERACTION_PARTS if part in frames}
    overlaps = {(a, b): int(contains(keys[a], keys[b]).sum())
                for a, b in itertools.combinations(keys, 2) if (a, b) not in allowed}
    shared = {pair: count for pair, count in overlaps.items() if count}
    if shared:
        listed = ", ".join(f"{a}/{b}: {count}" for (a, b), count in shared.items())
        raise RecAuditError(f"{where}: (user, item) pairs occur in more than one part ({listed}); "
                            "the parts must be disjoint; fix the input data or report a bug")
    return 0


def _unseen_items(frames, n_items) -> dict:
    in_train = np.bincount(frames["train"]["item"].to_numpy(np.int64), minlength=n_items) > 0
    fitted = in_train.copy()
    fitted[frames["validation"]["item"].to_numpy(np.int64)] = True
    train_users = np.bincount(frames["train"]["user"].to_numpy(np.int64)) > 0
    test_users = sorted_unique(frames["test"]["user"].to_numpy(np.int64))
    test_users_in_train = test_users < len(train_users)
    test_users_in_train[test_users_in_train] = train_users[test_users[test_users_in_train]]
    return {
        "validation_interactions_item_not_in_train": int((~in_train[frames["validation"]["item"].to_numpy()]).sum()),
        "test_interactions_item_not_in_train": int((~in_train[frames["test"]["item"].to_numpy()]).sum()),
        "test_interactions_item_not_in_train_or_validation": int((~fitted[frames["test"]["item"].to_numpy()]).sum()),
        "test_users_not_in_train": int((~test_users_in_train).sum()),
    }


def _popularity(frames, n_items) -> dict:
    counts = {part: np.bincount(frames[part]["item"].to_numpy(np.int64), minlength=n_items)
              for part in INTERACTION_PARTS if part in frames}
    either = (counts["train"] > 0) | (counts["test"] > 0)
    tau = None
    if either.sum() >= 2:
        statistic = kendalltau(counts["train"][either], counts["test"][either]).statistic
        tau = None if np.isnan(statistic) else round(float(statistic), 6)
    return {"kendall_tau_train_test": tau,
            "gini": {part: _round(gini(count)) for part, count in counts.items()}}


def _timestamps(frames, strict: bool, where: str) -> dict | None:
    train = frames["train"]
    if "timestamp" not in train.columns or len(train) == 0:
        return None
    latest_train = train["timestamp"].to_numpy(np.int64)
    figures = {"max_train": int(latest_train.max())}
    for part in ("validation", "test"):
        frame = frames[part]
        if "timestamp" not in frame.columns or len(frame) == 0:
            continue
        earliest = int(frame["timestamp"].min())
        figures[f"min_{part}"] = earliest
        figures[f"train_after_first_{part}"] = int((latest_train > earliest).sum())
    if "min_test" in figures and "min_validation" in figures:
        figures["validation_after_first_test"] = int((frames["validation"]["timestamp"] > figures["min_test"]).sum())
    if strict:
        late = {key: value for key, value in figures.items() if "_after_first_" in key and value}
        if late:
            raise RecAuditError(f"{where}: interactions precede later parts out of time order {late}; report a bug")
    return figures


def _negatives(frames, positives, n_items, strict: bool, where: str) -> dict:
    figures = {}
    positive_keys = None if positives is None else sorted_unique(pair_keys(positives, n_items))
    for part in NEGATIVE_PARTS:
        frame = frames.get(part)
        if frame is None or len(frame) == 0:
            continue
        per_user = np.bincount(frame["user"].to_numpy(np.int64))
        per_user = per_user[per_user > 0]
        keys = pair_keys(frame, n_items)
        entry = {"users": int(len(per_user)), "min_per_user": int(per_user.min()),
                 "max_per_user": int(per_user.max()), "repeats_within_user": int(len(keys) - len(sorted_unique(keys)))}
        if positive_keys is not None:
            entry["that_are_positives"] = int(contains(positive_keys, keys).sum())
        if strict and (entry["repeats_within_user"] or entry.get("that_are_positives")):
            raise RecAuditError(f"{where}: sampled {part} are not distinct never-touched items ({entry}); report a bug")
        figures[part] = entry
    return figures


def _distinct(ids: pd.Series) -> int:
    return int(np.count_nonzero(np.bincount(ids.to_numpy(np.int64)))) if len(ids) else 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
