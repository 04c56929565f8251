"""The one image loader: decode, resize, centre-crop and scale item images in batches.

Feature extractors and end-to-end visual models (DVBPR, ...) read item images through
:func:`iter_batches`. Every image is decoded by Pillow and converted to RGB (the format is read
from the bytes, so a PNG named ``.jpg`` loads), its shorter side is resized to
``Preprocessing.resize`` (the longer side follows the aspect ratio, truncated as torchvision
does), the centre ``crop`` x ``crop`` square is cut out, and the 0..255 pixel values are scaled
to ``(value - mean) / std`` per channel. Batches come as float32 NCHW arrays with the item ids of
their rows, in ascending item order whatever the number of workers.

When the image table gives a file's sha256, the bytes are checked against it before decoding;
a mismatch, a missing file or an undecodable one is a one-line :class:`RecAuditError` naming the
file and the fix. Workers are threads: Pillow releases the GIL while it decodes and resizes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from common.errors import RecAuditError
from datasets.item_data import ItemImages

# Per-channel (mean, std) in 0..255 pixel units: pixel -> (pixel - mean) / std.
SCALINGS = {
    # torchvision / ImageNet statistics: x/255 normalised by the ImageNet mean and std.
    "imagenet": ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)),
    # TF "inception" style: x/127.5 - 1, i.e. [0, 255] -> [-1, 1].
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    # What TensorFlow's EfficientNet-Lite builder trains and evaluates with (MEAN_RGB = 127,
    # STDDEV_RGB = 128): the inception-style scaling in the constants the weights were trained with.
    "tf-lite": ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    # The 0..255 values as they are: a model that keeps a uint8 cache scales on its own device.
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
# How the image reaches resize x resize before the crop: keep the aspect ratio (shorter side to
# ``resize``, the torchvision convention) or stretch both sides to ``resize`` (PIL's
# ``resize((s, s))``, as DVBPR's released code feeds its CNN).
RESIZE_MODES = ("shorter-side", "exact")
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocessing:
    """Resize (the shorter side, or both sides with ``resize_mode="exact"``) to ``resize``,
    centre-crop ``crop`` x ``crop``, scale by ``scaling``."""

    resize: int
    crop: int
    scaling: str
    interpolation: str = "bilinear"
    resize_mode: str = "shorter-side"

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; known: {', '.join(SCALINGS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; known: {', '.join(INTERPOLATIONS)}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize_mode!r}; known: {', '.join(RESIZE_MODES)}")
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"the crop ({self.crop}) must be positive and at most the resize ({self.resize})")

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(SCALINGS[self.scaling][0], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(SCALINGS[self.scaling][1], dtype=np.float32)

    def describe(self) -> dict:
        """What a feature set's meta records about the input pipeline."""
        mean, std = SCALINGS[self.scaling]
        resized = "resize_shorter_side" if self.resize_mode == "shorter-side" else "resize_both_sides"
        return {"decode": "Pillow, converted to RGB", resized: self.resize,
                "interpolation": f"Pillow {self.interpolation} (antialiased)", "centre_crop": self.crop,
                "scaling": self.scaling, "mean_0_255": [round(v, 6) for v in mean],
                "std_0_255": [round(v, 6) for v in std], "layout": "NCHW float32 RGB"}


@dataclass(frozen=True)
class ImageBatch:
    """Rows of ``pixels`` (N x 3 x crop x crop, float32) are the images of ``items``."""

    items: np.ndarray
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def tensor(self, device=None):
        """The pixels as a torch tensor (on ``device`` if given); imports torch only when called."""
        import torch

        pixels = torch.from_numpy(self.pixels)
        return pixels if device is None else pixels.to(device)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ----- one image ------------------------------------------------------------------------------
def decode_image(data: bytes, name: str | Path = "image") -> Image.Image:
    """Decode image bytes (any format Pillow reads) into an RGB image, or raise a one-line error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's note on palette transparency
            image = Image.open(io.BytesIO(data))
            image.load()
            if image.mode in ("P", "LA", "PA") or (image.mode == "L" and "transparency" in image.info):
                image = image.convert("RGBA")
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RecAuditError(f"image {name} cannot be decoded ({type(error).__name__}: {_first_line(error)}); "
                            "replace it with a valid image file (fetch the dataset's raw files again)") from None


def preprocess(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """RGB image -> float32 array 3 x crop x crop (resize shorter side, centre crop, scale)."""
    width, height = image.size
    if preprocessing.resize_mode == "exact":
        size = (preprocessing.resize, preprocessing.resize)
    else:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = preprocessing.resize, int(preprocessing.resize * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
    if size != image.size:
        image = image.resize(size, INTERPOLATIONS[preprocessing.interpolation])
    crop = preprocessing.crop
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    pixels = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32)
    pixels = (pixels - preprocessing.mean) / preprocessing.std
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def read_image_bytes(path: Path, expected_sha256: str | None = None, item: int | None = None) -> bytes:
    """The file's bytes, checked against ``expected_sha256`` when one is given."""
    label = f"image {path}" + (f" (item {item})" if item is not None else "")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecAuditError(f"{label} does not exist; fetch the dataset's raw files again "
                            "(`python -m datasets fetch NAME`) or pass the right raw folder") from None
    except OSError as error:
        raise RecAuditError(f"{label} cannot be read ({_first_line(error)}); check the file and its permissions") from None
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise RecAuditError(f"{label} has sha256 {actual[:12]}..., the image table expects "
                                f"{expected_sha256[:12]}...; the file changed: fetch the dataset's raw files again, "
                                "or prepare the dataset again if the table is out of date")
    return data


