"""Mask geometry against pycocotools, COCO export (AP = 1 against itself) and all-or-nothing import."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotator.errors import CocoFormatError, ProjectError
from annotator.io.formats.coco import export_coco, import_coco
from annotator.io.masks import (
    decode_counts,
    has_holes,
    mask_area,
    mask_box_xywh,
    mask_to_polygons,
    mask_to_rle,
    polygons_to_mask,
    rle_runs,
    rle_to_mask,
    runs_to_rle,
)
from annotator.store import Project
from tests.conftest import shared_data

# pycocotools' Cython arrays predate numpy 2's `copy=` keyword (used directly by the reference decoder here)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

masks_2d = arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20)))


def _numpy_runs(mask: np.ndarray) -> list[int]:
    """COCO run lengths computed independently: column-major, starting with background."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _holes_by_components(mask: np.ndarray) -> bool:
    """Independent hole test: the background (4-connected) of the padded mask is in several pieces."""
    background = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    count, _ = cv2.connectedComponents(background, connectivity=4)
    return count - 1 > 1


def _coco_decode(segmentation, height: int, width: int) -> np.ndarray:
    """What pycocotools itself makes of a segmentation (COCO.annToMask's logic)."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return mask_utils.decode(rle).astype(bool)


# ----------------------------------------------------------------------------- mask geometry
@settings(max_examples=200, deadline=None)
@given(mask=masks_2d)
def test_rle_round_trip_and_runs(mask):
    rle = mask_to_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == list(mask.shape)
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert decode_counts(rle["counts"]) == _numpy_runs(mask) == rle_runs(rle)
    uncompressed = {"size": list(mask.shape), "counts": _numpy_runs(mask)}
    np.testing.assert_array_equal(rle_to_mask(uncompressed), mask)
    # zero runs inserted anywhere do not change the canonical string
    runs = _numpy_runs(mask)
    padded = [runs[0], 0, 0, *runs[1:]] if len(runs) > 1 else runs
    assert runs_to_rle(padded, *mask.shape) == rle


@settings(max_examples=200, deadline=None)
@given(mask=masks_2d)
def test_bbox_and_area_match_numpy_and_pycocotools(mask):
    assert (
        mask_area(mask)
        == int(mask.sum())
        == int(mask_utils.area(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))))
    )
    if mask.any():
        ys, xs = np.nonzero(mask)
        assert mask_box_xywh(mask) == (
            xs.min(),
            ys.min(),
            xs.max() - xs.min() + 1,
            ys.max() - ys.min() + 1,
        )
    else:
        assert mask_box_xywh(mask) == (0.0, 0.0, 0.0, 0.0)


@settings(max_examples=300, deadline=None)
@given(mask=masks_2d, smooth=st.booleans())
def test_polygons_are_exact_without_holes_and_refused_with_holes(mask, smooth):
    if smooth:  # blobs rather than noise
        mask = cv2.morphologyEx(
            mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)
        ).astype(bool)
    holes = _holes_by_components(mask)
    assert has_holes(mask) == holes
    polygons = mask_to_polygons(mask)
    if holes:
        assert polygons is None
        return
    assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    h, w = mask.shape
    np.testing.assert_array_equal(polygons_to_mask(polygons, h, w), mask)
    if polygons:
        np.testing.assert_array_equal(_coco_decode(polygons, h, w), mask)


def test_hole_is_not_exported_as_a_positive_polygon():
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    assert has_holes(ring) and mask_to_polygons(ring) is None
    two = np.zeros((5, 9), bool)
    two[1:4, 1:3] = two[1:4, 5:8] = True
    polygons = mask_to_polygons(two)
    assert len(polygons) == 2
    np.testing.assert_array_equal(polygons_to_mask(polygons, 5, 9), two)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [2, 2], "counts": "4~"}, "invalid character"),
        ({"size": [2, 2], "counts": "0P"}, "ends in the middle"),
        ({"size": [2, 2], "counts": "5"}, "cover 5 pixels"),
        ({"size": [2, 2], "counts": [1, 2]}, "cover 3 pixels"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, "non-negative"),
        ({"size": [2], "counts": "4"}, "size must be"),
        ({"size": [2, 2], "counts": 4}, "must be a string or a list"),
        ({"size": [2, 2], "counts": "40K"}, "negative run"),
    ],
)
def test_malformed_rle_is_refused_before_the_c_decoder(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_runs(rle)
    with pytest.raises(ValueError, match=message):
        rle_to_mask(rle)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=120), max_size=12))
def test_random_counts_strings_never_reach_the_c_decoder_unchecked(text):
    rle = {"size": [3, 4], "counts": text}
    try:
        runs = rle_runs(rle)
    except ValueError:
        return
    assert sum(runs) == 12 and min(runs, default=0) >= 0
    assert int(rle_to_mask(rle).sum()) == sum(runs[1::2])


# -------------------------------------------------------------------------------------- export
def _fill(
    project: Project, rng: np.random.Generator, n_images: int = 3, per_image: int = 5
) -> None:
    for k in range(n_images):
        h, w = 30 + 7 * k, 41 - 3 * k
        image_id = project.add_image(f"img{k}.png", w, h)
        for j in range(per_image):
            mask = np.zeros((h, w), bool)
            y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
            mask[y : y + int(rng.integers(3, 9)), x : x + int(rng.integers(3, 9))] = True
            if j == per_image - 1:
                mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                mask[y + 1, x + 1] = False  # a hole
            if j == 1:
                mask |= rng.random((h, w)) < 0.05  # scattered pixels: many components
            score = None if j == 2 else float(rng.random())
            project.add_annotation(image_id, mask, ["cat", "dog", "tree"][j % 3], score=score)
    project.category_id("unused")


def _self_ap(path: Path) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        results = [
            {k: a[k] for k in ("image_id", "category_id", "segmentation", "bbox")} | {"score": 1.0}
            for a in gt.dataset["annotations"]
        ]
        dt = gt.loadRes(results)
        stats = {}
        for kind in ("segm", "bbox"):
            evaluator = COCOeval(gt, dt, kind)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            stats[kind] = float(evaluator.stats[0])
    return stats


@pytest.mark.parametrize("polygons", [False, True])
def test_export_loads_in_pycocotools_with_ap_1(tmp_path, polygons):
    out = tmp_path / "export" / "coco.json"
    with Project.open_folder(tmp_path) as project:
        _fill(project, np.random.default_rng(1))
        summary = export_coco(project, out, polygons=polygons)
        stored = {a.id: a for a in project.annotations()}
        assert _self_ap(out) == pytest.approx({"segm": 1.0, "bbox": 1.0}, abs=1e-9)
        doc = json.loads(out.read_text())
        assert summary["annotations"] == len(doc["annotations"]) == 15
        assert summary["images"] == 3 and summary["categories"] == 4  # "unused" is listed too
        assert sorted(c["name"] for c in doc["categories"]) == ["cat", "dog", "tree", "unused"]
        assert [c["id"] for c in doc["categories"]] == [c.id for c in project.categories()]
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(out))
        for entry in doc["annotations"]:
            record = stored[entry["id"]]
            mask = record.mask()
            assert entry["area"] == int(mask.sum()) and entry["bbox"] == list(mask_box_xywh(mask))
            assert entry["iscrowd"] == 0 and entry.get("score") == record.score
            np.testing.assert_array_equal(
                coco.annToMask(entry).astype(bool), mask
            )  # exact either way
        kinds = [isinstance(a["segmentation"], list) for a in doc["annotations"]]
        if polygons:
            assert summary["rle_fallback"] == 3 and sum(kinds) == summary["polygons"] == 12
        else:
            assert not any(kinds) and summary["rle"] == 15
        assert sorted(p.name for p in out.parent.iterdir()) == ["coco.json"]  # no temp file left


def test_export_replaces_atomically_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "coco.json"
    with Project.open_folder(tmp_path) as project:
        _fill(project, np.random.default_rng(2), n_images=1, per_image=2)
        export_coco(project, out)
        old = out.read_bytes()
        image_id = project.images()[0].id
        project.add_annotation(image_id, np.ones((30, 41), bool), "sky")

        def broken_replace(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("annotator.io.formats.coco_export.os.replace", broken_replace)
        with pytest.raises(ProjectError, match="coco.json: cannot write the export"):
            export_coco(project, out)
        assert out.read_bytes() == old
        assert sorted(p.name for p in tmp_path.iterdir()) == [".annotator", "coco.json"]
        monkeypatch.undo()
        assert export_coco(project, out)["annotations"] == 3
        assert out.read_bytes() != old


def test_round_trip_export_import_export_is_equal(tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    with Project.open_folder(tmp_path) as project:
        _fill(project, np.random.default_rng(3))
        export_coco(project, first)
    with Project(tmp_path / "copy.db") as copy_project:
        summary = import_coco(first, tmp_path, copy_project, check_files=False)
        assert summary["annotations_added"] == 15 and summary["images_added"] == 3
        export_coco(copy_project, second)
        again = import_coco(first, tmp_path, copy_project, check_files=False)
        assert again["annotations_added"] == 0 and again["skipped_duplicate"] == 15
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    a.pop("info"), b.pop("info")
    assert a == b


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_non_utf8_file_name_survives_export_and_import(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    out = tmp_path / "coco.json"
    with Project.open_folder(tmp_path) as project:
        image_id = project.add_image(name, 4, 3)
        project.add_annotation(image_id, np.ones((3, 4), bool), "café")
        export_coco(project, out)
    raw = out.read_bytes()
    raw.decode("ascii")  # escaped, so any JSON reader accepts the file
    with contextlib.redirect_stdout(io.StringIO()):
        assert COCO(str(out)).imgs[image_id]["file_name"] == name
    with Project(tmp_path / "copy.db") as copy_project:
        import_coco(out, tmp_path, copy_project, check_files=False)
        assert copy_project.image(image_id).file_name == name
        assert copy_project.categories()[0].name == "café"


# -------------------------------------------------------------------------------------- import
def _base_doc() -> dict:
    square = [2.0, 1.0, 8.0, 1.0, 8.0, 6.0, 2.0, 6.0]
    ring = np.zeros((12, 16), bool)
    ring[2:9, 3:12] = True
    ring[4:6, 5:8] = False
    return {
        "images": [{"id": 10, "file_name": "im0.png", "width": 16, "height": 12}],
        "categories": [
            {"id": 3, "name": "cat"},
            {"id": 5, "name": "dog", "supercategory": "animal"},
        ],
        "annotations": [
            {
                "id": 7,
                "image_id": 10,
                "category_id": 3,
                "segmentation": [square],
                "bbox": [2, 1, 6, 5],
                "iscrowd": 0,
            },
            {
                "id": 8,
                "image_id": 10,
                "category_id": 5,
                "segmentation": mask_to_rle(ring),
                "score": 0.25,
            },
            {
                "id": 9,
                "image_id": 10,
                "category_id": 5,
                "segmentation": {"size": [12, 16], "counts": _numpy_runs(ring)},
            },
            {
                "id": 11,
                "image_id": 10,
                "category_id": 3,
                "segmentation": mask_to_rle(ring),
                "iscrowd": 1,
            },
        ],
    }


def test_import_polygons_compressed_and_uncompressed_rle(tmp_path):
    doc = _base_doc()
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    with Project(tmp_path / "p.db") as project:
        summary = import_coco(path, tmp_path, project, check_files=False)
        assert summary == {
            "path": str(path),
            "images": 1,
            "images_added": 1,
            "categories_added": 2,
            "annotations_added": 3,  # 9 duplicates 8 (same mask, same category); 11 is crowd
            "boxes_added": 0,
            "skipped_crowd": 0,
            "skipped_empty": 0,
            "skipped_duplicate": 1,
        }
        stored = {a.id: a for a in project.annotations()}
        assert sorted(stored) == [7, 8, 11]  # the document's ids are kept (11: crowd, flagged)
        for entry in doc["annotations"][:2]:
            expected = _coco_decode(entry["segmentation"], 12, 16)
            np.testing.assert_array_equal(stored[entry["id"]].mask(), expected)
            assert stored[entry["id"]].area == int(expected.sum())
        assert stored[7].bbox == (2.0, 1.0, 6.0, 5.0) and stored[8].score == 0.25
        assert [(c.id, c.name, c.supercategory) for c in project.categories()] == [
            (3, "cat", ""),
            (5, "dog", "animal"),
        ]
        assert project.image_by_name("im0.png").id == 10


BREAKERS = (
    "missing", "dup_ann", "dup_image", "dup_name", "unknown_image", "unknown_category",
    "rle_char", "rle_sum", "rle_size", "rle_truncated", "odd_polygon", "oob_polygon",
    "negative_bbox", "nan_score", "not_list", "zero_width", "seg_type", "empty_polygons",
    "size_conflict", "bad_crowd", "category_name", "bbox_len",
)  # fmt: skip


def _mutate(doc: dict, kind: str, pick: int, key: str = "id") -> str:
    """Break a valid document in one way (`kind`, on annotation `pick` modulo their number);
    returns a fragment the error message must contain."""
    anns = doc["annotations"]
    if not anns:
        anns.append(
            {"id": 1, "image_id": 10, "category_id": 3, "segmentation": [[1, 1, 4, 1, 4, 4]]}
        )
    k = pick % len(anns)
    ann = anns[k]
    image = doc["images"][0]
    at = f"annotations[{k}]"
    if kind == "missing":
        del ann[key]
        if key == "segmentation":  # without a bbox too: a bbox alone is a box-only annotation
            ann.pop("bbox", None)
            return f"{at}: has neither a segmentation nor a bbox"
        return f"{at}: missing key '{key}'"
    if kind == "dup_ann":
        anns.append(copy.deepcopy(ann))
        return f"annotations[{len(anns) - 1}].id: duplicate annotation id"
    if kind == "dup_image":
        doc["images"].append(dict(image, file_name="other.png"))
        return f"images[{len(doc['images']) - 1}].id: duplicate image id"
    if kind == "dup_name":
        doc["images"].append(dict(image, id=999))
        return "file_name: duplicate file name"
    if kind == "unknown_image":
        ann["image_id"] = 4242
        return f"{at}.image_id: no image has id 4242"
    if kind == "unknown_category":
        ann["category_id"] = 77
        return f"{at}.category_id: no category has id 77"
    size = [
        next(i for i in doc["images"] if i["id"] == ann["image_id"])[key]
        for key in ("height", "width")
    ]
    if kind == "rle_char":
        ann["segmentation"] = {"size": size, "counts": "0~1"}
        return f"{at}.segmentation.counts: RLE counts has an invalid character"
    if kind == "rle_sum":
        ann["segmentation"] = {"size": size, "counts": [1, 2, size[0] * size[1]]}
        return f"{at}.segmentation.counts: RLE runs cover"
    if kind == "rle_size":
        ann["segmentation"] = {"size": [size[0] + 1, size[1]], "counts": [(size[0] + 1) * size[1]]}
        return f"{at}.segmentation.size: must be [{size[0]}, {size[1]}]"
    if kind == "rle_truncated":
        ann["segmentation"] = {"size": size, "counts": "1P"}
        return f"{at}.segmentation.counts: RLE counts string ends in the middle"
    if kind == "odd_polygon":
        ann["segmentation"] = [[1, 1, 4, 1, 4, 4, 2]]
        return f"{at}.segmentation[0]: a polygon needs an even number"
    if kind == "oob_polygon":
        ann["segmentation"] = [[1, 1, size[1] + 5, 1, 4, 4]]
        return f"{at}.segmentation[0]: polygon reaches"
    if kind == "negative_bbox":
        ann["bbox"] = [1, 1, -2, 3]
        return f"{at}.bbox: negative width or height"
    if kind == "nan_score":
        ann["score"] = float("nan")
        return f"{at}.score: must be finite"
    if kind == "not_list":
        doc["annotations"] = {"0": ann}
        return "annotations: must be a list"
    if kind == "zero_width":
        image["width"] = 0
        return "images[0].width: must be at least 1"
    if kind == "seg_type":
        ann["segmentation"] = 5
        return f"{at}.segmentation: must be a polygon list or an RLE object"
    if kind == "empty_polygons":
        ann["segmentation"] = []
        ann.pop("bbox", None)
        return f"{at}: has neither a segmentation nor a bbox"
    if kind == "size_conflict":
        image["width"] = 17  # the project already has im0.png as 16 wide
        return "images[0]: im0.png is 17x12 here but 16x12 in the project"
    if kind == "bad_crowd":
        ann["iscrowd"] = 2
        return f"{at}.iscrowd: must be 0 or 1"
    if kind == "category_name":
        doc["categories"][1]["name"] = "cat"
        return "categories[1].name: duplicate category name"
    assert kind == "bbox_len"
    ann["bbox"] = [1, 2, 3]
    return f"{at}.bbox: must have 4 numbers"


@st.composite
def _valid_docs(draw) -> dict:
    doc = {"images": [], "categories": _base_doc()["categories"], "annotations": []}
    sizes = [(12, 16)] + draw(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), max_size=2))
    for i, (h, w) in enumerate(sizes):
        doc["images"].append({"id": 10 + i, "file_name": f"im{i}.png", "height": h, "width": w})
    for k in range(draw(st.integers(0, 5))):
        image = draw(st.sampled_from(doc["images"]))
        h, w = image["height"], image["width"]
        mask = draw(arrays(bool, (h, w)))
        mask[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = True
        kind = draw(st.sampled_from(["polygon", "rle", "runs"]))
        if kind == "polygon":
            x0, y0 = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
            x1, y1 = draw(st.floats(x0 + 1, w)), draw(st.floats(y0 + 1, h))
            segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        elif kind == "rle":
            segmentation = mask_to_rle(mask)
        else:
            segmentation = {"size": [h, w], "counts": _numpy_runs(mask)}
        entry = {
            "id": 100 + k,
            "image_id": image["id"],
            "category_id": draw(st.sampled_from([3, 5])),
            "segmentation": segmentation,
        }
        if draw(st.booleans()):
            entry["score"] = draw(st.floats(0, 1))
        doc["annotations"].append(entry)
    return doc


def _content(project: Project) -> tuple:
    return (project.images(), project.categories(), project.annotations())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=_valid_docs(),
    broken=st.booleans(),
    kind=st.sampled_from(BREAKERS),
    pick=st.integers(0, 9),
    key=st.sampled_from(["id", "image_id", "category_id", "segmentation"]),
)
def test_import_is_all_or_nothing(doc, broken, kind, pick, key):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with Project(root / "p.db") as project:
            existing = project.add_image("im0.png", 16, 12)
            project.add_annotation(existing, np.eye(12, 16, dtype=bool), "cat", score=0.5)
            before = _content(project)
            expected_error = _mutate(doc, kind, pick, key) if broken else None
            path = root / "in.json"
            path.write_text(json.dumps(doc))
            if broken:
                with pytest.raises(CocoFormatError) as error:
                    import_coco(path, root, project, check_files=False)
                assert expected_error in str(error.value)
                assert str(error.value).startswith(str(path))
                assert _content(project) == before
            else:
                summary = import_coco(path, root, project, check_files=False)
                after = project.annotations()
                new = [a for a in after if a.id not in {b.id for b in before[2]}]
                assert len(new) == summary["annotations_added"]
                skipped = summary["skipped_duplicate"] + summary["skipped_empty"]
                assert summary["annotations_added"] + skipped == len(doc["annotations"])
                sizes = {i["file_name"]: (i["height"], i["width"]) for i in doc["images"]}
                for annotation in new:
                    h, w = sizes[project.image(annotation.image_id).file_name]
                    assert annotation.mask().shape == (h, w) and annotation.area == int(
                        annotation.mask().sum()
                    )
                for entry in doc["annotations"]:
                    image = project.image_by_name(f"im{entry['image_id'] - 10}.png")
                    expected = _coco_decode(entry["segmentation"], image.height, image.width)
                    assert not expected.any() or any(
                        np.array_equal(a.mask(), expected) for a in project.annotations(image.id)
                    )
            assert project.integrity_ok()


@pytest.mark.parametrize("kind", BREAKERS)
def test_every_kind_of_broken_document_is_named_precisely(tmp_path, kind):
    with Project(tmp_path / "p.db") as project:
        project.add_image("im0.png", 16, 12)
        before = _content(project)
        doc = _base_doc()
        expected = _mutate(doc, kind, pick=1)
        path = tmp_path / "in.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(CocoFormatError) as error:
            import_coco(path, tmp_path, project, check_files=False)
        assert expected in str(error.value)
        assert _content(project) == before


def test_failure_during_the_writes_rolls_everything_back(tmp_path, monkeypatch):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(_base_doc()))
    with Project(tmp_path / "p.db") as project:
        project.category_id("cat")
        before = _content(project)
        original = Project.add_annotation_rle
        calls = []

        def flaky(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise OSError("disk unplugged")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Project, "add_annotation_rle", flaky)
        with pytest.raises(OSError, match="disk unplugged"):
            import_coco(path, tmp_path, project, check_files=False)
        assert _content(project) == before and len(calls) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON (line 1, column 2"),
        ("[]", "document: must be an object, got a list"),
        ('{"images": [], "annotations": []}', "document: missing key 'categories'"),
    ],
)
def test_malformed_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with Project(tmp_path / "p.db") as project:
        with pytest.raises(CocoFormatError) as error:
            import_coco(path, tmp_path, project, check_files=False)
        assert message in str(error.value)
    with pytest.raises(CocoFormatError, match="file not found"):
        import_coco(tmp_path / "missing.json", tmp_path, Project(tmp_path / "q.db"))


def test_import_checks_image_files_and_maps_names_into_the_project(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    Image.new("RGB", (16, 12)).save(images / "im0.png")
    doc = _base_doc()
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    with Project.open_folder(tmp_path) as project:
        import_coco(path, images, project)
        assert [i.file_name for i in project.images()] == ["photos/im0.png"]

        doc["images"][0]["file_name"] = "missing.png"
        path.write_text(json.dumps(doc))
        with pytest.raises(
            CocoFormatError, match=r"images\[0\].file_name: .*missing.png: file not found"
        ):
            import_coco(path, images, project)
        Image.new("RGB", (20, 12)).save(images / "wrong.png")
        doc["images"][0]["file_name"] = "wrong.png"
        path.write_text(json.dumps(doc))
        with pytest.raises(
            CocoFormatError, match=r"images\[0\]: wrong.png is 20x12 on disk but 16x12 here"
        ):
            import_coco(path, images, project)
        outside = tmp_path.parent / f"{tmp_path.name}-outside"
        outside.mkdir()
        with pytest.raises(CocoFormatError, match="outside the project folder"):
            import_coco(path, outside, project, check_files=False)
        assert len(project.annotations()) == 3  # the crowd region is kept, flagged


def test_real_coco_masks_import_and_export_exactly(tmp_path):
    folder = shared_data("coco_mval80")
    names = sorted(p.stem for p in (folder / "img").iterdir())[:6]
    doc = {"images": [], "categories": [], "annotations": []}
    truth = {}
    for k, name in enumerate(names):
        image = np.asarray(Image.open(folder / "img" / f"{name}.jpg"))
        gt = np.asarray(Image.open(folder / "gt" / f"{name}.png").convert("L")) > 127
        assert gt.shape == image.shape[:2]
        category = name.split("00_")[0]
        doc["images"].append(
            {"id": k + 1, "file_name": f"{name}.jpg", "height": gt.shape[0], "width": gt.shape[1]}
        )
        doc["categories"].append({"id": k + 1, "name": category})
        polygons = mask_to_polygons(gt) if k % 2 else None
        segmentation = polygons if polygons is not None else mask_to_rle(gt)
        doc["annotations"].append(
            {"id": k + 1, "image_id": k + 1, "category_id": k + 1, "segmentation": segmentation}
        )
        truth[k + 1] = gt
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with Project(tmp_path / "p.db") as project:
        summary = import_coco(path, folder / "img", project)  # reads every image header
        assert summary["annotations_added"] == len(names)
        for annotation in project.annotations():
            np.testing.assert_array_equal(annotation.mask(), truth[annotation.id])
            assert annotation.area == int(truth[annotation.id].sum())
        out = tmp_path / "out.json"
        export_coco(project, out, polygons=True)
        assert _self_ap(out) == pytest.approx({"segm": 1.0, "bbox": 1.0}, abs=1e-9)
        exported = json.loads(out.read_text())
        for entry in exported["annotations"]:
            np.testing.assert_array_equal(
                _coco_decode(entry["segmentation"], *truth[entry["id"]].shape), truth[entry["id"]]
            )


# ------------------------------------------------------------ issue 11: hostile values in COCO files
def _write_doc(tmp_path: Path, doc: dict | str) -> Path:
    path = tmp_path / "hostile.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _hostile(kind: str) -> dict | str:
    doc = _base_doc()
    ann, image, cat = doc["annotations"][0], doc["images"][0], doc["categories"][0]
    if kind == "id-beyond-int64":
        ann["id"] = 2**64
    elif kind == "negative-id-beyond-int64":
        image["id"] = -(2**63) - 1
    elif kind == "thousands-of-digits":
        return json.dumps(doc).replace('"id": 7', '"id": ' + "9" * 5000)
    elif kind == "float-beyond-double":
        return json.dumps(doc).replace('"bbox": [2, 1, 6, 5]', '"bbox": [2, 1, 6, 1.5e999]')
    elif kind == "integer-beyond-double":
        return json.dumps(doc).replace(
            '"bbox": [2, 1, 6, 5]', '"bbox": [2, 1, 6, 1' + "0" * 400 + "]"
        )
    elif kind == "width-1e300":
        image["width"] = 1e300
    elif kind == "too-many-pixels":
        image["width"], image["height"] = 100_000, 100_000
    elif kind == "blank-category-name":
        cat["name"] = " \t "
    elif kind == "newline-in-category-name":
        cat["name"] = "cat\nannotator: error: forged"
    elif kind == "very-long-category-name":
        cat["name"] = "x" * 5000
    elif kind == "nul-in-file-name":
        image["file_name"] = "im\x000.png"
    elif kind in ("dot-file-name", "dot-slash-file-name", "folder-file-name"):
        image["file_name"] = {"dot": ".", "dot-slash": "./", "folder": "sub/"}[kind[:-10]]
    elif kind == "nan-score":
        return json.dumps(doc).replace('"score": 0.25', '"score": NaN')
    elif kind == "infinite-coordinate":
        return json.dumps(doc).replace("[2.0, 1.0, 8.0", "[2.0, 1.0, Infinity")
    elif kind == "coordinate-1e300":
        ann["segmentation"] = [[1e300, 1.0, 8.0, 1.0, 8.0, 6.0]]
    elif kind == "rle-number-too-long":
        doc["annotations"][1]["segmentation"]["counts"] = "o" * 100_000
    elif kind == "deep-nesting":
        return "[" * 200_000 + "]" * 200_000
    return doc


HOSTILE = {
    "id-beyond-int64": "annotations[0].id: must be at most 9223372036854775807",
    "negative-id-beyond-int64": "images[0].id: must be at least -9223372036854775808",
    "thousands-of-digits": "a number in the JSON is too long",
    "float-beyond-double": "annotations[0].bbox[3]: must be finite, got inf",
    "integer-beyond-double": "annotations[0].bbox[3]: must be finite, got the number 10000",
    "width-1e300": "images[0].width: must be at most",
    "too-many-pixels": "is more than the 150 MP",
    "blank-category-name": "categories[0].name: must be a non-empty string",
    "newline-in-category-name": "categories[0].name: control character",
    "very-long-category-name": "categories[0].name: name longer than 200 characters (5000)",
    "nul-in-file-name": "images[0].file_name: a file name cannot contain a NUL byte",
    "dot-file-name": "images[0].file_name: must name a file",
    "dot-slash-file-name": "images[0].file_name: must name a file",
    "folder-file-name": "images[0].file_name: must name a file",
    "nan-score": "annotations[1].score: must be finite, got nan",
    "infinite-coordinate": "annotations[0].segmentation[0][2]: must be finite",
    "coordinate-1e300": "outside the 16x12 image",
    "rle-number-too-long": "annotations[1].segmentation.counts: RLE counts has a number longer",
    "deep-nesting": "JSON nested too deeply",
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_values_are_one_line_errors_and_change_nothing(tmp_path, kind):
    path = _write_doc(tmp_path, _hostile(kind))
    with Project(tmp_path / "p.db") as project:
        with pytest.raises(CocoFormatError) as error:
            import_coco(path, tmp_path, project, check_files=False)
        message = str(error.value)
        assert HOSTILE[kind] in message, message
        assert "\n" not in message and len(message) < 400, message
        assert message.startswith(str(path))
        assert project.images() == [] and project.annotations() == []


def test_huge_ids_are_renumbered_and_later_saves_still_work(tmp_path):
    doc = _base_doc()
    doc["images"][0]["id"] = 2**63 - 1
    doc["categories"][0]["id"] = 2**63 - 1
    doc["categories"][1]["id"] = -5  # kept ids are 0..2**31-1
    for k, ann in enumerate(doc["annotations"]):
        ann["image_id"] = 2**63 - 1
        ann["category_id"] = 2**63 - 1 if ann["category_id"] == 3 else -5
        ann["id"] = 2**63 - 1 - k
    path = _write_doc(tmp_path, doc)
    with Project(tmp_path / "p.db") as project:
        summary = import_coco(path, tmp_path, project, check_files=False)
        # the third is the second's mask again; the crowd region is kept (flagged)
        assert summary["annotations_added"] == 3
        ids = [a.id for a in project.annotations()] + [i.id for i in project.images()]
        ids += [c.id for c in project.categories()]
        assert max(ids) < 2**31
        image_id = project.images()[0].id
        for _ in range(3):  # with the id space used up, each of these failed ("disk is full")
            project.add_annotation(image_id, np.ones((12, 16), bool), "new")
        assert project.add_image("later.png", 5, 5) > 0
        assert len(project.annotations()) == 6
        export_coco(project, tmp_path / "out.json")
        assert project.integrity_ok()


def test_small_ids_are_still_kept(tmp_path):
    doc = _base_doc()
    doc["annotations"][0]["id"] = 2**31 - 1
    with Project(tmp_path / "p.db") as project:
        import_coco(_write_doc(tmp_path, doc), tmp_path, project, check_files=False)
        assert {a.id for a in project.annotations()} == {2**31 - 1, 8, 11}  # 11: the crowd region
        assert [i.id for i in project.images()] == [10]


def _raw_sql(db: Path, sql: str, params: tuple = ()) -> None:
    import sqlite3

    connection = sqlite3.connect(db)
    with connection:
        connection.execute(sql, params)
    connection.close()


def test_non_finite_stored_scores_are_left_out_of_the_export(tmp_path):
    out = tmp_path / "coco.json"
    with Project.open_folder(tmp_path) as project:
        image_id = project.add_image("a.png", 4, 3)
        for k in range(3):
            mask = np.zeros((3, 4), bool)
            mask[0, k] = True
            project.add_annotation(image_id, mask, "thing", score=0.5)
        db = project.path
    _raw_sql(db, "UPDATE annotations SET score = ? WHERE id = 1", (float("inf"),))
    _raw_sql(db, "UPDATE annotations SET score = ? WHERE id = 2", (float("-inf"),))
    with Project.open_folder(tmp_path) as project:
        assert [a.score for a in project.annotations()] == [float("inf"), float("-inf"), 0.5]
        export_coco(project, out)
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text
    doc = json.loads(text)
    assert [a.get("score") for a in doc["annotations"]] == [None, None, 0.5]


@pytest.mark.parametrize("polygons", [False, True])
def test_corrupt_stored_rle_is_one_line_naming_the_annotation(tmp_path, polygons):
    with Project.open_folder(tmp_path) as project:
        image_id = project.add_image("a.png", 4, 3)
        project.add_annotation(image_id, np.ones((3, 4), bool), "thing")
        db = project.path
    _raw_sql(db, "UPDATE annotations SET rle = ? WHERE id = 1", ("#!corrupt",))
    with Project.open_folder(tmp_path) as project:
        with pytest.raises(ProjectError, match="annotation 1 has a corrupt stored mask") as error:
            export_coco(project, tmp_path / "out.json", polygons=polygons)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.json").exists()


def test_export_never_writes_into_a_project(tmp_path):
    other = tmp_path / "other.db"
    with Project(other) as second:
        second.add_image("z.png", 2, 2)
    with Project.open_folder(tmp_path) as project:
        image_id = project.add_image("a.png", 4, 3)
        project.add_annotation(image_id, np.ones((3, 4), bool), "thing")
        db = project.path
        before = db.read_bytes()
        link = tmp_path / "innocent.json"
        link.symlink_to(db)
        targets = {
            db: "refusing to export into a project's .annotator folder",
            db.parent / "export.json": ".annotator folder",
            tmp_path / ".annotator" / ".." / ".annotator" / "x.json": ".annotator folder",
            link: ".annotator folder",
            other: "is an SQLite database",
            tmp_path: "a folder, not a regular file",
        }
        if hasattr(os, "mkfifo"):
            os.mkfifo(tmp_path / "pipe.json")
            targets[tmp_path / "pipe.json"] = "a named pipe, not a regular file"
        for target, message in targets.items():
            with pytest.raises(ProjectError, match=message):
                export_coco(project, target)
        assert project.integrity_ok() and len(project.annotations()) == 1
    assert sorted(p.name for p in db.parent.iterdir() if not p.name.startswith("project.db")) == []
    assert link.is_symlink()
    with Project(other) as second:
        assert [i.file_name for i in second.images()] == ["z.png"]
    del before


def test_a_killed_exports_temp_file_is_removed_by_the_next_export(tmp_path):
    import fcntl
    import time

    out = tmp_path / "coco.json"
    stale = tmp_path / ".coco.json.k1ll3d_x.tmp"  # what mkstemp named the killed export's file
    stale.write_bytes(b'{"half": ')
    live = tmp_path / ".coco.json.w0rking_.tmp"  # another export writing right now
    live.write_bytes(b"{")
    unrelated = [
        tmp_path / ".coco.json.tmp",
        tmp_path / ".other.json.abcdefgh.tmp",
        tmp_path / "x.tmp",
    ]
    for path in unrelated:
        path.write_bytes(b"keep")
    old = time.time() - 3600
    for path in [stale, live, *unrelated]:
        os.utime(path, (old, old))
    with open(live, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with Project.open_folder(tmp_path) as project:
            project.add_image("a.png", 4, 3)
            export_coco(project, out)
        assert not stale.exists()
        assert live.exists()  # its writer holds the lock
        assert all(path.exists() for path in unrelated)
    json.loads(out.read_text())


def test_export_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    out = tmp_path / "coco.json"
    with Project.open_folder(tmp_path) as project:
        project.add_image("a.png", 4, 3)
        export_coco(project, out)
        umask = os.umask(0)
        os.umask(umask)
        assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
        out.chmod(0o640)
        export_coco(project, out)
        assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_as_the_coco_file_does_not_block(tmp_path):
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)
    with Project(tmp_path / "p.db") as project:
        with pytest.raises(CocoFormatError, match="a named pipe, not a regular file"):
            import_coco(fifo, tmp_path, project, check_files=False)


def test_long_rle_numbers_are_refused_fast():
    import time

    start = time.monotonic()
    with pytest.raises(ValueError, match="longer than 13"):
        decode_counts("o" * 1_000_000)  # one number of a million 5-bit digits
    assert time.monotonic() - start < 30  # refused by its length: decoding it would not end soon
