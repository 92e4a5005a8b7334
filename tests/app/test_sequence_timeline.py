"""The window's sequence state without Qt (issue 25): a video in a folder is one row, frames are
files, a click becomes an object request, Propagate runs `annotator track`'s code with a real tiny
video model, a correction adds a conditioning frame, Cancel stops at the current frame, accepting a
track is one undoable command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.app.folder import open_folder_job
from annotator.app.longjob import run_here
from annotator.app.propagate import AcceptTrack, PropagateTrack, Timeline, tracking_note
from annotator.app.sequences import coverage, pending_masks
from annotator.spec import ModelSpec
from annotator.store import Project
from annotator.store.proposals import ACCEPTED, PENDING
from annotator.store.tracks import TrackStore
from tests import clips, tiny_video

FRAMES = 10


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sam2_video")
    tiny_video.save("sam2", folder)
    return folder


@pytest.fixture
def clip_folder(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    clips.write_video(folder / "clip.mp4", clips.frames(FRAMES))
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(folder / "photo.png")
    return folder


def _open(folder: Path):
    opened = run_here(open_folder_job(folder))
    project = Project.open_folder(folder)
    timeline = Timeline()
    timeline.set_project(project, folder)
    return opened, project, timeline


def test_a_video_is_one_row_with_its_first_frame_as_a_file(clip_folder):
    opened, project, timeline = _open(clip_folder)
    try:
        names = [r.name for r in opened.image_rows]
        assert len(names) == 2 and names[0] == "photo.png"
        assert "clip.mp4" in names[1] and f"{FRAMES} frames" in names[1]
        row = opened.image_rows[1]
        found = timeline.sequence_of(row.image_id)
        assert found is not None and found[1] == 0
        assert np.asarray(Image.open(row.path)).shape == (96, 128, 3)
        assert timeline.sequence_of(opened.image_rows[0].image_id) is None
        # opening again finds the stored sequence: still one row, no new images
        again = run_here(open_folder_job(clip_folder))
        assert [r.image_id for r in again.image_rows] == [r.image_id for r in opened.image_rows]
        assert len(project.images()) == 1 + FRAMES
    finally:
        project.close()


def test_propagate_correct_cancel_accept_undo(clip_folder, video_model, tmp_path):
    opened, project, timeline = _open(clip_folder)
    spec = ModelSpec(segmenter="sam2", checkpoint=video_model, device="cpu")
    assert tracking_note(spec) == ""
    state = tmp_path / "state"
    try:
        sequence_id, _ = timeline.sequence_of(opened.image_rows[1].image_id)
        timeline.open(sequence_id, row=1)
        timeline.set_index(2)
        from annotator.io.sequences import open_sequence

        with open_sequence(timeline.source()) as sequence:
            path = timeline.frame_path(2, sequence)  # the PNG holds the decoded frame exactly
            assert np.array_equal(np.asarray(Image.open(path)), sequence.frame(2))
        # two objects tracked together: a click on the red disc, a box on the blue one
        first = timeline.request(((44.0, 38.0, True),), None, "ball")
        assert first.object_id == 1 and first.frame == 2
        timeline.queue(first)
        second = timeline.request((), (80.0, 10.0, 105.0, 45.0), None)
        assert second.object_id == 2 and second.category == "object"
        requests = timeline.take(second)
        assert [r.object_id for r in requests] == [1, 2] and timeline.queued == []
        timeline.direction = "both"
        result = run_here(timeline.job(str(project.path), spec, state, requests))
        assert not result.cancelled and result.summary["objects"] == [1, 2]
        timeline.refresh()
        tracks = {t.object_id: t for t in timeline.tracks}
        assert tracks[1].category == "ball" and tracks[1].prompted == {2}
        for t in tracks.values():  # every frame has a mask or is marked lost
            assert t.pending | t.lost == set(range(FRAMES)) and t.pending
        frame_masks = pending_masks(project, timeline.frames[5])
        assert {o for o, _, _ in frame_masks} <= {1, 2} and frame_masks
        assert all(m.shape == (96, 128) and m.any() for *_, m in frame_masks)

        # a correction on frame 7 for object 1: a second conditioning frame, object 2 untouched
        before2 = {f: p for f, p in TrackStore(project).track_proposals(tracks[2].track_id)}
        timeline.select(1)
        timeline.set_index(7)
        fix = timeline.request(((70.0, 38.0, True),), None, "dog")  # the click's own label
        assert fix.object_id == 1 and fix.frame == 7 and fix.category is None  # "ball" stays
        result = run_here(timeline.job(str(project.path), spec, state, timeline.take(fix)))
        timeline.refresh()
        assert timeline.track(1).prompted == {2, 7} and timeline.track(1).category == "ball"
        assert dict(TrackStore(project).track_proposals(tracks[2].track_id)) == before2

        # a track still named "object" (labels were not ready) takes a correction's label
        timeline.select(2)
        assert timeline.request(((90.0, 30.0, True),), None, "bird").category == "bird"

        # Cancel stops at the current frame; the same request goes on from there later
        timeline.select(None)
        timeline.set_index(0)
        third = timeline.request(((100.0, 80.0, True),), None, "box")
        calls = []

        def cancelled() -> bool:
            calls.append(1)
            return len(calls) > 3

        timeline.direction = "forward"
        job = timeline.job(str(project.path), spec, state, [third])
        stopped = run_here(job, cancelled)
        assert stopped.cancelled and stopped.summary["frames"] < FRAMES
        done = run_here(timeline.job(str(project.path), spec, state, [third]))
        assert done.summary["frames"] == FRAMES and not done.cancelled

        # accept a track: all its pending frames in one command; undo makes them pending again
        timeline.refresh()
        ball = timeline.track(1)
        command = AcceptTrack(project, ball.track_id, "ball")
        command.do()
        timeline.refresh()
        assert timeline.track(1).accepted == ball.pending and not timeline.track(1).pending
        assert len(command.annotation_ids) == len(ball.pending)
        assert {a.category for i in command.image_ids() for a in project.annotations(i)} >= {"ball"}
        command.undo()
        timeline.refresh()
        assert timeline.track(1).pending == ball.pending and not timeline.track(1).accepted
        assert {p.status for p in project_proposals(project, ball.track_id)} == {PENDING}
        command.do()  # redo
        assert {c.object_id for c in coverage(project, sequence_id) if c.accepted} == {1}
        assert {p.status for p in project_proposals(project, ball.track_id)} == {ACCEPTED}
    finally:
        project.close()


def _pending(project, timeline: Timeline) -> dict:
    """Every frame's pending tracked masks, bit for bit: {frame: [(object, category, mask bytes)]}
    plus the tracks' stored prompts."""
    out = {}
    for index, image_id in enumerate(timeline.frames):
        masks = pending_masks(project, image_id)
        if masks:
            out[index] = sorted((o, c, np.packbits(m).tobytes()) for o, c, m in masks)
    prompts = {t.object_id: t.prompts for t in TrackStore(project).tracks(timeline.record.id)}
    return {"masks": out, "prompts": prompts}


