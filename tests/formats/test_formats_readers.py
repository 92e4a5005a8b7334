"""Every export loads in the reader of its own ecosystem (dev / interop extras): YOLO in supervision,
labelme JSON in labelme's LabelFile + shape_to_mask, VOC / CVAT / COCO in datumaro, COCO in
pycocotools (self-AP 1.0). Mask IoU against the project: >= 0.99 for polygons (exact here, where the
format can hold the mask), 1.0 for mask formats; counts and class lists equal. datumaro and labelme
read, and rasterise, in the interop interpreter (tests/interop/), never in this process."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from annotator.io import formats
from tests import interop
from tests.formats_data import best_match, expected_masks, make_project

pytestmark = [
    pytest.mark.filterwarnings("ignore::annotator.io.formats.FormatWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
TWO_PARTS = 4  # index in a.png's list that YOLO cannot hold exactly (holes it can)


@pytest.fixture
def project(tmp_path):
    with make_project(tmp_path / "proj") as p:
        yield p


def _names(project) -> list[str]:
    return [c.name for c in project.categories()]


def _check(project, got: dict[str, list[tuple[str, np.ndarray]]], threshold: float, skip=()):
    """Each project mask has a reader mask of the same class with IoU >= threshold."""
    want = expected_masks(project)
    assert set(got) == set(want)
    for name, items in want.items():
        for k, (category, mask) in enumerate(items):
            if (name, k) in skip:
                continue
            same = [m for c, m in got[name] if c == category]
            assert best_match(mask, same) >= threshold, (name, k, category)


def test_yolo_in_supervision(tmp_path, project):
    sv = pytest.importorskip("supervision")
    for task in ("segment", "detect"):
        out = tmp_path / task
        formats.export("yolo", project, out, task=task)
        dataset = sv.DetectionDataset.from_yolo(
            images_directory_path=str(out / "images" / "train"),
            annotations_directory_path=str(out / "labels" / "train"),
            data_yaml_path=str(out / "data.yaml"),
            force_masks=task == "segment",
        )
        assert dataset.classes == _names(project)
        root = out / "images" / "train"
        got: dict[str, list] = {}
        n = 0
        for path, _, detections in dataset:
            name = Path(path).relative_to(root).as_posix().replace("__", "/")
            labels = [dataset.classes[i] for i in detections.class_id]
            n += len(detections)
            if task == "segment":
                masks = [] if detections.mask is None else list(detections.mask)
                got[name] = list(zip(labels, masks, strict=True))
            else:
                got[name] = list(zip(labels, detections.xyxy, strict=True))
        assert n == len(project.annotations()) + 1  # + the box-only annotation
        if task == "segment":
            _check(project, got, 0.99, skip={("a.png", TWO_PARTS)})
        else:
            for name, items in expected_masks(project).items():
                boxes = [b for _, b in got[name]]
                for _, mask in items:
                    ys, xs = np.nonzero(mask)
                    want = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                    assert min(np.abs(b - want).max() for b in boxes) < 1e-3


def test_labelme_in_labelme(tmp_path, project):
    out = tmp_path / "labelme"
    formats.export("labelme", project, out)
    meta, arrays = interop.read("labelme", out, tmp_path / "read.npz")
    images = {str(Path(i.file_name).with_suffix("")): i for i in project.images()}
    assert sorted(meta["image_data"]) == sorted(images)  # imagePath resolved from OUT/ by labelme
    want = expected_masks(project)
    got = {}
    for item in meta["items"]:
        image = images[item["id"]]
        assert item["size"] == [image.height, image.width]
        got[image.file_name] = [(a["label"], arrays[a["mask"]]) for a in item["annotations"]]
        n_rect = sum(a["kind"] == "rectangle" for a in item["annotations"])
        assert len(got[image.file_name]) == len(want[image.file_name]) + n_rect
    _check(project, got, 1.0)
    assert (out / "labels.txt").read_text().split()[2:] == _names(project)


def _datumaro(path: Path, fmt: str, scratch: Path):
    """(class list, (label, mask) per item id, number of boxes) as datumaro's `fmt` reads them."""
    meta, arrays = interop.read(fmt, path, scratch / f"read_{fmt}.npz")
    got = {
        item["id"]: [(a["label"], arrays[a["mask"]]) for a in item["annotations"]]
        for item in meta["items"]
    }
    return meta["labels"], got, meta["boxes"]


def _by_stem(project, got):
    stems = {str(Path(i.file_name).with_suffix("")): i.file_name for i in project.images()}
    return {stems[k]: v for k, v in got.items()}


def test_coco_in_datumaro_and_pycocotools(tmp_path, project):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for polygons in (False, True):
        out = tmp_path / str(polygons)
        path = out / "annotations" / "instances_default.json"
        formats.export("coco", project, path, polygons=polygons, upright_dir=out / "images")
        labels, got, boxes = _datumaro(path, "coco_instances", tmp_path)
        assert labels == _names(project)
        _check(project, _by_stem(project, got), 1.0)
        doc = json.loads(path.read_text(encoding="ascii"))
        assert sum(a["segmentation"] == [] for a in doc["annotations"]) == 1  # the box
        for kind in ("segm", "bbox"):
            # pycocotools' segm evaluation cannot rasterise an empty segmentation (the export warns)
            gt = dict(
                doc,
                annotations=[a for a in doc["annotations"] if a["segmentation"] or kind == "bbox"],
            )
            gt_path = out / f"gt_{kind}.json"
            gt_path.write_text(json.dumps(gt))
            with contextlib.redirect_stdout(io.StringIO()):
                truth = COCO(str(gt_path))
                dets = truth.loadRes([dict(a, score=1.0) for a in gt["annotations"]])
                ev = COCOeval(truth, dets, kind)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), kind


def test_voc_in_datumaro(tmp_path, project):
    out = tmp_path / "voc"
    formats.export("voc", project, out)
    labels, got, boxes = _datumaro(out, "voc", tmp_path)
    assert labels == ["background", *_names(project)]
    _check(project, _by_stem(project, got), 1.0)
    assert sum(map(len, got.values())) == len(project.annotations())
    assert boxes == len(project.annotations()) + 1  # one <object> per annotation + the box


def test_cvat_in_datumaro(tmp_path, project):
    for polygons in (False, True):
        out = tmp_path / str(polygons)
        formats.export("cvat", project, out, polygons=polygons, copy_images=True)
        labels, got, boxes = _datumaro(out / "annotations.xml", "cvat", tmp_path)
        assert labels == _names(project)
        _check(project, _by_stem(project, got), 1.0)
        assert sum(map(len, got.values())) == len(project.annotations()) and boxes == 1


def test_interop_env_installs_the_interop_extra():
    """The side venv's list is pyproject's `interop` extra itself (+ numpy for the scripts)."""
    from tests.interop.make_env import ROOT, requirements

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert requirements() == [*extras["project"]["optional-dependencies"]["interop"], "numpy"]
