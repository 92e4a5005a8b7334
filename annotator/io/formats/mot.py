"""MOT 1.1 boxes (MOTChallenge ground truth, datumaro's `mot_seq`): per sequence
OUT/<seq>/img1/<frame>.jpg (frames from 1), OUT/<seq>/gt/gt.txt with
`frame,track,x,y,w,h,1,class,1` per tracked object (the box of its accepted mask), OUT/<seq>/gt/labels.txt
(class = line number from 1) and OUT/<seq>/seqinfo.ini. Masks are not kept (boxes only, warned).
Import brings the tracks back as filled-box masks (a MOT file has nothing finer; warned), as
CVAT's own import fills a tracked box: same track ids, categories from labels.txt ("object" without
one), rows with confidence 0 (MOT's "ignore") left out and counted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.files import read_regular
from annotator.io.formats import _common as c
from annotator.io.formats import _tracks as t
from annotator.io.images import image_size, list_images
from annotator.io.masks import mask_box
from annotator.store.project import Project

MAX_GT_BYTES = 256 * 1024 * 1024
"""A gt.txt over this is refused (MOT17's largest is a few MB)."""
MAX_TRACK_ID = 2**31 - 1

NAME = "mot"


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    root = Path(out)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "sequences": 0, "boxes": 0}
    for seq in t.walk(project, summary):
        labels = seq.categories
        folder = root / seq.name
        t.write_frames(project, seq.record, folder / "img1", "%06d.jpg", start=1)
        rows = []
        for f in sorted(seq.frames):
            for o in seq.objects(f):
                box = mask_box(o.mask)  # the one mask-box helper: XYXY, exclusive ends
                if box is None:
                    continue
                x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
                rows.append(
                    f"{f + 1},{o.object_id},{x},{y},{w},{h},1,{labels.index(o.category) + 1},1"
                )
        c.write_atomic(folder / "gt" / "gt.txt", ("\n".join(rows) + "\n").encode())
        c.write_atomic(folder / "gt" / "labels.txt", "\n".join(labels).encode())
        r = seq.record
        info = (
            f"[Sequence]\nname={seq.name}\nimDir=img1\nframeRate={round(r.fps or 30)}\n"
            f"seqLength={r.frame_count}\nimWidth={r.width}\nimHeight={r.height}\nimExt=.jpg\n"
        )
        c.write_atomic(folder / "seqinfo.ini", info.encode())
        summary["boxes"] += len(rows)
    c.warn(summary, "mot: boxes only; the masks are not written")
    return summary


def detect(path: Path) -> bool:
    return path.is_dir() and any(
        (d / "gt" / "gt.txt").is_file() for d in [path, *path.iterdir()] if d.is_dir()
    )


def import_(
    path: Any, images_dir: Any, project: Project, progress: c.Progress | None = None
) -> dict:
    """Every MOT sequence under `path` (a folder with gt/gt.txt and img1/) with its tracks, each
    box stored as a filled-box mask, all or nothing."""
    root = Path(path)
    folders = [d for d in [root, *sorted(root.iterdir())] if (d / "gt" / "gt.txt").is_file()]
    if not folders:
        raise DatasetFormatError(f"{root}: no MOT sequence (gt/gt.txt)")
    summary: dict[str, Any] = {"sequences": 0, "tracks": 0, "annotations": 0, "ignored": 0}
    parsed = [(folder, *_read_gt(folder, summary)) for folder in folders]  # all checked first
    with project.transaction():
        for folder, frames, size in parsed:
            done = t.import_tracks(project, folder / "img1", _filled(frames, size))
            summary["sequences"] += 1
            summary["tracks"] += done["tracks"]
            summary["annotations"] += done["annotations"]
    c.warn(summary, "mot: boxes only; each is stored as a filled box mask")
    if summary["ignored"]:
        c.warn(summary, f"mot: {summary['ignored']} row(s) with confidence 0 (ignore) left out")
    return summary


Boxes = dict[int, list[tuple[int, str, tuple[int, int, int, int]]]]


def _filled(frames: Boxes, size: tuple[int, int]):
    """(frame, [(track id, category, filled-box mask)]) one frame at a time: only one frame's
    masks are ever in memory, however long the sequence."""
    width, height = size
    for f in sorted(frames):
        objects = []
        for track, category, (x0, y0, x1, y1) in frames[f]:
            mask = np.zeros((height, width), bool)
            mask[y0:y1, x0:x1] = True
            objects.append((track, category, mask))
        yield f, objects


def _read_gt(folder: Path, summary: dict) -> tuple[Boxes, tuple[int, int]]:
    """gt.txt as {frame index from 0: [(track id, category, box XYXY)]} and the frame size, every
    number checked (finite, inside the frame: a box over the edge by up to an image size is
    clipped and counted)."""
    frames_dir = folder / "img1"
    images = list_images(frames_dir) if frames_dir.is_dir() else []
    if not images:
        raise DatasetFormatError(f"{frames_dir}: no frame images")
    width, height = image_size(images[0])
    labels_file = folder / "gt" / "labels.txt"
    labels = []
    if labels_file.is_file():
        text = read_regular(labels_file, 1024 * 1024).decode("utf-8", "replace")
        labels = [s.strip() for s in text.splitlines() if s.strip()]
    gt = folder / "gt" / "gt.txt"
    text = read_regular(gt, MAX_GT_BYTES).decode("utf-8", "replace")
    frames: Boxes = {}
    seen: set[tuple[int, int]] = set()
    clipped = [0]

    def clip() -> None:
        clipped[0] += 1

    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{gt}:{n}"
        fields = [v.strip() for v in line.split(",")]
        if len(fields) < 6:
            raise DatasetFormatError(
                f"{where}: a MOT row needs at least 6 fields, got {len(fields)}"
            )
        frame = bounds.integer(fields[0], f"{where} frame", 1, len(images))
        track = bounds.integer(fields[1], f"{where} track id", 1, MAX_TRACK_ID)
        x, y, w, h = (bounds.number(v, f"{where} box") for v in fields[2:6])
        if len(fields) > 6 and bounds.number(fields[6], f"{where} confidence") == 0:
            summary["ignored"] += 1
            continue
        category = "object"
        if len(fields) > 7 and labels:
            k = bounds.integer(fields[7], f"{where} class", 1, len(labels))
            category = labels[k - 1]
        x0, y0, bw, bh = bounds.box_xyxy((x, y, x + w, y + h), where, width, height, clipped=clip)
        x1, y1 = round(x0 + bw), round(y0 + bh)
        x0, y0 = round(x0), round(y0)
        if x1 <= x0 or y1 <= y0:
            continue  # an empty box holds no pixel
        if (frame, track) in seen:
            raise DatasetFormatError(f"{where}: track {track} has a second box on frame {frame}")
        seen.add((frame, track))
        frames.setdefault(frame - 1, []).append((track, category, (x0, y0, x1, y1)))
    if clipped[0]:
        c.warn(summary, f"mot: {clipped[0]} box(es) over the frame's edge clipped to it")
    return frames, (width, height)
