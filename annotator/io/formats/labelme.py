"""labelme: one JSON per image in OUT/ (subfolders kept), as labelme writes it.

Export: `imagePath` is relative from the JSON's folder to the project's image (labelme resolves it
that way), `imageData` is null. A hole-free mask is a `polygon` through boundary-pixel centres (labelme
fills polygons with PIL, which restores exactly those pixels); a mask in several parts is one polygon
per part sharing a `group_id` (labelme's way of making one instance of several shapes). A labelme
polygon cannot hold a hole, so a mask with holes becomes labelme's own `mask` shape (a PNG of the box;
labelme >= 5.3 reads it) and a warning counts them. A box-only annotation is a `rectangle`. A score and
extra fields are written as extra shape keys, which labelme keeps (`other_data`). labelme has no class list in its JSON, so
every project category goes to OUT/labels.txt, the list labelme's own converters read.

Import: polygon, rectangle, circle, mask and oriented_rectangle shapes (rasterised as labelme does);
shapes sharing (label, group_id) are one object; a rectangle alone is a box-only annotation. Lines and
points have no area: they are counted as dropped. Unknown shape keys are kept as extra fields.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.images import show_path
from annotator.io.masks import mask_to_rle, rle_area
from annotator.io.structured import read_file
from annotator.store.project import Project

NAME = "labelme"
MAX_JSON_BYTES = 256 * 2**20  # one labelme JSON (imageData can hold the picture, base64)
MAX_LABELS_BYTES = 64 * 2**20  # labels.txt
VERSION = "5.5.0"
SHAPE_KEYS = {"label", "points", "group_id", "shape_type", "flags", "description", "mask"}


def _mask_b64(crop: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(crop.astype(np.uint8) * 255).convert("1").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shape(label: str, points: list, shape_type: str, group_id: int | None = None) -> dict:
    return {
        "label": label,
        "points": points,
        "group_id": group_id,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }


def export(
    project: Project,
    out: str | os.PathLike,
    progress: c.Progress | None = None,
    **_: Any,
) -> dict:
    """Write one labelme JSON per image under the folder `out`."""
    root = Path(out)
    snap = c.read_project(project, progress)
    if snap.folder is None:
        raise DatasetFormatError("labelme export needs the project's image folder (imagePath)")
    summary: dict[str, Any] = {"path": str(root), "format": NAME}
    holes = 0
    groups = snap.by_image()
    ann_extra, box_extra = snap.extras["annotation"], snap.extras["box"]
    for done, image in enumerate(snap.images):
        c.report(progress, done, len(snap.images))
        annotations, boxes = groups[image.id]
        json_path = root / (os.path.splitext(image.file_name)[0] + ".json")
        shapes = []
        group = 0
        for a in annotations:
            mask = c.decode(a)
            extra = dict(ann_extra.get(a.id, {}))
            if a.score is not None:
                extra["score"] = a.score
            if c.mask_holes(mask):
                holes += 1
                ys, xs = np.nonzero(mask)
                x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
                s = _shape(a.category, [[x0, y0], [x1, y1]], "mask")
                s["mask"] = _mask_b64(mask[y0 : y1 + 1, x0 : x1 + 1])
                shapes.append({**s, **_free(extra)})
                continue
            rings = c.centre_polygons(mask)
            gid = None
            if len(rings) > 1:
                group += 1
                gid = group
            for ring in rings:
                s = _shape(
                    a.category, [[float(x), float(y)] for x, y in ring.tolist()], "polygon", gid
                )
                shapes.append({**s, **_free(extra)})
        for b in boxes:
            x, y, w, h = b.bbox
            extra = dict(box_extra.get(b.id, {}))
            if b.score is not None:
                extra["score"] = b.score
            s = _shape(b.category, [[x, y], [x + w - 1, y + h - 1]], "rectangle")
            shapes.append({**s, **_free(extra)})
        source = c.image_path(snap, image)
        rel = os.path.relpath(os.path.abspath(source), os.path.abspath(json_path.parent))
        doc = {
            "version": VERSION,
            "flags": snap.extras["image"].get(image.id, {}).get("flags", {}),
            "shapes": shapes,
            "imagePath": Path(rel).as_posix(),
            "imageData": None,
            "imageHeight": image.height,
            "imageWidth": image.width,
        }
        c.write_atomic(json_path, json.dumps(doc, ensure_ascii=True, indent=2).encode("ascii"))
    summary.update(
        images=len(snap.images),
        categories=len(snap.categories),
        annotations=len(snap.annotations) + len(snap.boxes),
    )
    if holes:
        c.warn(
            summary,
            f"labelme: {holes} mask(s) with holes written as labelme 'mask' shapes "
            "(a polygon cannot hold a hole; labelme < 5.3 cannot read them)",
        )
    names = "".join(f"{cat.name}\n" for cat in snap.categories)
    c.write_atomic(root / "labels.txt", ("__ignore__\n_background_\n" + names).encode("utf-8"))
    return summary


def _free(extra: dict) -> dict:
    return {k: v for k, v in extra.items() if k not in SHAPE_KEYS}


# ------------------------------------------------------------------------------------------ import
def detect(path: Path) -> bool:
    files = [path] if path.is_file() else sorted(path.glob("*.json"))[:3] if path.is_dir() else []
    for file in files:
        raw = c.head(file, 4096)
        if raw is None:
            continue
        head = raw.decode("utf-8", "replace")
        if '"shapes"' in head and ('"imagePath"' in head or '"version"' in head):
            return True
    return False


def _rasterise(shape: dict, H: int, W: int, where: str, clipped=None) -> np.ndarray | tuple | None:
    """A bool mask (or a box tuple for a lone rectangle handled by the caller), as labelme draws."""
    kind = shape.get("shape_type") or "polygon"
    points = shape.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in points
    ):
        raise DatasetFormatError(f"{where}.points: must be a list of [x, y] finite numbers")
    flat = bounds.points([v for p in points for v in p], f"{where}.points", W, H, clipped=clipped)
    xy = list(zip(flat[0::2], flat[1::2], strict=True))
    canvas = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "mask":
        data = shape.get("mask")
        if not isinstance(data, str) or len(xy) != 2:
            raise DatasetFormatError(f"{where}.mask: a mask shape needs a base64 PNG and 2 points")
        (x0, y0), (x1, y1) = (tuple(int(v) for v in p) for p in xy)
        try:
            raw = io.BytesIO(base64.b64decode(data, validate=True))
            with Image.open(raw, formats=["PNG"]) as png:  # labelme writes PNG; nothing else
                if png.size != (x1 - x0 + 1, y1 - y0 + 1):  # from the header, before decoding
                    raise ValueError("size")
                crop = np.array(png).astype(bool)
        except Exception:
            raise DatasetFormatError(
                f"{where}.mask: not a base64-encoded PNG of its points' box"
            ) from None
        if (
            crop.ndim != 2
            or crop.shape != (y1 - y0 + 1, x1 - x0 + 1)
            or x0 < 0
            or y0 < 0
            or x1 >= W
            or y1 >= H
        ):
            raise DatasetFormatError(f"{where}.mask: PNG size does not match its points' box")
        mask = np.zeros((H, W), bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = crop
        return mask
    if kind in ("polygon", "oriented_rectangle"):
        if len(xy) < 3:
            raise DatasetFormatError(f"{where}.points: a polygon needs at least 3 points")
        draw.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        if len(xy) != 2:
            raise DatasetFormatError(f"{where}.points: a rectangle needs 2 points")
        (x0, y0), (x1, y1) = xy
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=1, fill=1)
    elif kind == "circle":
        if len(xy) != 2:
            raise DatasetFormatError(f"{where}.points: a circle needs 2 points")
        (cx, cy), (px, py) = xy
        d = math.hypot(cx - px, cy - py)
        draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=1, fill=1)
    elif kind in ("line", "linestrip", "point", "points"):
        return None
    else:
        raise DatasetFormatError(f"{where}.shape_type: unknown shape type {kind!r}")
    return np.array(canvas, dtype=bool)


def _union_counts(rles: list[dict], H: int, W: int) -> str | None:
    """Compressed counts of the union of a group's shapes (None when empty)."""
    if len(rles) == 1:
        merged = rles[0]
    else:
        merged = mask_utils.merge([{"size": [H, W], "counts": r["counts"].encode()} for r in rles])
        merged = {"size": [H, W], "counts": merged["counts"].decode("ascii")}
    return merged["counts"] if rle_area(merged) else None


