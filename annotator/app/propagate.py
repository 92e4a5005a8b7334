"""The window's sequence state (issue 25), without Qt: the sequence shown, its frame, its tracks and
their coverage, and the propagate request (objects queued for tracking), plus the propagate job,
the undoable propagation (`PropagateTrack`: its undo puts back the pending masks the run
replaced) and the undoable accept of a track.

The flow: on a frame, a click gives a mask and its labels as on any image (the window's click
path); `request` turns the click into an `ObjectRequest` for a new object (the next free object
id) or, while a track is selected, a correction of that track (a prompt on another frame is a
second conditioning frame). Several objects can be queued (`queue`) and tracked together. The
job runs `app.tracking.run_track`, the code `annotator track` runs, with a fresh project
connection in its own thread; its frames are stored as pending masks as they come, so the
timeline can be refreshed while it runs, and Cancel stops it at the current frame (the frames
stored so far stay, and the same request later goes on from there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.app.events import Event
from annotator.app.longjob import JobControl, LongJob
from annotator.app.review import ReviewCommand
from annotator.app.sequences import (
    FrameFiles,
    TrackCoverage,
    coverage,
    frame_file,
    source_path,
    write_frame,
)
from annotator.app.tracking import DEFAULT_CATEGORY, ObjectRequest
from annotator.store.tracks import SequenceRecord, TrackState, TrackStore

DIRECTIONS = ("forward", "backward", "both")
BOX_CARRY_NOTE = (
    "{family} has no video memory: each frame is prompted with the previous frame's mask box"
)


class Timeline:
    """The sequence on the canvas and what the timeline shows; `changed` fires after every change
    (the views redraw), `frame` when another frame is current (its image id)."""

    def __init__(self) -> None:
        self.changed = Event("timeline")  # ()
        self.frame = Event("frame")  # (image_id) the current frame changed
        self.project: Any = None
        self.folder: Path | None = None
        self._frame_of: dict[int, tuple[int, int]] = {}  # image id -> (sequence id, index)
        self.record: SequenceRecord | None = None
        self.row: int | None = None  # the image list's row of the sequence
        self.frames: list[int] = []  # image id of every frame
        self.index = 0
        self.tracks: list[TrackCoverage] = []
        self.queued: list[ObjectRequest] = []
        self.selected: int | None = None  # the object a correction goes to (None: a new one)
        self.direction = "forward"
        self.note = ""  # what the tracker does for this model (box carry) or its last run did

    # ------------------------------------------------------------------ the folder
    def set_project(self, project: Any, folder: Path | None) -> None:
        """A folder was opened: forget the old sequence, learn which images are frames."""
        self.project, self.folder = project, folder
        self._frame_of = TrackStore(project).frame_of_image() if project is not None else {}
        self.close()

    def sequence_of(self, image_id: int | None) -> tuple[int, int] | None:
        """(sequence id, frame index) of a frame image, None for an ordinary image."""
        return None if image_id is None else self._frame_of.get(image_id)

    def open(self, sequence_id: int, row: int | None, index: int = 0) -> None:
        """Show this sequence (its list row `row`) at frame `index`."""
        store = TrackStore(self.project)
        if self.record is None or self.record.id != sequence_id:
            self.record = store.sequence(sequence_id)
            self.frames = store.frame_images(sequence_id)
            self.queued, self.selected = [], None
        self.row = row
        self.index = max(0, min(index, len(self.frames) - 1))
        self.refresh()

    def close(self) -> None:
        self.record, self.row, self.frames, self.tracks = None, None, [], []
        self.queued, self.selected, self.index = [], None, 0
        self.changed.emit()

    @property
    def active(self) -> bool:
        return self.record is not None

    @property
    def image_id(self) -> int | None:
        return self.frames[self.index] if self.frames else None

    def refresh(self) -> None:
        """Re-read the tracks' coverage from the store (after a run, an accept, an undo)."""
        self.tracks = coverage(self.project, self.record.id) if self.record is not None else []
        if self.selected is not None and self.track(self.selected) is None:
            self.selected = None
        self.changed.emit()

    def track(self, object_id: int | None) -> TrackCoverage | None:
        return next((t for t in self.tracks if t.object_id == object_id), None)

    # ------------------------------------------------------------------ frames
    def source(self) -> Path:
        assert self.record is not None and self.folder is not None
        return source_path(self.folder, self.record)

    def frame_path(self, index: int, sequence: Any = None) -> Path:
        """Frame `index` as a file; a video's frame is written first (from the open `sequence`,
        off the GUI thread) when it is not there yet."""
        assert self.record is not None and self.folder is not None
        name = self.project.image(self.frames[index]).file_name
        path = frame_file(self.folder, self.record, name, index)
        if self.record.kind == "video" and sequence is not None:
            write_frame(path, sequence, index)
        return path

    def frame_names(self) -> list[str]:
        """The stored file name of every frame (one query; a frame folder's files)."""
        assert self.record is not None
        rows = self.project.read(
            "SELECT i.file_name FROM sequence_frames f JOIN images i ON i.id = f.image_id"
            " WHERE f.sequence_id = ? ORDER BY f.frame_index",
            (self.record.id,),
        )
        return [str(r[0]) for r in rows]

    def files(self) -> FrameFiles:
        """The current sequence's frames as files, for a loader thread (no project inside)."""
        assert self.record is not None and self.folder is not None
        return FrameFiles(self.folder, self.record, self.frame_names())

    def row_of_source(self, rows: list[Any], source: str | Path) -> int | None:
        """The image-list row of the sequence read from `source` (a video file), if listed."""
        if self.project is None or self.folder is None:
            return None
        wanted = Path(source).resolve()
        store = TrackStore(self.project)
        for position, row in enumerate(rows):
            found = self._frame_of.get(row.image_id)
            if found is not None:
                record = store.sequence(found[0])
                if source_path(self.folder, record).resolve() == wanted:
                    return position
        return None

    def set_index(self, index: int) -> bool:
        """Make frame `index` current (clamped); False when it already is."""
        index = max(0, min(int(index), len(self.frames) - 1))
        if index == self.index or not self.frames:
            return False
        self.index = index
        self.frame.emit(self.frames[index])
        self.changed.emit()
        return True

    # ------------------------------------------------------------------ the propagate request
    def next_object_id(self) -> int:
        used = [t.object_id for t in self.tracks] + [r.object_id for r in self.queued]
        return max(used, default=0) + 1

    def select(self, object_id: int | None) -> None:
        """Corrections go to this track (None: the next click is a new object)."""
        self.selected = object_id if self.track(object_id) is not None else None
        self.changed.emit()

    def request(
        self,
        points: tuple[tuple[float, float, bool], ...],
        box: tuple[float, float, float, float] | None,
        category: str | None,
    ) -> ObjectRequest | None:
        """The click on the current frame as an object request: a new object named by the
        click's label (`DEFAULT_CATEGORY` while labels are not ready), or a correction of the
        selected track, which keeps its category (a track still named `DEFAULT_CATEGORY` takes
        the correction's label). None without a prompt."""
        if not points and box is None:
            return None
        name = " ".join((category or "").split()) or None
        selected = self.track(self.selected)
        if selected is not None:
            object_id = selected.object_id
            if selected.category != DEFAULT_CATEGORY:
                name = None  # the track's own category stays
        else:
            object_id = self.next_object_id()
            name = name or DEFAULT_CATEGORY
        return ObjectRequest(object_id, self.index, list(points), box, name)

    def again(self) -> ObjectRequest | None:
        """The selected track's own prompt on its first prompted frame, as a request: Propagate
        without a new click tracks it again from its stored prompts (after a Cancel, the run
        with the same prompts goes on from its checkpoint instead of starting over)."""
        if self.record is None or self.selected is None:
            return None
        track = TrackStore(self.project).track_by_object(self.record.id, self.selected)
        if track is None or not track.prompts:
            return None
        frame, data = min(track.prompts.items(), key=lambda kv: int(kv[0]))
        labels = data.get("labels") or []
        points = [
            (float(x), float(y), bool(v))
            for (x, y), v in zip(data.get("points") or [], labels, strict=True)
        ]
        box = tuple(float(v) for v in data["box"]) if data.get("box") else None
        return ObjectRequest(track.object_id, int(frame), points, box, None)  # type: ignore[arg-type]

    def queue(self, request: ObjectRequest | None) -> bool:
        """Add an object to the next propagation (several are tracked together)."""
        if request is None:
            return False
        self.queued = [
            r for r in self.queued if (r.object_id, r.frame) != (request.object_id, request.frame)
        ]
        self.queued.append(request)
        self.changed.emit()
        return True

    def take(self, request: ObjectRequest | None) -> list[ObjectRequest]:
        """The queued objects plus `request`, the queue emptied (the job runs them)."""
        self.queue(request)
        out, self.queued = self.queued, []
        self.changed.emit()
        return out

    def job(
        self, location: str, spec: Any, state_dir: Path, requests: list[ObjectRequest]
    ) -> LongJob:
        assert self.record is not None
        count = len({r.object_id for r in requests})
        objects = "1 object" if count == 1 else f"{count} objects"
        return LongJob(
            f"Propagating {objects} ({self.direction})",
            propagate,
            (location, spec, str(self.source()), requests, self.direction, state_dir),
        )

    def command(self, requests: list[ObjectRequest]) -> PropagateTrack:
        """The undoable step of a propagation of `requests`, taken before its job starts."""
        assert self.record is not None
        return PropagateTrack(self.project, self.record.id, [r.object_id for r in requests])


