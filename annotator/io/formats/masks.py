"""PNG masks: OUT/classes.csv, OUT/semantic/<stem>.png, OUT/instances/<stem>.png.

classes.csv: `id,name,supercategory`, id 0 = background, then every project category in id order
(1..K). semantic/<stem>.png: the class id of each pixel (8-bit, 16-bit when K > 255). instances/
<stem>.png: 16-bit, 0 = background, 1..N the image's objects, largest first. An instance's class is
the semantic value under it. <stem> is the image's file name without extension (subfolders kept).

What it cannot hold: overlaps (one object per pixel: smaller objects are painted on top, a warning
counts the pixels lost), box-only annotations, scores and extra fields (each warned, not written).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.images import show_path
from annotator.io.structured import read_file
from annotator.store.project import Project

NAME = "masks"
MAX_CLASS = 2**16 - 1  # the largest value of a 16-bit PNG: class ids and instance numbers
MAX_CSV_BYTES = 64 * 2**20
MAX_INSTANCES = 65535


def export(
    project: Project,
    out: str | os.PathLike,
    progress: c.Progress | None = None,
    **_: Any,
) -> dict:
    """Write instance and semantic PNG masks with a class table under the folder `out`."""
    root = Path(out)
    snap = c.read_project(project, progress)
    summary: dict[str, Any] = {"path": str(root), "format": NAME}
    class_index = {cat.id: k + 1 for k, cat in enumerate(snap.categories)}
    if len(snap.categories) > 65535:
        raise DatasetFormatError(
            f"masks: {len(snap.categories)} categories, a 16-bit PNG holds 65535"
        )
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["id", "name", "supercategory"])
    writer.writerow([0, "background", ""])
    for cat in snap.categories:
        writer.writerow([class_index[cat.id], cat.name, cat.supercategory])
    c.write_atomic(root / "classes.csv", table.getvalue().encode("utf-8"))
    semantic_type = np.uint8 if len(snap.categories) <= 255 else np.uint16
    groups = snap.by_image()
    lost = n_boxes = scores = 0
    seen: dict[str, str] = {}
    for done, image in enumerate(snap.images):
        c.report(progress, done, len(snap.images))
        stem = os.path.splitext(image.file_name)[0]
        if stem in seen:
            raise DatasetFormatError(
                f"{image.file_name} and {seen[stem]}: same name without extension, mask files would clash"
            )
        seen[stem] = image.file_name
        annotations, boxes = groups[image.id]
        n_boxes += len(boxes)
        if len(annotations) > MAX_INSTANCES:
            raise DatasetFormatError(
                f"masks: {image.file_name} has more than {MAX_INSTANCES} objects"
            )
        inst = np.zeros((image.height, image.width), np.uint16)
        sem = np.zeros((image.height, image.width), semantic_type)
        painted = 0
        for k, a in enumerate(sorted(annotations, key=lambda a: (-a.area, a.id)), start=1):
            scores += a.score is not None
            mask = c.decode(a)
            painted += int(mask.sum())
            inst[mask] = k
            sem[mask] = class_index[a.category_id]
        lost += painted - int(np.count_nonzero(inst))
        c.write_png(root / "instances" / f"{stem}.png", inst)
        c.write_png(root / "semantic" / f"{stem}.png", sem)
    summary.update(
        images=len(snap.images), categories=len(snap.categories), annotations=len(snap.annotations)
    )
    if lost:
        c.warn(summary, f"masks: {lost} overlapping pixel(s) lost (one object per pixel)")
    if n_boxes:
        c.warn(summary, f"masks: {n_boxes} box-only annotation(s) not written (no mask to paint)")
    c.warn_unwritten(summary, "masks", scores, len(snap.extras["annotation"]))
    return summary


# ------------------------------------------------------------------------------------------ import
def detect(path: Path) -> bool:
    return path.is_dir() and (path / "classes.csv").exists() and (path / "instances").is_dir()


def _classes(root: Path) -> dict[int, str]:
    file = root / "classes.csv"
    where = show_path(file)
    try:
        text = read_file(file, MAX_CSV_BYTES).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetFormatError(f"{where}: cannot read ({error})") from None
    if not rows or [h.strip() for h in rows[0][:2]] != ["id", "name"]:
        raise DatasetFormatError(f"{where}: the first line must be 'id,name[,supercategory]'")
    out: dict[int, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        cid = bounds.integer(row[0], f"{where}:{n}: id", 0, MAX_CLASS)
        if len(row) < 2 or not row[1].strip():
            raise DatasetFormatError(f"{where}:{n}: name: missing")
        if cid in out:
            raise DatasetFormatError(f"{where}:{n}: id: duplicate class id {cid}")
        out[cid] = row[1].strip()
    return out


def _png(file: Path, size: tuple[int, int]) -> np.ndarray:
    """A one-channel PNG's values; its size (W, H) is checked from the header before decoding."""
    try:
        with c.open_png(file, show_path(file)) as im:
            if im.size != size:
                raise DatasetFormatError(
                    f"{show_path(file)}: is {im.size[0]}x{im.size[1]}, the image {size[0]}x{size[1]}"
                )
            if im.mode not in ("L", "I;16", "I", "P", "I;16B", "I;16L"):
                raise DatasetFormatError(
                    f"{show_path(file)}: must be a one-channel PNG, got mode {im.mode}"
                )
            values = np.array(im).astype(np.int64)
        return bounds.pixel_values(values, show_path(file), MAX_CLASS)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetFormatError(f"{show_path(file)}: cannot read the PNG ({error})") from None


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Import PNG masks; `images_dir` holds the images (same relative names, any image extension)."""
    root = Path(path)
    if not detect(root):
        raise DatasetFormatError(
            f"{show_path(root)}: not a masks folder (classes.csv and instances/)"
        )
    if images_dir is None:
        raise DatasetFormatError(f"{show_path(root)}: give the images folder (--images)")
    directory = Path(images_dir)
    classes = _classes(root)
    plan = c.Plan(show_path(root))
    for cid in sorted(classes):
        if cid != 0:
            plan.category(classes[cid])
    pngs = sorted((root / "instances").rglob("*.png"))
    for done, file in enumerate(pngs):
        c.report(progress, done, len(pngs))
        rel = file.relative_to(root / "instances").with_suffix("")
        at = show_path(file)
        image_file = c.find_image(directory, rel)
        if image_file is None:
            raise DatasetFormatError(f"{at}: no image {rel}.* in {show_path(directory)}")
        W, H = c.checked_size(image_file, at)
        name = c.project_name(directory, image_file, project, at)
        plan.image(name, W, H, at)
        inst = _png(file, (W, H))
        sem_file = root / "semantic" / file.relative_to(root / "instances")
        if not sem_file.exists():
            raise DatasetFormatError(
                f"{at}: no semantic mask {show_path(sem_file)} (the instances' classes)"
            )
        sem = _png(sem_file, (W, H))
        for arr, f in ((inst, file), (sem, sem_file)):
            if arr.shape != (H, W):
                raise DatasetFormatError(
                    f"{show_path(f)}: is {arr.shape[1]}x{arr.shape[0]}, the image {W}x{H}"
                )
        for k in (int(v) for v in np.unique(inst) if v):
            mask = inst == k
            values = np.bincount(sem[mask].ravel())
            cid = int(values.argmax())
            if cid not in classes or cid == 0:
                raise DatasetFormatError(
                    f"{show_path(sem_file)}: instance {k} has class {cid}, not in classes.csv"
                )
            plan.annotations.append(
                c.PlanAnnotation(name, plan.category(classes[cid]), counts=c.mask_counts(mask))
            )
    summary = c.apply_plan(project, plan)
    summary["format"] = NAME
    return summary
