"""What every dataset format shares: the project read as one snapshot, an import plan written in one
transaction, file writes that honour the umask, loss warnings, and pixel-centre polygons.

Two polygon conventions exist. COCO, CVAT and datumaro rasterise polygons with pycocotools, where a
vertex lies on pixel *edges* (`masks.mask_to_polygons` is exact there). YOLO (Ultralytics and
supervision use `cv2.fillPoly` on truncated integers) and labelme (PIL `ImageDraw.polygon`) treat a
vertex as a pixel *centre*; for them polygons are traced through the centres of the boundary pixels
(`centre_polygons`), which those rasterisers fill back to the same pixels.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from annotator.atomic import atomic_write_bytes
from annotator.errors import DatasetFormatError, ImageLoadError, ProjectError
from annotator.io.files import open_regular
from annotator.io.images import IMAGE_EXTENSIONS, decodable_formats, image_size, show_path
from annotator.io.masks import has_holes, mask_to_rle, rle_area, rle_to_mask
from annotator.io.outputs import check_inside
from annotator.names import category_name
from annotator.store import extras as store_extras
from annotator.store.project import Annotation, Category, ImageRecord, Project

_ORIENTATION_TAG = 0x0112


class FormatWarning(UserWarning):
    """Something a format cannot hold was exported with a stated fallback, or an import dropped data."""


Progress = Callable[..., None]
"""`progress(done, total)`: an export or import reports each image it reaches (the window's progress
dialog; its callback may raise to cancel, between two images). A stage other than the format's main
loop (reading the project) is reported as `progress(done, total, stage)`."""

READING = "reading the project"


def report(progress: Progress | None, done: int, total: int, stage: str | None = None) -> None:
    """Call `progress` when there is one (the CLI passes none); `stage` names a stage other than
    the main loop, so the window shows "reading the project 40%" before "writing YOLO 0%"."""
    if progress is None:
        return
    if stage is None:
        progress(done, total)
    else:
        progress(done, total, stage)


def warn(summary: dict, message: str, stacklevel: int = 3) -> None:
    """Record a one-line loss warning in the summary and as a Python warning."""
    summary.setdefault("warnings", []).append(message)
    warnings.warn(message, FormatWarning, stacklevel=stacklevel)


def warn_unwritten(
    summary: dict, fmt: str, scores: int, extra: int, missing: int = 0, written: str = ""
) -> None:
    """The losses every exporter without score, extra-field or image-less entries shares: scores
    and extra fields not written, image files not found (then `written` says what was written
    without them)."""
    if scores:
        warn(summary, f"{fmt}: {scores} score(s) not written (the format has no field for them)", 4)
    if extra:
        warn(summary, f"{fmt}: extra fields of {extra} annotation(s) not written", 4)
    if missing:
        warn(
            summary, f"{fmt}: {missing} image file(s) not found, {written} written without them", 4
        )


# --------------------------------------------------------------------------------------- snapshot
@dataclass
class Snapshot:
    """A consistent read of everything an export needs."""

    folder: Path | None
    images: list[ImageRecord]
    categories: list[Category]
    annotations: list[Annotation]
    boxes: list[store_extras.Box]
    extras: dict[str, dict[int, dict[str, Any]]]

    def by_image(self) -> dict[int, tuple[list[Annotation], list[store_extras.Box]]]:
        out: dict[int, tuple[list[Annotation], list[store_extras.Box]]] = {
            i.id: ([], []) for i in self.images
        }
        for a in self.annotations:
            out[a.image_id][0].append(a)
        for b in self.boxes:
            out[b.image_id][1].append(b)
        return out


def read_project(project: Project, progress: Progress | None = None) -> Snapshot:
    """One consistent read of the project; the annotations (most of the bytes: their masks) are
    read in pages, reported as the READING stage so a big export shows a percentage from the
    start (issue 24) and can be cancelled between pages."""
    with project.snapshot():
        total = project.annotation_count() if progress is not None else 0
        report(progress, 0, total, READING)
        annotations: list[Annotation] = []
        for page in project.annotation_pages():
            annotations.extend(page)
            report(progress, len(annotations), total, READING)
        return Snapshot(
            folder=project.folder,
            images=project.images(),
            categories=project.categories(),
            annotations=annotations,
            boxes=store_extras.boxes(project),
            extras={kind: store_extras.extras(project, kind) for kind in store_extras.KINDS},
        )


def image_path(snapshot: Snapshot, image: ImageRecord) -> Path | None:
    return None if snapshot.folder is None else snapshot.folder / image.file_name


def exif_rotated(path: Path | None) -> bool:
    """True when the file's EXIF orientation is not 1 (its stored pixels are not upright)."""
    if path is None or not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            return im.getexif().get(_ORIENTATION_TAG, 1) not in (1, None)
    except Exception:
        return False


