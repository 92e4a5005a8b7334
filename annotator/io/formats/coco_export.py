"""COCO export: a project as one COCO instance-segmentation JSON (the registry record is in
`io/formats/coco.py`; the import is `coco_import.py`).

Export decisions:
- ids are the store's ids (images, categories, annotations), so they stay stable from one export to
  the next; every project category is listed, used or not (class ids and the class list survive a
  round trip; a category is a project's label, not a vocabulary entry), all images are listed.
- Box-only annotations (imported detection datasets) are written with `bbox` and an empty
  `segmentation`; fields kept from an import (attributes, keypoints, an image's license...) are
  written back. A non-finite score is left out (JSON has no Infinity) and the summary warns.
- `width`/`height` and masks refer to the upright image (EXIF orientation applied), which `info`
  states; readers that ignore EXIF (torchvision's CocoDetection) would see rotated pixels, so the
  export warns about such images and `upright_dir` writes upright copies of all images there.
- `segmentation` is compressed RLE (counts as str) by default. With `polygons=True`, masks are traced
  along pixel edges (exact: the polygons rasterise back to the same pixels), except masks with holes,
  which a COCO polygon cannot express: they stay RLE and the summary counts them (`rle_fallback`).
- `area` is the mask's pixel count and `bbox` the mask's box; `iscrowd` is 0; `score` is an extra key
  when the annotation has one and it is finite. The file is ASCII-only JSON (pycocotools opens it
  with the locale's encoding) with every number finite, written atomically with the umask's mode
  (`formats._common.write_atomic`, i.e. `annotator/atomic.py`); temp files a killed export left
  next to the output are removed by the next export to it.
- Never into a project: a path inside a `.annotator/` folder (after following symlinks), the
  project's own database, or any existing SQLite file is refused; they are not COCO files.
- A stored mask whose RLE is corrupt is a one-line ProjectError naming the annotation.

"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from annotator.errors import ProjectError
from annotator.io.files import show_path
from annotator.io.formats import _common as formats_common
from annotator.io.masks import (
    mask_to_polygons,
    rle_runs,
    rle_to_mask,
)
from annotator.io.outputs import check_output, project_inputs, staged_folder
from annotator.store.project import Project

AUTHORSHIP = ("created", "created_by", "updated", "updated_by")  # extra annotation fields (ADR 11)
IMAGE_KEYS = {"id", "file_name", "width", "height"}
CATEGORY_KEYS = {"id", "name", "supercategory"}
ANNOTATION_KEYS = {
    "id",
    "image_id",
    "category_id",
    "segmentation",
    "area",
    "bbox",
    "iscrowd",
    "score",
    *AUTHORSHIP,  # columns of the store, not extras
}


# ------------------------------------------------------------------------------------------ export
def export_coco(
    project: Project,
    out_path: str | os.PathLike,
    polygons: bool = False,
    upright_dir: str | os.PathLike | None = None,
    progress: formats_common.Progress | None = None,
) -> dict:
    """Write the project as a COCO file at `out_path` (atomically); returns a summary dict.
    `progress(done, total)` counts annotations (the document is written once, at the end)."""
    out = Path(out_path)
    _refuse_project_paths(out)
    inputs = project_inputs(project)
    check_output(out, False, *inputs)
    if upright_dir is not None:  # never the images folder: the copies would replace the originals
        check_output(upright_dir, True, *inputs)
    snap = formats_common.read_project(project, progress)
    images, annotations, categories = snap.images, snap.annotations, snap.categories
    kept = snap.extras
    doc_annotations = []
    n_polygons = n_fallback = n_bad_score = 0
    for done, a in enumerate(annotations):
        if done % 256 == 0:
            formats_common.report(progress, done, len(annotations))
        segmentation: Any = a.rle
        try:  # pure-Python validation first: pycocotools' C decoder trusts its input
            rle_runs(a.rle)
            mask = rle_to_mask(a.rle) if polygons else None
        except (ValueError, TypeError) as error:
            raise ProjectError(
                f"{show_path(project.path)}: annotation {a.id} has a corrupt stored mask ({error}); "
                "delete it or restore the project from a backup"
            ) from None
        if mask is not None:
            rings = mask_to_polygons(mask)
            if rings is None:
                n_fallback += 1
            else:
                segmentation = rings
                n_polygons += 1
        entry = {
            "id": a.id,
            "image_id": a.image_id,
            "category_id": a.category_id,
            "segmentation": segmentation,
            "area": a.area,
            "bbox": list(a.bbox),
            "iscrowd": 0,
        }
        _add_score(entry, a.score)
        n_bad_score += a.score is not None and "score" not in entry
        extra = kept["annotation"].get(a.id, {})
        entry.update(free_fields(extra, ANNOTATION_KEYS))
        if extra.get("iscrowd") == 1:
            entry["iscrowd"] = 1
        # who and when (ADR 0011): extra fields, ignored by COCO readers
        entry.update(created=a.created, created_by=a.created_by)
        entry.update(updated=a.updated, updated_by=a.updated_by)
        doc_annotations.append(entry)
    for b in snap.boxes:
        x, y, w, h = b.bbox
        entry = {
            "id": b.id,
            "image_id": b.image_id,
            "category_id": b.category_id,
            "segmentation": [],
            "area": w * h,
            "bbox": [x, y, w, h],
            "iscrowd": 0,
        }
        _add_score(entry, b.score)
        n_bad_score += b.score is not None and "score" not in entry
        entry.update(free_fields(kept["box"].get(b.id, {}), ANNOTATION_KEYS))
        doc_annotations.append(entry)
    doc_annotations.sort(key=lambda e: e["id"])
    rotated = [i for i in images if formats_common.exif_rotated(formats_common.image_path(snap, i))]
    doc = {
        "info": {
            "description": "exported by annotator",
            "version": "1.0",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "orientation": "width, height and masks refer to the upright image (EXIF orientation "
            "applied)",
        },
        "licenses": [],
        "images": [
            {
                "id": i.id,
                "file_name": i.file_name,
                "width": i.width,
                "height": i.height,
                **free_fields(kept["image"].get(i.id, {}), IMAGE_KEYS),
            }
            for i in images
        ],
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "supercategory": c.supercategory,
                **free_fields(kept["category"].get(c.id, {}), CATEGORY_KEYS),
            }
            for c in categories
        ],
        "annotations": doc_annotations,
    }
    _write_atomic(out, doc)
    summary: dict[str, Any] = {
        "path": str(out),
        "images": len(images),
        "categories": len(doc["categories"]),
        "annotations": len(doc_annotations),
        "polygons": n_polygons,
        "rle": len(doc_annotations) - n_polygons,
        "rle_fallback": n_fallback,
        "boxes": len(snap.boxes),
        "exif_rotated": len(rotated),
    }
    if n_bad_score:
        formats_common.warn(summary, f"COCO: {n_bad_score} non-finite score(s) left out")
    if snap.boxes:
        formats_common.warn(
            summary,
            f"COCO: {len(snap.boxes)} box-only annotation(s) written with an empty segmentation "
            "(pycocotools' segm evaluation cannot read them; turn them into masks first)",
        )
    if upright_dir is not None:
        with staged_folder(upright_dir, kind="upright copies") as folder:
            for i in images:
                formats_common.copy_image(formats_common.image_path(snap, i), folder / i.file_name)
        summary["upright_dir"] = str(upright_dir)
    elif rotated:
        formats_common.warn(
            summary,
            f"COCO: {len(rotated)} image(s) are EXIF-rotated (e.g. {rotated[0].file_name}); sizes and "
            "masks refer to the upright image, which readers that ignore EXIF do not see "
            "(write upright copies with upright_dir / --upright-copies DIR)",
        )
    return summary


def _add_score(entry: dict, score: float | None) -> None:
    if score is not None and math.isfinite(score):
        entry["score"] = score


def free_fields(extra: dict, reserved: set[str]) -> dict:
    return {k: v for k, v in extra.items() if k not in reserved}


def _refuse_project_paths(out: Path) -> None:
    """An export must never replace a project's database or anything in a `.annotator/` folder."""
    from annotator.io.targets import export_target_problem

    problem = export_target_problem(out)
    if problem is not None:
        raise ProjectError(f"{show_path(out)}: {problem}")


def _write_atomic(out: Path, doc: dict) -> None:
    """ASCII-only JSON (\\uXXXX escapes: pycocotools opens the file with the locale's encoding; a
    non-UTF-8 file name stays a \\udcNN escape) through `atomic.atomic_write_bytes` (umask or existing
    mode, symlinks written through). `allow_nan=False`: never `Infinity` in the file."""
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    formats_common.write_atomic(out, text.encode("ascii"))
