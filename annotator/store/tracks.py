"""Sequences and tracks in a project (schema step 7, see schema.py).

A sequence's frames are ordinary project images, named by the frame folder's files (relative to
the project folder when inside it) or, for a video, `VIDEO#000012`; `sequence_frames` gives each
its sequence and index. A track is one object of a sequence: the user's object id, its category,
the prompts that made it. Tracking stores each frame's masks as pending proposals (the review
queue, `store/proposals.py`, source "track") with the frame's done mark, in one transaction per
frame, so a killed run keeps whole frames and a rerun of the same run skips them. Accepting a
track accepts all its pending frames in one transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.errors import ProjectError
from annotator.io.masks import mask_to_rle, rle_area, rle_bbox
from annotator.io.sequences import Sequence
from annotator.store.connection import utc_now
from annotator.store.project import Project
from annotator.store.proposals import PENDING, ProposalStore

SOURCE = "track"  # proposals.source of a tracked mask
PROPOSAL_COLUMNS = (
    "id, image_id, run, source, category, score, rle, height, width, bbox_x, bbox_y, bbox_w,"
    " bbox_h, area, status, annotation_id, created"
)


@dataclass(frozen=True)
class SequenceRecord:
    id: int
    source: str
    kind: str
    frame_count: int
    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class Track:
    id: int
    sequence_id: int
    object_id: int
    category: str
    prompts: dict  # {frame index (str): {"points": [[x, y]...], "labels": [...], "box": [...]}}


@dataclass(frozen=True)
class TrackState:
    """What a propagation of some objects of a sequence changes, as stored rows (`track_state`):
    their track rows, their pending masks (whole proposal rows with their ids, so a restore is
    bit for bit) and the sequence frames' done marks (a restored run must not skip frames)."""

    sequence_id: int
    object_ids: tuple[int, ...]
    tracks: tuple[tuple, ...]  # (id, object_id, category, prompts JSON)
    proposals: tuple[tuple, ...]  # PROPOSAL_COLUMNS of each pending mask
    links: tuple[tuple, ...]  # track_proposals (proposal_id, track_id, frame_index)
    done: tuple[tuple, ...]  # autolabel_done (image_id, run, proposals, finished) of the frames