def copy_image(source: Path | None, target: Path, upright: bool = True) -> bool:
    """Copy an image for a format that ships its images; EXIF-rotated ones are written upright
    (pixels turned, orientation tag gone) so sizes and masks match the pixels any reader decodes.
    Returns False when the source is missing (the caller warns)."""
    if source is None or not source.is_file():
        return False
    check_inside(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if upright and exif_rotated(source):
        with Image.open(source) as im:
            fixed = ImageOps.exif_transpose(im)
            fixed.save(target, format=im.format or "PNG")
    else:
        shutil.copyfile(source, target)
    _apply_mode(target, None)
    return True


# --------------------------------------------------------------------------------------- writing
def _apply_mode(path: Path, existing_mode: int | None) -> None:
    """A copied image gets the mode a plain `open()` would give it (0644 under umask 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    mode = existing_mode if existing_mode is not None else 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def write_atomic(out: str | os.PathLike, data: bytes) -> None:
    """`atomic.atomic_write_bytes` (temp file, fsync, rename; umask or existing mode; a symlink is
    written through) with the folder created and failures as one-line ProjectErrors."""
    out = Path(out)
    check_inside(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, data)
    except OSError as error:
        raise ProjectError(
            f"{show_path(out)}: cannot write the export ({error.strerror or error})"
        ) from error


def write_png(out: Path, array: np.ndarray, palette: list[int] | None = None) -> None:
    """A PNG (8-bit, 16-bit, or paletted when `palette` is given), written atomically."""
    if palette is not None:
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
        image.putpalette(palette + [0] * (768 - len(palette)))  # "L" becomes "P"
    else:  # uint16 gives "I;16", uint8 "L"
        image = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(out, buffer.getvalue())


# -------------------------------------------------------------------------------------- geometry
def centre_polygons(mask: np.ndarray, holes: bool = False) -> list[np.ndarray]:
    """Rings through the centres of boundary pixels (N, 2) int: one per 8-connected part, and with
    `holes` also one per hole (the object's pixels around it, which cv2.fillPoly keeps filled while
    the even-odd fill leaves the hole's inside empty).

    For YOLO and labelme, whose rasterisers fill a polygon's vertices' pixels. A part that is a dot
    or a straight 1-px line becomes a degenerate 3-point ring (formats need 3 points), which both
    rasterisers fill to exactly it.
    """
    m = np.ascontiguousarray(mask.astype(np.uint8))
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, _ = cv2.findContours(m, mode, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in contours:
        pts = contour.reshape(-1, 2)
        if len(pts) < 3:  # a dot or a straight 1-px line: a degenerate ring fills exactly it
            pts = np.array([pts[0], pts[-1], pts[0]])
        rings.append(pts)
    return rings


def fill_centre_polygons(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool mask of pixel-centre polygons, the way cv2.fillPoly (Ultralytics, supervision) fills."""
    mask = np.zeros((height, width), np.uint8)
    if rings:
        cv2.fillPoly(mask, [np.asarray(r, np.int32).reshape(-1, 1, 2) for r in rings], 1)
    return mask.astype(bool)


def mask_holes(mask: np.ndarray) -> bool:
    return has_holes(mask)


# ---------------------------------------------------------------------------------------- import
def head(file: Path, size: int) -> bytes | None:
    """The first `size` bytes of a regular file, None for anything else (a named pipe would block
    detection forever) or an unreadable file: what format detection sniffs."""
    try:
        with open_regular(file) as handle:
            return handle.read(size)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def open_png(file: Path, where: str) -> Iterator[Image.Image]:
    """A PNG (or any image Pillow reads) opened from a regular file only (a named pipe would block);
    the caller checks its size from the header before decoding pixels."""
    try:
        handle = open_regular(file)
    except (OSError, ValueError) as error:
        why = getattr(error, "strerror", None) or error
        raise DatasetFormatError(f"{where}: cannot read ({why})") from None
    with handle, Image.open(handle, formats=decodable_formats()) as image:  # never Ghostscript
        yield image


@dataclass
class PlanImage:
    name: str  # relative to the project folder
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanAnnotation:
    image: str  # PlanImage.name
    category: str
    counts: str | None = None  # compressed RLE of a mask; None for a box-only annotation
    box: tuple[float, float, float, float] | None = None
    score: float | None = None
    doc_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything an import will write, fully validated before the one transaction."""

    source: str
    images: dict[str, PlanImage] = field(default_factory=dict)
    categories: dict[str, int | None] = field(default_factory=dict)  # name -> wanted id
    annotations: list[PlanAnnotation] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    clipped: int = (
        0  # shapes with a vertex over the image's edge, clipped to it (bounds.CLIP_REACH)
    )

    def drop(self, what: str, n: int = 1) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + n

    def clip(self) -> None:
        """Count a shape that was clipped to its image (reported in the summary)."""
        self.clipped += 1

    def category(self, name: str, wanted: int | None = None) -> str:
        """The checked name (`names.category_name`, the rule every entry point shares)."""
        name = category_name(name, f"{self.source}: label name", DatasetFormatError)
        self.categories.setdefault(name, wanted)
        return name

    def image(self, name: str, width: int, height: int, where: str) -> PlanImage:
        known = self.images.get(name)
        if known is not None and (known.width, known.height) != (width, height):
            raise DatasetFormatError(
                f"{where}: {name} is {width}x{height} here but {known.width}x{known.height} before"
            )
        if known is None:
            known = self.images[name] = PlanImage(name, width, height)
        return known


def project_name(images_dir: Path, file: Path, project: Project, where: str) -> str:
    """A path to an image as a name relative to the project folder (which must contain it)."""
    folder = project.folder if project.folder is not None else images_dir
    full = os.path.normpath(os.path.abspath(file))
    rel = os.path.relpath(full, os.path.abspath(folder))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise DatasetFormatError(
            f"{where}: the image {show_path(file)} is outside the project folder {show_path(folder)}"
        )
    return Path(rel).as_posix()


def checked_size(file: Path, where: str) -> tuple[int, int]:
    """(width, height) of an image on disk, or a one-line error naming the annotation file."""
    try:
        size = image_size(file)
    except ImageLoadError as error:
        raise DatasetFormatError(f"{where}: {error}") from None
    return size.width, size.height


def mask_counts(mask: np.ndarray) -> str | None:
    """Compressed RLE counts, None for an empty mask."""
    rle = mask_to_rle(mask)
    return rle["counts"] if rle_area(rle) else None


def apply_plan(project: Project, plan: Plan) -> dict:
    """Write a validated plan in one transaction; returns the summary (with drop warnings)."""
    before_images = {r.file_name for r in project.images()}
    before_categories = {c.name for c in project.categories()}
    masks = boxes = duplicates = 0
    with project.transaction():
        category_ids = {
            name: project.add_category(name, category_id=wanted)
            for name, wanted in plan.categories.items()
        }
        image_ids = {}
        for name, image in plan.images.items():
            image_ids[name] = project.add_image(name, image.width, image.height)
            if image.extra:
                store_extras.set_extra(project, "image", image_ids[name], image.extra)
        existing, existing_boxes = store_extras.held_keys(project, image_ids.values())
        for a in plan.annotations:
            image = plan.images[a.image]
            image_id, category_id = image_ids[a.image], category_ids[a.category]
            if a.counts is not None:
                key = (image_id, category_id, a.counts)
                if key in existing:
                    duplicates += 1
                    continue
                existing.add(key)
                ref = project.add_annotation_rle(
                    image_id,
                    {"size": [image.height, image.width], "counts": a.counts},
                    category_id,
                    score=a.score,
                    annotation_id=a.doc_id,
                )
                kind = "annotation"
                masks += 1
            else:
                assert a.box is not None
                bkey = (image_id, category_id, tuple(float(v) for v in a.box))
                if bkey in existing_boxes:
                    duplicates += 1
                    continue
                existing_boxes.add(bkey)
                ref = store_extras.add_box(
                    project, image_id, category_id, a.box, score=a.score, box_id=a.doc_id
                )
                kind = "box"
                boxes += 1
            if a.extra:
                store_extras.set_extra(project, kind, ref, a.extra)
    summary: dict[str, Any] = {
        "path": plan.source,
        "images": len(plan.images),
        "images_added": len(set(plan.images) - before_images),
        "categories_added": len(set(plan.categories) - before_categories),
        "annotations_added": masks,
        "boxes_added": boxes,
        "skipped_duplicate": duplicates,
        "dropped": dict(plan.dropped),
        "clipped": plan.clipped,
    }
    for what, n in sorted(plan.dropped.items()):
        warn(summary, f"{plan.source}: {n} {what} not imported")
    if plan.clipped:
        warn(
            summary,
            f"{plan.source}: {plan.clipped} shapes reached over the image's edge: clipped to it",
        )
    return summary


def decode(a: Annotation) -> np.ndarray:
    return rle_to_mask(a.rle)


def find_image(directory: Path, stem: str | os.PathLike) -> Path | None:
    """The image file `directory/stem.<ext>` for any known image extension (first in sorted order),
    or None: datasets that name an image by its stem (VOC ids, PNG-mask files)."""
    for extension in sorted(IMAGE_EXTENSIONS):
        candidate = directory / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    return None