def _run(timeline: Timeline, project, spec, state, requests, cancelled=None) -> PropagateTrack:
    command = timeline.command(requests)  # the snapshot before the run stores anything
    job = timeline.job(str(project.path), spec, state, requests)
    run_here(job, cancelled) if cancelled is not None else run_here(job)
    command.finish()
    timeline.refresh()
    return command


def test_propagate_is_undoable_and_redo_does_not_run_the_model(
    clip_folder, video_model, tmp_path, monkeypatch
):
    """Undo of a propagation puts back the pending masks (and prompts) the run replaced, bit for
    bit; redo puts back the run's own result from the store; a cancelled run undoes too."""
    opened, project, timeline = _open(clip_folder)
    spec = ModelSpec(segmenter="sam2", checkpoint=video_model, device="cpu")
    state = tmp_path / "state"
    try:
        sequence_id, _ = timeline.sequence_of(opened.image_rows[1].image_id)
        timeline.open(sequence_id, row=1)
        empty = _pending(project, timeline)
        assert empty == {"masks": {}, "prompts": {}}
        timeline.set_index(2)
        first = _run(
            timeline, project, spec, state, [timeline.request(((44.0, 38.0, True),), None, "ball")]
        )
        after_first = _pending(project, timeline)
        assert first.changed and len(after_first["masks"]) >= 4
        # a correction on frame 6: the second run replaces the first run's pending masks
        timeline.select(1)
        timeline.set_index(6)
        fix = timeline.request(((60.0, 38.0, True),), None, None)
        second = _run(timeline, project, spec, state, [fix])
        after_second = _pending(project, timeline)
        assert after_second["prompts"][1].keys() == {"2", "6"}
        assert after_second["masks"] != after_first["masks"]  # the run changed the masks
        old_ids = {p for _, p in TrackStore(project).track_proposals(timeline.track(1).track_id)}

        second.undo()
        timeline.refresh()
        assert _pending(project, timeline) == after_first
        assert timeline.track(1).prompted == {2}
        with monkeypatch.context() as patched:  # redo must not load (or run) the model
            patched.setattr("annotator.app.propagate.load_tracker", None)
            patched.setattr("annotator.app.tracking.run_track", None)
            second.do()
        timeline.refresh()
        assert _pending(project, timeline) == after_second
        assert {
            p for _, p in TrackStore(project).track_proposals(timeline.track(1).track_id)
        } == old_ids

        # undo both: no pending mask, no track; redo the first: its masks again
        second.undo()
        first.undo()
        timeline.refresh()
        assert _pending(project, timeline) == empty and timeline.tracks == []
        first.do()
        timeline.refresh()
        assert _pending(project, timeline) == after_first
        # a run undone is not skipped by the same request later (its done marks went too)
        first.undo()
        timeline.refresh()
        timeline.set_index(2)
        ball = timeline.request(((44.0, 38.0, True),), None, "ball")
        again = _run(timeline, project, spec, state, [ball])
        assert _pending(project, timeline) == after_first and again.changed

        # a cancelled run of a new object undoes to the state before it
        timeline.select(None)
        timeline.set_index(0)
        calls = []

        def cancelled() -> bool:
            calls.append(1)
            return len(calls) > 3

        box = timeline.request(((100.0, 80.0, True),), None, "box")
        stopped = _run(timeline, project, spec, state, [box], cancelled)
        assert 2 in {t.object_id for t in timeline.tracks} and stopped.changed
        stopped.undo()
        timeline.refresh()
        assert _pending(project, timeline) == after_first
        assert {t.object_id for t in timeline.tracks} == {1}
    finally:
        project.close()


