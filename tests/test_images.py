"""The shared image loader: golden preprocessing values, verification, formats, order, prepared folders."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.errors import RecAuditError
from datasets.images import (Preprocessing, decode_image, iter_batches, load_image, preprocess, read_image_bytes,
                             read_item_images)
from datasets.item_data import ItemImages


def gradient_image(width: int, height: int) -> Image.Image:
    """Pixel (x, y) has channels (10y + x, 10y + x + 100, 255 - 10y - x)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 10 * y + x
    return Image.fromarray(np.stack([base, base + 100, 255 - base], axis=-1).astype(np.uint8))


def write_png(path: Path, image: Image.Image) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def colour_images(tmp_path: Path, n_items: int, missing=(), suffix=".png") -> ItemImages:
    """Item i: a 12x9 image of one colour (i, 2i, 3i) -- lossless, so each item is recognisable."""
    rows = []
    for item in range(n_items):
        if item in missing:
            rows.append((item, None, None))
            continue
        image = Image.new("RGB", (12, 9), (item, 2 * item, 3 * item))
        digest = write_png(tmp_path / "raw" / f"img{item}{suffix}", image)
        rows.append((item, f"img{item}{suffix}", digest))
    table = pd.DataFrame(rows, columns=["item", "image_path", "sha256"])
    return ItemImages.from_table(table, n_items, tmp_path / "raw")


# ----- golden values, computed by hand ---------------------------------------------------------
def test_centre_crop_and_tf_scaling_golden_values():
    # 6 x 4 image, shorter side 4 = resize (no resampling); crop 2: left (6-2)/2 = 2, top (4-2)/2 = 1.
    pixels = preprocess(gradient_image(6, 4), Preprocessing(resize=4, crop=2, scaling="tf"))
    assert pixels.dtype == np.float32 and pixels.shape == (3, 2, 2)
    red = np.array([[12, 13], [22, 23]], dtype=np.float64)  # 10y + x at y = 1, 2 and x = 2, 3
    np.testing.assert_allclose(pixels[0], red / 127.5 - 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pixels[1], (red + 100) / 127.5 - 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pixels[2], (255 - red) / 127.5 - 1, rtol=0, atol=1e-6)
    assert pixels[0, 0, 0] == pytest.approx(-0.905882, abs=1e-6)  # 12 / 127.5 - 1


def test_crop_offset_rounds_like_torchvision():
    # 7 x 4: left = round((7 - 2) / 2) = round(2.5) = 2 (Python rounds half to even), top = 1.
    pixels = preprocess(gradient_image(7, 4), Preprocessing(resize=4, crop=2, scaling="tf"))
    np.testing.assert_allclose((pixels[0] + 1) * 127.5, [[12, 13], [22, 23]], atol=1e-4)
    # Portrait 4 x 7: left 1, top = round(2.5) = 2.
    pixels = preprocess(gradient_image(4, 7), Preprocessing(resize=4, crop=2, scaling="tf"))
    np.testing.assert_allclose((pixels[0] + 1) * 127.5, [[21, 22], [31, 32]], atol=1e-4)


@pytest.mark.parametrize("scaling, white, black", [
    ("imagenet", (2.2489083, 2.4285715, 2.64), (-2.1179039, -2.0357143, -1.8044444)),  # (1 - m)/s, -m/s
    ("tf", (1.0, 1.0, 1.0), (-1.0, -1.0, -1.0)),  # x / 127.5 - 1
    ("tf-lite", (1.0, 1.0, 1.0), (-0.9921875,) * 3),  # (x - 127) / 128
])
def test_scalings_of_white_and_black(scaling, white, black):
    image = Image.new("RGB", (2, 1))
    image.putpixel((0, 0), (255, 255, 255))
    pixels = preprocess(image, Preprocessing(resize=1, crop=1, scaling=scaling))  # 2x1 -> 2x1, crop the left
    np.testing.assert_allclose(pixels[:, 0, 0], white, rtol=0, atol=1e-6)
    image.putpixel((0, 0), (0, 0, 0))
    np.testing.assert_allclose(preprocess(image, Preprocessing(1, 1, scaling))[:, 0, 0], black, rtol=0, atol=1e-6)


