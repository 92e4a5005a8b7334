"""COCO video (TAO fields) and CVAT for video 1.1: accepted tracks exported, read by each format's
own reader (pycocotools; datumaro's `cvat` importer in the interop interpreter) with the same
track ids and per-frame masks, and imported back as the same tracks.

The project is built through the store (a sequence from a lossless clip, tracks, accepted tracked
annotations) with drawn shapes, so the masks are known: a moving disc (object 1, frames 0-5), a
box with a gap (object 2, frames 1-2 and 5-7: CVAT needs an outside shape at 3 and none after
7), and a ring (object 3, a hole: CVAT writes it as <mask>s, which datumaro cannot read)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from pycocotools.coco import COCO

from annotator.errors import AnnotatorError, DatasetFormatError
from annotator.io.formats import detect, export, import_
from annotator.io.sequences import open_sequence
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips, interop
from tests.track_reference import iou

H, W, N = 96, 128, 8


def _disc(f: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - 40) ** 2 + (xx - 20 - 8 * f) ** 2 <= 15**2


def _box(f: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10 + f : 40 + f, 70:110] = True
    return m


def _ring(f: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    d = (yy - 70) ** 2 + (xx - 60) ** 2
    return (d <= 20**2) & (d > 8**2)


SHAPES = {
    1: ("ball", _disc, range(0, 6)),
    2: ("cup", _box, [1, 2, 5, 6, 7]),
    3: ("ring", _ring, range(0, 4)),
}


def _project(folder, objects):
    folder.mkdir()
    clip = clips.write_lossless(folder / "clip.mkv", clips.frames(N, H, W))
    expected = {}
    with Project.open_folder(folder) as p, open_sequence(clip) as seq:
        store = TrackStore(p)
        sid = store.add_sequence(seq)
        frames = store.frame_images(sid)
        for obj in objects:
            name, shape, where = SHAPES[obj]
            track = store.set_track(sid, obj, name, {})
            for f in where:
                a = p.add_annotation(frames[f], shape(f), name)
                store.add_track_annotation(a, track, f)
                expected[(f, obj)] = (name, shape(f))
    return folder, expected


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    base = tmp_path_factory.mktemp("video_formats")
    return {
        "polygons": _project(base / "polygons", [1, 2]),
        "all": _project(base / "all", [1, 2, 3]),
    }


def _tracks_of(project):
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        objects = {t.id: (t.object_id, t.category) for t in store.tracks()}
        out = {}
        for a_id, (track_id, frame) in store.annotation_tracks().items():
            out[(frame, objects[track_id][0])] = (objects[track_id][1], p.annotation(a_id).mask())
        return out


@pytest.mark.parametrize("fmt", ["coco-video", "cvat-video"])
def test_export_import_round_trip(projects, fmt, tmp_path):
    project, expected = projects["all"]
    with Project.open_folder(project) as p:
        summary = export(fmt, p, tmp_path / "out")
    assert summary["sequences"] == 1
    assert detect(tmp_path / "out") == fmt
    target = tmp_path / "back"
    target.mkdir()
    with Project.open_folder(target) as q:
        done = import_(tmp_path / "out", None, q)
    assert done["format"] == fmt and done["tracks"] == 3
    back = _tracks_of(target)
    assert set(back) == set(expected)
    for key, (name, mask) in expected.items():
        got_name, got = back[key]
        assert got_name == name
        assert iou(got, mask) == 1.0, key


def test_coco_video_in_pycocotools(projects, tmp_path):
    project, expected = projects["all"]
    with Project.open_folder(project) as p:
        export("coco-video", p, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert len(coco.getImgIds()) == N  # one image per frame, masks or not
    (video,) = doc["videos"]
    assert video["length"] == N and (video["width"], video["height"]) == (W, H)
    objects = {t["id"]: t["object_id"] for t in doc["tracks"]}
    assert sorted(objects.values()) == [1, 2, 3]
    seen = {}
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        assert image["video_id"] == video["id"] == ann["video_id"]
        assert image["frame_id"] == image["frame_index"]
        assert ann["instance_id"] == ann["track_id"]
        assert (tmp_path / "out" / "images" / image["file_name"]).is_file()
        key = (image["frame_index"], objects[ann["track_id"]])
        seen[key] = (coco.loadCats(ann["category_id"])[0]["name"], coco.annToMask(ann))
    assert set(seen) == set(expected)
    for key, (name, mask) in expected.items():
        assert seen[key][0] == name
        assert iou(seen[key][1].astype(bool), mask) == 1.0, key


def test_cvat_video_layout_and_outside(projects, tmp_path):
    project, expected = projects["all"]
    with Project.open_folder(project) as p:
        summary = export("cvat-video", p, tmp_path / "out")
    assert any("<mask>" in w for w in summary["warnings"])  # the ring
    files = sorted(x.name for x in (tmp_path / "out" / "images").iterdir())
    assert files == [f"frame_{f:06d}.png" for f in range(N)]
    root = ET.parse(tmp_path / "out" / "annotations.xml").getroot()
    assert root.findtext("meta/task/mode") == "interpolation"
    tracks = {int(t.attrib["id"]): t for t in root.iterfind("track")}
    assert {i: t.attrib["label"] for i, t in tracks.items()} == {1: "ball", 2: "cup", 3: "ring"}
    assert {s.tag for s in tracks[1]} == {"polygon"} and {s.tag for s in tracks[3]} == {"mask"}
    cup = [(int(s.attrib["frame"]), s.attrib["outside"]) for s in tracks[2]]
    assert cup == [(1, "0"), (2, "0"), (3, "1"), (5, "0"), (6, "0"), (7, "0")]
    ball = [(int(s.attrib["frame"]), s.attrib["outside"]) for s in tracks[1]]
    assert ball[-1] == (6, "1") and all(s.attrib["keyframe"] == "1" for s in tracks[1])


def _datumaro(fmt, path, tmp_path):
    python, _ = interop.interop_python("datumaro")
    out = tmp_path / "read.npz"
    done = subprocess.run(
        [python, str(interop.HERE / "read_tracks.py"), fmt, str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == 3:
        pytest.skip("datumaro is not installed in the interop interpreter")
    assert done.returncode == 0, done.stderr[-2000:]
    data = np.load(out)
    return json.loads(str(data["meta"])), data


def test_datumaro_reads_cvat_video(projects, tmp_path):
    """datumaro's `cvat` importer on the exported folder: every visible frame of every track with
    its track id and label; polygons rasterised by datumaro give IoU >= 0.99 (here 1.0)."""
    project, expected = projects["polygons"]
    with Project.open_folder(project) as p:
        export("cvat-video", p, tmp_path / "out")
    meta, arrays = _datumaro("cvat", tmp_path / "out", tmp_path)
    seen, hidden = {}, set()
    for item in meta["items"]:
        for a in item["annotations"]:
            key = (int(item["frame"]), a["track_id"])
            if a["outside"]:
                hidden.add(key)
            else:
                seen[key] = (a["label"], arrays[a["mask"]])
    assert set(seen) == set(expected)
    assert hidden == {(6, 1), (3, 2)}
    for key, (name, mask) in expected.items():
        assert seen[key][0] == name
        assert iou(seen[key][1], mask) >= 0.99, key


CVAT_OWN = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><id>7</id><size>4</size><mode>interpolation</mode><start_frame>0</start_frame>
    <stop_frame>3</stop_frame>
    <labels><label><name>car</name></label><label><name>dog</name></label></labels>
    <original_size><width>128</width><height>96</height></original_size></task></meta>
  <track id="0" label="car" source="manual">
    <box frame="0" outside="0" occluded="0" keyframe="1" xtl="10" ytl="10" xbr="30" ybr="20"
      z_order="0"/>
    <box frame="2" outside="1" occluded="0" keyframe="1" xtl="10" ytl="10" xbr="30" ybr="20"
      z_order="0"/>
  </track>
  <track id="1" label="dog" source="manual">
    <polygon frame="1" outside="0" occluded="0" keyframe="1" points="50,50;70,50;70,70;50,70"
      z_order="0"/>
    <polyline frame="1" outside="0" occluded="0" keyframe="1" points="1,1;5,5" z_order="0"/>
  </track>
</annotations>
"""


