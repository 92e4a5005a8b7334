"""DAVIS-style video object segmentation: OUT/JPEGImages/480p/<seq>/<frame>.jpg and
OUT/Annotations/480p/<seq>/<frame>.png, an indexed (paletted) PNG per frame whose value k is the
sequence's k-th object (objects in object-id order, 0 = background, the DAVIS palette), frames named
by five-digit indices from 0. OUT/Annotations/480p/<seq>/objects.txt keeps what DAVIS has no place
for: `k object_id category` per line (used by the import; without it objects come back as
"object" with id k). Frames keep their size (the "480p" folder name is the layout, not a resize);
one object per pixel (later objects painted over earlier ones, warned).
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
from annotator.store.project import Project

NAME = "davis"
RES = "480p"


def palette() -> list[int]:
    """The DAVIS / PASCAL VOC colour map (bit-interleaved), 256 RGB triples."""
    out = []
    for i in range(256):
        r = g = b = 0
        cid = i
        for j in range(8):
            r |= ((cid >> 0) & 1) << (7 - j)
            g |= ((cid >> 1) & 1) << (7 - j)
            b |= ((cid >> 2) & 1) << (7 - j)
            cid >>= 3
        out += [r, g, b]
    return out


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    root = Path(out)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "sequences": 0}
    colours = palette()
    overlap = 0
    for seq in t.walk(project, summary):
        order = seq.order
        if len(order) > 255:
            raise DatasetFormatError(
                f"davis: {seq.name} has {len(order)} objects, an indexed PNG holds 255"
            )
        k_of = {tr: k + 1 for k, tr in enumerate(order)}
        t.write_frames(project, seq.record, root / "JPEGImages" / RES / seq.name, "%05d.jpg")
        folder = root / "Annotations" / RES / seq.name
        for f in range(seq.record.frame_count):
            index, twice = seq.paint(f, np.uint8, k_of)
            overlap += twice
            c.write_png(folder / f"{f:05d}.png", index, colours)
        lines = [f"{k_of[tr]} {seq.tracks[tr][0]} {seq.tracks[tr][1]}" for tr in order]
        c.write_atomic(folder / "objects.txt", ("\n".join(lines) + "\n").encode())
    if overlap:
        c.warn(summary, f"davis: {overlap} pixels covered by two objects kept the later one")
    return summary


def detect(path: Path) -> bool:
    """Annotations/<resolution>/<sequence>/*.png beside JPEGImages/ (VOC has Annotations/*.xml)."""
    path = Path(path)
    if not ((path / "Annotations").is_dir() and (path / "JPEGImages").is_dir()):
        return False
    return next((path / "Annotations").glob("*/*/*.png"), None) is not None


def _read(folder: Path):
    objects = {}
    table = folder / "objects.txt"
    if table.is_file():
        for line in table.read_text("utf-8").splitlines():
            if line.strip():
                k, object_id, category = line.split(" ", 2)
                objects[int(k)] = (int(object_id), category)
    for png in sorted(folder.glob("*.png")):
        index = np.asarray(Image.open(png))
        found = []
        for k in np.unique(index):
            if k:
                object_id, category = objects.get(int(k), (int(k), "object"))
                found.append((object_id, category, index == k))
        yield int(png.stem), found


def import_(
    path: str | os.PathLike, images_dir: Any, project: Project, progress: c.Progress | None = None
) -> dict:
    root = Path(path)
    annotations = root / "Annotations"
    res = [d for d in sorted(annotations.iterdir()) if d.is_dir()] if annotations.is_dir() else []
    if not res:
        raise DatasetFormatError(f"{root}: no Annotations/<resolution>/<sequence> folders")
    summary: dict[str, Any] = {"sequences": 0, "tracks": 0, "annotations": 0}
    with project.transaction():
        for level in res:
            for folder in sorted(d for d in level.iterdir() if d.is_dir()):
                images = root / "JPEGImages" / level.name / folder.name
                done = t.import_tracks(project, images, _read(folder))
                summary["sequences"] += 1
                summary["tracks"] += done["tracks"]
                summary["annotations"] += done["annotations"]
    return summary
