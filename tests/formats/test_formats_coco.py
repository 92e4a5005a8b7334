"""The COCO bugs of issue 15: file mode, symlinks, ASCII-only JSON, bbox-only annotations, unused
categories, kept fields (keypoints, attributes), non-finite scores, EXIF-rotated images."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from annotator.errors import CocoFormatError
from annotator.io.formats.coco import export_coco, import_coco
from annotator.store import Project
from annotator.store import extras as store_extras

pytestmark = pytest.mark.filterwarnings("ignore::annotator.io.formats.FormatWarning")


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    Image.new("RGB", (16, 12)).save(folder / "im.png")
    with Project.open_folder(folder) as p:
        image = p.add_image("im.png", 16, 12)
        mask = np.zeros((12, 16), bool)
        mask[2:6, 3:9] = True
        p.add_annotation(image, mask, "Straße café", score=0.5)
        p.category_id("unused")
        yield p


def _umask(value: int):
    old = os.umask(value)
    return old


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_the_umask(tmp_path, project, umask, mode):
    out = tmp_path / "x.json"
    old = os.umask(umask)
    try:
        export_coco(project, out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_existing_mode_is_kept_and_symlinks_followed(tmp_path, project):
    out = tmp_path / "x.json"
    out.write_text("{}")
    out.chmod(0o640)
    export_coco(project, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and json.loads(out.read_text())["images"]
    target = tmp_path / "v3.json"
    target.write_text("{}")
    target.chmod(0o604)
    link = tmp_path / "latest.json"
    link.symlink_to(target.name)
    export_coco(project, link)
    assert link.is_symlink() and os.readlink(link) == target.name  # still a link, same target
    assert json.loads(target.read_text())["images"] and stat.S_IMODE(target.stat().st_mode) == 0o604
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_json_is_ascii_only_and_reads_under_any_locale(tmp_path, project):
    out = tmp_path / "x.json"
    export_coco(project, out)
    data = out.read_bytes()
    assert max(data) < 128
    for encoding in ("ascii", "cp1252", "latin-1", "utf-8"):  # what open() may default to
        doc = json.loads(data.decode(encoding))
        assert "Straße café" in [c["name"] for c in doc["categories"]]


def test_every_category_is_exported(tmp_path, project):
    out = tmp_path / "x.json"
    summary = export_coco(project, out)
    doc = json.loads(out.read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [
        (c.id, c.name) for c in project.categories()
    ]
    assert summary["categories"] == 2


def _detection_doc() -> dict:
    """Like X-AnyLabeling's coco_detection.json / mmdetection's coco_sample.json: boxes only, many
    classes, keypoints and attributes, image extras."""
    return {
        "info": {},
        "images": [{"id": 7, "file_name": "im.png", "width": 16, "height": 12, "license": 3,
                    "coco_url": "http://example.invalid/im.png"}],
        "categories": [{"id": k, "name": f"class{k}", "supercategory": "thing"} for k in range(1, 22)]
        + [{"id": 30, "name": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 1, 5, 4], "area": 20, "iscrowd": 0,
             "segmentation": []},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [6, 2, 3, 3], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 30, "bbox": [2, 2, 8, 8], "iscrowd": 0,
             "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]], "keypoints": [3, 3, 2, 5, 3, 2],
             "num_keypoints": 2, "attributes": {"occluded": False, "pose": "standing"}},
        ],
    }  # fmt: skip


def test_bbox_only_and_extra_fields_survive_import_and_export(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (16, 12)).save(folder / "im.png")
    source = tmp_path / "det.json"
    source.write_text(json.dumps(_detection_doc()))
    with Project.open_folder(folder) as p:
        summary = import_coco(source, folder, p)
        assert summary["boxes_added"] == 2 and summary["annotations_added"] == 1
        assert [b.bbox for b in store_extras.boxes(p)] == [(1, 1, 5, 4), (6, 2, 3, 3)]
        out = tmp_path / "out.json"
        export_coco(p, out)
        again = json.loads(out.read_text())
        first = json.loads(source.read_text())
        assert [c["name"] for c in again["categories"]] == [c["name"] for c in first["categories"]]
        assert [c["id"] for c in again["categories"]] == [c["id"] for c in first["categories"]]
        person = again["categories"][-1]
        assert person["keypoints"] == ["nose", "eye"] and person["skeleton"] == [[1, 2]]
        image = again["images"][0]
        assert image["license"] == 3 and image["coco_url"].endswith("im.png")
        by_id = {a["id"]: a for a in again["annotations"]}
        assert by_id[1]["segmentation"] == [] and by_id[1]["bbox"] == [1, 1, 5, 4]
        assert by_id[2]["bbox"] == [6, 2, 3, 3]
        assert by_id[3]["keypoints"] == [3, 3, 2, 5, 3, 2] and by_id[3]["num_keypoints"] == 2
        assert by_id[3]["attributes"] == {"occluded": False, "pose": "standing"}
        # and a second round trip changes nothing
        with Project(tmp_path / "q.db") as q:
            q.set_meta("folder", str(folder))
        with Project(tmp_path / "q.db") as q:
            import_coco(out, folder, q)
            out2 = tmp_path / "out2.json"
            export_coco(q, out2)
        strip = lambda d: {k: v for k, v in d.items() if k != "info"}  # noqa: E731
        assert strip(json.loads(out2.read_text())) == strip(again)


def test_a_new_mask_never_takes_a_box_id(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (16, 12)).save(folder / "im.png")
    source = tmp_path / "det.json"
    doc = _detection_doc()
    doc["annotations"] = doc["annotations"][:2]
    doc["annotations"][1]["id"] = 50
    source.write_text(json.dumps(doc))
    with Project.open_folder(folder) as p:
        import_coco(source, folder, p)
        new = p.add_annotation(p.images()[0].id, np.ones((12, 16), bool), "class1")
        assert new > 50


def test_non_finite_score_is_left_out(tmp_path, project):
    image = project.images()[0].id
    project.add_annotation(image, np.eye(12, 16, dtype=bool), "x", score=float("inf"))
    out = tmp_path / "x.json"
    summary = export_coco(project, out)
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert any("1 non-finite score(s) left out" in w for w in summary["warnings"])


def test_exif_rotated_images_are_stated_warned_and_copied_upright(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    raw = Image.new("RGB", (30, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view: upright it is 20 wide, 30 high
    raw.save(folder / "r.jpg", exif=exif)
    with Project.open_folder(folder) as p:
        p.add_image("r.jpg", 20, 30)
        out = tmp_path / "x.json"
        summary = export_coco(p, out)
        doc = json.loads(out.read_text())
        assert "upright" in doc["info"]["orientation"]
        assert summary["exif_rotated"] == 1
        assert any("EXIF-rotated" in w and "r.jpg" in w for w in summary["warnings"])
        upright = tmp_path / "upright"
        summary = export_coco(p, out, upright_dir=upright)
        assert not summary.get("warnings")
        with Image.open(upright / "r.jpg") as im:
            assert im.size == (20, 30) and im.getexif().get(0x0112, 1) == 1


def test_non_finite_extra_fields_are_refused_with_the_field(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (16, 12)).save(folder / "im.png")
    doc = _detection_doc()
    doc["annotations"][2]["keypoints"] = [3, 3, 2, float("nan"), 3, 2]
    source = tmp_path / "det.json"
    source.write_text(json.dumps(doc))  # Python writes NaN, as some tools do
    with Project.open_folder(folder) as p:
        with pytest.raises(
            CocoFormatError, match=r"annotations\[2\]\.keypoints: must not hold NaN"
        ):
            import_coco(source, folder, p)
        assert p.images() == []
