"""Track formats (MOTS, MOT 1.1, DAVIS): an accepted track exported, read back by the format's
own reader (datumaro's `mots` and `mot_seq`, in the interop interpreter; MOTS's txt through
pycocotools' RLE), and imported back with the same track ids and masks."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotator.cli import main
from annotator.io.formats import export, import_
from annotator.io.formats.mots import read_txt
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips, interop, tiny_video
from tests.track_reference import iou


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A project with two accepted tracks ("ball" 1 on frames 0-3, "cup" 2 on frames 4-7: the
    tiny random model's two masks overlap almost entirely, and these formats hold one object per
    pixel) on an 8-frame clip."""
    base = tmp_path_factory.mktemp("tracked")
    folder = base / "model"
    tiny_video.save("sam2", folder)
    clip = clips.write_lossless(base / "clip.mkv", clips.frames(8))
    project = base / "p"
    project.mkdir()
    for obj, point, name in ((1, "35,38", "ball"), (2, "90,24", "cup")):
        assert (
            main(
                [
                    "track",
                    str(clip),
                    "--frame",
                    "0",
                    "--object",
                    str(obj),
                    "--point",
                    point,
                    "--category",
                    name,
                    "--save",
                    str(project),
                    "--segmenter",
                    "sam2",
                    "--checkpoint",
                    str(folder),
                    "--cache-dir",
                    str(base / "cache"),
                ]
            )
            == 0
        )
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        for track in store.tracks():
            keep = range(0, 4) if track.object_id == 1 else range(4, 8)
            ids = [pid for f, pid in store.track_proposals(track.id) if f in keep]
            assert len(ids) == 4 and store.proposals.accept_many(ids)
        expected = {}
        for a_id, (track_id, frame) in store.annotation_tracks().items():
            obj = next(t.object_id for t in store.tracks() if t.id == track_id)
            expected[(frame, obj)] = p.annotation(a_id).mask()
    return project, expected


def _tracks_of(project):
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        objects = {t.id: (t.object_id, t.category) for t in store.tracks()}
        out = {}
        for a_id, (track_id, frame) in store.annotation_tracks().items():
            out[(frame, objects[track_id][0])] = (objects[track_id][1], p.annotation(a_id).mask())
        return out


@pytest.mark.parametrize("fmt", ["mots", "davis"])
def test_export_import_round_trip(tracked, fmt, tmp_path):
    project, expected = tracked
    with Project.open_folder(project) as p:
        summary = export(fmt, p, tmp_path / "out")
    assert summary["sequences"] == 1
    target = tmp_path / "back"
    target.mkdir()
    with Project.open_folder(target) as q:
        done = import_(tmp_path / "out", None, q, fmt)
    assert done["tracks"] == 2
    back = _tracks_of(target)
    assert set(back) == set(expected)
    for key, mask in expected.items():
        category, got = back[key]
        assert category == {1: "ball", 2: "cup"}[key[1]]
        assert iou(got, mask) == 1.0, key


def test_mots_txt_is_coco_rle(tracked, tmp_path):
    project, expected = tracked
    with Project.open_folder(project) as p:
        export("mots", p, tmp_path / "out")
    (folder,) = [d for d in (tmp_path / "out").iterdir() if d.is_dir()]
    frames = read_txt(folder / "instances.txt")
    line = (folder / "instances.txt").read_text().splitlines()[0].split(" ", 5)
    decoded = mask_utils.decode({"size": [int(line[3]), int(line[4])], "counts": line[5].encode()})
    assert decoded.any() and set(frames) == {f for f, _ in expected}
    ids = {v % 1000 for f in frames.values() for v in f}
    assert ids == {1, 2}


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


def test_datumaro_reads_mots_and_mot(tracked, tmp_path):
    project, expected = tracked
    with Project.open_folder(project) as p:
        export("mots", p, tmp_path / "mots")
        export("mot", p, tmp_path / "mot")
    meta, arrays = _datumaro("mots", tmp_path / "mots", tmp_path)
    seen = {}
    for item in meta["items"]:
        for a in item["annotations"]:
            seen[(int(item["id"]), a["track_id"])] = (a["label"], arrays[a["mask"]])
    assert {k for k in seen} == set(expected)
    for key, (label, mask) in seen.items():
        assert label == {1: "ball", 2: "cup"}[key[1]]
        assert iou(mask, expected[key]) == 1.0
    (seq,) = [d for d in (tmp_path / "mot").iterdir() if d.is_dir()]
    meta, _ = _datumaro("mot_seq", seq / "gt" / "gt.txt", tmp_path)
    boxes = {
        (int(i["id"]) - 1, a["track_id"]): a["bbox"]
        for i in meta["items"]
        for a in i["annotations"]
    }
    assert set(boxes) == set(expected)
    for key, (x, y, w, h) in boxes.items():
        ys, xs = np.nonzero(expected[key])
        assert (x, y, w, h) == (
            xs.min(),
            ys.min(),
            xs.max() - xs.min() + 1,
            ys.max() - ys.min() + 1,
        )


def test_mot_imports_its_tracks_as_filled_boxes(tracked, tmp_path):
    """MOT 1.1 holds boxes only: import brings each track back (same ids, categories) with the
    filled box of the exported mask on every frame."""
    from annotator.io.masks import mask_box

    project, expected = tracked
    with Project.open_folder(project) as p:
        export("mot", p, tmp_path / "out")
    target = tmp_path / "back"
    target.mkdir()
    with Project.open_folder(target) as q:
        with pytest.warns(UserWarning, match="filled box"):
            done = import_(tmp_path / "out", None, q, "mot")
    assert (done["sequences"], done["tracks"], done["annotations"]) == (1, 2, len(expected))
    back = _tracks_of(target)
    assert set(back) == set(expected)
    for key, mask in expected.items():
        category, got = back[key]
        assert category == {1: "ball", 2: "cup"}[key[1]]
        x0, y0, x1, y1 = mask_box(mask)
        box = np.zeros_like(mask)
        box[y0:y1, x0:x1] = True
        assert np.array_equal(got, box), key


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,1,inf,0,4,4,1,1,1", "must be finite"),
        ("1,1,0,0,4", "at least 6 fields"),
        ("999,1,0,0,4,4,1,1,1", "frame: must be 1.."),
        ("1,0,0,0,4,4,1,1,1", "track id: must be 1.."),
        ("1,1,0,0,4,4,1,7,1", "class: must be 1.."),
        ("1,1,1e9,0,4,4,1,1,1", "outside the image"),
    ],
)
def test_a_bad_mot_row_is_one_line_and_stores_nothing(tracked, tmp_path, row, message):
    from annotator.errors import DatasetFormatError

    project, _ = tracked
    with Project.open_folder(project) as p:
        export("mot", p, tmp_path / "out")
    (seq,) = [d for d in (tmp_path / "out").iterdir() if d.is_dir()]
    (seq / "gt" / "gt.txt").write_text(row + "\n")
    target = tmp_path / "back"
    target.mkdir()
    with Project.open_folder(target) as q:
        with pytest.raises(DatasetFormatError, match=message) as error:
            import_(tmp_path / "out", None, q, "mot")
        assert "\n" not in str(error.value)
        assert q.images() == [] and q.annotations() == []
