"""The visual papers' datasets (VBPR, DVBPR, UGallery): registry entries, download sizes in
``datasets list``, and every parser on tiny files in the authors' exact formats (written by
datasets.synthetic's writers; none of the real files is obtainable on this machine)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib import format as npy_format

import datasets.__main__ as cli
from common.errors import RecAuditError
from datasets import fetch
from datasets.canonical import load_prepared
from datasets.images import read_item_images
from datasets.parsers import PARSERS
from datasets.parsers.visual_papers import (FEATURE_SET_KEY, load_pickled_npy, read_amazon_reviews, read_dvbpr,
                                            read_tradesy, read_vbpr_features)
from datasets.prepare import prepare_dataset
from datasets.registry import VISUAL_PAPER_DATASETS, ArchiveSpec, FileSpec, get_dataset, registered_datasets
from datasets.synthetic import jpeg_bytes as jpeg, write_dvbpr_npy as save_npy, write_gzip_lines as gz
from datasets.synthetic import write_vbpr_features as write_features
from protocols.splits import make_split

REPO = Path(__file__).resolve().parent.parent
DIM = 4096
RECORD = 10 + 4 * DIM


# ---------------------------------------------------------------- registry and `datasets list`

def test_registry_declares_the_papers_files_with_their_upstream_urls():
    assert set(VISUAL_PAPER_DATASETS) <= set(registered_datasets())
    assert set(VISUAL_PAPER_DATASETS) - {"ugallery-curatornet"} <= set(PARSERS)
    names = {name: [f.name for f in get_dataset(name).files] for name in VISUAL_PAPER_DATASETS}
    clothing = ["reviews_Clothing_Shoes_and_Jewelry.json.gz", "meta_Clothing_Shoes_and_Jewelry.json.gz",
                "image_features_Clothing_Shoes_and_Jewelry.b"]
    assert names == {
        "amazon-women-vbpr": clothing, "amazon-men-vbpr": clothing,
        "amazon-phones-vbpr": ["reviews_Cell_Phones_and_Accessories.json.gz",
                               "image_features_Cell_Phones_and_Accessories.b"],
        "tradesy-vbpr": ["tradesy.json.gz", "image_features_tradesy.b"],
        "amazon-fashion-dvbpr": ["AmazonFashion6ImgPartitioned.npy"],
        "amazon-women-dvbpr": ["AmazonWomenWithImgPartitioned.npy"],
        "amazon-men-dvbpr": ["AmazonMenWithImgPartitioned.npy"],
        "tradesy-dvbpr": ["TradesyImgPartitioned.npy"],
        "ugallery-curatornet": [],
    }
    tradesy = get_dataset("tradesy-vbpr")
    assert tradesy.file("image_features_tradesy.b").url == \
        "http://jmcauley.ucsd.edu/data/tradesy/image_features_tradesy.b"
    assert tradesy.file("image_features_tradesy.b").size == 5_500_000_000
    assert get_dataset("tradesy-dvbpr").files[0].url == "http://cseweb.ucsd.edu/~wckang/DVBPR/TradesyImgPartitioned.npy"
    assert get_dataset("amazon-men-vbpr").file("image_features_Clothing_Shoes_and_Jewelry.b").url == (
        "http://snap.stanford.edu/data/amazon/productGraph/image_features/categoryFiles/"
        "image_features_Clothing_Shoes_and_Jewelry.b")
    for name in VISUAL_PAPER_DATASETS:
        spec = get_dataset(name)
        assert spec.citation and spec.homepage.startswith(("http://", "https://")) and spec.side_information
        assert all(f.checksum is None for f in spec.files)  # nothing trusted is published: fetching fails closed
        if name != "ugallery-curatornet":
            assert "research use only" in spec.licence and spec.licence_short == "research use only"
    assert get_dataset("amazon-fashion-dvbpr").published_users == 64_583
    assert get_dataset("tradesy-dvbpr").published_interactions == 655_409


def test_spec_rules_for_sizes_and_unavailable_datasets():
    with pytest.raises(ValueError, match="give files, or no files and the reason they are unavailable"):
        dataclasses.replace(get_dataset("ugallery-curatornet"), unavailable=None)
    with pytest.raises(ValueError, match="give files, or no files"):
        dataclasses.replace(get_dataset("tradesy-dvbpr"), unavailable="private")
    with pytest.raises(ValueError, match="a size is the bytes of a direct download"):
        FileSpec("a", "a", None, archive=ArchiveSpec("z.zip", "https://example.org/z.zip", None), member="z/a",
                 size=10)
    with pytest.raises(ValueError, match="a size is the bytes of a direct download"):
        FileSpec("a", "a", None, url="https://example.org/a", size=-1)
    men = get_dataset("amazon-men-vbpr")
    assert [source.name for source in men.downloads()] == [f.name for f in men.files]  # one download per URL


def test_ugallery_cannot_be_fetched_and_says_how_to_obtain_it(tmp_path):
    with pytest.raises(RecAuditError) as error:
        fetch.fetch_dataset("ugallery-curatornet", tmp_path / "raw")
    message = str(error.value)
    assert "\n" not in message and "private" in message and "ask the CuratorNet authors" in message
    assert not (tmp_path / "raw").exists()


def test_a_paper_file_without_a_recorded_checksum_is_refused_and_its_hash_printed(monkeypatch, tmp_path):
    content = b"\x93NUMPY not really"

    class Response(io.BytesIO):
        status, headers = 200, {"Content-Length": str(len(content))}

    monkeypatch.setattr(fetch, "_urlopen", lambda request, timeout: Response(content))
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    with pytest.raises(RecAuditError, match=r"no checksum is recorded for amazon-men-dvbpr/AmazonMenWithImg"
                                            r"Partitioned\.npy .* this copy has sha256:" +
                                            hashlib.sha256(content).hexdigest()):
        fetch.fetch_dataset("amazon-men-dvbpr", tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    assert not (tmp_path / "raw").exists()


def test_list_shows_each_download_size(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    cli.main(["list"])
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header[5] == "download"
    sizes = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip())[5] for line in lines[2:]}
    assert sizes["tradesy-vbpr"] == ">= 5.5 GB"  # the features; tradesy.json.gz has no known size
    assert sizes["amazon-men-dvbpr"] == "1.9 GB" and sizes["tradesy-dvbpr"] == "5.7 GB"
    assert sizes["amazon-women-vbpr"] == "?" and sizes["ugallery-curatornet"] == "private"
    assert sizes["movielens-1m"] == "5.9 MB"  # ml-1m.zip


def test_human_bytes():
    from common.memory import human_bytes

    assert [human_bytes(n) for n in (12, 978_202, 5_500_000_000, 999_960, 2 * 10**13)] == \
        ["12 B", "978.2 kB", "5.5 GB", "1.0 MB", "20.0 TB"]


# ---------------------------------------------------------------- VBPR: image features

def three_records() -> list[tuple[bytes, np.ndarray]]:
    base = np.arange(DIM, dtype=np.float32)
    return [(b"B000000001", base * 0.5), (b"0000031887", -base), (b"12345     ", np.full(DIM, 2.25, np.float32))]


def test_vbpr_features_read_by_hand(tmp_path):
    path = write_features(tmp_path / "f.b", three_records())
    assert path.stat().st_size == 3 * RECORD
    with open(path, "rb") as handle:  # the first float of record 2, read by hand
        handle.seek(RECORD + 10 + 4 * 7)
        assert struct.unpack("<f", handle.read(4))[0] == -7.0
    features = read_vbpr_features(path)
    assert features.ids == ["B000000001", "0000031887", "12345"]  # Tradesy-style space padding stripped
    assert features.values.dtype == np.float32 and features.values.shape == (3, DIM)
    assert features.values[0, 3] == 1.5 and features.values[1, 7] == -7.0 and (features.values[2] == 2.25).all()
    wanted = read_vbpr_features(path, wanted={"12345", "B000000001", "not-there"})
    assert wanted.ids == ["B000000001", "12345"] and wanted.values.shape == (2, DIM)
    assert (wanted.values[1] == 2.25).all() and features.n_records == wanted.n_records == 3


def test_vbpr_features_keep_the_first_of_a_repeated_id(tmp_path):
    records = three_records()
    path = write_features(tmp_path / "f.b", [*records, (b"B000000001", np.ones(DIM))])
    features = read_vbpr_features(path)
    assert features.ids == ["B000000001", "0000031887", "12345"] and features.n_duplicates == 1
    assert features.values[0, 3] == 1.5


@pytest.mark.parametrize("cut, pattern", [(1, "is not a whole number of 16,394-byte records"),
                                          (RECORD, None), (3 * RECORD, "0 bytes is not a whole number")])
def test_vbpr_features_refuse_a_truncated_file(tmp_path, cut, pattern):
    path = write_features(tmp_path / "f.b", three_records())
    path.write_bytes(path.read_bytes()[:-cut])
    if pattern is None:  # a whole record less is a valid, shorter file
        assert read_vbpr_features(path).ids == ["B000000001", "0000031887"]
        return
    with pytest.raises(RecAuditError, match=pattern) as error:
        read_vbpr_features(path)
    assert "\n" not in str(error.value) and "fetch it again" in str(error.value)


def test_vbpr_features_refuse_bad_ids_and_non_finite_values(tmp_path):
    bad_id = write_features(tmp_path / "a.b", [(b"B000\xff00001", np.zeros(DIM))])
    with pytest.raises(RecAuditError, match=r"record 1 has the item id .* not 10 ASCII characters"):
        read_vbpr_features(bad_id)
    values = np.zeros(DIM)
    values[5] = np.nan
    nan = write_features(tmp_path / "b.b", [three_records()[0], (b"B000000002", values)])
    with pytest.raises(RecAuditError, match=r"record 2 \(item B000000002\) has non-finite values"):
        read_vbpr_features(nan)


# ---------------------------------------------------------------- VBPR: interactions and datasets

TRADESY_LINES = [
    "{'lists': {'selling': ['9'], 'sold': [], 'bought': ['12345', '0000031887'], 'want': ['B000000001']}, "
    "'uid': '1'}",
    "",
    "{'lists': {'bought': [], 'want': ['12345', '777'], 'selling': []}, 'uid': '2'}",
]


def test_tradesy_bought_and_want_are_the_positive_feedback(tmp_path):
    frame, notes = read_tradesy(gz(tmp_path / "tradesy.json.gz", TRADESY_LINES))
    assert list(zip(frame["user"], frame["item"])) == [("1", "12345"), ("1", "0000031887"), ("1", "B000000001"),
                                                       ("2", "12345"), ("2", "777")]
    assert notes["rows_per_list"] == {"bought": 2, "want": 3} and notes["lists_not_used"] == ["selling", "sold"]


@pytest.mark.parametrize("line", ["{'uid': '3', 'lists': {'bought': 'abc'}}", "{'uid': '3'}", "not a record",
                                  "['uid', '3']"])
def test_tradesy_malformed_line_is_named(tmp_path, line):
    path = gz(tmp_path / "tradesy.json.gz", [TRADESY_LINES[0], line])
    with pytest.raises(RecAuditError, match=r"tradesy\.json\.gz: malformed line 2: expected") as error:
        read_tradesy(path)
    assert "\n" not in str(error.value)


def test_truncated_gzip_is_refused(tmp_path):
    path = gz(tmp_path / "tradesy.json.gz", TRADESY_LINES * 50)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(RecAuditError, match="the download is truncated or corrupt, fetch it again"):
        read_tradesy(path)


def test_tradesy_prepares_with_a_dense_feature_set_aligned_to_the_items(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    gz(raw / "tradesy.json.gz", TRADESY_LINES)
    write_features(raw / "image_features_tradesy.b", [*three_records(), (b"99        ", np.ones(DIM))])
    data = prepare_dataset("tradesy-vbpr", raw, tmp_path / "prepared")
    assert data.items["original_id"].tolist() == ["0000031887", "12345", "777", "B000000001"]
    assert data.meta["notes"]["image_features"] == {"records_in_file": 4, "duplicate_records_skipped": 0,
                                                    "items_with_features": 3, "items_without_features": 1}
    loaded = load_prepared(tmp_path / "prepared")
    features = loaded.item_features[FEATURE_SET_KEY]
    assert not features.is_sparse and (tmp_path / "prepared" / "features" / FEATURE_SET_KEY / "values.npy").is_file()
    assert features.present.tolist() == [True, True, False, True]  # item 777 has no record
    values = features.dense()
    assert values[0, 7] == -7.0 and (values[1] == 2.25).all() and not values[2].any() and values[3, 3] == 1.5
    assert len(loaded.interactions) == 5 and loaded.n_users == 2


REVIEWS = [
    {"reviewerID": "A1", "asin": "W000000001", "reviewerName": "x", "overall": 5.0, "unixReviewTime": 1390176000,
     "reviewTime": "01 20, 2014", "reviewText": "fine"},
    {"reviewerID": "A2", "asin": "M000000001", "overall": 3.0, "unixReviewTime": 1390000000},
    {"reviewerID": "A2", "asin": "W000000002", "overall": 4.0, "unixReviewTime": 1390000500},
    {"reviewerID": "A3", "asin": "W000000001", "overall": 1.0, "unixReviewTime": 1300000000},
]
METADATA = [  # Python literals, as McAuley's metadata files are
    "{'asin': 'W000000001', 'categories': [['Clothing, Shoes & Jewelry', 'Women', 'Clothing'], ['Sports']]}",
    "{'asin': 'M000000001', 'title': \"Men's shirt\", 'categories': [['Clothing, Shoes & Jewelry', 'Men']]}",
    "{'asin': 'W000000002', 'price': 6.99, 'categories': [['Clothing, Shoes & Jewelry', 'Women']]}",
    "{'asin': 'X000000001', 'categories': [['Women']]}",  # mentions Women, but not under Clothing
]


def amazon_raw(folder: Path) -> Path:
    folder.mkdir()
    gz(folder / "reviews_Clothing_Shoes_and_Jewelry.json.gz", [json.dumps(r) for r in REVIEWS])
    gz(folder / "meta_Clothing_Shoes_and_Jewelry.json.gz", METADATA)
    write_features(folder / "image_features_Clothing_Shoes_and_Jewelry.b",
                   [(b"W000000001", np.full(DIM, 1.0)), (b"M000000001", np.full(DIM, 2.0))])
    return folder


def test_amazon_women_keeps_the_women_items_of_clothing(tmp_path):
    raw = PARSERS["amazon-women-vbpr"](amazon_raw(tmp_path / "raw"))
    frame = raw.interactions
    assert list(zip(frame["user"], frame["item"], frame["timestamp"], frame["rating"])) == [
        ("A1", "W000000001", 1390176000, 5.0), ("A2", "W000000002", 1390000500, 4.0),
        ("A3", "W000000001", 1300000000, 1.0)]
    assert raw.notes["subcategory"] == {"path": "Clothing, Shoes & Jewelry > Women", "products_in_metadata": 2}
    features = raw.item_features[FEATURE_SET_KEY]
    assert list(features.ids) == ["W000000001"] and (features.values == 1.0).all()  # W000000002 has no record
    men = PARSERS["amazon-men-vbpr"](tmp_path / "raw")
    assert men.interactions["item"].tolist() == ["M000000001"] and list(men.item_features[FEATURE_SET_KEY].ids) == \
        ["M000000001"]


def test_amazon_review_without_a_time_is_named(tmp_path):
    bad = dict(REVIEWS[1])
    del bad["unixReviewTime"]
    path = gz(tmp_path / "reviews.json.gz", [json.dumps(REVIEWS[0]), json.dumps(bad)])
    with pytest.raises(RecAuditError, match=r"malformed line 2: expected a review with reviewerID, asin"):
        read_amazon_reviews(path)


def test_missing_feature_file_says_to_fetch(tmp_path):
    folder = amazon_raw(tmp_path / "raw")
    (folder / "image_features_Clothing_Shoes_and_Jewelry.b").unlink()
    with pytest.raises(RecAuditError, match=r"raw file image_features_Clothing_Shoes_and_Jewelry\.b is missing from "
                                            r".*\(python -m datasets fetch amazon-men-vbpr\)"):
        PARSERS["amazon-men-vbpr"](folder)


# ---------------------------------------------------------------- DVBPR: the .npy files

IMAGES = {0: jpeg((255, 0, 0)), 1: jpeg((0, 255, 0)), 2: jpeg((0, 0, 255)), 3: jpeg((9, 9, 9))}


def dvbpr_objects(keys=str) -> list:
    """[user_train, user_validation, user_test, Item, usernum, itemnum], with ``keys`` applied to
    every dict key (``bytes`` for what a Python 2 file gives under encoding='bytes')."""
    def record(item, time, user):
        return {keys("productid"): item, keys("reviewerID"): keys(f"U{user}"), keys("asin"): keys(f"A{item}"),
                keys("unixReviewTime"): time}
    train = {0: [record(0, 100, 0), record(1, 101, 0)], 1: [record(1, 102, 1), record(2, 103, 1)]}
    validation = {0: [record(2, 200, 0)], 1: [record(0, 201, 1)]}
    test = {0: [record(3, 300, 0)], 1: [record(3, 301, 1)]}
    items = {i: {keys("imgs"): data, keys("asin"): keys(f"A{i}"), keys("c"): np.eye(6)[i]}  # c: categories
             for i, data in IMAGES.items()}
    items[4] = {keys("imgs"): b"", keys("asin"): keys("A4")}  # an item without an image, in no interaction
    return [train, validation, test, items, 2, 5]


def test_dvbpr_npy_read_by_hand(tmp_path):
    path = save_npy(tmp_path / "d.npy", dvbpr_objects())
    data = read_dvbpr(path)
    assert (data.n_users, data.n_items) == (2, 5)
    assert data.parts["train"].values.tolist() == [[0, 0, 100], [0, 1, 101], [1, 1, 102], [1, 2, 103]]
    assert data.parts["validation"].values.tolist() == [[0, 2, 200], [1, 0, 201]]
    assert data.parts["test"].values.tolist() == [[0, 3, 300], [1, 3, 301]]
    assert data.items[2]["imgs"] == IMAGES[2] and data.reviewer_ids == {0: "U0", 1: "U1"}


def py2_npy(path: Path, objects: list) -> Path:
    """What the authors' Python 2 numpy wrote: protocol 2, str as BINSTRING, numpy.core paths."""
    from numpy._core.multiarray import _reconstruct

    class Py2Pickler(pickle._Pickler):
        dispatch = dict(pickle._Pickler.dispatch)

        def save_bytes(self, obj):
            size = len(obj)
            self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj if size < 256
                       else pickle.BINSTRING + struct.pack("<i", size) + obj)
            self.memoize(obj)

        dispatch[bytes] = save_bytes

        def save_global(self, obj, name=None):
            if obj is _reconstruct:
                self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
                self.memoize(obj)
            else:
                super().save_global(obj, name)

    array = np.empty(len(objects), dtype=object)
    for index, value in enumerate(objects):
        array[index] = value
    with open(path, "wb") as handle:
        npy_format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": array.shape})
        Py2Pickler(handle, protocol=2).dump(array)
    return path


