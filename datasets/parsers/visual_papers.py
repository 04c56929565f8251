"""Parsers for the datasets of two visual-recommendation papers, in the files their authors publish.

- VBPR (He & McAuley, AAAI 2016): implicit feedback plus 4096-d CNN image features in a binary
  ``.b`` file (records of a 10-byte item id and 4096 little-endian float32). Amazon Women / Men /
  Phones: the 2014 Amazon reviews of a category (Women and Men: the items whose metadata puts them
  in that sub-category of Clothing, Shoes & Jewelry); Tradesy.com: each user's ``bought`` and
  ``want`` lists (VBPR's positive feedback). The features become the dense ``caffe-fc7`` feature
  set; items without a record are absent from it.
- DVBPR (Kang et al., ICDM 2017): one ``.npy`` per dataset holding the pickled list
  ``[user_train, user_validation, user_test, Item, usernum, itemnum]`` (written by Python 2).
  It is read with a restricted unpickler, never ``np.load(allow_pickle=True)``: a pickle can run any
  code it names, and these files come from the network. The authors' partition becomes the given
  split ``dvbpr`` (``train``, ``validation``, ``test``); each item's image bytes are written to
  ``images/<item>.<ext>`` in the raw folder, where the image table points.

UGallery (CuratorNet) is private: the registry says so, and there is no parser.
"""
from __future__ import annotations

import ast
import gzip
import json
import os
import pickle
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib import format as npy_format

from common.errors import RecAuditError
from datasets.parsers.raw import RawDataset, RawFeatures
from datasets.parsers.readers import malformed, require_file

# ----- VBPR image features (.b) -----------------------------------------------------------------

FEATURE_ID_BYTES = 10
VBPR_FEATURE_DIM = 4096
FEATURE_SET_KEY = "caffe-fc7"
CHUNK_RECORDS = 256  # ~4 MB read at a time: the files are several GB


@dataclass(frozen=True)
class VbprFeatures:
    """Row ``r`` of ``values`` (float32, items x dim) is the feature vector of item ``ids[r]``."""

    ids: list[str]
    values: np.ndarray
    n_records: int  # records in the file
    n_duplicates: int  # kept ids met again later in the file (the first record is kept)


def read_vbpr_features(path: Path | str, wanted: set[str] | None = None, dim: int = VBPR_FEATURE_DIM) -> VbprFeatures:
    """Stream a VBPR feature file, keeping the records whose id is in ``wanted`` (None: all).

    Only the kept rows are held in memory. A file whose size is not a whole number of records,
    a non-ASCII or empty id, or a non-finite value is refused with a one-line error."""
    path = Path(path)
    record = FEATURE_ID_BYTES + 4 * dim
    size = path.stat().st_size
    if size == 0 or size % record:
        raise RecAuditError(f"{path}: {size:,} bytes is not a whole number of {record:,}-byte records (a "
                            f"{FEATURE_ID_BYTES}-byte item id and {dim} float32); the file is truncated or not a "
                            "VBPR feature file, fetch it again")
    n_records = size // record
    layout = np.dtype([("id", f"S{FEATURE_ID_BYTES}"), ("values", "<f4", (dim,))])
    values = np.empty((n_records if wanted is None else min(n_records, len(wanted)), dim), dtype=np.float32)
    ids: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    with open(path, "rb") as handle:
        for start in range(0, n_records, CHUNK_RECORDS):
            count = min(CHUNK_RECORDS, n_records - start)
            buffer = handle.read(count * record)
            if len(buffer) != count * record:
                raise RecAuditError(f"{path} ended inside record {start + len(buffer) // record + 1:,} of "
                                    f"{n_records:,} (was it changed while being read?); fetch it again")
            chunk = np.frombuffer(buffer, dtype=layout)
            for offset, raw_id in enumerate(chunk["id"]):
                item = _feature_id(path, raw_id, start + offset)
                if wanted is not None and item not in wanted:
                    continue
                if item in seen:
                    duplicates += 1
                    continue
                row = chunk["values"][offset]
                if not np.isfinite(row).all():
                    raise RecAuditError(f"{path}: record {start + offset + 1:,} (item {item}) has non-finite values; "
                                        "the file is corrupt, fetch it again")
                values[len(ids)] = row
                ids.append(item)
                seen.add(item)
    return VbprFeatures(ids=ids, values=values[:len(ids)], n_records=n_records, n_duplicates=duplicates)


