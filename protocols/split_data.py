"""The stored form of a split: what a split stage writes and every model reads.

A split folder holds one parquet file per part (columns ``user``, ``item`` and, where
known, ``rating`` and ``timestamp``) and ``card.json``. Every part is always written,
empty where the protocol has no use for it, so that DVC stages can depend on single files:

================================  ===========================================================
``train.parquet``                 what models are fitted on while tuning
``validation.parquet``            held-out interactions ranked while tuning
``test.parquet``                  held-out interactions ranked once, by the final evaluation
``validation_input.parquet``      fold-in history of held-out validation users (``strong``)
``test_input.parquet``            fold-in history of held-out test users (``strong``)
``validation_negatives.parquet``  fixed sampled candidates per validation user (sampled protocols)
``negatives.parquet``             fixed sampled candidates per test user (sampled protocols)
``card.json``                     protocol, params, seed, hashes, counts and sanity figures
``items.parquet``                 optional: the item table (titles, ...), copied from the dataset
``item_images.parquet``           optional: ``item``, ``image_path`` (relative to the dataset's
                                  raw folder), ``sha256`` of each image file
``features/<key>/``               the dataset's content feature sets (``genres``, ``tags``,
                                  ``bow-tfidf``, ...), as :func:`datasets.item_data.write_feature_set`
================================  ===========================================================

The card's ``side`` section holds the hash of every side file the split carries (the item
table, the image manifest, each feature set), so a change of item content changes the card,
and with it every stage and tuning study that depends on the split. Loading checks each
carried feature set against the card (and its own meta). Features computed outside the
dataset (image features of an extractor, ``data/features/<dataset>/<extractor>/``) are not
carried: a model reads them through the runner, which hashes them into that model's inputs.

How the parts are used (the evaluator implements this):

- Weak generalisation (``holdout``, ``leave-one-out``, ``temporal``, ``cold-items``, ``given``):
  tuning fits on ``train`` and ranks ``validation`` with ``train`` as the user's history;
  the final run refits on ``train`` + ``validation`` and ranks ``test`` with that union as
  history. History items are excluded from the ranking.
- Strong generalisation (``strong``): users are disjoint between ``train``, validation users
  and test users. Tuning fits on ``train`` and ranks ``validation`` given ``validation_input``;
  the final run refits on ``train`` + ``validation_input`` + ``validation`` and ranks ``test``
  given ``test_input``.
- Sampled protocols rank each user's held-out items among that user's fixed negatives only.

Only the final evaluation stage may read ``test``, ``test_input`` and ``negatives``.

Verified before use: :func:`load_split` refuses, in one line naming the file and the command that
rebuilds the split, a card that is not valid JSON or lacks a field, a protocol it does not know
or params that protocol does not accept, a part whose content hash or counts differ from the
card's, ids outside ``n_users``/``n_items``, a side file or feature set that differs from the
card's hashes, and a card whose own hash (``card_sha256``) no longer matches its content.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.atomic import atomic_directory
from datasets.canonical import normalise_interactions
from common.errors import RecAuditError
from datasets.item_data import FeatureSet, read_feature_set, write_feature_set
from protocols.split_card import card_sha256, describe_part, part_sha256, side_description

PART_FILES = {
    "train": "train.parquet",
    "validation": "validation.parquet",
    "test": "test.parquet",
    "validation_input": "validation_input.parquet",
    "test_input": "test_input.parquet",
    "validation_negatives": "validation_negatives.parquet",
    "test_negatives": "negatives.parquet",
}
ITEMS_FILE = "items.parquet"
IMAGES_FILE = "item_images.parquet"
FEATURES_DIR = "features"
TUNING_PARTS = ("train", "validation", "validation_input", "validation_negatives")
TEST_PARTS = ("test", "test_input", "test_negatives")
STRONG_PROTOCOLS = frozenset({"strong"})


def empty_part() -> pd.DataFrame:
    return pd.DataFrame({"user": pd.Series([], dtype="int32"), "item": pd.Series([], dtype="int32")})


@dataclass
class Split:
    """One computed split. Parts a protocol does not use are empty frames, never ``None``.

    ``card`` holds at least ``protocol``, ``params``, ``seed``, ``n_users`` and ``n_items``
    (the id space of the prepared dataset, which every part shares).
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_input: pd.DataFrame = field(default_factory=empty_part)
    test_input: pd.DataFrame = field(default_factory=empty_part)
    validation_negatives: pd.DataFrame = field(default_factory=empty_part)
    test_negatives: pd.DataFrame = field(default_factory=empty_part)
    card: dict = field(default_factory=dict)
    item_features: dict[str, FeatureSet] = field(default_factory=dict)
    item_images: pd.DataFrame | None = None
    items: pd.DataFrame | None = None

    @property
    def n_users(self) -> int:
        return int(self.card["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.card["n_items"])

    @property
    def protocol(self) -> str:
        return str(self.card["protocol"])

    @property
    def is_strong(self) -> bool:
        return self.protocol in STRONG_PROTOCOLS

    @property
    def validation_in_train(self) -> bool:
        """The validation part is a subset of train (TOIS CiteULike P = 1): it is ranked without
        excluding seen items, and the final model is fitted on train alone."""
        return bool(self.card.get("validation_in_train", False))

    @property
    def is_sampled(self) -> bool:
        return len(self.validation_negatives) > 0 or len(self.test_negatives) > 0

def write_split(split: Split, destination: Path | str) -> None:
    """Write every part and the card atomically. The card gets each part's entry (rows, users,
    items, hash; checked against the parts written when it already has them), the side section
    when it lacks one, and its own hash, ``card_sha256`` (:mod:`protocols.split_card`)."""
    card = json.loads(json.dumps(split.card))  # what card.json will hold, as JSON reads it back
    described = card.setdefault("parts", {})
    with atomic_directory(destination) as out:
        for part, filename in PART_FILES.items():
            frame = getattr(split, part)
            columns = ["user", "item"] if part.endswith("negatives") else None
            frame = normalise_interactions(frame if columns is None else frame[columns])
            entry = describe_part(frame)
            if part in described and described[part].get("sha256") != entry["sha256"]:
                raise ValueError(f"the card describes another {part} part than the one written; report a bug")
            described[part] = described.get(part) or entry
            frame.to_parquet(out / filename, index=False)
        if "side" not in card:
            card["side"] = json.loads(json.dumps(side_description(split.items, split.item_images,
                                                                  split.item_features)))
        card["card_sha256"] = card_sha256(card)
        (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        if split.items is not None:
            split.items.to_parquet(out / ITEMS_FILE, index=False)
        if split.item_images is not None:
            split.item_images.to_parquet(out / IMAGES_FILE, index=False)
        for key, features in split.item_features.items():
            write_feature_set(features, out / FEATURES_DIR / key)


def load_split(source: Path | str, parts: tuple[str, ...] | None = None) -> Split:
    """Read a split folder, verified (see the module docstring): a part, a side file or a card
    that does not match what the split was written with is a one-line RecAuditError naming the
    file and the command that rebuilds the split. ``parts`` limits what is read
    (``TUNING_PARTS`` while tuning); the parts not read are left empty and are not checked."""
    source = Path(source)
    wanted = tuple(PART_FILES) if parts is None else parts
    unknown = set(wanted) - set(PART_FILES)
    if unknown:
        raise ValueError(f"unknown split parts {sorted(unknown)}")
    check = SplitCheck(source)
    card = check.card()
    frames = {part: check.part(card, part) if part in wanted else empty_part() for part in PART_FILES}
    carried = card["side"].get("feature_sets") or {}
    features = {}
    for key, expected in sorted(carried.items()):
        loaded = read_feature_set(source / FEATURES_DIR / key)
        if loaded.sha256 != expected:
            raise RecAuditError(f"feature set {key} of the split at {source} does not match the split card "
                                f"(sha256 {loaded.sha256[:12]} != {expected[:12]}); {check.rebuild}")
        if loaded.n_items != card["n_items"]:
            check.card_field("n_items", f"says {card['n_items']} items but feature set {key} has {loaded.n_items}")
        features[key] = loaded
    items = check.side_table(ITEMS_FILE)
    images = check.side_table(IMAGES_FILE)
    check.side(card, items, images)
    check.card_hash(card)
    return Split(**frames, card=card, item_features=features, item_images=images, items=items)


CARD_FIELDS = {"protocol": "a protocol name", "params": "a mapping", "seed": "a non-negative integer",
               "n_users": "a non-negative integer", "n_items": "a non-negative integer",
               "parts": "a mapping of part entries", "card_sha256": "the card's hash"}


class SplitCheck:
    """The checks of :func:`load_split` on one split folder, each a one-line RecAuditError that
    names the file at fault and how to rebuild the split (its key is the folder's last two
    names, ``<dataset>/<split>``, as under ``data/splits/``)."""

    def __init__(self, source: Path):
        self.source = source
        key = f"{source.parent.name}/{source.name}"
        self.rebuild = f"rebuild the split: `python -m protocols split {key}` or `dvc repro split@{key}`"
        self.card_path = source / "card.json"

    def fail(self, message: str) -> RecAuditError:
        return RecAuditError(f"{message}; {self.rebuild}")

    def card_field(self, field_name: str, problem: str) -> None:
        raise self.fail(f"{self.card_path}: {field_name} {problem}, so the card was edited or the split is damaged")

    def card(self) -> dict:
        if not self.card_path.exists():
            raise RecAuditError(f"no split at {self.source}; run `dvc repro` or `python -m protocols split` first")
        try:
            card = json.loads(self.card_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self.fail(f"{self.card_path} is not valid JSON ({error})") from None
        if not isinstance(card, dict):
            raise self.fail(f"{self.card_path} must hold a JSON object, got {type(card).__name__}")
        missing = [name for name in CARD_FIELDS if name not in card]
        if missing:
            old = " (a card written before cards carried their own hash)" if missing == ["card_sha256"] else ""
            raise self.fail(f"{self.card_path} lacks {', '.join(missing)}{old}")
        for name in ("seed", "n_users", "n_items"):
            value = card[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.card_field(name, f"is {value!r}, not {CARD_FIELDS[name]}")
        if not isinstance(card["params"], dict):
            self.card_field("params", f"is {card['params']!r}, not {CARD_FIELDS['params']}")
        self.protocol(card)
        if not isinstance(card["parts"], dict):
            self.card_field("parts", f"is {card['parts']!r}, not {CARD_FIELDS['parts']}")
        for part in PART_FILES:
            entry = card["parts"].get(part)
            if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                    and all(isinstance(entry.get(count), int) for count in ("rows", "users", "items"))):
                self.card_field(f"parts.{part}", "lacks its rows, users, items and sha256")
        side = card.setdefault("side", {})
        if not isinstance(side, dict):
            self.card_field("side", f"is {side!r}, not a mapping")
        return card

    def protocol(self, card: dict) -> None:
        """A known protocol, and params it accepts (those the card lists; a hand-built card may
        leave some to their defaults)."""
        from protocols.splits import PROTOCOLS

        name = card["protocol"]
        if name not in PROTOCOLS:
            known = ", ".join(sorted(PROTOCOLS))
            self.card_field("protocol", f"is an unknown protocol {name!r} (known protocols: {known})")
        protocol = PROTOCOLS[name]
        for key, value in card["params"].items():
            if key not in protocol.rules:
                self.card_field("params", f"hold {key!r}, which protocol {name!r} does not take "
                                          f"(its parameters: {', '.join(protocol.rules)})")
            if not protocol.rules[key].accepts(value):
                self.card_field(f"params.{key}", f"is {value!r}, but protocol {name!r} needs "
                                                 f"{protocol.rules[key].description}")

    def part(self, card: dict, part: str) -> pd.DataFrame:
        path = self.source / PART_FILES[part]
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:
            raise self.fail(f"{path} is missing") from None
        except Exception as error:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise self.fail(f"{path} cannot be read ({first_line})") from None
        entry = card["parts"][part]
        if "user" not in frame.columns or "item" not in frame.columns:
            raise self.fail(f"{path} has no user and item columns")
        actual = part_sha256(frame)
        if actual != entry["sha256"]:
            raise self.fail(f"{path} does not match the split card (sha256 {actual[:12]} != {entry['sha256'][:12]}): "
                            "the file changed after the split was written")
        for column, limit in (("user", card["n_users"]), ("item", card["n_items"])):
            ids = frame[column].to_numpy()
            if len(ids) and (ids.min() < 0 or ids.max() >= limit):
                self.card_field(f"n_{column}s", f"is {limit}, but {PART_FILES[part]} holds {column} id "
                                                f"{int(ids.max() if ids.max() >= limit else ids.min())}")
        found = describe_part(frame)
        for count in ("rows", "users", "items"):
            if found[count] != entry[count]:
                self.card_field(f"parts.{part}.{count}", f"is {entry[count]}, but {PART_FILES[part]} has {found[count]}")
        return frame

    def side_table(self, filename: str) -> pd.DataFrame | None:
        path = self.source / filename
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except Exception as error:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise self.fail(f"{path} cannot be read ({first_line})") from None

    def side(self, card: dict, items: pd.DataFrame | None, images: pd.DataFrame | None) -> None:
        """The item table and the image manifest against the card's ``side`` hashes."""
        side = card["side"]
        expected = side_description(items, images, {})
        if "items_sha256" in side and side["items_sha256"] != expected["items_sha256"]:
            raise self.fail(f"{self.source / ITEMS_FILE} does not match the split card's items_sha256 "
                            "(the file changed after the split was written, or is missing)")
        if "images" in side and (side["images"] or None) != expected["images"]:
            raise self.fail(f"{self.source / IMAGES_FILE} does not match the split card's images "
                            "(the file changed after the split was written, or is missing)")

    def card_hash(self, card: dict) -> None:
        actual = card_sha256(card)
        if actual != card["card_sha256"]:
            raise self.fail(f"{self.card_path} was edited after the split was written (its content hash "
                            f"{actual[:12]} != card_sha256 {str(card['card_sha256'])[:12]})")
