"""Sequences in the window's image list (issue 25): one row per video or stored frame folder, the
frames it shows as files, and which frames each track covers. No Qt.

The window's list, loader and engine work on image files, so a sequence row is an ordinary
`ImageRow` whose image id and path are those of the frame it shows: a frame folder's frame is its
own file, a video's frame is written once as a lossless PNG under `.annotator/frames/` (the pixels
the tracker sees, so a click's mask and the tracked masks agree) when it is first shown.

When a folder is opened (`fold_sequences`, in the folder job's child process) every video file in
it becomes a sequence of the project (its frames project images), and the frames of every stored
sequence (a frame folder tracked with `annotator track`, or a video) are folded into one row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.errors import AnnotatorError, SequenceError
from annotator.io.sequences import is_video, open_sequence
from annotator.store.files import PROJECT_DIR
from annotator.store.proposals import ACCEPTED, PENDING
from annotator.store.tracks import SequenceRecord, TrackStore

FRAMES_DIR = "frames"  # under the project's `.annotator/`: frames of videos written as PNG
Row = tuple[int, str, str, int]  # image id, name, path, annotation count (OpenedFolder.rows)


def list_videos(folder: Path) -> list[Path]:
    """Video files under `folder` (recursively, hidden folders skipped), sorted by path."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory, f) for f in files if not f.startswith(".") and is_video(f)]
    return sorted(found)


def source_path(folder: Path, record: SequenceRecord) -> Path:
    """The video file or frame folder of a stored sequence (its source is relative to the
    project folder when inside it)."""
    path = Path(record.source)
    return path if path.is_absolute() else Path(folder) / path


def row_name(record: SequenceRecord) -> str:
    """What the image list shows for a sequence: its name and frame count."""
    return f"▶ {Path(record.source).name}  ({record.frame_count} frames)"


def frame_file(folder: Path, record: SequenceRecord, file_name: str, index: int) -> Path:
    """Where frame `index` is a file: the frame folder's own file, or the video frame's PNG
    (which `write_frame` makes)."""
    if record.kind == "folder":
        return source_path(folder, record) / Path(file_name).name
    return Path(folder) / PROJECT_DIR / FRAMES_DIR / str(record.id) / f"{index:06d}.png"


def write_frame(path: Path, sequence: Any, index: int) -> Path:
    """Write frame `index` of an open video `sequence` to `path` (PNG, lossless), unless there."""
    if path.is_file():
        return path
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.png")
    Image.fromarray(sequence.frame(index)).save(partial, compress_level=1)
    os.replace(partial, path)
    return path


class FrameFiles:
    """The frames of one sequence as files, for a thread of the window: a video stays open, so
    stepping forward decodes each frame once; only frames asked for are written."""

    def __init__(self, folder: Path, record: SequenceRecord, names: list[str]) -> None:
        self.folder, self.record, self.names = Path(folder), record, names
        self._sequence: Any = None

    def path(self, index: int) -> Path:
        path = frame_file(self.folder, self.record, self.names[index], index)
        if self.record.kind == "video" and not path.is_file():
            if self._sequence is None:
                self._sequence = open_sequence(source_path(self.folder, self.record))
            write_frame(path, self._sequence, index)
        return path

    def close(self) -> None:
        if self._sequence is not None:
            self._sequence.close()
            self._sequence = None