def test_cvat_own_layout_holds_shapes_until_the_next(tmp_path):
    """A file as CVAT writes it (track ids from 0, a shape holding until the next one, boxes):
    ids shift to 1.., a box is its filled box, outside ends the object, a polyline is counted."""
    folder = tmp_path / "task"
    folder.mkdir()
    clips.write_folder(folder / "images", clips.frames(4, H, W), stem="frame_")
    (folder / "annotations.xml").write_text(CVAT_OWN)
    assert detect(folder) == "cvat-video"
    target = tmp_path / "p"
    target.mkdir()
    with Project.open_folder(target) as q, pytest.warns(UserWarning):
        done = import_(folder, None, q)
    assert done["tracks"] == 2
    back = _tracks_of(target)
    assert sorted(back) == [(0, 1), (1, 1), (1, 2), (2, 2), (3, 2)]
    assert back[(0, 1)][0] == "car" and back[(1, 1)][1][10:20, 10:30].all()
    assert back[(0, 1)][1].sum() == 200 and back[(3, 2)][0] == "dog"


def test_cvat_video_refuses_frames_of_another_size(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    clips.write_folder(folder / "images", clips.frames(4, 64, 64), stem="frame_")
    (folder / "annotations.xml").write_text(CVAT_OWN)
    target = tmp_path / "p"
    target.mkdir()
    with Project.open_folder(target) as q:
        with pytest.raises(DatasetFormatError, match="original_size 128x96"):
            import_(folder, None, q, "cvat-video")
        assert not TrackStore(q).sequences()  # nothing half-stored


def test_coco_video_bad_annotation_stores_nothing(projects, tmp_path):
    """An annotation without a track id (or a segmentation the wrong size) late in the file:
    one line naming the place, and the import stores nothing (one transaction)."""
    project, _ = projects["polygons"]
    with Project.open_folder(project) as p:
        export("coco-video", p, tmp_path / "out")
    file = tmp_path / "out" / "annotations.json"
    doc = json.loads(file.read_text())
    good = json.dumps(doc)
    del doc["annotations"][-1]["track_id"], doc["annotations"][-1]["instance_id"]
    file.write_text(json.dumps(doc))
    target = tmp_path / "back"
    target.mkdir()
    with Project.open_folder(target) as q:
        with pytest.raises(AnnotatorError, match=r"annotations\[\d+\]: missing key 'track_id'"):
            import_(tmp_path / "out", None, q)
        doc = json.loads(good)
        doc["annotations"][-1]["segmentation"]["size"] = [H + 1, W]
        file.write_text(json.dumps(doc))
        with pytest.raises(AnnotatorError, match="segmentation.size"):
            import_(tmp_path / "out", None, q)
        assert not TrackStore(q).sequences() and not q.images()