def state_dir(spec: Any) -> Path:
    """Where a propagation keeps its checkpoint (as `annotator track` does: the cache's
    `tracking/`), so a cancelled or killed run goes on from where it stopped."""
    from annotator.cache import default_cache_dir

    return Path(spec.cache_dir or default_cache_dir()) / "tracking"


@dataclass
class PropagateResult:
    """What a propagation did: `annotator track`'s summary, and whether Cancel stopped it."""

    summary: dict
    cancelled: bool = False
    stopped_at: int | None = None  # the last frame stored when cancelled
    notes: list[str] = field(default_factory=list)


_TRACKERS: dict[tuple, Any] = {}  # the last tracker loaded (the next propagation reuses it)


def load_tracker(spec: Any) -> Any:
    """The tracker `annotator track` would use for this model choice (video memory or box carry);
    the last one is kept, so a correction does not load the model again."""
    from annotator.models.hf_segmenter import resolve_device
    from annotator.models.trackers import load_tracker as load

    device = str(resolve_device(spec.device))
    key = (str(spec.checkpoint), spec.segmenter, device)
    if key not in _TRACKERS:
        _TRACKERS.clear()
        _TRACKERS[key] = load(spec.checkpoint, spec.segmenter, device)
    return _TRACKERS[key]


def tracking_note(spec: Any) -> str:
    """ "" when the model choice tracks with a video memory, else the box-carry note the window
    shows (SAM 1, HQ-SAM, or an image-only SAM 2.1 / EdgeTAM checkpoint)."""
    from annotator.models.registry import detect_family
    from annotator.models.tracking import VIDEO_MODEL_TYPES, is_video_folder

    if spec.checkpoint is None:
        return ""  # the default weights: the run's summary says which way it tracked
    else:
        try:
            family = spec.segmenter or detect_family(Path(spec.checkpoint))
        except Exception:  # noqa: BLE001 - an unreadable checkpoint: the load will say why
            return ""
        if family in VIDEO_MODEL_TYPES and is_video_folder(spec.checkpoint, family):
            return ""
    return BOX_CARRY_NOTE.format(family=family)


