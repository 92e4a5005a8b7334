"""Sequences in the window (issue 25): the timeline dock, frame switching, Propagate, Accept track.

A sequence is one row of the image list whose image id and path are those of its current frame
(`app/sequences.py`), so the canvas, the click path and the engine work on a frame as on any image.
Going to another frame writes its file in a loader thread (newest request wins), then re-shows the
row. Propagate turns the waiting click into an object request (`app.propagate.Timeline`) and runs
the tracking job off the GUI thread through the window's long-job runner (progress with frames/s
and ETA, Cancel); while it runs, the timeline and the shown frame's pending masks are re-read from
the store every `STREAM_MS`, so results appear as they are stored. A propagation (however it
ends) and accepting a track are each one `QUndoCommand` around the Qt-free `PropagateTrack` /
`AcceptTrack`: Ctrl+Z after a Propagate puts the pending masks it replaced back.

`SequenceView` is given the window (`host`) because it drives the window's own switching and job
runner; it keeps no annotating state (that is the `Timeline`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QDockWidget

from annotator.app.propagate import (
    AcceptTrack,
    PropagateResult,
    PropagateTrack,
    Timeline,
    state_dir,
    tracking_note,
)
from annotator.app.sequences import FrameFiles, pending_masks
from annotator.app.transfer import project_location
from annotator.errors import AnnotatorError
from annotator.gui.overlays import MaskItem
from annotator.gui.timeline import TimelinePanel, track_rgb

STREAM_MS = 700  # how often a running propagation's stored frames are re-read


class FrameLoader(QObject):
    """Writes (or finds) frame files off the GUI thread; the newest request wins."""

    ready = Signal(int, int, str)  # request id, frame index, path
    failed = Signal(int, str)  # request id, one line

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._job: tuple[int, int] | None = None
        self.files: FrameFiles | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="frame-loader", daemon=True)
        self._thread.start()

    def use(self, files: FrameFiles | None) -> None:
        with self._lock:
            old, self.files = self.files, files
        if old is not None and old is not files:
            old.close()

    def request(self, request_id: int, index: int) -> None:
        with self._lock:
            self._job = (request_id, index)
        self._event.set()

    def close(self) -> None:
        self._closing = True
        self._event.set()
        self._thread.join(timeout=5)
        self.use(None)

    def _loop(self) -> None:
        while True:
            self._event.wait()
            self._event.clear()
            if self._closing:
                return
            with self._lock:
                job, self._job, files = self._job, None, self.files
            if job is None or files is None:
                continue
            try:
                path = files.path(job[1])
            except Exception as error:  # noqa: BLE001 - one line in the window, the loader goes on
                message = str(error) if isinstance(error, AnnotatorError | OSError) else repr(error)
                if not self._closing:
                    self.failed.emit(job[0], f"frame {job[1]}: {message}")
                continue
            if not self._closing:
                self.ready.emit(job[0], job[1], str(path))


class TrackCommand(QUndoCommand):
    """Accept a track, or a propagation, on the window's undo stack; the view re-reads the store
    after each step. A propagation is pushed once its run has stored its result (`done`): the
    push's first redo then has nothing to do."""

    def __init__(
        self, command: AcceptTrack | PropagateTrack, view: SequenceView, done: bool = False
    ) -> None:
        super().__init__(command.text)
        self.command, self.view, self._skip = command, view, done

    def redo(self) -> None:
        if self._skip:
            self._skip = False
            return
        self.command.do()
        self.view.edited()

    def undo(self) -> None:
        self.command.undo()
        self.view.edited()


