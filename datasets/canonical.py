"""The canonical prepared form of a dataset, shared by every parser and read by every split.

A prepared dataset is a folder:

- ``interactions.parquet``: integer columns ``user`` and ``item`` (contiguous ids from 0),
  plus ``rating`` (float32) and ``timestamp`` (int64, seconds) where the data has them;
- ``users.parquet`` / ``items.parquet``: ``user`` / ``item`` and ``original_id`` (string),
  the map back to the raw ids, plus optional descriptive columns (title, genres, ...);
- ``features/<key>/``: one folder per named content feature set (``genres``, ``tags``, ``bow``,
  ``bow-tfidf``, ...), as written by :func:`datasets.item_data.write_feature_set`
  (``values.npz``, ``present.npy``, ``meta.json`` with its sha256, source and description);
- ``item_images.parquet``: optional; one row per item ``0..n_items-1``: ``item``,
  ``image_path`` (relative to the raw folder ``data/raw/<dataset>/``, or None) and ``sha256``
  (of the image file, or None);
- ``given/<name>/{train,test[,negatives]}.parquet``: optional splits published by a paper's
  authors, in the same id space;
- ``meta.json``: name, counts, preprocessing applied, source files and their checksums, the
  feature sets and image coverage. It never holds a machine path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_directory
from common.errors import RecAuditError
from datasets.item_data import FeatureSet, read_feature_set, write_feature_set

INTERACTION_DTYPES = {"user": "int32", "item": "int32", "rating": "float32", "timestamp": "int64"}
IMAGE_COLUMNS = ("item", "image_path", "sha256")
FEATURES_DIR = "features"


@dataclass
class PreparedData:
    """A prepared dataset in memory.

    ``item_features`` maps each feature set's key to its :class:`~datasets.item_data.FeatureSet`
    (rows aligned to the prepared item ids); ``item_images`` is the three-column image table
    (see the module docstring) or None.
    """

    name: str
    interactions: pd.DataFrame
    n_users: int
    n_items: int
    users: pd.DataFrame
    items: pd.DataFrame
    item_features: dict[str, FeatureSet] = field(default_factory=dict)
    item_images: pd.DataFrame | None = None
    given: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = normalise_interactions(self.interactions)
        self.item_features = dict(self.item_features)
        if self.item_images is not None:
            self.item_images = normalise_images(self.item_images, self.n_items)


def normalise_images(table: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """The image table with one row per item ``0..n_items-1`` and the columns ``item``,
    ``image_path``, ``sha256`` (None where an item has no image or no known hash)."""
    if "item" not in table.columns or "image_path" not in table.columns:
        raise RecAuditError(f"an item image table needs the columns item and image_path, got {list(table.columns)}")
    items = table["item"].to_numpy()
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise RecAuditError(f"the item image table names items outside 0..{n_items - 1}; prepare the dataset again")
    if pd.Index(items).has_duplicates:
        raise RecAuditError("the item image table names an item twice; prepare the dataset again")
    paths: list = [None] * n_items
    hashes: list = [None] * n_items
    has_hash = "sha256" in table.columns
    for position, item in enumerate(items):
        path = table["image_path"].iat[position]
        if path is None or (isinstance(path, float) and np.isnan(path)):
            continue
        paths[int(item)] = str(path)
        digest = table["sha256"].iat[position] if has_hash else None
        hashes[int(item)] = digest if isinstance(digest, str) else None
    return pd.DataFrame({"item": np.arange(n_items, dtype=np.int32), "image_path": pd.Series(paths, dtype=object),
                         "sha256": pd.Series(hashes, dtype=object)})


def normalise_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the canonical columns in canonical order and dtypes."""
    columns = [c for c in INTERACTION_DTYPES if c in frame.columns]
    return frame[columns].astype({c: INTERACTION_DTYPES[c] for c in columns}).reset_index(drop=True)


def write_prepared(data: PreparedData, destination: Path | str) -> None:
    """Write ``data`` to ``destination`` atomically (all files appear together or none do)."""
    with atomic_directory(destination) as out:
        data.interactions.to_parquet(out / "interactions.parquet", index=False)
        data.users.to_parquet(out / "users.parquet", index=False)
        data.items.to_parquet(out / "items.parquet", index=False)
        for key, features in data.item_features.items():
            if key != features.key:
                raise RecAuditError(f"feature set stored under {key!r} has the key {features.key!r}")
            if features.n_items != data.n_items:
                raise RecAuditError(f"feature set {key!r} has {features.n_items} rows for {data.n_items} items")
            (out / FEATURES_DIR).mkdir(exist_ok=True)
            write_feature_set(features, out / FEATURES_DIR / key)
        if data.item_images is not None:
            normalise_images(data.item_images, data.n_items).to_parquet(out / "item_images.parquet", index=False)
        for split_name, parts in data.given.items():
            (out / "given" / split_name).mkdir(parents=True)
            for part, frame in parts.items():
                normalise_interactions(frame).to_parquet(out / "given" / split_name / f"{part}.parquet", index=False)
        meta = dict(data.meta, name=data.name, n_users=data.n_users, n_items=data.n_items,
                    n_interactions=int(len(data.interactions)), given=sorted(data.given),
                    feature_sets=sorted(data.item_features))
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n")


def load_prepared(source: Path | str) -> PreparedData:
    """Read a prepared dataset folder written by :func:`write_prepared`; every feature set's
    sha256 is verified (:func:`~datasets.item_data.read_feature_set`)."""
    source = Path(source)
    meta_path = source / "meta.json"
    if not meta_path.exists():
        raise RecAuditError(f"no prepared dataset at {source}; run `python -m datasets prepare NAME` first")
    meta = json.loads(meta_path.read_text())
    if (source / "item_content.npz").exists() and "feature_sets" not in meta:
        raise RecAuditError(f"{source} was prepared by an older version (item_content.npz, no feature sets); "
                            f"run `python -m datasets prepare {meta.get('name', 'NAME')}` again")
    features = {}
    for key in meta.get("feature_sets", []):
        features[key] = read_feature_set(source / FEATURES_DIR / key)
        if features[key].key != key:
            raise RecAuditError(f"{source / FEATURES_DIR / key} holds the feature set {features[key].key!r}; "
                                "prepare the dataset again")
    images_path = source / "item_images.parquet"
    given = {}
    for split_name in meta.get("given", []):
        folder = source / "given" / split_name
        given[split_name] = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    return PreparedData(
        name=meta["name"],
        interactions=pd.read_parquet(source / "interactions.parquet"),
        n_users=int(meta["n_users"]),
        n_items=int(meta["n_items"]),
        users=pd.read_parquet(source / "users.parquet"),
        items=pd.read_parquet(source / "items.parquet"),
        item_features=features,
        item_images=pd.read_parquet(images_path) if images_path.exists() else None,
        given=given,
        meta=meta,
    )


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
