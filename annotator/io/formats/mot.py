"""MOT 1.1 boxes (MOTChallenge ground truth, datumaro's `mot_seq`): per sequence
OUT/<seq>/img1/<frame>.jpg (frames from 1), OUT/<seq>/gt/gt.txt with
`frame,track,x,y,w,h,1,class,1` per tracked object (the box of its accepted mask), OUT/<seq>/gt/labels.txt
(class = line number from 1) and OUT/<seq>/seqinfo.ini. Masks are not kept (boxes only, warned);
import is not offered (a MOT file has no masks to bring back).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from annotator.io.formats import _common as c
from annotator.io.formats import _tracks as t
from annotator.io.masks import mask_box
from annotator.store.project import Project

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
    from annotator.errors import DatasetFormatError

    raise DatasetFormatError("mot: boxes without masks; import a mask format (mots, davis) instead")