def test_resize_shorter_side_keeps_the_aspect_ratio():
    # 300 x 200 -> shorter side 256: 384 x 256 (long side truncated as torchvision does), then 224 x 224.
    uniform = Image.new("RGB", (300, 200), (51, 102, 204))
    pixels = preprocess(uniform, Preprocessing(256, 224, "tf", "bicubic"))
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 100, 100], [51 / 127.5 - 1, 102 / 127.5 - 1, 204 / 127.5 - 1], atol=1e-5)
    # a downscale too: 40 x 90 -> 20 x 45 -> crop 20; uniform colour survives the filter exactly
    pixels = preprocess(Image.new("RGB", (40, 90), (0, 255, 0)), Preprocessing(20, 20, "tf"))
    assert pixels.shape == (3, 20, 20)
    np.testing.assert_allclose(pixels[1], 1.0, atol=1e-6)
    np.testing.assert_allclose(pixels[0], -1.0, atol=1e-6)


def test_invalid_preprocessing_is_refused():
    with pytest.raises(ValueError):
        Preprocessing(224, 256, "tf")  # crop larger than the resize
    with pytest.raises(ValueError):
        Preprocessing(256, 224, "caffe")


# ----- formats and verification -----------------------------------------------------------------
def test_png_named_jpg_grayscale_and_palette_images_load_as_rgb(tmp_path):
    gradient_image(6, 4).save(tmp_path / "poster.jpg", format="PNG")  # a PNG with a .jpg name
    pixels = load_image(tmp_path / "poster.jpg", Preprocessing(4, 2, "tf"))
    np.testing.assert_allclose((pixels[0] + 1) * 127.5, [[12, 13], [22, 23]], atol=1e-4)
    Image.new("L", (5, 5), 200).save(tmp_path / "grey.jpg", format="JPEG", quality=100)
    grey = load_image(tmp_path / "grey.jpg", Preprocessing(5, 5, "tf"))
    assert grey.shape == (3, 5, 5)
    np.testing.assert_allclose(grey[0], grey[2])  # the grey value copied to all three channels
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.gif")
    red = load_image(tmp_path / "palette.gif", Preprocessing(4, 4, "tf"))
    np.testing.assert_allclose(red[:, 0, 0], [1.0, -1.0, -1.0], atol=1e-6)


def test_sha256_mismatch_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "poster.jpg"
    digest = write_png(path, gradient_image(6, 4))
    assert load_image(path, Preprocessing(4, 2, "tf"), expected_sha256=digest).shape == (3, 2, 2)
    wrong = "0" * 64
    with pytest.raises(RecAuditError) as caught:
        load_image(path, Preprocessing(4, 2, "tf"), expected_sha256=wrong, item=7)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "item 7" in message
    assert "sha256" in message and digest[:12] in message and "fetch" in message


def test_missing_and_undecodable_files_are_one_line_errors(tmp_path):
    with pytest.raises(RecAuditError, match="does not exist; fetch") as caught:
        read_image_bytes(tmp_path / "nowhere.jpg")
    assert "\n" not in str(caught.value)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    with pytest.raises(RecAuditError, match="cannot be decoded") as caught:
        load_image(tmp_path / "broken.jpg", Preprocessing(4, 2, "tf"))
    assert "\n" not in str(caught.value) and "broken.jpg" in str(caught.value)
    with pytest.raises(RecAuditError, match="cannot be decoded"):
        decode_image(b"", "empty.jpg")