def project_proposals(project, track_id: int):
    store = TrackStore(project)
    return [store.proposals.get(p) for _, p in store.track_proposals(track_id, None)]


def test_sam1_sequences_say_they_carry_boxes(tiny_sam_path):
    note = tracking_note(ModelSpec(segmenter="sam", checkpoint=tiny_sam_path, device="cpu"))
    assert "previous frame's mask box" in note and "sam" in note


def test_a_stored_frame_folder_is_one_row_and_a_broken_video_one_line(tmp_path):
    """Frames of a folder the project holds as a sequence fold into one row (their own files
    are its frames); a video that cannot be read is one line and stores nothing."""
    from annotator.io.sequences import open_sequence

    folder = tmp_path / "data"
    frames = folder / "shots"
    frames.mkdir(parents=True)
    for i, image in enumerate(clips.frames(5)):
        Image.fromarray(image).save(frames / f"f{i + 1}.png")
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(folder / "photo.png")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    before = run_here(open_folder_job(folder))
    assert len(before.image_rows) == 6  # not a sequence yet: five frames and the photo
    assert len(before.unreadable) == 1 and "broken.mp4" in before.unreadable[0]
    project = Project.open_folder(folder)
    try:
        with open_sequence(frames) as sequence:
            TrackStore(project).add_sequence(sequence)
        assert [r.source for r in TrackStore(project).sequences()] == ["shots"]
    finally:
        project.close()
    opened, project, timeline = _open(folder)
    try:
        rows = opened.image_rows
        assert [r.name for r in rows][0] == "photo.png" and len(rows) == 2
        assert "shots" in rows[1].name and "5 frames" in rows[1].name
        assert Path(rows[1].path) == frames / "f1.png"
        sequence_id, index = timeline.sequence_of(rows[1].image_id)
        timeline.open(sequence_id, row=1)
        assert timeline.frame_path(3) == frames / "f4.png"
        assert len(project.images()) == 6  # the broken video added nothing
    finally:
        project.close()


def test_a_video_tracked_from_elsewhere_is_listed_with_its_first_frame(tmp_path):
    """`annotator track /elsewhere/v.mp4 --save FOLDER` stores a sequence whose video is outside
    the folder: the folder's list still has its row, with frame 0 written for the canvas."""
    from annotator.io.sequences import open_sequence

    folder, elsewhere = tmp_path / "data", tmp_path / "videos"
    folder.mkdir()
    elsewhere.mkdir()
    video = clips.write_video(elsewhere / "v.mp4", clips.frames(4))
    project = Project.open_folder(folder)
    try:
        with open_sequence(video) as sequence:
            TrackStore(project).add_sequence(sequence)
    finally:
        project.close()
    opened = run_here(open_folder_job(folder))
    assert [r.name for r in opened.image_rows] == ["▶ v.mp4  (4 frames)"]
    assert Path(opened.image_rows[0].path).is_file() and not opened.unreadable