def _feature_id(path: Path, raw: bytes, index: int) -> str:
    try:
        item = raw.decode("ascii").strip()  # numpy drops trailing NULs; shorter ids (Tradesy) are padded
    except UnicodeDecodeError:
        item = ""
    if not item or not item.isprintable():
        raise RecAuditError(f"{path}: record {index + 1:,} has the item id {raw!r}, not {FEATURE_ID_BYTES} ASCII "
                            "characters; the file is corrupt or not a VBPR feature file, fetch it again")
    return item


def feature_set(features: VbprFeatures, source: str) -> RawFeatures:
    return RawFeatures(features.values, np.asarray(features.ids, dtype=object), {
        "source": source,
        "features": (f"{features.values.shape[1]}-d image features published with the data (a pre-trained "
                     "Caffe CNN, as used by VBPR); items without a record are absent"),
        "feature_names": "unnamed CNN activations"})


# ----- JSON (or Python-literal) lines ---------------------------------------------------------


def read_records(path: Path) -> Iterator[tuple[int, dict, bytes]]:
    """``(line number, dict, line)`` for every non-blank line of a JSON-lines file, gzipped or not.

    McAuley's files are JSON (reviews) or Python literals (metadata, Tradesy: single quotes);
    both are read without evaluating code (``ast.literal_eval``)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, _record(path, number, line), line
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise RecAuditError(f"{path} cannot be read ({type(error).__name__}: {error}); the download is truncated "
                            "or corrupt, fetch it again") from None


def _record(path: Path, number: int, line: bytes) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        try:
            value = ast.literal_eval(line.decode("utf-8"))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
            value = None
    if not isinstance(value, dict):
        raise malformed(path, number, "one JSON object (or Python dict literal) per line", line.rstrip(b"\r\n"))
    return value


def _text(value) -> str | None:
    """An id field as a string (ints allowed, as some files write them); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value.strip() or None if isinstance(value, str) else None


# ----- VBPR interactions -----------------------------------------------------------------------


def read_amazon_reviews(path: Path, items: set[str] | None = None) -> pd.DataFrame:
    """``reviewerID``, ``asin``, ``unixReviewTime`` (and ``overall``, kept as ``rating`` when every
    review has it) of the 2014 Amazon reviews; only reviews of ``items`` when given."""
    users, asins, times, ratings = [], [], [], []
    expected = "a review with reviewerID, asin (strings) and unixReviewTime (an integer)"
    for number, review, line in read_records(path):
        user, item, time = _text(review.get("reviewerID")), _text(review.get("asin")), review.get("unixReviewTime")
        if user is None or item is None or not isinstance(time, int) or isinstance(time, bool):
            raise malformed(path, number, expected, line.rstrip(b"\r\n"))
        if items is not None and item not in items:
            continue
        rating = review.get("overall")
        users.append(user)
        asins.append(item)
        times.append(time)
        ratings.append(float(rating) if isinstance(rating, (int, float)) and not isinstance(rating, bool) else np.nan)
    frame = pd.DataFrame({"user": pd.Series(users, dtype=object), "item": pd.Series(asins, dtype=object),
                          "timestamp": np.asarray(times, dtype=np.int64)})
    rating_column = np.asarray(ratings, dtype=np.float64)
    if len(frame) and not np.isnan(rating_column).any():
        frame.insert(2, "rating", rating_column)
    return frame


def _category_key(name) -> str:
    # "Clothing, Shoes & Jewelry" in the metadata, "Clothing Shoes & Jewelry" in the authors' tools
    return " ".join(str(name).replace(",", " ").split()).casefold()


