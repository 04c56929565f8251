"""Parse a raw dataset, preprocess it, re-index it and write the canonical prepared form.

Steps, in this order (each one's users / items / interactions are recorded in ``meta.json``):

1. ``deduplicate`` (default True): keep one row per (user, item), the latest by timestamp
   when the data has timestamps, else the last in file order. It runs first so that the
   threshold judges the user's latest opinion (RecBole orders these steps the same way).
2. ``rating_threshold`` (default None): keep rows with ``rating >= threshold``.
3. ``min_user_interactions`` / ``min_item_interactions`` (default 0): with ``k_core: iterative``
   (the default) the k-core, repeated until every remaining user and item has at least that
   many interactions; with ``k_core: once`` one pass of each, items first, then users counted
   on what is left (Mult-VAE's ``filter_triplets``, which EASE's and the paper suites'
   ML-20M, Netflix and MSD numbers were computed on).
4. Re-index users and items to contiguous ids ``0..n-1`` in sorted order of their original
   ids; ``users.parquet`` / ``items.parquet`` keep the map (``original_id`` as a string).

Preprocessing that keeps no interaction is refused (one line naming the step that emptied
the data). Item feature sets, images and the given (published) splits go through the same maps; given-split
rows whose interaction the preprocessing removed are removed too, and ``meta.json`` says how
many. Each content feature set of the parser becomes ``features/<key>/`` (a bag of words ``bow``
also gives its TF-IDF, ``bow-tfidf``: :func:`tfidf`); images become ``item_images.parquet``
with each file's sha256. ``meta.json`` records counts and relative names only, never a path
of this machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.canonical import PreparedData, normalise_images, write_prepared
from common.errors import RecAuditError, unknown_name_error
from datasets.item_data import FeatureSet, make_feature_set
from datasets.parsers import PARSERS, RawDataset
from datasets.parsers.raw import RawFeatures
from datasets.parsers.raw import contains, sorted_unique
from datasets.parsers.readers import sha256_file, sha256_folder
from datasets.registry import K_CORE_MODES, default_preprocessing

DEFAULT_OPTIONS = default_preprocessing()
MAX_FEATURE_NAMES_IN_META = 1000


def prepare_dataset(name: str, raw_dir: Path | str, out_dir: Path | str | None,
                    options: dict | None = None) -> PreparedData:
    """Parse ``raw_dir`` with ``PARSERS[name]``, preprocess with ``options`` and, unless
    ``out_dir`` is None, write the result there atomically. Returns the prepared data."""
    if name not in PARSERS:
        raise unknown_name_error("dataset", name, PARSERS)
    resolved = resolve_options(options)
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RecAuditError(f"no raw folder for {name} at {raw_dir}; run `python -m datasets fetch {name}` first")
    parser = PARSERS[name]
    raw = parser(raw_dir)
    data = build_prepared(name, raw, resolved, raw_dir)
    data.meta["parser"] = f"{parser.__module__}.{parser.__qualname__}"
    data.meta["source_files"] = checksum_sources(raw_dir, raw.source_files)
    if out_dir is not None:
        write_prepared(data, out_dir)
    return data


def resolve_options(options: dict | None) -> dict:
    """Fill defaults and validate; unknown keys or wrong types raise a RecAuditError."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise RecAuditError(
            f"unknown preprocessing option(s) {', '.join(unknown)}; valid options: {', '.join(DEFAULT_OPTIONS)}"
        )
    resolved = {**DEFAULT_OPTIONS, **options}
    threshold = resolved["rating_threshold"]
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise RecAuditError(f"rating_threshold must be a number or null, got {threshold!r}")
    if not isinstance(resolved["deduplicate"], bool):
        raise RecAuditError(f"deduplicate must be true or false, got {resolved['deduplicate']!r}")
    if resolved["k_core"] not in K_CORE_MODES:
        raise RecAuditError(f"k_core must be one of {', '.join(K_CORE_MODES)}, got {resolved['k_core']!r}")
    for key in ("min_user_interactions", "min_item_interactions"):
        value = resolved[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise RecAuditError(f"{key} must be a non-negative integer, got {value!r}")
    return resolved


# ----- preprocessing -------------------------------------------------------------------


def counts(frame: pd.DataFrame) -> dict:
    return {"users": int(frame["user"].nunique()), "items": int(frame["item"].nunique()), "interactions": int(len(frame))}


def preprocess(interactions: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, list[dict]]:
    """Apply deduplication, the rating threshold and the k-core; returns the kept rows (in
    their original order) and the counts after each step."""
    options = resolve_options(options)
    frame = interactions
    steps = [{"step": "parsed", **counts(frame)}]
    if options["deduplicate"]:
        frame = deduplicate(frame)
        steps.append({"step": "deduplicate", **counts(frame)})
    if options["rating_threshold"] is not None:
        if "rating" not in frame.columns:
            raise RecAuditError("rating_threshold is set but this dataset has no ratings; set it to null")
        frame = frame[frame["rating"].to_numpy() >= options["rating_threshold"]]
        steps.append({"step": f"rating >= {options['rating_threshold']}", **counts(frame)})
    min_user, min_item = options["min_user_interactions"], options["min_item_interactions"]
    if (min_user > 1 or min_item > 1) and options["k_core"] == "once":
        frame = frame[single_pass_mask(frame["user"], frame["item"], min_user, min_item)]
        steps.append({"step": f"one pass (items >= {min_item}, then users >= {min_user})", **counts(frame)})
    elif min_user > 1 or min_item > 1:
        frame = frame[k_core_mask(frame["user"], frame["item"], min_user, min_item)]
        steps.append({"step": f"k-core (users >= {min_user}, items >= {min_item})", **counts(frame)})
    return frame, steps


def deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the latest by timestamp (ties: the later in the file), else
    the last in file order. Kept rows stay in their original order."""
    if "timestamp" in frame.columns:
        order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    else:
        order = np.arange(len(frame))
    repeated = frame[["user", "item"]].iloc[order].duplicated(keep="last").to_numpy()
    return frame.iloc[np.sort(order[~repeated])]


def single_pass_mask(users, items, min_user: int, min_item: int) -> np.ndarray:
    """Rows kept by one pass: items with at least ``min_item`` rows, then, among the rows left,
    users with at least ``min_user`` (a user may then hold items below ``min_item``'s count)."""
    item_codes, _ = pd.factorize(np.asarray(items))
    user_codes, _ = pd.factorize(np.asarray(users))
    keep = np.bincount(item_codes)[item_codes] >= min_item
    user_count = np.bincount(user_codes[keep], minlength=int(user_codes.max(initial=-1)) + 1)
    return keep & (user_count[user_codes] >= min_user)


def k_core_mask(users, items, min_user: int, min_item: int) -> np.ndarray:
    """Rows kept by the iterative k-core: drop every row whose user has fewer than
    ``min_user`` or whose item has fewer than ``min_item`` remaining rows, until none does."""
    user_codes, _ = pd.factorize(np.asarray(users))
    item_codes, _ = pd.factorize(np.asarray(items))
    alive = np.arange(len(user_codes))
    n_users, n_items = int(user_codes.max(initial=-1)) + 1, int(item_codes.max(initial=-1)) + 1
    while len(alive):
        u, i = user_codes[alive], item_codes[alive]
        user_count = np.bincount(u, minlength=n_users)
        item_count = np.bincount(i, minlength=n_items)
        ok = (user_count[u] >= min_user) & (item_count[i] >= min_item)
        if ok.all():
            break
        alive = alive[ok]
    mask = np.zeros(len(user_codes), dtype=bool)
    mask[alive] = True
    return mask


# ----- re-indexing -------------------------------------------------------------------


def build_prepared(name: str, raw: RawDataset, options: dict, raw_dir: Path | str | None = None) -> PreparedData:
    """Preprocess ``raw`` and move everything into contiguous ids (no files written).

    ``raw_dir`` is where the image paths point; each image's sha256 is read from there (without
    it the ``sha256`` column stays empty)."""
    kept, steps = preprocess(raw.interactions, options)
    if len(kept) == 0:
        raise empty_result_error(name, steps)
    user_ids = pd.Index(kept["user"].unique()).sort_values()
    item_ids = pd.Index(kept["item"].unique())
    # Items that a published candidate list names but nobody ever interacted with stay in the
    # catalogue, so the paper's sampled ranking keeps all its candidates.
    candidate_only = candidate_only_items(raw)
    item_ids = item_ids.append(candidate_only).unique().sort_values()
    interactions = kept.assign(user=user_ids.get_indexer(kept["user"]), item=item_ids.get_indexer(kept["item"]))
    order = [c for c in ("user", "timestamp", "item") if c in interactions.columns]
    interactions = interactions.sort_values(order, kind="stable").reset_index(drop=True)

    meta: dict = {
        "options": options,
        "preprocessing": steps,
        "interaction_columns": [c for c in ("user", "item", "rating", "timestamp") if c in interactions.columns],
        "notes": raw.notes,
    }
    if len(candidate_only):
        meta["items_only_in_given_negatives"] = int(len(candidate_only))
    data = PreparedData(
        name=name,
        interactions=interactions,
        n_users=len(user_ids),
        n_items=len(item_ids),
        users=id_map_frame("user", user_ids, raw.users),
        items=id_map_frame("item", item_ids, raw.items),
        meta=meta,
    )
    if raw.item_features:
        data.item_features = prepared_feature_sets(name, raw.item_features, item_ids)
        meta["item_features"] = {key: feature_set_summary(features, raw.item_features.get(key), item_ids)
                                 for key, features in data.item_features.items()}
    if raw.item_images is not None:
        data.item_images = remap_images(raw.item_images, item_ids, raw_dir)
        meta["item_images"] = image_summary(data.item_images, interactions)
    kept_pairs = sorted_unique(pair_keys(interactions, len(item_ids)))
    given_meta = {}
    for split, parts in raw.given.items():
        data.given[split], given_meta[split] = remap_given(parts, user_ids, item_ids, kept_pairs, options["deduplicate"])
    if given_meta:
        meta["given_splits"] = given_meta
    return data


def empty_result_error(name: str, steps: list[dict]) -> RecAuditError:
    """Preprocessing that keeps nothing: name the step that removed the last interaction."""
    if steps[0]["interactions"] == 0:
        return RecAuditError(f"{name}: the raw files hold no interaction; fetch the dataset again")
    emptied = next(index for index, step in enumerate(steps) if step["interactions"] == 0)
    return RecAuditError(
        f"{name}: preprocessing removes every interaction (step {steps[emptied]['step']!r} leaves 0 of "
        f"{steps[emptied - 1]['interactions']}); loosen rating_threshold, min_user_interactions or "
        f"min_item_interactions under datasets.{name} in params.yaml")


def pair_keys(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    """One int64 per (user, item) row of prepared ids."""
    return frame["user"].to_numpy(np.int64) * n_items + frame["item"].to_numpy(np.int64)


def candidate_only_items(raw: RawDataset) -> pd.Index:
    """Items of given ``negatives`` parts that never occur in the raw interactions."""
    named = [parts["negatives"]["item"] for parts in raw.given.values() if "negatives" in parts]
    if not named:
        return pd.Index(raw.interactions["item"].iloc[:0])
    candidates = pd.Index(pd.concat(named, ignore_index=True).unique())
    return candidates[~candidates.isin(raw.interactions["item"].unique())]


def id_map_frame(column: str, ids: pd.Index, side: pd.DataFrame | None) -> pd.DataFrame:
    """``column`` (new id), ``original_id`` (string), then the side columns of each id."""
    frame = pd.DataFrame({column: np.arange(len(ids), dtype=np.int32), "original_id": ids.astype(str)})
    if side is None or len(side.columns) == 1:
        return frame
    extra = side.drop_duplicates(column, keep="first").set_index(column).reindex(ids).reset_index(drop=True)
    return pd.concat([frame, extra], axis=1)


def remap_rows(matrix: sp.csr_matrix, row_ids, ids: pd.Index) -> sp.csr_matrix:
    """Rows of ``matrix`` (labelled ``row_ids``) in the order of ``ids``; empty rows where missing."""
    rows = pd.Index(np.asarray(row_ids)).get_indexer(ids)
    padded = sp.vstack([matrix, sp.csr_matrix((1, matrix.shape[1]), dtype=matrix.dtype)], format="csr")
    remapped = padded[np.where(rows >= 0, rows, matrix.shape[0])]
    remapped.sort_indices()
    return sp.csr_matrix(remapped, dtype=np.float32)


def remap_dense_rows(values: np.ndarray, row_ids, ids: pd.Index, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a dense ``values`` (labelled ``row_ids``) in the order of ``ids``, and which ids
    have a row: the others get zeros and are not present."""
    index = pd.Index(np.asarray(row_ids))
    if index.has_duplicates:
        raise RecAuditError(f"the feature set {key!r} has two rows for one item; fix its parser")
    rows = index.get_indexer(ids)
    present = rows >= 0
    remapped = np.zeros((len(ids), values.shape[1]), dtype=np.float32)
    remapped[present] = values[rows[present]]
    return remapped, present


# ----- item feature sets and images ---------------------------------------------------


def prepared_feature_sets(dataset: str, raw_sets: dict[str, RawFeatures], item_ids: pd.Index) -> dict[str, FeatureSet]:
    """Every raw feature set in the prepared item order (absent items: empty rows, not present),
    plus ``bow-tfidf`` for a ``bow`` set."""
    sets = {}
    for key, raw_set in raw_sets.items():
        if isinstance(raw_set.values, np.ndarray):  # dense (image features): stays dense, absent where no row
            values, present = remap_dense_rows(raw_set.values, raw_set.ids, item_ids, key)
            sets[key] = make_feature_set(key, values, present, meta=feature_meta(dataset, raw_set.meta))
            continue
        values = remap_rows(sp.csr_matrix(raw_set.values), raw_set.ids, item_ids)
        sets[key] = make_feature_set(key, values, meta=feature_meta(dataset, raw_set.meta))
        if key == "bow":
            weighted, present = tfidf(values)
            meta = feature_meta(dataset, dict(raw_set.meta, features=(
                f"TF-IDF of {key}: tf = raw count, idf = ln(N / df) over the N items with text, "
                "each row L2-normalised")), derived_from=key)
            sets["bow-tfidf"] = make_feature_set("bow-tfidf", weighted, present, meta)
    return sets


def feature_meta(dataset: str, info: dict, derived_from: str | None = None) -> dict:
    """What a feature set's ``meta.json`` says besides its counts: dataset, source file, description."""
    meta = {"dataset": dataset, **info}
    names = meta.get("feature_names")
    if isinstance(names, list) and len(names) > MAX_FEATURE_NAMES_IN_META:
        meta["feature_names"] = f"{len(names)} names, not stored"
    if derived_from is not None:
        meta["derived_from"] = derived_from
    return meta


def tfidf(counts: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """TF-IDF of a bag of words, each item's row L2-normalised; returns (weights, items with text).

    With ``c[i, w]`` the count of word ``w`` in item ``i``, ``T`` the items with text (a row with
    a non-zero count), ``N = |T|`` and ``df[w] = |{i in T : c[i, w] > 0}|``::

        x[i, w] = c[i, w] * ln(N / df[w])            (tf = raw count, natural log)
        v[i, w] = x[i, w] / sqrt(sum_w' x[i, w']^2)  (rows with x = 0 stay 0)

    A word that every item with text contains gets weight 0. Items without text have an empty
    row and are not present; an item whose every word has weight 0 is present with an empty row.
    """
    counts = sp.csr_matrix(counts, dtype=np.float64)
    counts.sum_duplicates()
    counts.eliminate_zeros()
    if (counts.data < 0).any():
        raise RecAuditError("a bag of words has negative counts; fix the parser or the source file")
    present = np.diff(counts.indptr) > 0
    n_with_text = int(present.sum())
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.zeros(counts.shape[1])
    used = df > 0
    idf[used] = np.log(n_with_text / df[used])
    weighted = sp.csr_matrix(counts @ sp.diags(idf))
    weighted.eliminate_zeros()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    weighted = sp.csr_matrix(sp.diags(scale) @ weighted)
    weighted.sort_indices()
    return weighted.astype(np.float32), present


def feature_set_summary(features: FeatureSet, raw_set: RawFeatures | None, item_ids: pd.Index) -> dict:
    """The feature set's entry in the dataset's ``meta.json``: what it is, its size and coverage."""
    summary = {**features.describe(), "coverage": round(features.coverage, 6),
               **{k: features.meta[k] for k in ("source", "features", "derived_from") if k in features.meta}}
    if raw_set is not None:
        dropped = ~pd.Index(np.asarray(raw_set.ids)).isin(item_ids)
        summary["rows_dropped_no_interactions"] = int(dropped.sum())
    return summary


def remap_images(images: pd.DataFrame, ids: pd.Index, raw_dir: Path | str | None = None) -> pd.DataFrame:
    """One row per prepared item: its image path (relative to the raw folder), or None, and the
    file's sha256 (read from ``raw_dir``; None without it)."""
    paths = images.drop_duplicates("item", keep="first").set_index("item")["image_path"].astype(object).reindex(ids)
    paths = [None if pd.isna(path) else str(path) for path in paths.tolist()]
    hashes = [None] * len(paths)
    if raw_dir is not None:
        digests: dict[str, str] = {}
        for position, path in enumerate(paths):
            if path is None:
                continue
            if path not in digests:
                file = Path(raw_dir) / path
                if not file.is_file():
                    raise RecAuditError(f"image {path} of item {ids[position]} is missing from the raw folder {raw_dir}; "
                                        f"fetch the dataset again")
                digests[path] = sha256_file(file)
            hashes[position] = digests[path]
    table = pd.DataFrame({"item": np.arange(len(ids), dtype=np.int32), "image_path": pd.Series(paths, dtype=object),
                          "sha256": pd.Series(hashes, dtype=object)})
    return normalise_images(table, len(ids))


def image_summary(images: pd.DataFrame, interactions: pd.DataFrame) -> dict:
    """Coverage of the image table: items with and without an image, and the share of
    interactions whose item has one (no paths: they are in ``item_images.parquet``)."""
    has_image = images["image_path"].notna().to_numpy()
    covered = has_image[interactions["item"].to_numpy()] if len(interactions) else np.zeros(0, dtype=bool)
    return {
        "items_with_image": int(has_image.sum()),
        "items_without_image": int((~has_image).sum()),
        "interactions_with_image": int(covered.sum()),
        "interaction_share_with_image": round(float(covered.mean()), 6) if len(covered) else 0.0,
        "distinct_image_files": int(images["image_path"].dropna().nunique()),
        "paths_relative_to": "the dataset's raw folder, data/raw/<dataset>/",
    }


def remap_given(parts: dict[str, pd.DataFrame], user_ids: pd.Index, item_ids: pd.Index,
                kept_pairs: np.ndarray, deduplicate_rows: bool) -> tuple[dict[str, pd.DataFrame], dict]:
    """Map a published split into the prepared ids. Held-out and training rows survive only
    if their interaction survived preprocessing; negatives survive if user and item do."""
    remapped, report = {}, {}
    for part, frame in parts.items():
        users = user_ids.get_indexer(frame["user"])
        items = item_ids.get_indexer(frame["item"])
        keep = (users >= 0) & (items >= 0)
        keys = users.astype(np.int64) * len(item_ids) + items
        is_interaction = keep & contains(kept_pairs, keys)
        if part != "negatives":
            keep = is_interaction
        out = frame.assign(user=users, item=items)[keep]
        if deduplicate_rows and part != "negatives":
            out = deduplicate(out)
        remapped[part] = out.reset_index(drop=True)
        report[part] = {"rows_in_file": int(len(frame)), "rows_kept": int(len(out)),
                        "users": int(out["user"].nunique()), "items": int(out["item"].nunique())}
        if part == "negatives":
            report[part]["negatives_that_are_interactions"] = int(is_interaction[keep].sum())
    if "train" in remapped and "test" in remapped:
        train_keys = sorted_unique(pair_keys(remapped["train"], len(item_ids)))
        test_keys = sorted_unique(pair_keys(remapped["test"], len(item_ids)))
        report["train_test_overlap_pairs"] = int(contains(test_keys, train_keys).sum())
    report["rows_removed_by_preprocessing"] = sum(
        part["rows_in_file"] - part["rows_kept"] for part in report.values() if isinstance(part, dict))
    return remapped, report


def checksum_sources(raw_dir: Path, names: list[str]) -> dict:
    """sha256 of every raw file read; a folder gets one digest over its sorted file list."""
    sums = {}
    for name in names:
        path = raw_dir / name
        if name.endswith("/"):
            digest, n_files = sha256_folder(path)
            sums[name] = {"sha256_of_manifest": digest, "files": n_files}
        else:
            sums[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return sums
