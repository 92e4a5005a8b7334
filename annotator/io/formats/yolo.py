"""YOLO (Ultralytics layout): OUT/data.yaml, OUT/images/<split>/, OUT/labels/<split>/*.txt.

Export: class index = the category's position in id order (every project category is listed in
data.yaml's `names`, used or not). `segment` task: one line per object, `cls x1 y1 x2 y2 ...`
normalised, vertices at boundary-pixel centres + 0.25 px: Ultralytics truncates to integers and
supervision rounds, and c + 0.25 gives c either way, so both fill back exactly the same pixels. A YOLO line is one filled polygon, so:
- holes and several parts: every ring (outer ones and holes) is joined into one polygon by zero-width
  bridges from each ring's nearest vertex (as Ultralytics' converter and supervision do). cv2.fillPoly
  (Ultralytics, supervision) then leaves holes empty, exactly; a bridge between two parts crosses
  background, whose pixels get filled. Each line is rasterised back at export: a mask that does not
  come back exactly is counted in a warning with the lowest IoU;
- a box-only annotation becomes its rectangle (a warning counts them).
`detect` task: `cls cx cy w h` normalised, from the mask's box (or the box). Scores and extra fields
have no place in YOLO and are counted in a warning. Images are copied, EXIF-rotated ones written
upright.

Import: every labels/**/*.txt, its image at the same relative path under `images_dir` (default
OUT/images) with any image extension; 5 numbers are a box, an odd count >= 7 a polygon. Subfolders
are flattened on export ('sub/b.png' -> images/train/sub__b.png; supervision reads flat folders only)
and read back.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.images import IMAGE_EXTENSIONS, show_path
from annotator.io.outputs import published
from annotator.io.structured import load_yaml, read_file
from annotator.store.project import Project

NAME = "yolo"
SPLIT = "train"
SEPARATOR = "__"
NUDGE = 0.25  # px added to pixel-centre vertices: survives both truncation and rounding


def flat_name(name: str) -> str:
    """YOLO folders are flat (supervision does not look into subfolders): 'sub/b.png' is written as
    'sub__b.png', and the importer looks for 'sub/b.png' too."""
    return name.replace("/", SEPARATOR)


def _join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """One ring visiting every part: from each part's nearest point to the next and back."""
    if len(rings) == 1:
        return rings[0]
    path = list(map(tuple, rings[0]))
    for ring in rings[1:]:
        pts = list(map(tuple, ring))
        here = np.array(path)
        d = ((here[:, None, :] - np.array(pts)[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        rotated = pts[j:] + pts[:j] + [pts[j]]
        path = path[: i + 1] + rotated + path[i:]
    return np.array(path)


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def export(
    project: Project,
    out: str | os.PathLike,
    task: str = "segment",
    progress: c.Progress | None = None,
    **_: Any,
) -> dict:
    """Write the project as a YOLO dataset in the folder `out`."""
    if task not in ("segment", "detect"):
        raise ValueError(f"YOLO task must be 'segment' or 'detect', got {task!r}")
    root = Path(out)
    snap = c.read_project(project, progress)
    index = {cat.id: k for k, cat in enumerate(snap.categories)}
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "task": task}
    inexact = boxes_as_rect = scores = missing = 0
    lowest = 1.0
    seen: dict[str, str] = {}
    for image in snap.images:
        stem = flat_name(os.path.splitext(image.file_name)[0])
        if stem in seen:
            raise DatasetFormatError(
                f"{image.file_name} and {seen[stem]}: same flattened name without extension, "
                "YOLO's label files would clash"
            )
        seen[stem] = image.file_name
    groups = snap.by_image()
    for done, image in enumerate(snap.images):
        c.report(progress, done, len(snap.images))
        annotations, boxes = groups[image.id]
        stem = flat_name(os.path.splitext(image.file_name)[0])
        W, H = image.width, image.height
        lines = []
        for a in annotations:
            scores += a.score is not None
            if task == "detect":
                x, y, w, h = a.bbox
                lines.append(
                    f"{index[a.category_id]} {_fmt((x + w / 2) / W)} {_fmt((y + h / 2) / H)} "
                    f"{_fmt(w / W)} {_fmt(h / H)}"
                )
                continue
            mask = c.decode(a)
            ring = _join_rings(c.centre_polygons(mask, holes=True))
            back = c.fill_centre_polygons([ring], H, W)
            if (back != mask).any():
                inexact += 1
                lowest = min(lowest, float((back & mask).sum() / (back | mask).sum()))
            coords = " ".join(
                f"{_fmt((px + NUDGE) / W)} {_fmt((py + NUDGE) / H)}" for px, py in ring.tolist()
            )
            lines.append(f"{index[a.category_id]} {coords}")
        for b in boxes:
            scores += b.score is not None
            x, y, w, h = b.bbox
            if task == "detect":
                lines.append(
                    f"{index[b.category_id]} {_fmt((x + w / 2) / W)} {_fmt((y + h / 2) / H)} "
                    f"{_fmt(w / W)} {_fmt(h / H)}"
                )
            else:
                boxes_as_rect += 1
                x0, y0 = (math.floor(x) + NUDGE) / W, (math.floor(y) + NUDGE) / H
                x1, y1 = (math.ceil(x + w) - 1 + NUDGE) / W, (math.ceil(y + h) - 1 + NUDGE) / H
                lines.append(
                    f"{index[b.category_id]} {_fmt(x0)} {_fmt(y0)} {_fmt(x1)} {_fmt(y0)} "
                    f"{_fmt(x1)} {_fmt(y1)} {_fmt(x0)} {_fmt(y1)}"
                )
        c.write_atomic(
            root / "labels" / SPLIT / f"{stem}.txt", "".join(f"{ln}\n" for ln in lines).encode()
        )
        if not c.copy_image(
            c.image_path(snap, image), root / "images" / SPLIT / flat_name(image.file_name)
        ):
            missing += 1
    c.report(progress, len(snap.images), len(snap.images))
    data = {
        "path": str(published(root).resolve()),  # not the staging folder
        "train": f"images/{SPLIT}",
        "val": f"images/{SPLIT}",
        "nc": len(snap.categories),
        "names": [cat.name for cat in snap.categories],
    }
    c.write_atomic(
        root / "data.yaml", yaml.safe_dump(data, allow_unicode=False, sort_keys=False).encode()
    )
    summary.update(
        images=len(snap.images),
        categories=len(snap.categories),
        annotations=len(snap.annotations) + len(snap.boxes),
    )
    if inexact:
        c.warn(
            summary,
            f"YOLO: {inexact} mask(s) in several parts cannot be one exact polygon: parts joined by "
            f"zero-width bridges, whose pixels readers fill (lowest IoU {lowest:.3f})",
        )
    if boxes_as_rect:
        c.warn(summary, f"YOLO: {boxes_as_rect} box-only annotation(s) written as rectangles")
    extra = len(snap.extras["annotation"]) + len(snap.extras["box"])
    c.warn_unwritten(summary, "YOLO", scores, extra, missing, "labels")
    return summary


# ------------------------------------------------------------------------------------------ import
MAX_LABEL_BYTES = 64 * 2**20  # one labels/*.txt


def detect(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "labels").is_dir()
        and ((path / "data.yaml").exists() or (path / "data.yml").exists())
    )


def _names(path: Path) -> list[str]:
    file = path / "data.yaml" if (path / "data.yaml").exists() else path / "data.yml"
    where = show_path(file)
    data = load_yaml(file)
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetFormatError(f"{where}: names: missing (the class names)")
    names = data["names"]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError, OverflowError):  # a key of .inf
            raise DatasetFormatError(f"{where}: names: keys must be class indices") from None
        if keys != list(range(len(keys))):
            raise DatasetFormatError(f"{where}: names: indices must be 0..{len(keys) - 1}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
        raise DatasetFormatError(f"{where}: names: must be a list of class names")
    names = [str(n).strip() for n in names]
    if len(set(names)) != len(names) or not all(names):
        raise DatasetFormatError(f"{where}: names: class names must be unique and non-empty")
    return names


def _find_image(images_dir: Path, rel: Path) -> Path | None:
    """The image of labels/<rel>: same relative path under `images_dir`, or without the split
    folder, or with '__' read back as '/' (how the export flattens subfolders)."""
    inner = Path(*rel.parts[1:]) if len(rel.parts) > 1 else rel
    stems = [rel.with_suffix(""), inner.with_suffix("")]
    if SEPARATOR in inner.name:
        stems.append(inner.parent / inner.stem.replace(SEPARATOR, "/"))
    for stem in stems:
        for ext in sorted(IMAGE_EXTENSIONS):
            for candidate in (images_dir / f"{stem}{ext}", images_dir / f"{stem}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def _numbers(tokens: list[str], where: str) -> list[float]:
    values = []
    for k, token in enumerate(tokens[1:], start=1):
        v = bounds.number(token, f"{where}: value {k}")
        if not -1e-3 <= v <= 1 + 1e-3:
            raise DatasetFormatError(f"{where}: value {k} must be normalised to 0..1, got {token}")
        values.append(min(max(v, 0.0), 1.0))
    return values


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Import a YOLO dataset folder, all or nothing."""
    root = Path(path)
    if not detect(root):
        raise DatasetFormatError(f"{show_path(root)}: not a YOLO folder (data.yaml and labels/)")
    names = _names(root)
    directory = Path(images_dir) if images_dir is not None else root / "images"
    plan = c.Plan(show_path(root))
    for name in names:
        plan.category(name)
    labels = sorted((root / "labels").rglob("*.txt"))
    for done, file in enumerate(labels):
        c.report(progress, done, len(labels))
        rel = file.relative_to(root / "labels")
        where = show_path(file)
        image_file = _find_image(directory, rel)
        if image_file is None:
            raise DatasetFormatError(
                f"{where}: no image {rel.with_suffix('.*')} under {show_path(directory)}"
            )
        W, H = c.checked_size(image_file, where)
        name = c.project_name(directory, image_file, project, where)
        plan.image(name, W, H, where)
        try:
            text = read_file(file, MAX_LABEL_BYTES).decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetFormatError(f"{where}: not UTF-8 text (byte {error.start})") from None
        for n, line in enumerate(text.splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            at = f"{where}:{n}"
            try:
                cls = int(tokens[0])
            except ValueError:
                raise DatasetFormatError(
                    f"{at}: class {tokens[0][:20]!r} is not an integer"
                ) from None
            if not 0 <= cls < len(names):
                raise DatasetFormatError(
                    f"{at}: class {cls} is not in data.yaml names (0..{len(names) - 1})"
                )
            values = _numbers(tokens, at)
            if len(values) == 4:
                cx, cy, w, h = values
                if w <= 0 or h <= 0:  # supervision writes these for 1-px-thin masks
                    plan.drop("zero-area YOLO boxes")
                    continue
                box = ((cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H)
                plan.annotations.append(c.PlanAnnotation(name, names[cls], box=box))
                continue
            if len(values) < 6 or len(values) % 2:
                raise DatasetFormatError(
                    f"{at}: expected 4 box values or an even number (>= 6) of polygon values, "
                    f"got {len(values)}"
                )
            pts = np.array(values).reshape(-1, 2) * [W, H]
            ring = np.clip(np.floor(pts + 1e-6), 0, [W - 1, H - 1]).astype(np.int32)
            counts = c.mask_counts(c.fill_centre_polygons([ring], H, W))
            if counts is None:
                plan.drop("empty polygons")
                continue
            plan.annotations.append(c.PlanAnnotation(name, names[cls], counts=counts))
    if images_dir is None and directory.is_dir():  # images without labels: background images
        for image_file in sorted(directory.rglob("*")):
            if image_file.suffix.lower() in IMAGE_EXTENSIONS and image_file.is_file():
                where = show_path(image_file)
                name = c.project_name(directory, image_file, project, where)
                if name not in plan.images:
                    W, H = c.checked_size(image_file, where)
                    plan.image(name, W, H, where)
    c.report(progress, len(labels), len(labels))
    summary = c.apply_plan(project, plan)
    summary["format"] = NAME
    return summary