def read_amazon_subcategory(path: Path, top: str, sub: str) -> set[str]:
    """ASINs whose metadata has a category path starting ``[top, sub]`` (e.g. Clothing, Shoes &
    Jewelry > Women). Lines that do not mention ``sub`` at all are skipped unparsed (most of them)."""
    wanted = (_category_key(top), _category_key(sub))
    needle = sub.encode()
    selected = set()
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    expected = "a product with asin (a string) and categories (a list of category paths)"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
            for number, line in enumerate(handle, start=1):
                if needle not in line:
                    continue
                product = _record(path, number, line)
                asin, paths = _text(product.get("asin")), product.get("categories", [])
                if asin is None or not isinstance(paths, list) or not all(isinstance(p, list) for p in paths):
                    raise malformed(path, number, expected, line.rstrip(b"\r\n"))
                if any(tuple(_category_key(name) for name in p[:2]) == wanted for p in paths):
                    selected.add(asin)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise RecAuditError(f"{path} cannot be read ({type(error).__name__}: {error}); the download is truncated "
                            "or corrupt, fetch it again") from None
    return selected


TRADESY_POSITIVE = ("bought", "want")


def read_tradesy(path: Path) -> tuple[pd.DataFrame, dict]:
    """Each line: ``{'uid': ..., 'lists': {'bought': [...], 'want': [...], 'selling': [...], ...}}``;
    the ``bought`` and ``want`` items are the user's positive feedback (as in VBPR)."""
    users, items = [], []
    per_list = dict.fromkeys(TRADESY_POSITIVE, 0)
    ignored: set[str] = set()
    expected = "{'uid': id, 'lists': {'bought': [ids], 'want': [ids], ...}}"
    for number, record, line in read_records(path):
        user, lists = _text(record.get("uid")), record.get("lists")
        if user is None or not isinstance(lists, dict):
            raise malformed(path, number, expected, line.rstrip(b"\r\n"))
        ignored.update(str(name) for name in lists if name not in TRADESY_POSITIVE)
        for name in TRADESY_POSITIVE:
            values = lists.get(name, [])
            ids = [_text(v) for v in values] if isinstance(values, list) else [None]
            if None in ids:
                raise malformed(path, number, f"{expected} with a list of item ids under {name!r}",
                                line.rstrip(b"\r\n"))
            users.extend([user] * len(ids))
            items.extend(ids)
            per_list[name] += len(ids)
    frame = pd.DataFrame({"user": pd.Series(users, dtype=object), "item": pd.Series(items, dtype=object)})
    notes = {"positive_feedback": "the union of each user's 'bought' and 'want' lists (VBPR)",
             "rows_per_list": per_list, "lists_not_used": sorted(ignored)}
    return frame, notes


# ----- VBPR datasets ---------------------------------------------------------------------------

CLOTHING = "Clothing_Shoes_and_Jewelry"
CLOTHING_TOP = "Clothing, Shoes & Jewelry"


def _vbpr(raw_dir: Path, dataset: str, interactions: pd.DataFrame, features_name: str, sources: list[str],
          notes: dict) -> RawDataset:
    features = read_vbpr_features(require_file(raw_dir, features_name, dataset), wanted=set(interactions["item"]))
    items = interactions["item"].nunique()
    notes["image_features"] = {"records_in_file": features.n_records,
                               "duplicate_records_skipped": features.n_duplicates,
                               "items_with_features": len(features.ids),
                               "items_without_features": int(items - len(features.ids))}
    return RawDataset(interactions=interactions, source_files=[*sources, features_name],
                      item_features={FEATURE_SET_KEY: feature_set(features, features_name)}, notes=notes)


def _vbpr_amazon(raw_dir: Path, dataset: str, category: str, subcategory: str | None) -> RawDataset:
    raw_dir = Path(raw_dir)
    reviews = f"reviews_{category}.json.gz"
    sources, items = [reviews], None
    notes: dict = {"implicit": "every review is positive feedback (VBPR); the star rating is kept as rating"}
    if subcategory is not None:
        meta = f"meta_{category}.json.gz"
        items = read_amazon_subcategory(require_file(raw_dir, meta, dataset), CLOTHING_TOP, subcategory)
        sources.insert(0, meta)
        notes["subcategory"] = {"path": f"{CLOTHING_TOP} > {subcategory}", "products_in_metadata": len(items)}
    interactions = read_amazon_reviews(require_file(raw_dir, reviews, dataset), items)
    return _vbpr(raw_dir, dataset, interactions, f"image_features_{category}.b", sources, notes)