def fold_sequences(
    project: Any, folder: Path, rows: list[Row], unreadable: list[str], check=lambda: None
) -> list[Row]:
    """`rows` with every video under `folder` added as a sequence and the frames of each stored
    sequence folded into one row (placed where its first frame was, videos at the end). A video
    that cannot be read is left out with one line in `unreadable`."""
    store = TrackStore(project)
    for video in list_videos(folder):
        check()
        source = video.resolve()
        try:
            known = store.sequence_by_source(source.relative_to(folder.resolve()).as_posix())
        except ValueError:
            known = None
        if known is not None:
            continue
        try:
            with open_sequence(video) as sequence:
                sequence_id = store.add_sequence(sequence)
                record = store.sequence(sequence_id)
                write_frame(frame_file(folder, record, "", 0), sequence, 0)
        except (SequenceError, AnnotatorError, OSError) as error:
            unreadable.append(str(error))
    records = {r.id: r for r in store.sequences()}
    if not records:
        return rows
    frame_of = store.frame_of_image()
    counts = project.counts()
    firsts: dict[int, int] = {}
    for sequence_id in records:
        ids = store.frame_images(sequence_id)
        if ids:
            firsts[sequence_id] = ids[0]
    names = {firsts[s]: project.image(firsts[s]).file_name for s in firsts}
    totals: dict[int, int] = {}
    for image_id, (sequence_id, _) in frame_of.items():
        totals[sequence_id] = totals.get(sequence_id, 0) + counts.get(image_id, 0)

    def row_of(sequence_id: int) -> Row:
        record, first = records[sequence_id], firsts[sequence_id]
        path = frame_file(folder, record, names[first], 0)
        if record.kind == "video" and not path.is_file():  # tracked from elsewhere, or cleaned
            try:
                with open_sequence(source_path(folder, record)) as sequence:
                    write_frame(path, sequence, 0)
            except (SequenceError, OSError) as error:
                unreadable.append(str(error))  # listed still: its frames and tracks are stored
        return (first, row_name(record), str(path), totals.get(sequence_id, 0))

    out: list[Row] = []
    placed: set[int] = set()
    for row in rows:
        found = frame_of.get(row[0])
        if found is None:
            out.append(row)
        elif found[0] not in placed and found[0] in firsts:
            placed.add(found[0])
            out.append(row_of(found[0]))
    out += [row_of(s) for s in sorted(firsts) if s not in placed]
    return out


def has_sequences(project: Any) -> bool:
    """Whether the project holds a sequence (the export dialog then offers the track formats)."""
    return project is not None and bool(TrackStore(project).sequences())


@dataclass(frozen=True)
class TrackCoverage:
    """One track on the timeline: frames with a pending mask, with an accepted one, frames the
    tracker went through without finding the object (lost), and its prompted frames."""

    track_id: int
    object_id: int
    category: str
    pending: frozenset[int]
    accepted: frozenset[int]
    lost: frozenset[int]
    prompted: frozenset[int]


def coverage(project: Any, sequence_id: int) -> list[TrackCoverage]:
    """Every track of the sequence with its frames (a few queries, whatever the length)."""
    store = TrackStore(project)
    out = []
    for track in store.tracks(sequence_id):
        rows = project.read(
            "SELECT t.frame_index, p.status, p.run FROM track_proposals t JOIN proposals p"
            " ON p.id = t.proposal_id WHERE t.track_id = ?",
            (track.id,),
        )
        pending = {int(f) for f, s, _ in rows if s == PENDING}
        accepted = {int(f) for f, s, _ in rows if s == ACCEPTED}
        runs = {r for _, s, r in rows if s in (PENDING, ACCEPTED)}
        done: set[int] = set()
        for run in runs:
            done |= store.done_frames(run, sequence_id)
        lost = done - pending - accepted - {int(f) for f, *_ in rows}
        out.append(
            TrackCoverage(
                track.id,
                track.object_id,
                track.category,
                frozenset(pending),
                frozenset(accepted),
                frozenset(lost),
                frozenset(int(f) for f in track.prompts),
            )
        )
    return out


def pending_masks(project: Any, image_id: int) -> list[tuple[int, str, Any]]:
    """(object id, category, bool mask) of the pending tracked masks on one frame image."""
    rows = project.read(
        "SELECT k.object_id, p.id FROM proposals p JOIN track_proposals t ON t.proposal_id = p.id"
        " JOIN tracks k ON k.id = t.track_id WHERE p.image_id = ? AND p.status = ?"
        " ORDER BY k.object_id",
        (image_id, PENDING),
    )
    store = TrackStore(project).proposals
    out = []
    for object_id, proposal_id in rows:
        proposal = store.get(int(proposal_id))
        out.append((int(object_id), proposal.category, proposal.mask()))
    return out


__all__ = [
    "FRAMES_DIR",
    "FrameFiles",
    "TrackCoverage",
    "coverage",
    "fold_sequences",
    "frame_file",
    "has_sequences",
    "list_videos",
    "pending_masks",
    "row_name",
    "source_path",
    "write_frame",
]
