"""Files written by other tools import: made here with datumaro's exporters (COCO, VOC, CVAT,
Ultralytics YOLO), labelme's own writer, supervision's YOLO writer, and small files in documented
layouts; broken ones fail with one line naming the file and the field, and import nothing.
datumaro and labelme write in the interop interpreter (tests/interop/), never in this process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.errors import AnnotatorError
from annotator.io import formats
from annotator.store import Project
from annotator.store import extras as store_extras
from tests import interop
from tests.formats_data import best_match

pytestmark = [
    pytest.mark.filterwarnings("ignore::annotator.io.formats.FormatWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
H, W = 30, 40


def _masks() -> list[tuple[str, np.ndarray]]:
    donut = np.zeros((H, W), bool)
    donut[4:20, 4:20] = True
    donut[9:14, 9:14] = False
    small = np.zeros((H, W), bool)
    small[25, 30:32] = True  # 2 px
    block = np.zeros((H, W), bool)
    block[5:15, 25:38] = True
    return [("cat", donut), ("dog", small), ("dog", block)]


def _project(tmp_path: Path, folder: Path) -> Project:
    db = tmp_path / "into.db"
    Project(db).set_meta("folder", str(folder))
    return Project(db)


def _imported(project: Project) -> list[tuple[str, np.ndarray]]:
    return [(a.category, a.mask()) for a in project.annotations()]


def _datumaro_export(images: Path, out: Path, fmt: str, subsets: tuple = (None,)) -> None:
    """_masks() + a polygon + a box on images/img.png, exported to `out` by datumaro's `fmt`
    exporter in the interop interpreter (tests/interop/write_dataset.py)."""
    masks = {f"m{k}": m for k, (_, m) in enumerate(_masks())}
    labels = ["cat", "dog", "unused"]
    anns = [
        {"type": "mask", "mask": f"m{k}", "label": labels.index(c), "id": k + 1, "group": k + 1}
        for k, (c, _) in enumerate(_masks())
    ]
    square = [30, 20, 38, 20, 38, 28, 30, 28]
    anns.append({"type": "polygon", "points": square, "label": 0, "id": 10, "group": 10})
    anns.append({"type": "bbox", "xywh": [2, 22, 6, 5], "label": 1, "id": 11, "group": 11})
    items = [
        {"id": "img", "subset": s, "image": str(images / "img.png"), "annotations": anns}
        for s in subsets
    ]
    spec = {"format": fmt, "out": str(out), "labels": labels, "items": items}
    interop.write(spec, masks, out.parent)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
        folder / "img.png"
    )
    return folder


@pytest.mark.parametrize(
    ("fmt", "ours", "exact"),
    [("coco_instances", "coco", True), ("voc", "voc", True), ("cvat", "cvat", True)],
)
def test_datumaro_exports_import(tmp_path, images, fmt, ours, exact):
    out = tmp_path / fmt
    _datumaro_export(images, out, fmt)
    path = {
        "coco_instances": out / "annotations" / "instances_default.json",
        "cvat": out / "default.xml",
        "voc": out,
    }[fmt]
    assert formats.detect(path) == ours
    image_dir = {"coco_instances": out / "images" / "default", "voc": out / "JPEGImages"}.get(
        fmt, images
    )
    with _project(tmp_path, image_dir) as project:
        summary = formats.import_(path, image_dir, project)
        assert summary["format"] == ours
        got = _imported(project)
        for category, mask in _masks():
            same = [m for c, m in got if c == category]
            if fmt == "voc" and category == "cat":
                continue  # datumaro's VOC writer paints the polygon over nothing; checked below
            assert best_match(mask, same) == 1.0, (fmt, category)
        names = [c.name for c in project.categories()]
        assert {"cat", "dog", "unused"} <= set(names)
        if fmt != "voc":  # datumaro's VOC writer drops the box of an object without a mask
            assert any(b.category == "dog" for b in store_extras.boxes(project))


def test_datumaro_ultralytics_yolo_imports(tmp_path, images):
    out = tmp_path / "yolo"
    _datumaro_export(images, out, "yolo_ultralytics", subsets=("train", "val"))
    assert formats.detect(out) == "yolo"
    with _project(tmp_path, out / "images") as project:
        summary = formats.import_(out, None, project)
        assert summary["images"] == 2  # train/img and val/img
        assert [c.name for c in project.categories()][:3] == ["cat", "dog", "unused"]
        # datumaro's YOLO writer keeps only Bbox annotations: one per item, read back as boxes
        assert summary["boxes_added"] == 2 and summary["annotations_added"] == 0
        assert [b.bbox for b in store_extras.boxes(project)][0] == pytest.approx(
            (2, 22, 6, 5), abs=1e-3
        )


def test_labelme_writer_files_import(tmp_path, images):
    shapes = [
        {"label": "cat", "points": [[4, 4], [19, 4], [19, 19], [4, 19]], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
        {"label": "dog", "points": [[25, 5], [37, 14]], "group_id": None, "description": "",
         "shape_type": "rectangle", "flags": {}, "mask": None},
        {"label": "dog", "points": [[30, 25], [31, 25]], "group_id": None, "description": "",
         "shape_type": "line", "flags": {}, "mask": None},
        {"label": "bird", "points": [[10, 25], [12, 25]], "group_id": None, "description": "",
         "shape_type": "circle", "flags": {"flying": True}, "mask": None},
    ]  # fmt: skip
    json_path = images / "img.json"
    spec = {
        "json": str(json_path),
        "shapes": shapes,
        "image_path": "img.png",
        "height": H,
        "width": W,
    }
    interop.write({"format": "labelme", **spec}, {}, tmp_path)  # labelme's own write_label_file
    assert formats.detect(json_path) == "labelme"
    with _project(tmp_path, images) as project:
        summary = formats.import_(images, images, project)
        assert summary["dropped"] == {"labelme line/point shapes": 1}
        assert any("1 labelme line/point shapes not imported" in w for w in summary["warnings"])
        got = _imported(project)
        square = np.zeros((H, W), bool)
        square[4:20, 4:20] = True
        assert best_match(square, [m for c, m in got if c == "cat"]) == 1.0
        assert [b.bbox for b in store_extras.boxes(project)] == [(25, 5, 13, 10)]
        assert store_extras.extras(project, "annotation")  # the circle's flags are kept


def test_supervision_yolo_writer_imports(tmp_path, images):
    sv = pytest.importorskip("supervision")
    masks = np.stack([m for _, m in _masks()])
    detections = sv.Detections(
        xyxy=sv.mask_to_xyxy(masks).astype(float), mask=masks, class_id=np.array([0, 1, 1])
    )
    dataset = sv.DetectionDataset(
        classes=["cat", "dog"],
        images=[str(images / "img.png")],
        annotations={str(images / "img.png"): detections},
    )
    out = tmp_path / "sv"
    dataset.as_yolo(
        images_directory_path=str(out / "images" / "train"),
        annotations_directory_path=str(out / "labels" / "train"),
        data_yaml_path=str(out / "data.yaml"),
    )
    assert formats.detect(out) == "yolo"
    with _project(tmp_path, out / "images") as project:
        summary = formats.import_(out, None, project)
        # supervision writes the 1-px-high mask as a box of height 0: skipped, and said so
        assert summary["annotations_added"] == 2 and summary["dropped"] == {
            "zero-area YOLO boxes": 1
        }
        got = _imported(project)
        block = _masks()[2][1]
        assert (
            best_match(block, [m for c, m in got if c == "dog"]) >= 0.85
        )  # supervision's own polygon


DOCUMENTED = {
    # Ultralytics docs: data.yaml with names as a dict, one box line and one polygon line
    "yolo": {
        "data.yaml": "path: .\ntrain: images/train\nnames:\n  0: person\n  1: bicycle\n",
        "labels/train/img.txt": "0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.3 0.1 0.3 0.3\n",
    },
    # CVAT docs: "CVAT for images 1.1" with a box, a polygon and a polyline
    "cvat": {
        "annotations.xml": '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        "<meta><task><labels><label><name>car</name></label></labels></task></meta>"
        '<image id="0" name="img.png" width="40" height="30">'
        '<box label="car" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12"></box>'
        '<polygon label="car" occluded="0" points="20,5;30,5;30,15;20,15"></polygon>'
        '<polyline label="car" occluded="0" points="1,1;5,5"></polyline></image></annotations>',
    },
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_layouts_import(tmp_path, images, name):
    root = tmp_path / name
    for rel, text in DOCUMENTED[name].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if name == "yolo":
        (root / "images" / "train").mkdir(parents=True)
        (root / "images" / "train" / "img.png").write_bytes((images / "img.png").read_bytes())
    path = root
    with _project(tmp_path, images if name == "cvat" else root / "images") as project:
        summary = formats.import_(path, images if name == "cvat" else None, project)
        assert summary["format"] == name
        assert summary["annotations_added"] == 1 and summary["boxes_added"] == 1
        if name == "cvat":
            assert summary["dropped"] == {"CVAT <polyline> shapes": 1}
            assert [b.bbox for b in store_extras.boxes(project)] == [(1, 2, 10, 10)]


BROKEN = [
    ("yolo", "data.yaml", "names: 5\n", "data.yaml: names: must be a list"),
    ("yolo", "labels/train/img.txt", "0 0.1 0.1 0.3\n", "img.txt:1: expected 4 box values"),
    ("cvat", "annotations.xml", "<annotations><image name='img.png'><box label='car' xtl='a'/></image></annotations>",
     "box[0]: xtl: not a number"),
    ("cvat", "annotations.xml", '<!DOCTYPE x [<!ENTITY a "aaaa">]><annotations/>', "DOCTYPE or ENTITY"),
    ("labelme", "img.json", '{"shapes": [{"label": "", "points": []}], "imagePath": "img.png"}',
     "shapes[0].label: must be a non-empty string"),
    ("labelme", "img.json", '{"shapes": [], "imagePath": "nope.png"}', "imagePath: 'nope.png' not found"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rel", "text", "needle"), BROKEN)
def test_broken_files_fail_with_one_line(tmp_path, images, name, rel, text, needle):
    root = tmp_path / name
    for k, v in DOCUMENTED.get(name, {}).items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_text(v)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    if name == "yolo":
        (root / "images" / "train").mkdir(parents=True)
        (root / "images" / "train" / "img.png").write_bytes((images / "img.png").read_bytes())
    if name == "labelme":
        (root / "img.png").write_bytes((images / "img.png").read_bytes())
    folder = {"yolo": root / "images", "labelme": root}.get(name, images)
    with _project(tmp_path, folder) as project:
        with pytest.raises(AnnotatorError) as error:
            formats.import_(root, None if name != "cvat" else images, project, name)
        message = str(error.value)
        assert needle in message and "\n" not in message, message
        assert project.images() == [] and project.annotations() == []
