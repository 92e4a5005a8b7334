"""Every format: export -> import -> export gives the same files, the import is all or nothing, and
what a format cannot hold is warned about, never lost silently."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from annotator.errors import AnnotatorError, DatasetFormatError
from annotator.io import formats
from annotator.io.formats import FormatWarning
from annotator.store import Project
from annotator.store import extras as store_extras
from tests.formats_data import best_match, expected_masks, make_project

pytestmark = pytest.mark.filterwarnings("ignore::annotator.io.formats.FormatWarning")


def _target(root: Path, name: str) -> Path:
    return root / "coco.json" if name == "coco" else root / name


def _files(path: Path) -> dict[str, bytes]:
    """Exported files by relative path; COCO's creation date and data.yaml's absolute path aside."""
    if path.is_file():
        doc = json.loads(path.read_text(encoding="ascii"))
        doc["info"].pop("date_created")
        return {path.name: json.dumps(doc).encode()}
    out = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        data = file.read_bytes()
        if file.name == "data.yaml":
            data = b"\n".join(ln for ln in data.splitlines() if not ln.startswith(b"path:"))
        out[file.relative_to(path).as_posix()] = data
    return out


def _second_project(tmp_path: Path, folder: Path, name: str) -> Project:
    Project(tmp_path / f"{name}.db").set_meta("folder", str(folder))
    return Project(tmp_path / f"{name}.db")


@pytest.fixture
def project(tmp_path):
    with make_project(tmp_path / "proj") as p:
        yield p


@pytest.mark.parametrize("name", formats.FORMATS)
def test_round_trip_is_identical(tmp_path, project, name):
    first = _target(tmp_path / "one", name)
    formats.export(name, project, first)
    with _second_project(tmp_path, project.folder, name) as again:
        summary = formats.import_(first, project.folder, again)
        assert summary["format"] == name and summary["images"] == 3
        # every project category comes back, in the same order (class ids stay stable)
        assert [c.name for c in again.categories()] == [c.name for c in project.categories()]
        second = _target(tmp_path / "two", name)
        formats.export(name, again, second)
        if (
            name == "yolo"
        ):  # the first export filled a hole and bridged two parts: now a fixed point
            third_project = _second_project(tmp_path, project.folder, "yolo3")
            formats.import_(second, project.folder, third_project)
            third = _target(tmp_path / "three", name)
            formats.export(name, third_project, third)
            third_project.close()
            assert _files(second) == _files(third)
            assert _files(first).keys() == _files(second).keys()
        else:
            assert _files(first) == _files(second)


@pytest.mark.parametrize("name", formats.FORMATS)
def test_import_keeps_the_masks_the_format_holds(tmp_path, project, name):
    out = _target(tmp_path, name)
    formats.export(name, project, out)
    with _second_project(tmp_path, project.folder, name) as again:
        formats.import_(out, project.folder, again)
        got = expected_masks(again)
        exact = name != "yolo"
        for file_name, items in expected_masks(project).items():
            candidates = [m for _, m in got[file_name]]
            for k, (_, mask) in enumerate(items):
                if exact or not (file_name == "a.png" and k == 4):  # two parts: bridged
                    assert best_match(mask, candidates) == 1.0, (name, file_name, k)
        n_boxes = len(store_extras.boxes(again))
        assert n_boxes == (0 if name in ("yolo", "masks") else 1)


def test_detect_names_each_format(tmp_path, project):
    for name in formats.FORMATS:
        out = _target(tmp_path, name)
        formats.export(name, project, out)
        assert formats.detect(out) == name
    with pytest.raises(DatasetFormatError, match="cannot tell the dataset format"):
        formats.detect(project.folder)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("yolo", "1 mask(s) in several parts cannot be one exact polygon"),
        ("yolo", "1 box-only annotation(s) written as rectangles"),
        ("labelme", "1 mask(s) with holes written as labelme 'mask' shapes"),
        ("masks", "1 box-only annotation(s) not written"),
        ("voc", "7 score(s) not written"),
    ],
)
def test_losses_are_warned(tmp_path, project, name, fragment):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = formats.export(name, project, _target(tmp_path, name))
    assert any(fragment in w for w in summary["warnings"])
    assert any(fragment in str(w.message) for w in caught if w.category is FormatWarning)


def test_overlaps_in_mask_formats_are_warned(tmp_path, project):
    image = project.image_by_name("c.png")
    big = np.zeros((16, 20), bool)
    big[2:12, 2:12] = True
    small = np.zeros((16, 20), bool)
    small[4:8, 4:8] = True
    project.add_annotation(image.id, big, "cat")
    project.add_annotation(image.id, small, "dog")
    for name in ("voc", "masks"):
        summary = formats.export(name, project, tmp_path / name)
        assert any("16 overlapping pixel(s) lost" in w for w in summary["warnings"]), name
        with _second_project(tmp_path, project.folder, name) as again:
            formats.import_(tmp_path / name, project.folder, again)
            got = [m for _, m in expected_masks(again)["c.png"]]
            assert best_match(small, got) == 1.0  # the small object stays whole, on top


@pytest.mark.parametrize("name", [n for n in formats.FORMATS if n != "coco"])
def test_a_broken_file_imports_nothing(tmp_path, project, name):
    out = _target(tmp_path, name)
    formats.export(name, project, out)
    victim = {
        "yolo": out / "labels" / "train" / "sub__b.txt",
        "voc": out / "Annotations" / "sub" / "b.xml",
        "cvat": out / "annotations.xml",
        "labelme": out / "sub" / "b.json",
        "masks": out / "classes.csv",
    }[name]
    text = victim.read_text(encoding="utf-8")
    broken = {
        "yolo": text + "7 0.1 0.1 0.2 0.2\n",
        "voc": text.replace("<xmin>", "<xmin>x"),
        "cvat": text.replace('rle="', 'rle="9999, '),
        "labelme": text.replace('"points"', '"points_"', 1).replace(
            '"points_"', '"points": 5, "x"', 1
        ),
        "masks": text.replace("2,dog", "two,dog"),
    }[name]
    victim.write_text(broken, encoding="utf-8")
    with _second_project(tmp_path, project.folder, name) as again:
        with pytest.raises(AnnotatorError) as error:
            formats.import_(out, project.folder, again)
        message = str(error.value)
        assert "\n" not in message and (
            "b." in message or "annotations.xml" in message or "classes.csv" in message
        )
        assert again.images() == [] and again.annotations() == [] and again.categories() == []


@pytest.mark.parametrize("name", ["yolo", "voc"])
def test_formats_that_ship_images_write_exif_rotated_ones_upright(tmp_path, name):
    from PIL import Image

    folder = tmp_path / "p"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30x20, viewed 20x30
    Image.new("RGB", (30, 20), "red").save(folder / "r.jpg", exif=exif)
    with Project.open_folder(folder) as project:
        image = project.add_image("r.jpg", 20, 30)
        mask = np.zeros((30, 20), bool)
        mask[2:28, 3:9] = True
        project.add_annotation(image, mask, "tall")
        formats.export(name, project, tmp_path / name)
    copied = tmp_path / name / ("images/train/r.jpg" if name == "yolo" else "JPEGImages/r.jpg")
    with Image.open(copied) as im:
        assert im.size == (20, 30) and im.getexif().get(0x0112, 1) == 1


def test_voc_with_rgb_masks_imports(tmp_path, project):
    """Some tools write VOC masks as RGB PNGs in the label map's colours instead of paletted ones."""
    from PIL import Image

    out = tmp_path / "voc"
    formats.export("voc", project, out)
    for png in list((out / "SegmentationClass").rglob("*.png")) + list(
        (out / "SegmentationObject").rglob("*.png")
    ):
        with Image.open(png) as im:
            im.convert("RGB").save(png)
    with _second_project(tmp_path, project.folder, "voc") as again:
        formats.import_(out, project.folder, again)
        got = expected_masks(again)
        for file_name, items in expected_masks(project).items():
            for _, mask in items:
                assert best_match(mask, [m for _, m in got[file_name]]) == 1.0


@pytest.mark.parametrize("name", ["voc", "masks"])
def test_a_mask_png_of_the_wrong_size_is_refused_before_decoding(tmp_path, project, name):
    from PIL import Image

    out = tmp_path / name
    formats.export(name, project, out)
    png = out / ("SegmentationObject/c.png" if name == "voc" else "instances/c.png")
    Image.new("L", (5000, 4000)).save(png)
    with _second_project(tmp_path, project.folder, name) as again:
        with pytest.raises(DatasetFormatError, match=r"c\.png: is 5000x4000, the image 20x16"):
            formats.import_(out, project.folder, again)
        assert again.images() == []
