"""Box-only annotations and format fields the store has no column for (schema 3).

Kept beside `project.py` (not in it) so the importers' needs stay additive: detection datasets bring
boxes without masks (they wait for `refine --boxes` to become masks), and COCO files bring
`attributes`, `keypoints`, an image's `license`... that an export should write back. Every function
joins the caller's transaction (`project.transaction()`), so an import stays all or nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from annotator.store.project import Project

KINDS = ("image", "category", "annotation", "box")


@dataclass(frozen=True)
class Box:
    """A box-only annotation: XYWH in image pixels."""

    id: int
    image_id: int
    category_id: int
    category: str
    bbox: tuple[float, float, float, float]
    score: float | None


def add_box(
    project: Project,
    image_id: int,
    category_id: int,
    bbox: tuple[float, float, float, float],
    score: float | None = None,
    box_id: int | None = None,
) -> int:
    """Store a box-only annotation; `box_id` is kept when no annotation or box has it.

    Boxes share the annotations' id space: the annotations' AUTOINCREMENT sequence is moved past
    every box id, so a mask made later never takes a box's id and an export lists both unambiguously.
    """
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"a box needs finite x, y and positive width, height, got {bbox!r}")
    with project.transaction():
        project.image(image_id)
        project.category(category_id)
        if box_id is not None and _id_taken(project, box_id):
            box_id = None
        if box_id is None:
            box_id = _next_id(project)
        project.write(
            "INSERT INTO boxes (id, image_id, category_id, x, y, w, h, score, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, datetime('now'))",
            (box_id, image_id, category_id, x, y, w, h, None if score is None else float(score)),
        )
        _bump_sequence(project, box_id)
        return box_id


def _id_taken(project: Project, ref_id: int) -> bool:
    return bool(
        project.read("SELECT 1 FROM annotations WHERE id = ?", (ref_id,))
        or project.read("SELECT 1 FROM boxes WHERE id = ?", (ref_id,))
    )


def _next_id(project: Project) -> int:
    rows = project.read(
        "SELECT max(coalesce((SELECT max(id) FROM annotations), 0),"
        " coalesce((SELECT max(id) FROM boxes), 0),"
        " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'annotations'), 0))"
    )
    return int(rows[0][0]) + 1


def _bump_sequence(project: Project, ref_id: int) -> None:
    if project.read("SELECT 1 FROM sqlite_sequence WHERE name = 'annotations'"):
        project.write(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'annotations'", (ref_id,)
        )
    else:
        project.write(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('annotations', ?)", (ref_id,)
        )


def held_keys(project: Project, image_ids) -> tuple[set[tuple], set[tuple]]:
    """What a project already holds on these images, as importers compare it: (image id,
    category id, RLE counts) per mask and (image id, category id, bbox) per box, so that an
    import of the same dataset twice adds nothing the second time."""
    ids = set(image_ids)
    masks = {(a.image_id, a.category_id, a.counts) for i in ids for a in project.annotations(i)}
    held_boxes = {(b.image_id, b.category_id, b.bbox) for i in ids for b in boxes(project, i)}
    return masks, held_boxes


def boxes(project: Project, image_id: int | None = None) -> list[Box]:
    """Box-only annotations of one image (or all), in id order."""
    sql = (
        "SELECT b.id, b.image_id, b.category_id, c.name, b.x, b.y, b.w, b.h, b.score"
        " FROM boxes b JOIN categories c ON c.id = b.category_id"
    )
    if image_id is None:
        rows = project.read(sql + " ORDER BY b.id")
    else:
        rows = project.read(sql + " WHERE b.image_id = ? ORDER BY b.id", (image_id,))
    return [_box(r) for r in rows]


def _box(r: tuple) -> Box:
    return Box(r[0], r[1], r[2], r[3], (r[4], r[5], r[6], r[7]), r[8])


def box(project: Project, box_id: int) -> Box | None:
    """One box-only annotation, or None when there is none with this id."""
    rows = project.read(
        "SELECT b.id, b.image_id, b.category_id, c.name, b.x, b.y, b.w, b.h, b.score"
        " FROM boxes b JOIN categories c ON c.id = b.category_id WHERE b.id = ?",
        (box_id,),
    )
    return _box(rows[0]) if rows else None


def mask_for_box(
    project: Project,
    box_id: int,
    image_id: int,
    rle: dict,
    category: str,
    score: float,
    proposal_id: int,
) -> int:
    """An accepted `refine --boxes` proposal: the box becomes an annotation with the mask.

    The annotation takes the box's id, score and kept fields (a COCO export then lists the same
    object under the same id, with the dataset's score, now with a segmentation), and records in its
    prompts the box as SAM's prompt (XYXY) plus what undo needs to bring the box back (`box_for_mask`).
    SAM's own score stays in the prompts. When the box is gone (deleted since), the mask is stored as
    a new annotation with SAM's score. One transaction; returns the annotation id.
    """
    with project.transaction():
        found = box(project, box_id)
        refine: dict[str, Any] = {"proposal": proposal_id, "box": box_id, "sam_score": score}
        if found is None or found.image_id != image_id:
            return project.add_annotation_rle(image_id, rle, category, score, {"refine": refine})
        kept = extra(project, "box", box_id)
        x, y, w, h = found.bbox
        refine.update(category=found.category, bbox=[x, y, w, h], score=found.score)
        prompts = {"box": [x, y, x + w, y + h], "refine": refine}
        project.write("DELETE FROM boxes WHERE id = ?", (box_id,))  # its extras go with it
        ann_id = project.add_annotation_rle(
            image_id, rle, category, found.score, prompts, annotation_id=box_id
        )
        if kept:
            set_extra(project, "annotation", ann_id, kept)
        return ann_id


def box_for_mask(project: Project, annotation_id: int) -> int | None:
    """Undo of `mask_for_box`: delete the annotation and put its box back (same id, category, XYWH,
    score and kept fields). Returns the box id; None when the annotation was deleted since or was
    not made from a box (then only the annotation is deleted)."""
    with project.transaction():
        try:
            ann = project.annotation(annotation_id)
        except KeyError:
            return None  # deleted by hand since: nothing left to take back
        prompts = ann.prompts
        info = prompts.get("refine") if isinstance(prompts, dict) else None
        kept = extra(project, "annotation", annotation_id)
        project.delete_annotation(annotation_id)
        if not isinstance(info, dict) or "bbox" not in info:
            return None
        category_id = project.category_id(str(info.get("category") or ann.category))
        box_id = add_box(
            project,
            ann.image_id,
            category_id,
            tuple(info["bbox"]),
            info.get("score"),
            box_id=annotation_id,
        )
        if kept:
            set_extra(project, "box", box_id, kept)
        return box_id


def delete_box(project: Project, box_id: int) -> None:
    """Remove a box (e.g. once `refine --boxes` turned it into an accepted mask)."""
    with project.transaction():
        project.write("DELETE FROM boxes WHERE id = ?", (box_id,))


def set_extra(project: Project, kind: str, ref_id: int, data: dict[str, Any]) -> None:
    """Keep a format's own fields for an image, category, annotation or box (empty: forget them)."""
    if kind not in KINDS:
        raise ValueError(f"extras kind must be one of {KINDS}, got {kind!r}")
    with project.transaction():
        if not data:
            project.write("DELETE FROM extras WHERE kind = ? AND ref_id = ?", (kind, ref_id))
            return
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        project.write(
            "INSERT INTO extras (kind, ref_id, data) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, ref_id) DO UPDATE SET data = excluded.data",
            (kind, ref_id, text),
        )


def extra(project: Project, kind: str, ref_id: int) -> dict[str, Any]:
    """The kept fields of one image, category, annotation or box (empty when none)."""
    rows = project.read("SELECT data FROM extras WHERE kind = ? AND ref_id = ?", (kind, ref_id))
    return json.loads(rows[0][0]) if rows else {}


def extras(project: Project, kind: str) -> dict[int, dict[str, Any]]:
    """All kept fields of one kind, by ref id."""
    rows = project.read("SELECT ref_id, data FROM extras WHERE kind = ?", (kind,))
    return {int(ref_id): json.loads(data) for ref_id, data in rows}