def parse_amazon_women_vbpr(raw_dir: Path) -> RawDataset:
    return _vbpr_amazon(raw_dir, "amazon-women-vbpr", CLOTHING, "Women")


def parse_amazon_men_vbpr(raw_dir: Path) -> RawDataset:
    return _vbpr_amazon(raw_dir, "amazon-men-vbpr", CLOTHING, "Men")


def parse_amazon_phones_vbpr(raw_dir: Path) -> RawDataset:
    return _vbpr_amazon(raw_dir, "amazon-phones-vbpr", "Cell_Phones_and_Accessories", None)


def parse_tradesy_vbpr(raw_dir: Path) -> RawDataset:
    raw_dir = Path(raw_dir)
    dataset = "tradesy-vbpr"
    interactions, notes = read_tradesy(require_file(raw_dir, "tradesy.json.gz", dataset))
    return _vbpr(raw_dir, dataset, interactions, "image_features_tradesy.b", ["tradesy.json.gz"], notes)


# ----- DVBPR .npy: a restricted unpickler --------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of ``bytes`` at protocol 2 call (``_codecs.encode``); Latin-1 only."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only callables the unpickler hands out: what numpy needs to rebuild an array, and the
    containers the DVBPR files use (Python 2 spellings too)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("_codecs", "encode"): _latin1_encode,
                                              ("collections", "defaultdict"): defaultdict,
                                              ("collections", "OrderedDict"): OrderedDict}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("builtins", "__builtin__"):
        for kind in (list, dict, tuple, set, frozenset, bytearray):
            allowed[(module, kind.__name__)] = kind
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; any other class or function is refused."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 strings (ids, JPEG bytes) stay bytes
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        target = self.allowed.get((module, name))
        if target is None:
            raise RecAuditError(f"{self.path}: refusing to unpickle {module}.{name}: a DVBPR .npy holds only numpy "
                                "arrays, dicts, lists, numbers and bytes; the file is not the authors' file, do not "
                                "load it elsewhere and fetch it again")
        return target

    def persistent_load(self, pid):
        raise RecAuditError(f"{self.path}: refusing a pickle persistent id; the file is not the authors' file, "
                            "fetch it again")


def load_pickled_npy(path: Path | str):
    """The object array of a ``.npy`` file, with the header parsed here and the payload
    unpickled by :class:`RestrictedUnpickler`."""
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise RecAuditError(f"{path} is not a readable .npy file ({_first_line(error)}); fetch it again") from None
        if not dtype.hasobject:
            raise RecAuditError(f"{path} holds a {dtype} array, not pickled objects; it is not a DVBPR file")
        try:
            array = RestrictedUnpickler(handle, path).load()
        except RecAuditError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                OverflowError, MemoryError, UnicodeDecodeError) as error:
            raise RecAuditError(f"{path} cannot be unpickled ({type(error).__name__}: {_first_line(error)}); the file "
                                "is truncated or not the authors' file, fetch it again") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise RecAuditError(f"{path}: the pickled payload is not the {tuple(shape)} array its header declares; "
                            "fetch it again")
    return array


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ----- DVBPR datasets ------------------------------------------------------------------------------

DVBPR_PARTS = ("train", "validation", "test")
DVBPR_SPLIT = "dvbpr"
IMAGE_DIR = "images"
IMAGE_KINDS = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))


def _key(key):
    return key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _as_text(value) -> str | None:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


@dataclass
class DvbprData:
    """The authors' six objects, checked: per part a frame of ``user``, ``item`` (and ``timestamp``
    when every record has ``unixReviewTime``), the item records by item id, and the two counts."""

    parts: dict[str, pd.DataFrame]
    items: dict[int, dict]
    n_users: int
    n_items: int
    reviewer_ids: dict[int, str]