def load_image(path: Path | str, preprocessing: Preprocessing, expected_sha256: str | None = None,
               item: int | None = None) -> np.ndarray:
    """Read, verify, decode and preprocess one image file into a 3 x crop x crop float32 array."""
    data = read_image_bytes(Path(path), expected_sha256, item)
    return preprocess(decode_image(data, path), preprocessing)


# ----- a prepared dataset's images -----------------------------------------------------------
def read_item_images(prepared_dir: Path | str, raw_dir: Path | str) -> ItemImages:
    """The item images of a prepared dataset (``item_images.parquet``, ``meta.json``), rooted at ``raw_dir``."""
    prepared_dir, raw_dir = Path(prepared_dir), Path(raw_dir)
    meta_path = prepared_dir / "meta.json"
    if not meta_path.is_file():
        raise RecAuditError(f"no prepared dataset at {prepared_dir} (no meta.json); run "
                            f"`python -m datasets prepare {prepared_dir.name}` first, or pass --prepared")
    try:
        n_items = int(json.loads(meta_path.read_text())["n_items"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecAuditError(f"{meta_path} has no readable n_items ({type(error).__name__}); prepare the dataset again") from None
    table_path = prepared_dir / "item_images.parquet"
    if not table_path.is_file():
        raise RecAuditError(f"{prepared_dir} has no item_images.parquet: this dataset has no item images, or it was "
                            "prepared before images were supported; prepare it again or choose a dataset with images")
    table = pd.read_parquet(table_path)
    missing = {"item", "image_path"} - set(table.columns)
    if missing:
        raise RecAuditError(f"{table_path} lacks the column(s) {', '.join(sorted(missing))}; prepare the dataset again")
    if not raw_dir.is_dir():
        raise RecAuditError(f"the image folder {raw_dir} does not exist; run `python -m datasets fetch "
                            f"{prepared_dir.name}` first, or pass --raw")
    return ItemImages.from_table(table, n_items, raw_dir)


# ----- batches --------------------------------------------------------------------------------
def iter_batches(images: ItemImages, preprocessing: Preprocessing, batch_size: int = 32,
                 workers: int | None = None, items: Iterable[int] | None = None,
                 verify: bool = True) -> Iterator[ImageBatch]:
    """Batches of preprocessed item images: every item with an image in ascending order, or ``items`` in their order.

    Items without an image are skipped, never returned (each batch's ``items`` says which rows
    are which item). ``workers`` threads decode ahead of the consumer (0: decode in the calling
    thread); at most a few batches are held in memory at a time; the order never depends on the
    number of workers. ``verify`` checks each file against the table's sha256 where it has one.
    """
    if batch_size < 1:
        raise RecAuditError(f"the batch size must be at least 1, got {batch_size}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise RecAuditError(f"the number of workers must be 0 or more, got {workers}")
    chosen = range(images.n_items) if items is None else [int(item) for item in items]
    outside = [item for item in chosen if not 0 <= item < images.n_items]
    if outside:
        raise RecAuditError(f"item {outside[0]} is outside the image table's items 0..{images.n_items - 1}")
    order = [item for item in chosen if images.paths[item] is not None]

    def load(item: int) -> np.ndarray:
        expected = images.sha256[item] if verify else None
        return load_image(images.path(item), preprocessing, expected, item)

    if workers == 0:
        yield from _batched(((item, load(item)) for item in order), batch_size)
        return
    yield from _batched(_threaded(order, load, workers, lookahead=2 * batch_size + workers), batch_size)


def _threaded(order: list[int], load, workers: int, lookahead: int) -> Iterator[tuple[int, np.ndarray]]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recaudit-images")
    pending: deque[tuple[int, Future]] = deque()
    upcoming = iter(order)
    try:
        for item in upcoming:
            pending.append((item, pool.submit(load, item)))
            if len(pending) >= lookahead:
                break
        while pending:
            item, future = pending.popleft()
            pixels = future.result()  # re-raises a worker's RecAuditError here, in order
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(load, following)))
            yield item, pixels
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batched(pairs: Iterator[tuple[int, np.ndarray]], batch_size: int) -> Iterator[ImageBatch]:
    items: list[int] = []
    arrays: list[np.ndarray] = []
    for item, pixels in pairs:
        items.append(item)
        arrays.append(pixels)
        if len(items) == batch_size:
            yield ImageBatch(np.asarray(items, dtype=np.int64), np.stack(arrays))
            items, arrays = [], []
    if items:
        yield ImageBatch(np.asarray(items, dtype=np.int64), np.stack(arrays))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
