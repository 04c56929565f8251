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
    """Write every part and the card atomically."""
    with atomic_directory(destination) as out:
        for part, filename in PART_FILES.items():
            frame = getattr(split, part)
            columns = ["user", "item"] if part.endswith("negatives") else None
            frame = normalise_interactions(frame if columns is None else frame[columns])
            frame.to_parquet(out / filename, index=False)
        (out / "card.json").write_text(json.dumps(split.card, indent=2, sort_keys=True) + "\n")
        if split.items is not None:
            split.items.to_parquet(out / ITEMS_FILE, index=False)
        if split.item_images is not None:
            split.item_images.to_parquet(out / IMAGES_FILE, index=False)
        for key, features in split.item_features.items():
            write_feature_set(features, out / FEATURES_DIR / key)


def load_split(source: Path | str, parts: tuple[str, ...] | None = None) -> Split:
    """Read a split folder. ``parts`` limits what is read (``TUNING_PARTS`` while tuning);
    the parts not read are left empty."""
    source = Path(source)
    card_path = source / "card.json"
    if not card_path.exists():
        raise RecAuditError(f"no split at {source}; run `dvc repro` or `python -m protocols split` first")
    wanted = tuple(PART_FILES) if parts is None else parts
    unknown = set(wanted) - set(PART_FILES)
    if unknown:
        raise ValueError(f"unknown split parts {sorted(unknown)}")
    frames = {part: pd.read_parquet(source / PART_FILES[part]) if part in wanted else empty_part()
              for part in PART_FILES}
    card = json.loads(card_path.read_text())
    carried = (card.get("side") or {}).get("feature_sets") or {}
    features = {}
    for key, expected in sorted(carried.items()):
        loaded = read_feature_set(source / FEATURES_DIR / key)
        if loaded.sha256 != expected:
            raise RecAuditError(f"feature set {key} of the split at {source} does not match the split card "
                                f"(sha256 {loaded.sha256[:12]} != {expected[:12]}); rebuild the split")
        features[key] = loaded
    items_path, images_path = source / ITEMS_FILE, source / IMAGES_FILE
    return Split(**frames, card=card, item_features=features,
                 item_images=pd.read_parquet(images_path) if images_path.exists() else None,
                 items=pd.read_parquet(items_path) if items_path.exists() else None)