def read_dvbpr(path: Path | str) -> DvbprData:
    path = Path(path)
    array = load_pickled_npy(path)
    if array.shape != (6,):
        raise RecAuditError(f"{path} holds {array.shape} objects, not DVBPR's six [user_train, user_validation, "
                            "user_test, Item, usernum, itemnum]; fetch it again")
    *user_parts, item_table, n_users, n_items = array.tolist()
    if not (_is_int(n_users) and _is_int(n_items)) or n_users < 0 or n_items < 0:
        raise RecAuditError(f"{path}: usernum and itemnum are {n_users!r} and {n_items!r}, not counts; fetch it again")
    n_users, n_items = int(n_users), int(n_items)
    reviewer_ids: dict[int, str] = {}
    parts = {part: _user_part(path, part, records, n_users, n_items, reviewer_ids)
             for part, records in zip(DVBPR_PARTS, user_parts)}
    return DvbprData(parts=parts, items=_item_records(path, item_table, n_items), n_users=n_users, n_items=n_items,
                     reviewer_ids=reviewer_ids)


def _user_part(path: Path, part: str, mapping, n_users: int, n_items: int, reviewer_ids: dict) -> pd.DataFrame:
    where = f"{path}: user_{part}"
    if not isinstance(mapping, dict):
        raise RecAuditError(f"{where} is a {type(mapping).__name__}, not a dict of users; fetch the file again")
    users, items, times = [], [], []
    for user, records in mapping.items():
        if not _is_int(user) or not 0 <= user < n_users:
            raise RecAuditError(f"{where} names the user {user!r}, not an integer in 0..{n_users - 1}; fetch it again")
        if not isinstance(records, (list, tuple, np.ndarray)):
            raise RecAuditError(f"{where}[{user}] is a {type(records).__name__}, not a list; fetch the file again")
        for record in records:
            record = {_key(k): v for k, v in record.items()} if isinstance(record, dict) else {"productid": record}
            item = record.get("productid")
            if not _is_int(item) or not 0 <= item < n_items:
                raise RecAuditError(f"{where}[{user}] has productid {item!r}, not an integer in 0..{n_items - 1}; "
                                    "fetch the file again")
            time = record.get("unixReviewTime")
            users.append(int(user))
            items.append(int(item))
            times.append(int(time) if _is_int(time) else None)
            reviewer = _as_text(record.get("reviewerID"))
            if reviewer is not None:
                reviewer_ids.setdefault(int(user), reviewer)
    frame = pd.DataFrame({"user": np.asarray(users, dtype=np.int64), "item": np.asarray(items, dtype=np.int64)})
    if times and None not in times:
        frame["timestamp"] = np.asarray(times, dtype=np.int64)
    return frame


def _item_records(path: Path, table, n_items: int) -> dict[int, dict]:
    if isinstance(table, dict):
        entries = table.items()
    elif isinstance(table, (list, tuple, np.ndarray)):
        entries = enumerate(table)
    else:
        raise RecAuditError(f"{path}: Item is a {type(table).__name__}, not a dict or list of items; fetch it again")
    records = {}
    for item, record in entries:
        if not _is_int(item) or not 0 <= item < n_items or not isinstance(record, dict):
            raise RecAuditError(f"{path}: Item entry {item!r} is not an item index in 0..{n_items - 1} with a dict; "
                                "fetch the file again")
        records[int(item)] = {_key(k): v for k, v in record.items()}
    return records


def _image_bytes(path: Path, item: int, record: dict | None) -> bytes | None:
    data = None if record is None else record.get("imgs")
    if data is None:
        return None
    if isinstance(data, str):  # a copy loaded with encoding='latin1' and saved again
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray, np.bytes_)):
        raise RecAuditError(f"{path}: Item {item} has imgs of type {type(data).__name__}, not image bytes; "
                            "fetch the file again")
    return bytes(data) or None


def _image_suffix(data: bytes) -> str | None:
    return next((suffix for magic, suffix in IMAGE_KINDS if data.startswith(magic)), None)


def _write_image(raw_dir: Path, relative: str, data: bytes) -> None:
    """Write (or leave, when already identical) one extracted image, atomically."""
    target = raw_dir / relative
    try:
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as error:
        raise RecAuditError(f"cannot write the extracted image {target} ({error.strerror or error}); make the raw "
                            f"folder {raw_dir} writable") from None


