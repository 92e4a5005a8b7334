"""What the track formats (MOTS, MOT 1.1, DAVIS, COCO video, CVAT for video) share: the
per-sequence export loop (`walk`: each sequence with its accepted, tracked annotations, frames
decoded from the source, counted in the summary), one frame's objects in object-id order, the
one-object-per-pixel index image MOTS and DAVIS paint, and the import of tracks (a folder of frames
becomes a sequence; each track's masks annotations of one track)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.errors import DatasetFormatError
from annotator.io.sequences import Sequence, open_sequence
from annotator.store.project import Project
from annotator.store.tracks import SequenceRecord, TrackStore


@dataclass
class SequenceTracks:
    record: SequenceRecord
    name: str  # a folder name for the export
    tracks: dict[int, tuple[int, str]] = field(
        default_factory=dict
    )  # track id -> (object, category)
    frames: dict[int, list[tuple[int, np.ndarray]]] = field(
        default_factory=dict
    )  # f -> (track, mask)

    @property
    def categories(self) -> list[str]:
        return sorted({c for _, c in self.tracks.values()})

    @property
    def order(self) -> list[int]:
        """Track ids in object-id order (the order every format writes objects in)."""
        return sorted(self.tracks, key=lambda tr: (self.tracks[tr][0], tr))

    def objects(self, f: int) -> list[FrameObject]:
        """Frame `f`'s tracked masks, in object-id order."""
        found = [FrameObject(tr, *self.tracks[tr], mask) for tr, mask in self.frames.get(f, [])]
        return sorted(found, key=lambda o: (o.object_id, o.track))

    def paint(self, f: int, dtype: type, value: dict[int, int]) -> tuple[np.ndarray, int]:
        """Frame `f` as one index image (`value[track id]` on an object's pixels, 0 elsewhere; a later
        object paints over an earlier one) and how many pixels were painted twice."""
        index = np.zeros((self.record.height, self.record.width), dtype)
        overlap = 0
        for o in self.objects(f):
            overlap += int((index[o.mask] != 0).sum())
            index[o.mask] = value[o.track]
        return index, overlap


@dataclass(frozen=True)
class FrameObject:
    """One tracked object's mask on one frame."""

    track: int  # the store's track id
    object_id: int  # the user's object id (a format's track id)
    category: str
    mask: np.ndarray


def walk(
    project: Project, summary: dict, found: list[SequenceTracks] | None = None
) -> Iterator[SequenceTracks]:
    """The per-sequence loop of every track export: each sequence with tracks (`found`, when the
    caller has read them already), counted in `summary["sequences"]` once the caller has
    written it."""
    summary.setdefault("sequences", 0)
    for seq in sequences(project) if found is None else found:
        yield seq
        summary["sequences"] += 1


def sequences(project: Project) -> list[SequenceTracks]:
    """Every sequence with its tracked annotations (accepted masks), in frame order."""
    store = TrackStore(project)
    by_annotation = store.annotation_tracks()
    track_info = {t.id: t for t in store.tracks()}
    out = []
    names: set[str] = set()
    for record in store.sequences():
        stem = Path(record.source).name
        stem = os.path.splitext(stem)[0] if record.kind == "video" else stem
        name = stem if stem not in names else f"{stem}-{record.id}"
        names.add(name)
        seq = SequenceTracks(record, name)
        frame_ids = store.frame_images(record.id)
        index = {image_id: f for f, image_id in enumerate(frame_ids)}
        for image_id, f in index.items():
            for a in project.annotations(image_id):
                found = by_annotation.get(a.id)
                if found is None:
                    continue
                track_id = found[0]
                t = track_info[track_id]
                seq.tracks[track_id] = (t.object_id, project.category(a.category_id).name)
                seq.frames.setdefault(f, []).append((track_id, a.mask()))
        if seq.tracks:
            out.append(seq)
    if not out:
        raise DatasetFormatError(
            "the project has no accepted tracks to export (accept a track first)"
        )
    return out


def open_source(project: Project, record: SequenceRecord) -> Sequence:
    path = Path(record.source)
    if not path.is_absolute() and project.folder is not None:
        path = Path(project.folder) / path
    return open_sequence(path)


def write_frames(
    project: Project, record: SequenceRecord, folder: Path, pattern: str, start: int = 0
) -> None:
    """Every frame as a JPEG `folder / (pattern % (index + start))`."""
    folder.mkdir(parents=True, exist_ok=True)
    with open_source(project, record) as seq:
        for f, frame in seq.frames():
            Image.fromarray(frame).save(folder / (pattern % (f + start)), quality=95)


def import_tracks(
    project: Project,
    images: Path,
    frames: Iterator[tuple[int, list[tuple[int, str, np.ndarray]]]],
) -> dict:
    """A folder of frame images as a sequence and `frames` ((frame index, [(track id, category,
    mask)])) as tracked annotations, in one transaction."""
    store = TrackStore(project)
    tracks: dict[int, int] = {}
    n = 0
    with open_sequence(images) as seq, project.transaction():
        sequence_id = store.add_sequence(seq)
        frame_ids = store.frame_images(sequence_id)
        for f, objects in frames:
            if not 0 <= f < len(frame_ids):
                raise DatasetFormatError(f"{images}: annotations for frame {f}, which has no image")
            for track, category, mask in objects:
                if track not in tracks:
                    tracks[track] = store.set_track(sequence_id, track, category, {})
                annotation_id = project.add_annotation(frame_ids[f], mask, category)
                store.add_track_annotation(annotation_id, tracks[track], f)
                n += 1
    return {"sequence": sequence_id, "tracks": len(tracks), "annotations": n}
