"""Item data as a first-class input: named feature sets, item images, and the data a model fits on.

A model's ``fit`` receives one :class:`TrainingData`: the interactions, the validation data it
may stop on (with the metric to stop on), named item :class:`FeatureSet` objects, the item
:class:`ItemImages` and the item table. The data layer owns these types; the model contract
imports them, never the reverse.

A feature set is stored as a folder::

    values.npy | values.npz   items x dim, float32 (dense .npy, or sparse CSR .npz)
    present.npy               bool per item: False where the item has no data (no poster, no text)
    meta.json                 key, kind, dim, n_items, n_present, sha256 and provenance

``key`` names it: ``genres``, ``tags``, ``bow``, ``bow-tfidf``, or ``<extractor>@<sha12>`` where
``sha12`` starts the sha256 of the extractor's weights. A model chooses a set by its *name* (the
key up to ``@``), e.g. ``features="efficientnet-lite0"``; :meth:`TrainingData.features` resolves it.
``sha256`` covers the values and the mask (:func:`feature_set_sha256`), so it changes exactly when
the content does; :func:`read_feature_set` checks it before anything uses the values.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common.atomic import atomic_directory
from common.errors import RecAuditError

FEATURE_SET_FORMAT = 1
DEFAULT_STOP_METRIC = "ndcg@10"


# ----- feature sets ---------------------------------------------------------------------------
def feature_set_sha256(values, present: np.ndarray) -> str:
    """sha256 over a canonical byte form of the values (dense or CSR, as float32) and the mask."""
    digest = hashlib.sha256()
    if sp.issparse(values):
        matrix = sp.csr_matrix(values, dtype=np.float32)
        matrix.sum_duplicates()
        matrix.sort_indices()
        digest.update(f"csr:{matrix.shape[0]}x{matrix.shape[1]}:{matrix.nnz}\n".encode())
        for array in (matrix.indptr.astype("<i8"), matrix.indices.astype("<i8"), matrix.data.astype("<f4")):
            digest.update(np.ascontiguousarray(array).tobytes())
    else:
        array = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
        digest.update(f"dense:{array.shape[0]}x{array.shape[1]}\n".encode())
        digest.update(array.tobytes())
    digest.update(np.ascontiguousarray(np.asarray(present, dtype=bool)).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureSet:
    """One named set of item features, aligned to the prepared item ids (row i = item i).

    ``present[i]`` is False where item i has no data; its row is then all zeros.
    """

    key: str
    values: np.ndarray | sp.csr_matrix
    present: np.ndarray
    sha256: str
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.key.split("@", 1)[0]

    @property
    def n_items(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.values)

    @property
    def coverage(self) -> float:
        return float(np.mean(self.present)) if len(self.present) else 0.0

    def dense(self) -> np.ndarray:
        """The values as a dense float32 array (sparse sets are densified)."""
        return self.values.toarray() if self.is_sparse else np.asarray(self.values, dtype=np.float32)

    def csr(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.values, dtype=np.float32)

    def describe(self) -> dict:
        """What a card or result records about the set (no values, no machine paths)."""
        return {"key": self.key, "sha256": self.sha256, "kind": "sparse" if self.is_sparse else "dense",
                "dim": self.dim, "n_items": self.n_items, "n_present": int(np.sum(self.present))}


def make_feature_set(key: str, values, present=None, meta: Mapping | None = None) -> FeatureSet:
    """Build a feature set from values (dense or sparse, items x dim) and an optional mask.

    Without a mask, an item is present when its row has a non-zero entry. Rows of absent
    items are zeroed so that a model cannot read stale values for them.
    """
    _check_key(key)
    if sp.issparse(values):
        values = sp.csr_matrix(values, dtype=np.float32)
        values.sum_duplicates()
        values.sort_indices()
        row_nonzero = np.diff(values.indptr) > 0
    else:
        values = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
        if values.ndim != 2:
            raise RecAuditError(f"feature set {key!r}: values must be items x dim, got shape {values.shape}")
        row_nonzero = np.any(values != 0, axis=1)
    if values.shape[0] and (values.data if sp.issparse(values) else values).size \
            and not np.isfinite(values.data if sp.issparse(values) else values).all():
        raise RecAuditError(f"feature set {key!r} has non-finite values; fix the source or the extractor")
    present = row_nonzero if present is None else np.asarray(present, dtype=bool)
    if present.shape != (values.shape[0],):
        raise RecAuditError(f"feature set {key!r}: the presence mask has shape {present.shape}, "
                            f"expected ({values.shape[0]},)")
    if not present.all():
        if sp.issparse(values):
            values = sp.csr_matrix(sp.diags(present.astype(np.float32)) @ values)
            values.eliminate_zeros()
        else:
            values = np.where(present[:, None], values, np.float32(0))
    return FeatureSet(key=key, values=values, present=present, sha256=feature_set_sha256(values, present),
                      meta=dict(meta or {}))


def _check_key(key: str) -> None:
    name, _, version = str(key).partition("@")
    if not name or any(c in name for c in "/\\ ") or (key.count("@") > 1) or (("@" in key) and not version):
        raise RecAuditError(f"invalid feature set key {key!r}; use a name such as 'genres' or "
                            "'<extractor>@<sha12>' (no slashes or spaces)")


def write_feature_set(features: FeatureSet, folder: Path | str) -> Path:
    """Write ``features`` to ``folder`` atomically (values, mask, meta appear together or not at all)."""
    folder = Path(folder)
    with atomic_directory(folder) as out:
        if features.is_sparse:
            sp.save_npz(out / "values.npz", features.csr(), compressed=False)
        else:
            np.save(out / "values.npy", np.asarray(features.values, dtype=np.float32))
        np.save(out / "present.npy", np.asarray(features.present, dtype=bool))
        meta = {**features.meta, **features.describe(), "format": FEATURE_SET_FORMAT}
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def read_feature_set_meta(folder: Path | str) -> dict:
    path = Path(folder) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecAuditError(f"no feature set at {folder}; run `python -m datasets prepare` or "
                            "`python -m datasets features` (or `dvc repro`) first") from None
    except (OSError, json.JSONDecodeError) as error:
        raise RecAuditError(f"{path} cannot be read ({error}); rebuild the feature set") from None
    if not isinstance(meta, dict) or not {"key", "sha256", "kind"} <= set(meta):
        raise RecAuditError(f"{path} is not a feature set description (needs key, sha256, kind); rebuild it")
    return meta


def read_feature_set(folder: Path | str, verify: bool = True) -> FeatureSet:
    """Read a feature set folder; with ``verify`` its sha256 must match the stored one."""
    folder = Path(folder)
    meta = read_feature_set_meta(folder)
    try:
        if meta["kind"] == "sparse":
            values = sp.load_npz(folder / "values.npz").tocsr().astype(np.float32)
        else:
            values = np.load(folder / "values.npy", mmap_mode=None, allow_pickle=False)
        present = np.load(folder / "present.npy", allow_pickle=False).astype(bool)
    except (OSError, ValueError, KeyError) as error:
        raise RecAuditError(f"feature set {folder} cannot be read ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''}); rebuild it") from None
    features = FeatureSet(key=meta["key"], values=values, present=present, sha256=meta["sha256"],
                          meta={k: v for k, v in meta.items() if k not in ("key", "sha256")})
    if verify:
        actual = feature_set_sha256(values, present)
        if actual != meta["sha256"]:
            raise RecAuditError(f"feature set {folder} does not match its meta.json (sha256 {actual[:12]} "
                                f"!= {meta['sha256'][:12]}); the files were changed: rebuild it")
    return features


# ----- item images ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemImages:
    """One image path per item (relative to ``root``; None where the item has none) and its sha256.

    ``root`` is where the images are on this machine; it is never recorded in a card or result
    (``manifest_sha256`` identifies the image set instead).
    """

    root: Path
    paths: tuple
    sha256: tuple

    @property
    def present(self) -> np.ndarray:
        return np.array([path is not None for path in self.paths], dtype=bool)

    @property
    def n_items(self) -> int:
        return len(self.paths)

    @property
    def manifest_sha256(self) -> str:
        return image_manifest_sha256(self.paths, self.sha256)

    def path(self, item: int) -> Path | None:
        relative = self.paths[item]
        return None if relative is None else Path(self.root) / relative

    def describe(self) -> dict:
        return {"manifest_sha256": self.manifest_sha256, "n_items": self.n_items,
                "n_present": int(self.present.sum())}

    @classmethod
    def from_table(cls, table: pd.DataFrame, n_items: int, root: Path | str) -> ItemImages:
        """From an ``item``, ``image_path``, ``sha256`` table (missing items have no image)."""
        paths: list = [None] * n_items
        hashes: list = [None] * n_items
        has_hash = "sha256" in table.columns
        for row in table.itertuples(index=False):
            item = int(row.item)
            if not 0 <= item < n_items:
                raise RecAuditError(f"image table names item {item} outside 0..{n_items - 1}; prepare the dataset again")
            if row.image_path is None or (isinstance(row.image_path, float) and np.isnan(row.image_path)):
                continue
            paths[item] = str(row.image_path)
            hashes[item] = str(row.sha256) if has_hash and isinstance(row.sha256, str) else None
        return cls(root=Path(root), paths=tuple(paths), sha256=tuple(hashes))


def image_manifest_sha256(paths, hashes) -> str:
    """sha256 over ``item<TAB>path<TAB>sha256`` lines of the items that have an image."""
    lines = [f"{item}\t{path}\t{digest}\n" for item, (path, digest) in enumerate(zip(paths, hashes))
             if path is not None]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# ----- what fit receives ----------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationData:
    """Held-out data a model may use for early stopping, never for fitting.

    ``history`` has one row per entry of ``users``; ``truth`` has the held-out items in the
    same row order; ``candidates`` is set for sampled protocols (one row of item ids per user);
    ``metric`` is the label early stopping maximises (the tuning metric, e.g. ``recall@150``);
    ``exclude`` the items never ranked (None: the history, the usual rule).
    """

    users: np.ndarray
    history: sp.csr_matrix
    truth: sp.csr_matrix
    candidates: np.ndarray | None = None
    metric: str = DEFAULT_STOP_METRIC
    exclude: sp.csr_matrix | None = None


@dataclass(frozen=True)
class TrainingData:
    """Everything a model's ``fit`` may read.

    - ``interactions``: users x items CSR (binary float32 in the pipeline);
    - ``validation``: early-stopping data (None: train the full length);
    - ``item_features``: named feature sets by key (see :meth:`features`);
    - ``images``: item images, or None;
    - ``items``: the item table (``item``, ``original_id``, titles, ...), or None;
    - ``timestamps``: users x items CSR of each interaction's latest time (float64), where the
      split has times (None otherwise): baskets and sequences for the models that read them.
    """

    interactions: sp.csr_matrix
    validation: ValidationData | None = None
    item_features: Mapping[str, FeatureSet] = field(default_factory=dict)
    images: ItemImages | None = None
    items: pd.DataFrame | None = None
    timestamps: sp.csr_matrix | None = None

    @property
    def n_users(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.interactions.shape[1])

    def feature_names(self) -> list[str]:
        return sorted({features.name for features in self.item_features.values()})

    def has_features(self, name: str | None = None) -> bool:
        if name is None:
            return bool(self.item_features)
        return any(key == name or features.name == name for key, features in self.item_features.items())

    def features(self, name: str) -> FeatureSet:
        """The feature set named ``name`` (a full key, or the key up to ``@``)."""
        if name in self.item_features:
            return self.item_features[name]
        matches = [features for features in self.item_features.values() if features.name == name]
        if len(matches) == 1:
            return matches[0]
        available = ", ".join(sorted(self.item_features)) or "none"
        if not matches:
            raise RecAuditError(f"no item feature set {name!r} for this dataset; available: {available}")
        raise RecAuditError(f"item feature set name {name!r} is ambiguous ({available}); give the full key")

    def with_validation(self, validation: ValidationData | None) -> TrainingData:
        return dataclasses.replace(self, validation=validation)

    def with_interactions(self, interactions: sp.csr_matrix) -> TrainingData:
        """The same item data around other interactions (whose times are unknown)."""
        return dataclasses.replace(self, interactions=interactions, timestamps=None)