class SequenceView(QObject):
    """The timeline dock and the sequence actions of the window `host`."""

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.host = host
        self.model = Timeline()
        self.panel = TimelinePanel(self.model)
        self.dock = QDockWidget("Timeline", host)
        self.dock.setObjectName("timeline")
        self.dock.setWidget(self.panel)
        host.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.loader = FrameLoader(self)
        self.loader.ready.connect(self._frame_ready)
        self.loader.failed.connect(lambda _r, text: host.show_error(text))
        self._req = 0
        self._overlays: list[MaskItem] = []
        self._open_after: Path | None = None
        self.running = False
        self._undoable: PropagateTrack | None = None  # the running propagation's undo step
        self.stream = QTimer(self)
        self.stream.setInterval(STREAM_MS)
        self.stream.timeout.connect(self._streamed)
        host.session.events.folder.connect(self._folder)
        host.image_selected.connect(self._selected)
        host.image_shown.connect(self._shown)
        p = self.panel
        p.frame_chosen.connect(self.go_frame)
        p.propagate.connect(self.propagate)
        p.add_object.connect(self.add_object)
        p.accept_track.connect(self.accept_track)
        self.dock.setVisible(False)  # shown while a sequence is on the canvas

    def slots(self) -> dict[str, Any]:
        """The registered actions (`app.keys`) this view answers."""
        return {
            "track.propagate": self.propagate,
            "track.add": self.add_object,
            "track.accept": self.accept_track,
            "view.previous_frame": lambda: self.go_frame(self.model.index - 1),
            "view.next_frame": lambda: self.go_frame(self.model.index + 1),
        }

    def close(self) -> None:
        self.stream.stop()
        self.loader.close()

    # ------------------------------------------------------------------ following the window
    def open_video_after(self, path: Path) -> None:
        """`annotator VIDEO.mp4`: once its folder is open, show this video's row."""
        self._open_after = Path(path)

    def _folder(self) -> None:
        s = self.host.session
        self.loader.use(None)
        self.model.set_project(s.project, s.folder)
        if self._open_after is not None:
            QTimer.singleShot(0, self._show_video)

    def _show_video(self) -> None:
        path, self._open_after = self._open_after, None
        row = self.model.row_of_source(self.host.session.rows, path)
        if row is None:
            self.host.show_error(f"{path.name}: not listed (see the messages above)")
        else:
            self.host.go_to(row)

    def _selected(self, image_id: int) -> None:
        """Another image is going up: a frame opens (or moves) the timeline, others close it."""
        self._clear_overlays()
        found = self.model.sequence_of(image_id)
        if found is None:
            if self.model.active:
                self.model.close()
                self.loader.use(None)
            self.dock.setVisible(False)
            return
        sequence_id, index = found
        row = self.host.session.row
        if self.model.record is None or self.model.record.id != sequence_id:
            self.model.open(sequence_id, row, index)
            self.loader.use(self.model.files())
            self._set_note()
        else:
            self.model.row, self.model.index = row, index
            self.model.changed.emit()
        self.dock.setVisible(True)

    def _set_note(self) -> None:
        try:
            note = tracking_note(self.host.config.to_spec(self.host.cache_dir))
        except AnnotatorError:
            note = ""
        self.model.note = note
        self.model.changed.emit()

    def _shown(self, image_id: int) -> None:
        self._draw_pending(image_id)

    def show_image(self, image_id: int) -> bool:
        """Go to a frame image that is not a row of its own (an undo, the review queue); False
        when it is no frame of a listed sequence."""
        found = self.model.sequence_of(image_id)
        if found is None:
            return False
        sequence_id, index = found
        if self.model.record is not None and self.model.record.id == sequence_id:
            self.go_frame(index)
            return True
        for row, r in enumerate(self.host.session.rows):
            other = self.model.sequence_of(r.image_id)
            if other is not None and other[0] == sequence_id:
                self.host.go_to(row)
                QTimer.singleShot(0, lambda: self.go_frame(index))
                return True
        return False

    # ------------------------------------------------------------------ frames
    def go_frame(self, index: int) -> None:
        if not self.model.active or not self.model.frames:
            return
        index = max(0, min(index, len(self.model.frames) - 1))
        self.model.set_index(index)
        self._req += 1
        self.loader.request(self._req, index)

    def _frame_ready(self, request_id: int, index: int, path: str) -> None:
        m, s = self.model, self.host.session
        if request_id != self._req or not m.active or m.row is None or m.row >= len(s.rows):
            return
        row = s.rows[m.row]
        if row.image_id == m.frames[index] and s.row == m.row and s.display_image is not None:
            return  # already shown
        s.show_frame(m.row, m.frames[index], path)
        self.host.go_to(m.row)  # the window switches to the frame as to another image

    # ------------------------------------------------------------------ pending masks
    def _clear_overlays(self) -> None:
        scene = self.host.canvas.scene()
        for item in self._overlays:
            item.remove(scene)
        self._overlays = []

    def _draw_pending(self, image_id: int | None) -> None:
        self._clear_overlays()
        project = self.host.session.project
        if image_id is None or project is None or self.model.sequence_of(image_id) is None:
            return
        if self.host.canvas.image_size() is None:
            return
        scene = self.host.canvas.scene()
        for object_id, category, mask in pending_masks(project, image_id):
            item = MaskItem(scene, 8)
            item.show_mask(mask, track_rgb(object_id, category), 90, 1.5, dashed=True)
            self._overlays.append(item)

    def pending_shown(self) -> int:
        """How many pending tracked masks are drawn on the canvas now (tests, the status)."""
        return len(self._overlays)

    # ------------------------------------------------------------------ propagate
    def _click(self):
        s = self.host.session
        pending = s.pending
        category = pending.labels[0][0] if pending is not None and pending.labels else None
        return self.model.request(s.points, s.box, category)

    def add_object(self) -> None:
        """Queue the clicked object; the next Propagate tracks it with the others."""
        if not self.model.active:
            self.host.show_status("Open a video or a frame sequence first", 5000)
            return
        request = self._click()
        if not self.model.queue(request):
            self.host.show_status("Click or box an object on this frame first", 5000)
            return
        self.host.controller.clear()
        self.model.select(None)  # the next click is another new object
        self.host.show_status(
            f"Object {request.object_id} ({request.category or 'its category'}) queued: "
            "click the next one, or Propagate",
            6000,
        )

    def propagate(self) -> bool:
        """Track the clicked object (and the queued ones) in a long job; False if nothing ran."""
        m, host = self.model, self.host
        if not m.active:
            host.show_status("Propagate works on a video or a frame sequence", 5000)
            return False
        request = self._click()
        if request is None and not m.queued:
            request = m.again()  # the selected track again, from its own prompts
        if request is None and not m.queued:
            host.show_status("Click or box an object on this frame first, then Propagate", 5000)
            return False
        try:
            spec = host.config.to_spec(host.cache_dir)
        except AnnotatorError as error:
            host.show_error(str(error))
            return False
        requests = m.take(request)
        job = m.job(project_location(host.session.project), spec, state_dir(spec), requests)
        self._undoable = m.command(requests)  # what the run will replace, before it runs
        if not host.start_job(job, self._propagated, self._ended):
            self._undoable = None
            m.queued = requests
            m.changed.emit()
            return False
        self.running = True
        self._run_objects = [r.object_id for r in requests]
        host.controller.clear()  # the click is now the track's prompt
        if m.note:
            host.show_status(m.note, 8000)
        self.stream.start()
        return True

    def _streamed(self) -> None:
        if self.model.active:
            self.model.refresh()
            self._draw_pending(self.host.session.image_id)

    def _ended(self) -> None:
        """However the run ended (done, cancelled, failed), what it stored is one undo step."""
        self.running = False
        self.stream.stop()
        command, self._undoable = self._undoable, None
        if command is not None and self.host.session.project is command.store.project:
            command.finish()
            if command.changed:
                self.host.undo_stack.push(TrackCommand(command, self, done=True))
        self._streamed()

    def _propagated(self, result: PropagateResult) -> None:
        summary, m = result.summary, self.model
        if result.notes:
            m.note = " ".join(result.notes)
        if m.selected is None and self._run_objects:
            m.select(self._run_objects[0])
        m.refresh()
        review = getattr(self.host, "review", None)
        if review is not None and not review.running:
            review.refresh(show=False)
        rate = summary.get("frames_per_second")
        speed = f", {rate:.1f} frames/s" if rate else ""
        if result.cancelled:
            text = (
                f"Propagation cancelled at frame {result.stopped_at}: {summary['frames']} frames "
                "kept as pending (Propagate again goes on from there)"
            )
        else:
            text = (
                f"Propagated {len(summary['objects'])} object(s) over {summary['frames']} frames"
                f"{speed}: {summary['pending']} pending masks (Accept track keeps them)"
            )
        self.host.show_status(text, 10000)

    # ------------------------------------------------------------------ accept
    def accept_track(self) -> bool:
        m = self.model
        track = m.track(m.selected) or (m.tracks[0] if len(m.tracks) == 1 else None)
        if track is None or not track.pending:
            self.host.show_status("Select a track with pending frames on the timeline", 5000)
            return False
        if not self.host.session.can_edit():
            return False
        command = AcceptTrack(
            self.host.session.project, track.track_id, f"{track.object_id} {track.category}"
        )
        self.host.undo_stack.push(TrackCommand(command, self))
        count = len(command.annotation_ids)
        self.host.show_status(f"Accepted {count} frames of {track.category}", 6000)
        return True

    def edited(self) -> None:
        """A track's frames were accepted or un-accepted: timeline, canvas and queue follow."""
        self.model.refresh()
        image_id = self.host.session.image_id
        if image_id is not None:
            self.host.refresh_image(image_id)
        self._draw_pending(image_id)
        review = getattr(self.host, "review", None)
        if review is not None and not review.running:
            review.refresh(show=False)


__all__ = ["FrameLoader", "SequenceView", "TrackCommand"]
