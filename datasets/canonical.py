"""The canonical prepared form of a dataset, shared by every parser and read by every split.

A prepared dataset is a folder:

- ``interactions.parquet``: integer columns ``user`` and ``item`` (contiguous ids from 0),
  plus ``rating`` (float32) and ``timestamp`` (int64, seconds) where the data has them;
- ``users.parquet`` / ``items.parquet``: ``user`` / ``item`` and ``original_id`` (string),
  the map back to the raw ids, plus optional descriptive columns (title, genres, ...);
- ``item_content.npz``: optional items x features sparse matrix (e.g. bag of words);
- ``item_images.parquet``: optional ``item``, ``image_path`` (relative to the raw folder);
- ``given/<name>/{train,test[,negatives]}.parquet``: optional splits published by a paper's
  authors, in the same id space;
- ``meta.json``: name, counts, preprocessing applied, source files and their checksums.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.atomic import atomic_directory
from datasets.errors import RecAuditError

INTERACTION_DTYPES = {"user": "int32", "item": "int32", "rating": "float32", "timestamp": "int64"}


@dataclass
class PreparedData:
    name: str
    interactions: pd.DataFrame
    n_users: int
    n_items: int
    users: pd.DataFrame
    items: pd.DataFrame
    item_content: sp.csr_matrix | None = None
    item_images: pd.DataFrame | None = None
    given: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = normalise_interactions(self.interactions)


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
        if data.item_content is not None:
            sp.save_npz(out / "item_content.npz", sp.csr_matrix(data.item_content))
        if data.item_images is not None:
            data.item_images.to_parquet(out / "item_images.parquet", index=False)
        for split_name, parts in data.given.items():
            (out / "given" / split_name).mkdir(parents=True)
            for part, frame in parts.items():
                normalise_interactions(frame).to_parquet(out / "given" / split_name / f"{part}.parquet", index=False)
        meta = dict(data.meta, name=data.name, n_users=data.n_users, n_items=data.n_items,
                    n_interactions=int(len(data.interactions)), given=sorted(data.given))
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n")


def load_prepared(source: Path | str) -> PreparedData:
    """Read a prepared dataset folder written by :func:`write_prepared`."""
    source = Path(source)
    meta_path = source / "meta.json"
    if not meta_path.exists():
        raise RecAuditError(f"no prepared dataset at {source}; run `python -m datasets prepare NAME` first")
    meta = json.loads(meta_path.read_text())
    content_path = source / "item_content.npz"
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
        item_content=sp.load_npz(content_path).tocsr() if content_path.exists() else None,
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