def test_a_python2_file_with_byte_string_keys_and_an_item_list(tmp_path):
    objects = dvbpr_objects(keys=lambda k: k.encode())
    objects[0] = defaultdict(list, objects[0])  # pickled as collections.defaultdict(__builtin__.list)
    objects[3] = [objects[3][i] for i in range(5)]  # Item as a list indexed by item
    path = py2_npy(tmp_path / "d.npy", objects)
    content = path.read_bytes()
    assert b"numpy.core.multiarray" in content and b"U\x09productid" in content and b"__builtin__\nlist" in content
    reference = np.load(path, allow_pickle=True, encoding="bytes")  # our own file: safe to check against numpy
    assert reference[0][0][0][b"productid"] == 0
    data = read_dvbpr(path)
    assert data.parts["test"].values.tolist() == [[0, 3, 300], [1, 3, 301]]
    assert data.items[1]["imgs"] == IMAGES[1] and data.reviewer_ids == {0: "U0", 1: "U1"}
    assert data.items[2]["c"].tolist() == [0, 0, 1, 0, 0, 0]  # a numeric array inside rebuilds too


def test_dvbpr_prepares_with_images_and_the_authors_partition(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    save_npy(raw / "TradesyImgPartitioned.npy", dvbpr_objects())
    parsed = PARSERS["tradesy-dvbpr"](raw)
    assert parsed.item_images["image_path"].tolist() == ["images/0.jpg", "images/1.jpg", "images/2.jpg",
                                                         "images/3.jpg"]
    assert (raw / "images" / "2.jpg").read_bytes() == IMAGES[2] and not (raw / "images" / "4.jpg").exists()
    assert parsed.users["reviewer_id"].tolist() == ["U0", "U1"] and parsed.items["asin"].tolist() == \
        ["A0", "A1", "A2", "A3"]
    before = {p.name: p.stat().st_mtime_ns for p in (raw / "images").iterdir()}
    prepare_dataset("tradesy-dvbpr", raw, tmp_path / "prepared")
    assert {p.name: p.stat().st_mtime_ns for p in (raw / "images").iterdir()} == before  # unchanged files kept
    data = load_prepared(tmp_path / "prepared")
    assert data.n_users == 2 and data.n_items == 4 and len(data.interactions) == 8
    assert sorted(data.given["dvbpr"]) == ["test", "train", "validation"]
    assert data.given["dvbpr"]["validation"][["user", "item"]].values.tolist() == [[0, 2], [1, 0]]
    images = read_item_images(tmp_path / "prepared", raw)
    assert images.sha256[3] == hashlib.sha256(IMAGES[3]).hexdigest() and images.present.all()
    # the given protocol with no carved validation trains and tests on exactly the authors' parts
    split = make_split(data, "given", 0, {"given": "dvbpr", "validation_fraction": 0.0})
    pairs = lambda frame: sorted(map(tuple, frame[["user", "item"]].values.tolist()))  # noqa: E731
    assert pairs(split.train) == [(0, 0), (0, 1), (1, 1), (1, 2)] and pairs(split.test) == [(0, 3), (1, 3)]
    assert split.validation.empty


class Evil:
    def __reduce__(self):
        return os.system, ("echo pwned > pwned.txt",)


def malicious_npy(path: Path, payload: bytes) -> Path:
    with open(path, "wb") as handle:
        npy_format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (6,)})
        handle.write(payload)
    return path