def _source_name(project: Project, source: str | os.PathLike) -> str:
    """The sequence's source as stored: relative to the project folder when inside it."""
    path = Path(source).resolve()
    if project.folder is not None:
        try:
            return path.relative_to(Path(project.folder).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


class TrackStore:
    """Sequences, tracks and tracked masks of one open `Project`."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.proposals = ProposalStore(project)

    # -------------------------------------------------------------------------- sequences
    def add_sequence(self, sequence: Sequence) -> int:
        """The sequence's id, adding it and an image per frame if new (one transaction)."""
        info = sequence.info
        source = _source_name(self.project, info.source)
        with self.project.transaction():
            found = self.sequence_by_source(source)
            if found is not None:
                if (found.frame_count, found.width, found.height) != (
                    info.frame_count,
                    info.width,
                    info.height,
                ):
                    raise ProjectError(
                        f"{source}: the project has this sequence with {found.frame_count} frames "
                        f"of {found.width}x{found.height}, the file now has {info.frame_count} of "
                        f"{info.width}x{info.height}"
                    )
                return found.id
            cursor = self.project.write(
                "INSERT INTO sequences (source, kind, frame_count, width, height, fps, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (source, info.kind, info.frame_count, info.width, info.height, info.fps, utc_now()),
            )
            sequence_id = int(cursor.lastrowid)
            base = source
            if Path(source).is_absolute():  # outside the project folder: named by its base name
                base = Path(source).name
                if self.project.read(
                    "SELECT 1 FROM images WHERE file_name LIKE ? LIMIT 1", (base + "%",)
                ):
                    base = f"{sequence_id}-{base}"
            rows = []
            for index in range(info.frame_count):
                if info.kind == "folder":
                    name = f"{base}/{sequence.frame_name(index)}"
                else:
                    name = f"{base}#{index:06d}"
                image_id = self.project.add_image(name, info.width, info.height)
                rows.append((image_id, sequence_id, index))
            self.project.write_many(
                "INSERT INTO sequence_frames (image_id, sequence_id, frame_index) VALUES (?, ?, ?)",
                rows,
            )
            return sequence_id

    def sequence_by_source(self, source: str) -> SequenceRecord | None:
        rows = self.project.read(
            "SELECT id, source, kind, frame_count, width, height, fps FROM sequences"
            " WHERE source = ?",
            (source,),
        )
        return SequenceRecord(*rows[0]) if rows else None

    def sequences(self) -> list[SequenceRecord]:
        rows = self.project.read(
            "SELECT id, source, kind, frame_count, width, height, fps FROM sequences ORDER BY id"
        )
        return [SequenceRecord(*r) for r in rows]

    def sequence(self, sequence_id: int) -> SequenceRecord:
        rows = self.project.read(
            "SELECT id, source, kind, frame_count, width, height, fps FROM sequences WHERE id = ?",
            (sequence_id,),
        )
        if not rows:
            raise KeyError(f"no sequence {sequence_id}")
        return SequenceRecord(*rows[0])

    def frame_images(self, sequence_id: int) -> list[int]:
        """Image id of every frame, in frame order."""
        rows = self.project.read(
            "SELECT image_id FROM sequence_frames WHERE sequence_id = ? ORDER BY frame_index",
            (sequence_id,),
        )
        return [int(r[0]) for r in rows]

    def frame_of_image(self) -> dict[int, tuple[int, int]]:
        """image id -> (sequence id, frame index) for every frame of every sequence."""
        rows = self.project.read("SELECT image_id, sequence_id, frame_index FROM sequence_frames")
        return {int(i): (int(s), int(f)) for i, s, f in rows}

    # ----------------------------------------------------------------------------- tracks
    def set_track(self, sequence_id: int, object_id: int, category: str, prompts: dict) -> int:
        """The track of `object_id` in the sequence, created or given this category and prompts."""
        name = " ".join(str(category).split())
        if not name:
            raise ValueError("a track's category cannot be empty")
        text = json.dumps(prompts, sort_keys=True)
        with self.project.transaction():
            rows = self.project.read(
                "SELECT id FROM tracks WHERE sequence_id = ? AND object_id = ?",
                (sequence_id, int(object_id)),
            )
            if rows:
                track_id = int(rows[0][0])
                self.project.write(
                    "UPDATE tracks SET category = ?, prompts = ? WHERE id = ?",
                    (name, text, track_id),
                )
                return track_id
            cursor = self.project.write(
                "INSERT INTO tracks (sequence_id, object_id, category, prompts) VALUES (?, ?, ?, ?)",
                (sequence_id, int(object_id), name, text),
            )
            return int(cursor.lastrowid)

    def tracks(self, sequence_id: int | None = None) -> list[Track]:
        sql = "SELECT id, sequence_id, object_id, category, prompts FROM tracks"
        params: tuple = ()
        if sequence_id is not None:
            sql += " WHERE sequence_id = ?"
            params = (sequence_id,)
        rows = self.project.read(sql + " ORDER BY id", params)
        return [Track(int(a), int(b), int(c), d, json.loads(e)) for a, b, c, d, e in rows]

    def track_by_object(self, sequence_id: int, object_id: int) -> Track | None:
        found = [t for t in self.tracks(sequence_id) if t.object_id == int(object_id)]
        return found[0] if found else None

    # ----------------------------------------------------------------------- tracked masks
    def drop_pending(self, track_ids: Iterable[int], keep_run: str) -> int:
        """Delete the pending masks of these tracks made by other runs (a new prompt replaces
        them); accepted and rejected ones stay. Returns how many were deleted."""
        ids = [int(t) for t in track_ids]
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        with self.project.transaction():
            rows = self.project.read(
                "SELECT p.id FROM proposals p JOIN track_proposals t ON t.proposal_id = p.id"
                f" WHERE t.track_id IN ({marks}) AND p.status = ? AND p.run <> ?",
                (*ids, PENDING, keep_run),
            )
            for (pid,) in rows:
                self.project.write("DELETE FROM track_proposals WHERE proposal_id = ?", (pid,))
                self.project.write("DELETE FROM proposals WHERE id = ?", (pid,))
        return len(rows)

    def done_frames(self, run: str, sequence_id: int) -> set[int]:
        """Frame indices this run has stored."""
        rows = self.project.read(
            "SELECT f.frame_index FROM autolabel_done d JOIN sequence_frames f"
            " ON f.image_id = d.image_id WHERE d.run = ? AND f.sequence_id = ?",
            (run, sequence_id),
        )
        return {int(r[0]) for r in rows}

    def store_frame(
        self,
        run: str,
        image_id: int,
        frame_index: int,
        masks: Iterable[tuple[int, str, np.ndarray, float]],
    ) -> int | None:
        """One frame's masks ((track id, category, bool mask, score in [0, 1]) each) as pending
        proposals and the frame's done mark, in ONE transaction; None if the run had stored this
        frame already (nothing written). Empty masks (the object is lost) are not stored."""
        image = self.project.image(image_id)
        rows = []
        for track_id, category, mask, score in masks:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (image.height, image.width):
                raise ValueError(f"mask {mask.shape} does not fit frame {frame_index}")
            rle = mask_to_rle(mask)
            area = rle_area(rle)
            if area:
                rows.append((int(track_id), category, rle, rle_bbox(rle), int(area), float(score)))
        now = utc_now()
        with self.project.transaction():
            if self.proposals.is_done(image_id, run):
                return None
            for track_id, category, rle, bbox, area, score in rows:
                cursor = self.project.write(
                    "INSERT INTO proposals (image_id, run, source, category, score, rle, height,"
                    " width, bbox_x, bbox_y, bbox_w, bbox_h, area, status, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (
                        image_id,
                        run,
                        SOURCE,
                        category,
                        min(1.0, max(0.0, score)),
                        rle["counts"],
                        image.height,
                        image.width,
                        *bbox,
                        area,
                        now,
                    ),
                )
                self.project.write(
                    "INSERT INTO track_proposals (proposal_id, track_id, frame_index)"
                    " VALUES (?, ?, ?)",
                    (int(cursor.lastrowid), track_id, int(frame_index)),
                )
            self.project.write(
                "INSERT INTO autolabel_done (image_id, run, proposals, finished) VALUES (?, ?, ?, ?)",
                (image_id, run, len(rows), now),
            )
        return len(rows)

    def track_proposals(self, track_id: int, status: str | None = PENDING) -> list[tuple[int, int]]:
        """(frame index, proposal id) of a track's masks with this status, in frame order."""
        sql = (
            "SELECT t.frame_index, p.id FROM track_proposals t JOIN proposals p"
            " ON p.id = t.proposal_id WHERE t.track_id = ?"
        )
        params: tuple = (track_id,)
        if status is not None:
            sql += " AND p.status = ?"
            params = (track_id, status)
        rows = self.project.read(sql + " ORDER BY t.frame_index, p.id", params)
        return [(int(f), int(p)) for f, p in rows]

    def accept_track(self, track_id: int) -> list[int]:
        """Accept every pending frame of a track in ONE transaction; the annotation ids."""
        with self.project.transaction():
            out = []
            for frame, proposal_id in self.track_proposals(track_id):
                annotation_id = self.proposals.accept(proposal_id)
                self.project.write(
                    "INSERT INTO track_annotations (annotation_id, track_id, frame_index)"
                    " VALUES (?, ?, ?) ON CONFLICT (annotation_id) DO NOTHING",
                    (annotation_id, track_id, frame),
                )
                out.append(annotation_id)
            return out

    def add_track_annotation(self, annotation_id: int, track_id: int, frame_index: int) -> None:
        """Mark an annotation as one frame of a track (imports of track formats)."""
        self.project.write(
            "INSERT INTO track_annotations (annotation_id, track_id, frame_index) VALUES (?, ?, ?)",
            (int(annotation_id), int(track_id), int(frame_index)),
        )

    # ------------------------------------------------------------------ undo of a propagation
    def _track_ids(self, sequence_id: int, object_ids: Iterable[int]) -> list[int]:
        wanted = {int(o) for o in object_ids}
        rows = self.project.read(
            "SELECT id, object_id FROM tracks WHERE sequence_id = ?", (int(sequence_id),)
        )
        return sorted(int(t) for t, o in rows if int(o) in wanted)

    def _pending_of(self, track_ids: list[int]) -> list[tuple]:
        if not track_ids:
            return []
        marks = ", ".join("?" for _ in track_ids)
        return self.project.read(
            "SELECT t.proposal_id, t.track_id, t.frame_index FROM track_proposals t JOIN"
            f" proposals p ON p.id = t.proposal_id WHERE t.track_id IN ({marks})"
            " AND p.status = ? ORDER BY t.proposal_id",
            (*track_ids, PENDING),
        )

    def track_state(self, sequence_id: int, object_ids: Iterable[int]) -> TrackState:
        """The stored rows a propagation of these objects can change, read in one consistent
        view: taken before a run (its undo) and after it (its redo, without the model)."""
        objects = tuple(sorted({int(o) for o in object_ids}))
        with self.project.snapshot():
            ids = self._track_ids(sequence_id, objects)
            tracks = [t for t in self.tracks(sequence_id) if t.id in ids]
            links = self._pending_of(ids)
            proposals: list[tuple] = []
            for pid, _, _ in links:
                proposals += self.project.read(
                    f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = ?", (int(pid),)
                )
            done = self.project.read(
                "SELECT d.image_id, d.run, d.proposals, d.finished FROM autolabel_done d"
                " JOIN sequence_frames f ON f.image_id = d.image_id WHERE f.sequence_id = ?"
                " ORDER BY d.image_id, d.run",
                (int(sequence_id),),
            )
        return TrackState(
            int(sequence_id),
            objects,
            tuple(
                (t.id, t.object_id, t.category, json.dumps(t.prompts, sort_keys=True))
                for t in tracks
            ),
            tuple(tuple(r) for r in proposals),
            tuple((int(p), int(t), int(f)) for p, t, f in links),
            tuple(tuple(r) for r in done),
        )

    def restore_tracks(self, state: TrackState) -> None:
        """Make the stored rows of `state`'s objects exactly `state` again, in ONE transaction:
        their pending masks now are deleted and the state's put back with their ids, the track
        rows get their category and prompts back (a track the state has not is deleted unless
        accepted or rejected masks still point at it), and the sequence frames' done marks are
        the state's. Accepted and rejected masks are not touched."""
        sequence_id = state.sequence_id
        with self.project.transaction():
            current = self._track_ids(sequence_id, state.object_ids)
            for pid, _, _ in self._pending_of(current):
                self.project.write("DELETE FROM track_proposals WHERE proposal_id = ?", (pid,))
                self.project.write("DELETE FROM proposals WHERE id = ?", (pid,))
            kept = {row[0] for row in state.tracks}
            for track_id in current:
                if track_id in kept:
                    continue
                used = self.project.read(
                    "SELECT 1 FROM track_proposals WHERE track_id = ? UNION ALL"
                    " SELECT 1 FROM track_annotations WHERE track_id = ? LIMIT 1",
                    (track_id, track_id),
                )
                if not used:
                    self.project.write("DELETE FROM tracks WHERE id = ?", (track_id,))
            for track_id, object_id, category, prompts in state.tracks:
                if track_id in current:
                    self.project.write(
                        "UPDATE tracks SET category = ?, prompts = ? WHERE id = ?",
                        (category, prompts, track_id),
                    )
                else:
                    self.project.write(
                        "INSERT INTO tracks (id, sequence_id, object_id, category, prompts)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (track_id, sequence_id, object_id, category, prompts),
                    )
            marks = ", ".join("?" for _ in PROPOSAL_COLUMNS.split(","))
            self.project.write_many(
                f"INSERT INTO proposals ({PROPOSAL_COLUMNS}) VALUES ({marks})",
                list(state.proposals),
            )
            self.project.write_many(
                "INSERT INTO track_proposals (proposal_id, track_id, frame_index) VALUES (?, ?, ?)",
                list(state.links),
            )
            self.project.write(
                "DELETE FROM autolabel_done WHERE image_id IN"
                " (SELECT image_id FROM sequence_frames WHERE sequence_id = ?)",
                (sequence_id,),
            )
            self.project.write_many(
                "INSERT INTO autolabel_done (image_id, run, proposals, finished)"
                " VALUES (?, ?, ?, ?)",
                list(state.done),
            )

    def annotation_tracks(self) -> dict[int, tuple[int, int]]:
        """annotation id -> (track id, frame index): marked ones, and those accepted from a
        track's proposal by `review` (which knows nothing of tracks)."""
        out = {
            int(a): (int(t), int(f))
            for a, t, f in self.project.read(
                "SELECT annotation_id, track_id, frame_index FROM track_annotations"
            )
        }
        for a, t, f in self.project.read(
            "SELECT p.annotation_id, t.track_id, t.frame_index FROM proposals p"
            " JOIN track_proposals t ON t.proposal_id = p.id"
            " WHERE p.annotation_id IS NOT NULL"
        ):
            out.setdefault(int(a), (int(t), int(f)))
        return out


__all__ = ["SOURCE", "SequenceRecord", "Track", "TrackState", "TrackStore"]