def _read(file: Path) -> dict:
    where = show_path(file)
    try:
        doc = json.loads(read_file(file, MAX_JSON_BYTES).decode("utf-8-sig"))
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, a 5000-digit number
        raise DatasetFormatError(f"{where}: not a readable JSON file ({error})") from None
    if not isinstance(doc, dict):
        raise DatasetFormatError(f"{where}: must be a JSON object")
    for key in ("shapes", "imagePath"):
        if key not in doc:
            raise DatasetFormatError(f"{where}: {key}: missing")
    if not isinstance(doc["shapes"], list):
        raise DatasetFormatError(f"{where}: shapes: must be a list")
    if not isinstance(doc["imagePath"], str) or not doc["imagePath"]:
        raise DatasetFormatError(f"{where}: imagePath: must be a non-empty string")
    return doc


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Import one labelme JSON or a folder of them, all or nothing."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    plan = c.Plan(show_path(root))
    labels = (root if root.is_dir() else root.parent) / "labels.txt"
    if labels.exists():  # labelme's class list (labelme2voc/labelme2coco): keeps unused classes
        text = read_file(labels, MAX_LABELS_BYTES).decode("utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for reserved in ("__ignore__", "_background_"):  # labelme's convention: the first lines
            if lines[:1] == [reserved]:
                lines.pop(0)
        for line in lines:  # a later "_background_" is a class of its own
            plan.category(line)
    for done, file in enumerate(files):
        c.report(progress, done, len(files))
        where = show_path(file)
        doc = _read(file)
        rel = PureWindowsPath(doc["imagePath"]).as_posix()
        candidates = [file.parent / rel]
        if images_dir is not None:
            candidates += [Path(images_dir) / Path(rel).name, Path(images_dir) / rel]
        image_file = next((p for p in candidates if p.is_file()), None)
        if image_file is None:
            raise DatasetFormatError(
                f"{where}: imagePath: {rel!r} not found (next to the JSON or in --images)"
            )
        W, H = c.checked_size(image_file, where)
        for key, actual in (("imageWidth", W), ("imageHeight", H)):
            if doc.get(key) is not None and doc[key] != actual:
                raise DatasetFormatError(f"{where}: {key}: {doc[key]!r} but the image is {W}x{H}")
        directory = Path(images_dir) if images_dir is not None else image_file.parent
        name = c.project_name(directory, image_file, project, where)
        image = plan.image(name, W, H, where)
        if doc.get("flags"):
            image.extra["flags"] = doc["flags"]
        objects: dict[tuple, dict] = {}
        for k, shape in enumerate(doc["shapes"]):
            at = f"{where}: shapes[{k}]"
            if not isinstance(shape, dict):
                raise DatasetFormatError(f"{at}: must be an object")
            label = shape.get("label")
            if not isinstance(label, str) or not label.strip():
                raise DatasetFormatError(f"{at}.label: must be a non-empty string")
            gid = shape.get("group_id")
            if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool)):
                raise DatasetFormatError(f"{at}.group_id: must be an integer or null")
            mask = _rasterise(shape, H, W, at, plan.clip)
            if mask is None:
                plan.drop("labelme line/point shapes")
                continue
            key = (label.strip(), gid) if gid is not None else (label.strip(), "shape", k)
            entry = objects.setdefault(key, {"rles": [], "kinds": set(), "extra": {}})
            entry["rles"].append(mask_to_rle(mask))  # compressed at once: memory follows the file
            entry["kinds"].add(shape.get("shape_type") or "polygon")
            entry["shape"] = shape
            entry["extra"].update({k2: v for k2, v in shape.items() if k2 not in SHAPE_KEYS})
            if shape.get("description"):
                entry["extra"]["description"] = shape["description"]
            if shape.get("flags"):
                entry["extra"]["flags"] = shape["flags"]
        for (label, *_), entry in objects.items():
            category = plan.category(label)
            extra = entry["extra"]
            score = extra.pop("score", None)
            if isinstance(score, str):
                raise DatasetFormatError(f"{where}: score: must be a number, got a string")
            if score is not None:
                score = bounds.number(score, f"{where}: score")
            if entry["kinds"] == {"rectangle"} and len(entry["shape"]["points"]) == 2:
                (x0, y0), (x1, y1) = entry["shape"]["points"]
                box = (min(x0, x1), min(y0, y1), abs(x1 - x0) + 1, abs(y1 - y0) + 1)
                plan.annotations.append(
                    c.PlanAnnotation(name, category, box=box, score=score, extra=extra)
                )
                continue
            counts = _union_counts(entry["rles"], H, W)
            if counts is None:
                plan.drop("empty shapes")
                continue
            plan.annotations.append(
                c.PlanAnnotation(name, category, counts=counts, score=score, extra=extra)
            )
    summary = c.apply_plan(project, plan)
    summary["format"] = NAME
    return summary