def _dvbpr(raw_dir: Path, dataset: str, file: str) -> RawDataset:
    raw_dir = Path(raw_dir)
    path = require_file(raw_dir, file, dataset)
    data = read_dvbpr(path)
    if not all("timestamp" in frame.columns for frame in data.parts.values()):  # times for all rows, or none
        data.parts = {part: frame.drop(columns="timestamp", errors="ignore") for part, frame in data.parts.items()}
    interactions = pd.concat([data.parts[p] for p in DVBPR_PARTS], ignore_index=True)
    used = np.unique(interactions["item"].to_numpy())
    paths, unrecognised, without = [], 0, 0
    for item in used.tolist():
        content = _image_bytes(path, item, data.items.get(item))
        suffix = None if content is None else _image_suffix(content)
        if suffix is None:
            unrecognised += content is not None
            without += content is None
            paths.append(None)
            continue
        relative = f"{IMAGE_DIR}/{item}{suffix}"
        _write_image(raw_dir, relative, content)
        paths.append(relative)
    asins = {item: _as_text(record.get("asin")) for item, record in data.items.items()}
    items = pd.DataFrame({"item": used})
    if any(value is not None for value in asins.values()):
        items["asin"] = pd.Series([asins.get(item) for item in used.tolist()], dtype=object)
    users = None
    if data.reviewer_ids:
        users = pd.DataFrame({"user": np.asarray(sorted(data.reviewer_ids), dtype=np.int64)})
        users["reviewer_id"] = pd.Series([data.reviewer_ids[u] for u in users["user"].tolist()], dtype=object)
    notes = {
        "implicit": "the authors' interactions carry no ratings",
        "dvbpr_file": {"usernum": data.n_users, "itemnum": data.n_items, "items_in_Item": len(data.items),
                       **{f"{part}_rows": int(len(data.parts[part])) for part in DVBPR_PARTS}},
        "images": {"source": f"Item[i]['imgs'] of {file}, written to {IMAGE_DIR}/<item>.<jpg|png|gif>",
                   "items_with_image": int(sum(p is not None for p in paths)), "items_without_image": without,
                   "items_with_unrecognised_image_bytes": unrecognised},
        "given_split": f"{DVBPR_SPLIT}: the authors' user_train / user_validation / user_test",
    }
    return RawDataset(
        interactions=interactions,
        source_files=[file],
        users=users,
        items=items,
        item_images=pd.DataFrame({"item": used, "image_path": pd.Series(paths, dtype=object)}),
        given={DVBPR_SPLIT: dict(data.parts)},
        notes=notes,
    )


def parse_amazon_fashion_dvbpr(raw_dir: Path) -> RawDataset:
    return _dvbpr(raw_dir, "amazon-fashion-dvbpr", "AmazonFashion6ImgPartitioned.npy")


def parse_amazon_women_dvbpr(raw_dir: Path) -> RawDataset:
    return _dvbpr(raw_dir, "amazon-women-dvbpr", "AmazonWomenWithImgPartitioned.npy")


def parse_amazon_men_dvbpr(raw_dir: Path) -> RawDataset:
    return _dvbpr(raw_dir, "amazon-men-dvbpr", "AmazonMenWithImgPartitioned.npy")


def parse_tradesy_dvbpr(raw_dir: Path) -> RawDataset:
    return _dvbpr(raw_dir, "tradesy-dvbpr", "TradesyImgPartitioned.npy")


VISUAL_PAPER_PARSERS = {
    "amazon-women-vbpr": parse_amazon_women_vbpr,
    "amazon-men-vbpr": parse_amazon_men_vbpr,
    "amazon-phones-vbpr": parse_amazon_phones_vbpr,
    "tradesy-vbpr": parse_tradesy_vbpr,
    "amazon-fashion-dvbpr": parse_amazon_fashion_dvbpr,
    "amazon-women-dvbpr": parse_amazon_women_dvbpr,
    "amazon-men-dvbpr": parse_amazon_men_dvbpr,
    "tradesy-dvbpr": parse_tradesy_dvbpr,
}