def propagate(
    control: JobControl,
    location: str,
    spec: Any,
    source: str,
    requests: list[ObjectRequest],
    direction: str,
    state_dir: Path,
) -> PropagateResult:
    """The long job: track `requests` through the sequence at `source`, storing pending masks
    frame by frame (progress with frames/s; Cancel stops at the current frame)."""
    from annotator.app.tracking import run_track
    from annotator.io.sequences import open_sequence
    from annotator.store import Project

    project = Project(location)
    try:
        with open_sequence(source) as sequence:
            control.progress(0, len(sequence), "loading the tracker")
            tracker = load_tracker(spec)
            notes = []
            if getattr(tracker, "mode", "") == "box-carry":
                notes.append(BOX_CARRY_NOTE.format(family=getattr(tracker, "family", "SAM")))
            started, steps = time.monotonic(), [0]
            last = [0]

            def progress(done: int, total: int) -> None:
                steps[0] += 1
                last[0] = done
                rate = steps[0] / max(time.monotonic() - started, 1e-6)
                control.progress(done, total, f"{rate:.1f} frames/s")

            summary = run_track(
                project,
                sequence,
                tracker,
                requests,
                state_dir,
                direction,
                progress=progress,
                cancelled=control.cancelled,
            )
    finally:
        project.close()
    cancelled = control.cancelled()
    return PropagateResult(summary, cancelled, last[0] if cancelled else None, notes)


