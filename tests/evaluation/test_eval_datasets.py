"""Reading evaluation datasets: the three shipped benchmark layouts, any image/mask folder pair, COCO JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from annotator.errors import CocoFormatError
from annotator.evaluation.datasets import (
    DatasetError,
    category_from_name,
    coco_dataset,
    folder_dataset,
    load_rgb,
    read_mask,
)
from tests.conftest import shared_data


# ------------------------------------------------------------------------------- real benchmarks
def test_grabcut_layout():
    root = shared_data("grabcut")
    dataset = folder_dataset(root / "images", root / "masks")
    assert dataset.name == "grabcut" and len(dataset.samples) == 50 and dataset.notes == []
    suffixes = {s.image_path.suffix for s in dataset.samples}
    assert {".jpg", ".bmp", ".JPG"} <= suffixes  # matched by stem whatever the extension's case
    truth = next(s for s in dataset.samples if s.name == "banana1").load()
    raw = np.asarray(Image.open(root / "masks" / "banana1.bmp"))
    assert np.array_equal(truth.mask, raw == 255) and np.array_equal(truth.ignore, raw == 128)


def test_berkeley_layout_skips_masks_without_image_with_a_note():
    root = shared_data("berkeley")
    dataset = folder_dataset(root / "images", root / "masks")
    assert len(dataset.samples) == 96
    assert len(dataset.notes) == 1 and "4 masks without an image" in dataset.notes[0]
    for name in ("189011a.png", "189011b.png", "239007a.png", "239007b.png"):
        assert name in dataset.notes[0]
    sample = dataset.samples[0]
    truth = sample.load()
    raw = np.asarray(Image.open(root / "masks" / f"{sample.name}.png"))[..., 0]  # RGB, >128 object
    assert truth.ignore is None and np.array_equal(truth.mask, raw > 128)
    assert load_rgb(sample.image_path).shape[:2] == truth.mask.shape


def test_coco_mval_layout_categories_from_file_names():
    root = shared_data("coco_mval80")
    dataset = folder_dataset(root / "img", root / "gt", categories_from_names=True)
    assert len(dataset.samples) == 80 and len(dataset.categories) == 80
    assert {"traffic light", "tv", "hair drier", "teddy bear", "person"} <= set(dataset.categories)
    for sample in dataset.limited(5).samples:
        truth = sample.load()
        assert truth.mask.any() and load_rgb(sample.image_path).shape[:2] == truth.mask.shape


# ------------------------------------------------------------------------------ generic folders
def _save(path, array):
    Image.fromarray(array).save(path)
    return path


def test_any_folder_pair_with_01_rgb_and_palette_masks(tmp_path):
    images, masks = tmp_path / "pics", tmp_path / "labels"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    truth = np.zeros((30, 40), bool)
    truth[5:20, 8:30] = True
    for name in ("a", "b", "c", "d"):
        _save(images / f"{name}.png", rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    _save(masks / "a.png", truth.astype(np.uint8))  # 0/1
    _save(masks / "b.png", np.repeat(truth[..., None].astype(np.uint8) * 255, 3, axis=2))  # RGB
    palette = Image.fromarray(truth.astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(masks / "c.png")
    _save(masks / "orphan.png", truth.astype(np.uint8))
    dataset = folder_dataset(images, masks).limited(2)
    assert [s.name for s in dataset.samples] == ["a", "b"]
    assert any("orphan.png" in n for n in dataset.notes) and any(
        "--limit 2" in n for n in dataset.notes
    )
    assert any("1 images without a mask" in n for n in dataset.notes)
    for sample in folder_dataset(images, masks).samples:
        loaded = sample.load()
        assert loaded.ignore is None and np.array_equal(loaded.mask, truth), sample.name


def test_ignore_value_128_is_an_ignore_band(tmp_path):
    values = np.array([[0, 128, 255, 200, 100]], np.uint8)
    truth = read_mask(_save(tmp_path / "m.bmp", values))
    assert truth.mask.tolist() == [[False, False, True, True, False]]
    assert truth.ignore.tolist() == [[False, True, False, False, False]]


def test_exif_rotation_applied_only_when_it_matches_the_mask(tmp_path):
    stored = np.zeros((20, 50, 3), np.uint8)
    stored[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    assert load_rgb(path, (20, 50)).shape == (20, 50, 3)  # COCO convention: stored pixels
    upright = load_rgb(path, (50, 20))
    assert upright.shape == (50, 20, 3) and upright[:10].mean() > 200  # left band turned to the top


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        folder_dataset(tmp_path / "missing", tmp_path)
    (tmp_path / "i").mkdir()
    (tmp_path / "m").mkdir()
    _save(tmp_path / "i" / "x.png", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "m" / "y.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="no mask matches"):
        folder_dataset(tmp_path / "i", tmp_path / "m")
    _save(tmp_path / "m" / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="no category in the file name"):
        folder_dataset(tmp_path / "i", tmp_path / "m", categories_from_names=True)


@given(
    category=st.from_regex(r"[a-z][a-z ]{0,20}[a-z]", fullmatch=True),
    instance=st.integers(0, 99),
    image_id=st.integers(0, 10**12),
)
def test_category_from_name_round_trip(category, instance, image_id):
    assert category_from_name(f"{category}{instance:02d}_{image_id:012d}") == category


def test_category_from_name_rejects_other_names():
    assert category_from_name("banana1") is None and category_from_name("189011a") is None


# ----------------------------------------------------------------------------------------- COCO
def _coco(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _save(images / "one.jpg", np.zeros((40, 60, 3), np.uint8))
    blob = np.zeros((40, 60), np.uint8)
    blob[5:25, 10:50] = 1
    blob[12:18, 20:30] = 0  # a hole: RLE keeps it
    compressed = mask_utils.encode(np.asfortranarray(blob))
    compressed["counts"] = compressed["counts"].decode()
    uncompressed = {"size": [40, 60], "counts": [0, 40 * 60]}  # the whole image
    document = {
        "images": [
            {"id": 1, "file_name": "one.jpg", "height": 40, "width": 60},
            {"id": 2, "file_name": "absent.jpg", "height": 40, "width": 60},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "traffic light"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "segmentation": compressed, "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 4, "iscrowd": 0,
             "segmentation": [[10, 30, 40, 30, 40, 38, 10, 38]]},
            {"id": 12, "image_id": 1, "category_id": 4, "segmentation": uncompressed, "iscrowd": 1},
            {"id": 13, "image_id": 2, "category_id": 3, "segmentation": compressed, "iscrowd": 0},
        ],
    }  # fmt: skip
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(document))
    return path, images, blob


def test_coco_objects_with_rle_and_polygons(tmp_path):
    path, images, blob = _coco(tmp_path)
    dataset = coco_dataset(path, images)
    assert [(s.name, s.category) for s in dataset.samples] == [
        ("one#10", "cat"),
        ("one#11", "traffic light"),
    ]
    assert dataset.categories == ["cat", "traffic light"]
    assert any("1 crowd" in n for n in dataset.notes) and any(
        "absent" in n or "not in" in n for n in dataset.notes
    )
    assert np.array_equal(dataset.samples[0].load().mask, blob.astype(bool))
    rectangle = np.zeros((40, 60), bool)
    rectangle[30:38, 10:40] = True
    polygon = dataset.samples[1].load().mask
    overlap = (polygon & rectangle).sum() / (polygon | rectangle).sum()
    assert polygon.shape == (40, 60) and overlap > 0.85
    assert len(list(dataset.by_image())) == 1  # both objects share one image read


def test_coco_errors(tmp_path):
    (tmp_path / "images").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CocoFormatError, match="bad.json: not JSON"):
        coco_dataset(bad, tmp_path / "images")
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(CocoFormatError, match="bad.json: needs"):
        coco_dataset(bad, tmp_path / "images")
    with pytest.raises(CocoFormatError, match="cannot read"):
        coco_dataset(tmp_path / "missing.json", tmp_path / "images")
