"""MOTS (multi-object tracking and segmentation): per sequence, OUT/<seq>/images/<frame>.jpg,
OUT/<seq>/instances/<frame>.png and OUT/<seq>/instances/labels.txt (datumaro's `mots` layout) plus
OUT/<seq>/instances.txt (the MOTS challenge text form of the same masks).

A PNG pixel is class * 1000 + object id (16-bit; class = the category's line in labels.txt + 1,
0 = background); a txt line is `frame id class height width rle` with the same id and COCO RLE.
Frame names are six-digit frame indices from 0. Only accepted, tracked masks are written (pending
ones are not annotations); an object id must be below 1000 and one pixel holds one object (later
tracks are painted over earlier ones, warned).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from annotator.errors import DatasetFormatError
from annotator.io.formats import _common as c
from annotator.io.formats import _tracks as t
from annotator.io.masks import mask_to_rle, rle_to_mask
from annotator.store.project import Project

NAME = "mots"
MAX_INSTANCES = 1000


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    root = Path(out)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "sequences": 0, "masks": 0}
    overlap = 0
    for seq in t.walk(project, summary):
        labels = seq.categories
        folder = root / seq.name
        (folder / "instances").mkdir(parents=True, exist_ok=True)
        c.write_atomic(folder / "instances" / "labels.txt", ("\n".join(labels) + "\n").encode())
        t.write_frames(project, seq.record, folder / "images", "%06d.jpg")
        for tr in seq.tracks:
            if not 0 < seq.tracks[tr][0] < MAX_INSTANCES:
                raise DatasetFormatError(f"mots: object id {seq.tracks[tr][0]} is outside 1..999")
        pixel = {
            tr: (labels.index(cat) + 1) * MAX_INSTANCES + obj
            for tr, (obj, cat) in seq.tracks.items()
        }
        lines = []
        for f in range(seq.record.frame_count):
            index, twice = seq.paint(f, np.uint16, pixel)
            overlap += twice
            for value in np.unique(index):
                if value:
                    rle = mask_to_rle(index == value)
                    lines.append(
                        f"{f} {value} {value // MAX_INSTANCES} {rle['size'][0]} {rle['size'][1]} {rle['counts']}"
                    )
                    summary["masks"] += 1
            c.write_png(folder / "instances" / f"{f:06d}.png", index)
        c.write_atomic(folder / "instances.txt", ("\n".join(lines) + "\n").encode())
    if overlap:
        c.warn(summary, f"mots: {overlap} pixels covered by two tracks kept the later track")
    return summary


def detect(path: Path) -> bool:
    return path.is_dir() and any(
        (d / "instances" / "labels.txt").is_file() for d in [path, *path.iterdir()] if d.is_dir()
    )


def _read_frames(folder: Path):
    labels = [
        s.strip()
        for s in (folder / "instances" / "labels.txt").read_text("utf-8").splitlines()
        if s.strip()
    ]
    for png in sorted((folder / "instances").glob("*.png")):
        try:
            f = int(png.stem)
        except ValueError:
            raise DatasetFormatError(f"{png}: a MOTS frame is named by its index") from None
        index = np.asarray(Image.open(png))
        objects = []
        for value in np.unique(index):
            class_id, object_id = divmod(int(value), MAX_INSTANCES)
            if class_id == 0:
                continue
            if not 1 <= class_id <= len(labels):
                raise DatasetFormatError(f"{png}: class {class_id} is not in labels.txt")
            objects.append((object_id, labels[class_id - 1], index == value))
        yield f, objects


def import_(
    path: str | os.PathLike, images_dir: Any, project: Project, progress: c.Progress | None = None
) -> dict:
    root = Path(path)
    folders = [
        d
        for d in [root, *sorted(root.iterdir())]
        if d.is_dir() and (d / "instances" / "labels.txt").is_file()
    ]
    if not folders:
        raise DatasetFormatError(f"{root}: no MOTS sequence (instances/labels.txt)")
    summary: dict[str, Any] = {"sequences": 0, "tracks": 0, "annotations": 0}
    with project.transaction():
        for folder in folders:
            done = t.import_tracks(project, folder / "images", _read_frames(folder))
            summary["sequences"] += 1
            summary["tracks"] += done["tracks"]
            summary["annotations"] += done["annotations"]
    return summary


def read_txt(path: Path) -> dict[int, dict[int, np.ndarray]]:
    """The MOTS text file: {frame: {id: mask}} (for checks and for readers of the txt form)."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for line in Path(path).read_text("utf-8").splitlines():
        if line.strip():
            f, value, _, h, w, counts = line.split(" ", 5)
            out.setdefault(int(f), {})[int(value)] = rle_to_mask(
                {"size": [int(h), int(w)], "counts": counts}
            )
    return out