@pytest.mark.parametrize("payload, refused", [
    (pickle.dumps(Evil(), protocol=2), "posix.system"),
    (pickle.dumps([Evil()] * 6, protocol=4), "posix.system"),
    (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
    (b"c__builtin__\ngetattr\n.", "__builtin__.getattr"),
])
def test_restricted_unpickler_refuses_anything_but_arrays_and_containers(tmp_path, monkeypatch, payload, refused):
    monkeypatch.chdir(tmp_path)
    path = malicious_npy(tmp_path / "evil.npy", payload)
    with pytest.raises(RecAuditError, match=f"refusing to unpickle {re.escape(refused)}") as error:
        load_pickled_npy(path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "pwned.txt").exists()


def test_malicious_npy_is_one_line_exit_2_from_the_command_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    malicious_npy(raw / "AmazonMenWithImgPartitioned.npy", pickle.dumps(Evil(), protocol=2))
    result = subprocess.run([sys.executable, "-m", "datasets", "prepare", "amazon-men-dvbpr", "--raw", str(raw),
                             "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "refusing to unpickle posix.system" in result.stderr
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "out").exists()


def test_truncated_or_wrong_npy_is_refused(tmp_path):
    good = save_npy(tmp_path / "good.npy", dvbpr_objects())
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(RecAuditError, match=r"cannot be unpickled \(.*\); the file is truncated or not the authors'"):
        read_dvbpr(truncated)
    numbers = tmp_path / "numbers.npy"
    np.save(numbers, np.zeros(6))
    with pytest.raises(RecAuditError, match="holds a float64 array, not pickled objects"):
        read_dvbpr(numbers)
    (tmp_path / "text.npy").write_bytes(b"hello")
    with pytest.raises(RecAuditError, match=r"is not a readable \.npy file"):
        read_dvbpr(tmp_path / "text.npy")
    five = save_npy(tmp_path / "five.npy", dvbpr_objects()[:5])
    with pytest.raises(RecAuditError, match=r"holds \(5,\) objects, not DVBPR's six"):
        read_dvbpr(five)


def test_dvbpr_out_of_range_item_is_named(tmp_path):
    objects = dvbpr_objects()
    objects[2][1][0]["productid"] = 7
    with pytest.raises(RecAuditError, match=r"user_test\[1\] has productid 7, not an integer in 0\.\.4"):
        read_dvbpr(save_npy(tmp_path / "d.npy", objects))


def test_prepare_of_ugallery_says_it_is_private(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecAuditError, match="ugallery-curatornet cannot be prepared here .*private"):
        cli.run_prepare("ugallery-curatornet", None, None, None)


def test_prepared_meta_names_no_machine_path(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    save_npy(raw / "AmazonFashion6ImgPartitioned.npy", dvbpr_objects())
    prepare_dataset("amazon-fashion-dvbpr", raw, tmp_path / "prepared")
    meta = (tmp_path / "prepared" / "meta.json").read_text()
    assert str(tmp_path) not in meta
    assert json.loads(meta)["notes"]["images"]["items_with_image"] == 4
    assert pd.read_parquet(tmp_path / "prepared" / "item_images.parquet")["image_path"].notna().all()
