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
``item_content.npz``              optional: the dataset's item side information, copied so that
``item_images.parquet``           a split folder holds everything a model may read
================================  ===========================================================

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
import scipy.sparse as sp

from datasets.atomic import atomic_directory
from datasets.canonical import normalise_interactions
from datasets.errors import RecAuditError
from protocols.contract import SideInformation

PART_FILES = {
    "train": "train.parquet",
    "validation": "validation.parquet",
    "test": "test.parquet",
    "validation_input": "validation_input.parquet",
    "test_input": "test_input.parquet",
    "validation_negatives": "validation_negatives.parquet",
    "test_negatives": "negatives.parquet",
}
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
    item_content: sp.csr_matrix | None = None
    item_images: pd.DataFrame | None = None

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
    def is_sampled(self) -> bool:
        return len(self.validation_negatives) > 0 or len(self.test_negatives) > 0

    def side_information(self) -> SideInformation | None:
        """Item content and image paths for ``fit``; None when the dataset has neither."""
        if self.item_content is None and self.item_images is None:
            return None
        if self.item_content is not None and self.item_content.shape[0] != self.n_items:
            raise RecAuditError(f"the split's item content has {self.item_content.shape[0]} rows for "
                                f"{self.n_items} items; rebuild the split from its prepared dataset")
        images = None
        if self.item_images is not None:
            images = [None] * self.n_items
            for item, path in zip(self.item_images["item"].to_numpy(), self.item_images["image_path"]):
                images[int(item)] = None if pd.isna(path) else str(path)
        image_root = self.card.get("image_root")
        return SideInformation(item_content=self.item_content, item_images=images,
                               image_root=Path(image_root) if image_root else None)


def write_split(split: Split, destination: Path | str) -> None:
    """Write every part and the card atomically."""
    with atomic_directory(destination) as out:
        for part, filename in PART_FILES.items():
            frame = getattr(split, part)
            columns = ["user", "item"] if part.endswith("negatives") else None
            frame = normalise_interactions(frame if columns is None else frame[columns])
            frame.to_parquet(out / filename, index=False)
        (out / "card.json").write_text(json.dumps(split.card, indent=2, sort_keys=True) + "\n")
        if split.item_content is not None:
            sp.save_npz(out / "item_content.npz", sp.csr_matrix(split.item_content))
        if split.item_images is not None:
            split.item_images.to_parquet(out / "item_images.parquet", index=False)


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
    content_path, images_path = source / "item_content.npz", source / "item_images.parquet"
    return Split(**frames, card=json.loads(card_path.read_text()),
                 item_content=sp.load_npz(content_path).tocsr() if content_path.exists() else None,
                 item_images=pd.read_parquet(images_path) if images_path.exists() else None)