class AcceptTrack(ReviewCommand):
    """Accept every pending frame of a track in one transaction; undo makes them pending again."""

    def __init__(self, project: Any, track_id: int, label: str = "") -> None:
        self.store = TrackStore(project)
        self.track_id = track_id
        self.proposal_ids: list[int] = []
        self.annotation_ids: list[int] = []
        self.text = f"accept track {label}".strip()

    def do(self) -> None:
        with self.store.project.transaction():
            self.proposal_ids = [p for _, p in self.store.track_proposals(self.track_id)]
            self.annotation_ids = self.store.accept_track(self.track_id)

    def undo(self) -> None:
        self.store.proposals.unaccept_many(self.proposal_ids)

    def image_ids(self) -> set[int]:
        return {self.store.proposals.get(p).image_id for p in self.proposal_ids}


class PropagateTrack(ReviewCommand):
    """A propagation as one undoable step. A run replaces its tracks' earlier pending masks (and
    their prompts), so the command snapshots the stored rows it can change before the run
    (`TrackStore.track_state`) and again once it has ended (`finish`, done or cancelled): undo
    puts the first back, redo the second; the model never runs again."""

    def __init__(self, project: Any, sequence_id: int, object_ids: list[int]) -> None:
        self.store = TrackStore(project)
        self.before = self.store.track_state(sequence_id, object_ids)
        self.after: TrackState | None = None
        names = ", ".join(str(o) for o in self.before.object_ids)
        self.text = f"propagate object {names}"

    def finish(self) -> None:
        """The run has ended (however): keep what it stored, for redo."""
        self.after = self.store.track_state(self.before.sequence_id, self.before.object_ids)

    def do(self) -> None:
        if self.after is None:
            raise RuntimeError("a propagation is redone only after its run has finished")
        self.store.restore_tracks(self.after)

    def undo(self) -> None:
        self.store.restore_tracks(self.before)

    @property
    def changed(self) -> bool:
        """False when the run stored nothing new (nothing to undo)."""
        return self.after is not None and self.after != self.before


__all__ = [
    "BOX_CARRY_NOTE",
    "DIRECTIONS",
    "AcceptTrack",
    "PropagateTrack",
    "PropagateResult",
    "Timeline",
    "load_tracker",
    "propagate",
    "state_dir",
    "tracking_note",
]
