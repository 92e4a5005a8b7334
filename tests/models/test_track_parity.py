"""`annotator track` equals transformers' reference video pipeline, frame by frame.

Tiny random `Sam2VideoModel` / `EdgeTamVideoModel` folders (tests/tiny_video.py), a synthetic
lossless clip; the pending masks `annotator track` stores must match the reference pipeline
(tests/track_reference.py) with IoU >= 0.99 on every frame, for a point on frame 0, a box, two
objects at once, and a correction click on a middle frame (a second `annotator track` call). The
masks are checked to be neither empty nor full, so the comparison can fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips, tiny_video
from tests.track_reference import iou, reference_track

ROOT = Path(__file__).resolve().parents[2]
VIDEO = clips.frames(12)


@pytest.fixture(scope="module", params=["sam2", "edgetam"])
def setup(request, tmp_path_factory):
    family = request.param
    base = tmp_path_factory.mktemp(f"track_{family}")
    folder = base / "model"
    model, processor = tiny_video.save(family, folder)
    clip = clips.write_lossless(base / "clip.mkv", VIDEO)
    return family, folder, model, processor, clip


def _track(setup, project: Path, argv: list[str], capsys) -> dict:
    family, folder, _, _, clip = setup
    project.mkdir(exist_ok=True)
    code = main(
        [
            "track",
            str(clip),
            *argv,
            "--save",
            str(project),
            "--segmenter",
            family,
            "--checkpoint",
            str(folder),
            "--cache-dir",
            str(project.parent / "cache"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def pending_masks(project: Path) -> dict[int, dict[int, np.ndarray]]:
    """{frame: {object id: mask}} of the project's pending track masks (each once)."""
    out: dict[int, dict[int, np.ndarray]] = {}
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        for track in store.tracks():
            for frame, proposal_id in store.track_proposals(track.id):
                assert track.object_id not in out.get(frame, {}), "a frame stored twice"
                out.setdefault(frame, {})[track.object_id] = store.proposals.get(proposal_id).mask()
    return out


def _check(ours, ref):
    assert ref and set(ref) >= set(ours)
    area = VIDEO.shape[1] * VIDEO.shape[2]
    for frame, objects in ref.items():
        for object_id, mask in objects.items():
            got = ours.get(frame, {}).get(object_id, np.zeros_like(mask))
            assert iou(got, mask) >= 0.99, (frame, object_id)
    sizes = [m.sum() for objects in ref.values() for m in objects.values()]
    assert min(sizes) > 0 and max(sizes) < area  # neither empty nor full


CASES = {
    "point": (
        ["--frame", "0", "--point", "35,38"],
        [(0, {1: {"points": [[35, 38]], "labels": [1]}})],
    ),
    "box": (["--frame", "0", "--box", "20,22,52,56"], [(0, {1: {"box": [20, 22, 52, 56]}})]),
    "two objects": (
        ["--frame", "0", "--object", "1", "--point", "35,38", "--object", "2", "--point", "90,24"],
        [(0, {1: {"points": [[35, 38]], "labels": [1]}, 2: {"points": [[90, 24]], "labels": [1]}})],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_track_equals_reference(setup, case, tmp_path, capsys):
    _, _, model, processor, _ = setup
    argv, spec = CASES[case]
    summary = _track(setup, tmp_path / "p", argv, capsys)
    ref = reference_track(model, processor, VIDEO, spec)
    ours = pending_masks(tmp_path / "p")
    _check(ours, ref)
    assert summary["frames"] == len(VIDEO) and summary["pending"] == sum(
        len(o) for o in ours.values()
    )
    assert summary["frames_per_second"] > 0 and summary["objects"] == sorted(spec[0][1])


def test_correction_on_a_middle_frame(setup, tmp_path, capsys):
    """A second call with a click on frame 6 re-tracks object 1 from both prompted frames; its
    masks replace the first call's (no frame twice)."""
    _, _, model, processor, _ = setup
    project = tmp_path / "p"
    first = _track(setup, project, ["--frame", "0", "--point", "35,38"], capsys)
    before = pending_masks(project)
    second = _track(
        setup, project, ["--frame", "6", "--point", "50,38", "--point", "20,80,0"], capsys
    )
    spec = [
        (0, {1: {"points": [[35, 38]], "labels": [1]}}),
        (6, {1: {"points": [[50, 38], [20, 80]], "labels": [1, 0]}}),
    ]
    ref = reference_track(model, processor, VIDEO, spec)
    ours = pending_masks(project)
    _check(ours, ref)
    assert first["tracks"] == second["tracks"]
    assert any(iou(before[f][1], ours[f][1]) < 0.99 for f in ours)  # the click changed something


def test_review_accepts_track_masks(setup, tmp_path, capsys):
    project = tmp_path / "p"
    _track(setup, project, ["--frame", "0", "--point", "35,38", "--category", "ball"], capsys)
    with Project.open_folder(project) as p:
        pending = TrackStore(p).proposals.proposals()
        assert pending and all(0.0 <= q.score <= 1.0 for q in pending)
        assert {q.category for q in pending} == {"ball"}
    assert main(["review", str(project), "--accept-above", "0"]) == 0
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        assert not store.proposals.proposals()
        tracks = store.annotation_tracks()
        assert len(tracks) == len(pending) and {t for t, _ in tracks.values()} == {1}
        assert p.integrity_ok()


@pytest.mark.slow
def test_kill_then_resume_equals_uninterrupted(setup, tmp_path, capsys):
    """kill -9 during propagation, then the same command: the pending masks equal an
    uninterrupted run's, and no frame is stored twice."""
    family, folder, _, _, _ = setup
    if family != "sam2":
        pytest.skip("one family is enough for the resume logic")
    long_clip = clips.write_lossless(tmp_path / "long.mkv", clips.frames(40))
    args = [
        "track",
        str(long_clip),
        "--frame",
        "0",
        "--point",
        "35,38",
        "--segmenter",
        family,
        "--checkpoint",
        str(folder),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir()
    whole.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotator", *args, "--save", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = killed / ".annotator" / "project.db"
    deadline = time.time() + 300
    done = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if db.is_file():
                import sqlite3

                try:
                    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                    done = con.execute("SELECT count(*) FROM autolabel_done").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    continue
                if done >= 11:  # past the checkpoint at 8, before the end
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 11 <= done < 40, done
    assert main([*args, "--save", str(killed)]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*args, "--save", str(whole)]) == 0
    capsys.readouterr()
    a, b = pending_masks(killed), pending_masks(whole)
    assert sorted(a) == sorted(b) and len(a) == 40 and resumed["frames"] == 40
    assert resumed["stored"] == 40 - done  # only the frames the killed run had not stored
    for frame in a:
        assert np.array_equal(a[frame][1], b[frame][1]), frame