# ----- batches ----------------------------------------------------------------------------------
def test_batches_skip_items_without_image_and_keep_item_order(tmp_path):
    images = colour_images(tmp_path, 23, missing={0, 5, 6, 22})
    prep = Preprocessing(9, 8, "tf")
    reference = list(iter_batches(images, prep, batch_size=23, workers=0))
    assert len(reference) == 1
    items = reference[0].items
    assert items.tolist() == [i for i in range(23) if i not in {0, 5, 6, 22}]
    red = (reference[0].pixels[:, 0, 4, 4] + 1) * 127.5
    np.testing.assert_allclose(red, items, atol=1e-4)  # row k shows item items[k]'s own colour
    for workers in (1, 3, 8):
        for batch_size in (1, 4, 7):
            batches = list(iter_batches(images, prep, batch_size=batch_size, workers=workers))
            assert all(len(batch) == batch_size for batch in batches[:-1])
            assert np.concatenate([b.items for b in batches]).tolist() == items.tolist()
            np.testing.assert_array_equal(np.concatenate([b.pixels for b in batches]), reference[0].pixels)


def test_batches_of_chosen_items_and_errors_from_workers(tmp_path):
    images = colour_images(tmp_path, 10, missing={3})
    chosen = list(iter_batches(images, Preprocessing(9, 8, "tf"), batch_size=2, workers=2, items=[9, 3, 1, 1, 0]))
    assert [b.items.tolist() for b in chosen] == [[9, 1], [1, 0]]  # the order asked for; item 3 has no image
    assert chosen[0].pixels.shape == (2, 3, 8, 8) and chosen[0].pixels.dtype == np.float32
    np.testing.assert_allclose((chosen[0].pixels[:, 0, 0, 0] + 1) * 127.5, [9, 1], atol=1e-4)
    with pytest.raises(RecAuditError, match="item 42 is outside"):
        list(iter_batches(images, Preprocessing(9, 8, "tf"), items=[1, 42]))
    (tmp_path / "raw" / "img6.png").write_bytes(b"changed")
    with pytest.raises(RecAuditError, match=r"img6\.png \(item 6\) has sha256"):
        list(iter_batches(images, Preprocessing(9, 8, "tf"), batch_size=4, workers=3))
    # without verification the changed file is still refused: it is no image
    with pytest.raises(RecAuditError, match="cannot be decoded"):
        list(iter_batches(images, Preprocessing(9, 8, "tf"), batch_size=4, workers=3, verify=False))


def test_batch_tensor_is_the_same_memory_layout():
    torch = pytest.importorskip("torch")
    from datasets.images import ImageBatch

    batch = ImageBatch(np.array([2, 5]), np.zeros((2, 3, 4, 4), dtype=np.float32))
    tensor = batch.tensor()
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (2, 3, 4, 4) and tensor.dtype == torch.float32


# ----- prepared folders ---------------------------------------------------------------------------
def test_read_item_images_from_a_prepared_folder(tmp_path):
    images = colour_images(tmp_path, 4, missing={2})
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    table = pd.DataFrame({"item": [0, 1, 3], "image_path": ["img0.png", "img1.png", "img3.png"],
                          "sha256": [images.sha256[0], images.sha256[1], images.sha256[3]]})
    with pytest.raises(RecAuditError, match="no prepared dataset"):
        read_item_images(prepared, tmp_path / "raw")
    (prepared / "meta.json").write_text(json.dumps({"n_items": 5}))
    with pytest.raises(RecAuditError, match="no item_images.parquet"):
        read_item_images(prepared, tmp_path / "raw")
    table.to_parquet(prepared / "item_images.parquet")
    with pytest.raises(RecAuditError, match="image folder .* does not exist"):
        read_item_images(prepared, tmp_path / "elsewhere")
    read = read_item_images(prepared, tmp_path / "raw")
    assert read.n_items == 5 and read.present.tolist() == [True, True, False, True, False]
    assert read.paths[3] == "img3.png" and read.sha256[3] == images.sha256[3]
