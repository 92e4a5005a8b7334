"""The window on a video (issue 25), with a real tiny SAM 2.1 video folder as the segmenter: the
video is one row with a timeline; a click on a frame, Propagate (its registered action), pending
masks on later frames and on the timeline, a correction on another frame, Accept track, undo."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.app.sequences import pending_masks
from annotator.gui.settings import ModelConfig
from annotator.store.tracks import TrackStore
from tests import clips, tiny_video
from tests.gui.conftest import click, open_window, wait_proposal

FRAMES = 10


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sam2_video_gui")
    tiny_video.save("sam2", folder)
    return folder


@pytest.fixture
def video_window(qtbot, tmp_path, engine_args, video_model):
    folder = tmp_path / "data"
    folder.mkdir()
    clips.write_video(folder / "clip.mp4", clips.frames(FRAMES))
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(folder / "photo.png")
    vocab = tmp_path / "vocabulary.txt"
    shutil.copy(engine_args["vocabulary"], vocab)
    config = ModelConfig(
        segmenter="sam2",
        checkpoint=str(video_model),
        clip_config=str(engine_args["clip_config"]),
        clip_weights=str(engine_args["clip_weights"]),
        vocabulary=str(vocab),
        device="cpu",
    )
    return open_window(qtbot, tmp_path, config, folder)


def _go_frame(qtbot, window, index: int) -> None:
    view = window.timeline
    view.go_frame(index)
    frame = view.model.frames[index]
    qtbot.waitUntil(
        lambda: window.image_id == frame and window.canvas.image_size() is not None,
        timeout=60_000,
    )
    qtbot.wait(50)


def _propagate(qtbot, window) -> None:
    with qtbot.waitSignal(window.jobs.finished, timeout=180_000):
        window.key_actions["track.propagate"].trigger()  # the registered action (Ctrl+T)


def _pending_rows(store: TrackStore, track_id: int) -> list[tuple]:
    """A track's pending masks as stored: (frame, proposal id, RLE counts, category) each."""
    out = []
    for frame, pid in store.track_proposals(track_id):
        proposal = store.project.read("SELECT rle, category FROM proposals WHERE id = ?", (pid,))
        out.append((frame, pid, *proposal[0]))
    return out


def test_click_propagate_correct_accept_undo(qtbot, video_window):
    window = video_window
    view, model = window.timeline, window.timeline.model
    rows = window.session.rows
    assert len(rows) == 2 and "clip.mp4" in rows[1].name and f"{FRAMES} frames" in rows[1].name
    assert not model.active
    window.go_to(1)
    qtbot.waitUntil(lambda: model.active and window.canvas.image_size() == (96, 128))
    assert view.dock.isVisible() and len(model.frames) == FRAMES
    assert model.note == ""  # a video folder: the video memory, no box-carry note

    _go_frame(qtbot, window, 2)
    assert view.panel.slider.value() == 2
    click(qtbot, window, 44, 38)
    pending = wait_proposal(qtbot, window)
    assert pending.mask.any()
    # Cancel stops at the current frame and keeps what was stored ...
    with qtbot.waitSignal(window.jobs.finished, timeout=180_000):
        window.key_actions["track.propagate"].trigger()  # the registered action (Ctrl+T)
        window.cancel_job()
    assert "cancelled at frame" in window.statusBar().currentMessage()
    stopped = model.track(1)
    assert stopped is not None and 1 <= len(stopped.pending | stopped.lost) < FRAMES - 2
    assert model.selected == 1
    store = TrackStore(window.session.project)
    kept = store.track_proposals(stopped.track_id)
    # ... and Propagate with no new click tracks the selected track again, from there: the same
    # run goes on (the frames stored before the Cancel keep their masks, none is stored twice)
    _propagate(qtbot, window)
    assert set(kept) <= set(store.track_proposals(stopped.track_id))
    track = model.track(1)
    assert track is not None and track.prompted == {2}
    assert track.pending and track.pending | track.lost == set(range(2, FRAMES))
    assert model.selected == 1  # the new track is the one a correction goes to

    later = max(track.pending)
    _go_frame(qtbot, window, later)
    qtbot.waitUntil(lambda: view.pending_shown() == 1, timeout=60_000)

    # a correction click on another frame: a second conditioning frame, tracked again
    _go_frame(qtbot, window, 6)
    first_run = _pending_rows(store, track.track_id)
    click(qtbot, window, 60, 38)
    wait_proposal(qtbot, window)
    _propagate(qtbot, window)
    assert model.track(1).prompted == {2, 6} and len(model.tracks) == 1
    corrected = _pending_rows(store, track.track_id)
    assert corrected != first_run

    # Ctrl+Z undoes the propagation: the first run's pending masks come back, bit for bit, and
    # the timeline and the canvas redraw; redo puts the correction's masks back (no model run)
    window.key_actions["edit.undo"].trigger()
    assert _pending_rows(store, track.track_id) == first_run
    assert model.track(1).prompted == {2} and model.track(1).pending == track.pending
    shown = pending_masks(window.session.project, window.session.image_id)
    assert view.pending_shown() == len(shown)
    window.key_actions["edit.redo"].trigger()
    assert _pending_rows(store, track.track_id) == corrected
    assert model.track(1).prompted == {2, 6}

    # accept the track: all its frames in one undoable step
    frames = model.track(1).pending
    assert window.key_actions["track.accept"] is not None
    assert view.accept_track()
    accepted = model.track(1).accepted
    assert accepted == frames and not model.track(1).pending
    project = window.session.project
    assert len(project.annotations(model.frames[later])) == 1
    window.undo_stack.undo()
    assert model.track(1).pending == frames and not model.track(1).accepted
    assert project.annotations(model.frames[later]) == []
    window.undo_stack.redo()
    assert model.track(1).accepted == frames

    # a frame's image id (the review queue, an undo step) shows that frame of its sequence
    window.go_to_image_id(model.frames[3])
    qtbot.waitUntil(lambda: window.image_id == model.frames[3] and model.index == 3)


def test_annotator_video_opens_it_and_sam1_says_it_carries_boxes(qtbot, tmp_path, model_config):
    """`annotator VIDEO.mp4` (the window's entry, `create_window`): its folder opens with the
    video shown and its timeline; with SAM 1 the timeline says frames get the previous box."""
    from types import SimpleNamespace

    from annotator.gui.app import create_window
    from annotator.gui.settings import AppSettings

    folder = tmp_path / "clips"
    folder.mkdir()
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(folder / "a_photo.png")
    video = clips.write_video(folder / "walk.mp4", clips.frames(6))
    settings = AppSettings(tmp_path / "settings.ini")
    window = create_window(video, SimpleNamespace(**model_config.__dict__), settings)
    qtbot.addWidget(window)
    window.show()
    model = window.timeline.model
    qtbot.waitUntil(
        lambda: model.active and window.canvas.image_size() == (96, 128), timeout=60_000
    )
    assert window.session.row == 1 and len(model.frames) == 6
    assert "previous frame's mask box" in model.note
    assert window.timeline.panel.note.isVisibleTo(window.timeline.panel)
    window.timeline.go_frame(4)
    qtbot.waitUntil(lambda: window.image_id == model.frames[4], timeout=60_000)
    assert window.timeline.panel.frame_label.text() == "frame 4 / 5"
    window.go_to(0)  # an ordinary image: the timeline closes
    qtbot.waitUntil(lambda: not model.active)
    assert not window.timeline.dock.isVisible()
