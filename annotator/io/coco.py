"""COCO instance-segmentation files: export a project, import a document into one.

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

Import decisions:
- Everything is validated before anything is written, and the writes are one transaction: an import
  either fully succeeds or changes nothing. Errors name the place, e.g. `annotations[12].segmentation`.
- Polygons, compressed RLE and uncompressed RLE are accepted; an annotation without segmentation (or
  an empty one) but with a bbox is a box-only annotation (detection datasets); keys the store has no
  column for are kept as extras. Masks are stored as canonical RLE, with
  area and bbox recomputed from the mask (the document's are checked for sanity, not trusted).
- `iscrowd: 1` regions (how datumaro and CVAT write every mask to COCO) are imported with the flag
  kept as an extra field and exported back as `iscrowd: 1`, so their meaning (an ignore region in
  COCOeval) survives; `crowd=False` skips them instead. Masks that cover no pixel are skipped, and an annotation
  identical to one already stored (same image, category and mask) is skipped, so re-importing a file is
  harmless. The summary counts each.
- Images are matched by file name; ids of new images, categories and annotations are kept when free
  and at most `MAX_KEPT_ID`, so export -> import into an empty project -> export gives the same
  document; larger ids are renumbered by the store, so no file can use up the id space (an id of
  2**63-1 kept would make every later save fail). Ids must fit in 64 bits.
- Bounds on what a file can ask for: images of at most `MAX_PIXELS` pixels (the largest image that
  can be loaded), names without control characters and at most `MAX_NAME_LENGTH` characters, numbers
  of at most 4300 digits (Python's limit), nesting as deep as the parser allows, files of at most
  `MAX_DOCUMENT_BYTES`; only regular files are read (a named pipe would block).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from annotator import names
from annotator.errors import CocoFormatError, ImageLoadError, ProjectError
from annotator.io import bounds
from annotator.io.files import open_regular, show_path
from annotator.io.formats import _common as formats_common
from annotator.io.images import MAX_PIXELS, image_size
from annotator.io.masks import (
    mask_to_polygons,
    polygons_to_rle,
    rle_area,
    rle_runs,
    rle_to_mask,
    runs_to_rle,
)
from annotator.io.outputs import check_output, project_inputs, staged_folder
from annotator.names import category_name
from annotator.store import extras as store_extras
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

POLYGON_TOLERANCE = bounds.TOLERANCE
"""How far (pixels) a polygon vertex may lie outside the image: COCO's own files have vertices on the
far edge (x = width) and a little rounding beyond it."""

MAX_KEPT_ID = 2**31 - 1
"""Largest document id kept as the store's id on import; larger ones are renumbered."""

INT64 = (-(2**63), 2**63 - 1)

MAX_NAME_LENGTH = names.MAX_NAME_LENGTH
"""Longest category or supercategory name (the vocabulary's limit too)."""

MAX_DOCUMENT_BYTES = 4 * 2**30
"""Largest COCO file read (LVIS v1 train is 1.1 GB; parsing takes several times the file in memory)."""


# ------------------------------------------------------------------------------------------ export
def export_coco(
    project: Project,
    out_path: str | os.PathLike,
    polygons: bool = False,
    upright_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the project as a COCO file at `out_path` (atomically); returns a summary dict."""
    out = Path(out_path)
    _refuse_project_paths(out)
    inputs = project_inputs(project)
    check_output(out, False, *inputs)
    if upright_dir is not None:  # never the images folder: the copies would replace the originals
        check_output(upright_dir, True, *inputs)
    snap = formats_common.read_project(project)
    images, annotations, categories = snap.images, snap.annotations, snap.categories
    kept = snap.extras
    doc_annotations = []
    n_polygons = n_fallback = n_bad_score = 0
    for a in annotations:
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
        entry.update(_free(extra, ANNOTATION_KEYS))
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
        entry.update(_free(kept["box"].get(b.id, {}), ANNOTATION_KEYS))
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
                **_free(kept["image"].get(i.id, {}), IMAGE_KEYS),
            }
            for i in images
        ],
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "supercategory": c.supercategory,
                **_free(kept["category"].get(c.id, {}), CATEGORY_KEYS),
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


def _free(extra: dict, reserved: set[str]) -> dict:
    return {k: v for k, v in extra.items() if k not in reserved}


def _kept(check: _Checker, item: dict, reserved: set[str], where: str) -> dict:
    """The item's other fields, to keep as extras; they must be plain JSON (no NaN/Infinity)."""
    extra = _free(item, reserved)
    try:
        json.dumps(extra, allow_nan=False)
    except ValueError:
        bad = next(k for k, v in extra.items() if _not_plain(v))
        raise check.fail(f"{where}.{bad}", "must not hold NaN or Infinity") from None
    return extra


def _not_plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return True
    return False


def _refuse_project_paths(out: Path) -> None:
    """An export must never replace a project's database or anything in a `.annotator/` folder."""
    from annotator.store.files import export_target_problem

    problem = export_target_problem(out)
    if problem is not None:
        raise ProjectError(f"{show_path(out)}: {problem}")


def _write_atomic(out: Path, doc: dict) -> None:
    """ASCII-only JSON (\\uXXXX escapes: pycocotools opens the file with the locale's encoding; a
    non-UTF-8 file name stays a \\udcNN escape) through `atomic.atomic_write_bytes` (umask or existing
    mode, symlinks written through). `allow_nan=False`: never `Infinity` in the file."""
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    formats_common.write_atomic(out, text.encode("ascii"))


# ------------------------------------------------------------------------------------------ import
@dataclass(frozen=True)
class _Image:
    doc_id: int
    name: str  # relative to the project folder
    width: int
    height: int


@dataclass(frozen=True)
class _Annotation:
    doc_id: int
    image_id: int  # document id
    category_id: int  # document id
    counts: str | None  # canonical compressed RLE; None for a box-only annotation
    score: float | None
    box: tuple[float, float, float, float] | None = None
    extra: dict | None = None
    authorship: dict | None = None  # created/created_by/updated/updated_by kept from the file


class _Checker:
    """Validation helpers that raise CocoFormatError naming the file and the place."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> CocoFormatError:
        return CocoFormatError(f"{self.source}: {where}: {message}")

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object, got {_kind(value)}")
        return value

    def array(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, got {_kind(value)}")
        return value

    def key(self, item: dict, name: str, where: str) -> Any:
        if name not in item:
            raise self.fail(where, f"missing key {name!r}")
        return item[name]

    def integer(
        self, value: Any, where: str, minimum: int | None = None, maximum: int = INT64[1]
    ) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"must be an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be at least {minimum}, got {_kind(value)}")
        if value > maximum:
            raise self.fail(where, f"must be at most {maximum}, got {_kind(value)}")
        return value

    def ident(self, value: Any, where: str) -> int:
        """A document id: any integer that fits in 64 bits (it is only a label in the file)."""
        return self.integer(value, where, minimum=INT64[0], maximum=INT64[1])

    def name(self, value: Any, where: str) -> str:
        """A category or supercategory name: one line, not blank, at most MAX_NAME_LENGTH."""
        text = self.text(value, where)
        return category_name(text, f"{self.source}: {where}", CocoFormatError)

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise self.fail(where, f"must be finite, got {_kind(value)}") from None
        if not math.isfinite(number):
            raise self.fail(where, f"must be finite, got {value}")
        return number

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        digits = (
            str(value)
            if value.bit_length() < 200
            else f"{str(value)[:20]}... ({len(str(value))} digits)"
        )
        return f"the number {digits}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _read_document(path: Path) -> Any:
    name = show_path(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DOCUMENT_BYTES:
                raise CocoFormatError(
                    f"{name}: {size / 2**30:.1f} GB is more than the {MAX_DOCUMENT_BYTES / 2**30:.0f} GB "
                    "a COCO file may have"
                )
            raw = handle.read()
    except FileNotFoundError:
        raise CocoFormatError(f"{name}: file not found") from None
    except ValueError:  # "embedded null byte"
        raise CocoFormatError(f"{name}: the file name contains a NUL byte") from None
    except OSError as error:
        raise CocoFormatError(
            f"{name}: cannot read the file ({error.strerror or error})"
        ) from error
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise CocoFormatError(f"{name}: not UTF-8 text (byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise CocoFormatError(
            f"{name}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error
    except RecursionError as error:
        raise CocoFormatError(f"{name}: JSON nested too deeply") from error
    except ValueError as error:  # an integer of more than 4300 digits
        raise CocoFormatError(f"{name}: a number in the JSON is too long ({error})") from None


def _segmentation(check: _Checker, seg: Any, where: str, width: int, height: int) -> str:
    """Canonical compressed RLE counts of a polygon list or RLE dict, validated."""
    if isinstance(seg, list):
        if not seg:
            raise check.fail(where, "polygon list is empty")
        polygons = []
        for j, polygon in enumerate(seg):
            at = f"{where}[{j}]"
            check.array(polygon, at)
            if len(polygon) < 6 or len(polygon) % 2:
                raise check.fail(
                    at, f"a polygon needs an even number (>= 6) of coordinates, got {len(polygon)}"
                )
            coords = [check.number(v, f"{at}[{k}]") for k, v in enumerate(polygon)]
            xs, ys = coords[0::2], coords[1::2]
            tol = POLYGON_TOLERANCE
            if min(xs) < -tol or max(xs) > width + tol or min(ys) < -tol or max(ys) > height + tol:
                raise check.fail(
                    at,
                    f"polygon reaches ({min(xs):g}..{max(xs):g}, {min(ys):g}..{max(ys):g}), "
                    f"outside the {width}x{height} image",
                )
            polygons.append(coords)
        return polygons_to_rle(polygons, height, width)["counts"]
    if isinstance(seg, dict):
        size = check.key(seg, "size", where)
        check.key(seg, "counts", where)
        if not (isinstance(size, list) and len(size) == 2 and size == [height, width]):
            raise check.fail(
                f"{where}.size",
                f"must be [{height}, {width}] (the image's height, width), got {size!r}",
            )
        try:
            runs = rle_runs(seg)
        except ValueError as error:
            raise check.fail(f"{where}.counts", str(error)) from None
        return runs_to_rle(runs, height, width)["counts"]
    raise check.fail(where, f"must be a polygon list or an RLE object, got {_kind(seg)}")


def _project_name(
    check: _Checker, file_name: str, where: str, images_dir: Path | None, folder: Path | None
) -> str:
    """The document's file name as a name relative to the project folder."""
    if "\0" in file_name:
        raise check.fail(where, f"a file name cannot contain a NUL byte, got {_kind(file_name)}")
    posix = PurePosixPath(file_name.replace("\\", "/"))
    if posix.name in ("", ".") or file_name.endswith(("/", "\\")):
        raise check.fail(where, f"must name a file, got {_kind(file_name)}")
    if posix.is_absolute() or ".." in posix.parts:
        raise check.fail(
            where, f"must be a relative path inside the images folder, got {file_name!r}"
        )
    if images_dir is None or folder is None:
        return str(posix)
    full = os.path.normpath(os.path.join(os.path.abspath(images_dir), *posix.parts))
    rel = os.path.relpath(full, os.path.abspath(folder))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise CocoFormatError(
            f"{check.source}: the images folder {show_path(images_dir)} is outside the project folder "
            f"{show_path(folder)}"
        )
    return PurePosixPath(*Path(rel).parts).as_posix()


def import_coco(
    json_path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    check_files: bool = True,
    crowd: bool = True,
) -> dict:
    """Import a COCO document whose file names are relative to `images_dir` (default: the project
    folder) into `project`, all or nothing. Returns a summary dict.

    With `check_files`, every image must exist and have the size the document gives it; `crowd`
    keeps `iscrowd: 1` regions (flagged) instead of skipping them. Raises CocoFormatError, naming
    the place in the document, and then nothing was imported.
    """
    keep_crowd = crowd
    path = Path(json_path)
    check = _Checker(show_path(path))
    doc = check.obj(_read_document(path), "document")
    folder = project.folder
    directory = Path(images_dir) if images_dir is not None else folder

    raw_images = check.array(check.key(doc, "images", "document"), "images")
    raw_categories = check.array(check.key(doc, "categories", "document"), "categories")
    raw_annotations = check.array(check.key(doc, "annotations", "document"), "annotations")

    images: dict[int, _Image] = {}
    image_extras: dict[int, dict] = {}
    category_extras: dict[int, dict] = {}
    names: set[str] = set()
    for i, item in enumerate(raw_images):
        at = f"images[{i}]"
        check.obj(item, at)
        doc_id = check.ident(check.key(item, "id", at), f"{at}.id")
        if doc_id in images:
            raise check.fail(f"{at}.id", f"duplicate image id {doc_id}")
        file_name = check.text(check.key(item, "file_name", at), f"{at}.file_name")
        width = check.integer(check.key(item, "width", at), f"{at}.width", 1, MAX_PIXELS)
        height = check.integer(check.key(item, "height", at), f"{at}.height", 1, MAX_PIXELS)
        if width * height > MAX_PIXELS:
            raise check.fail(
                at,
                f"{width}x{height} is more than the {MAX_PIXELS / 1e6:.0f} MP an image may have",
            )
        name = _project_name(check, file_name, f"{at}.file_name", directory, folder)
        if name in names:
            raise check.fail(f"{at}.file_name", f"duplicate file name {file_name!r}")
        names.add(name)
        existing = project.image_by_name(name)
        if existing is not None and (existing.width, existing.height) != (width, height):
            raise check.fail(
                at,
                f"{file_name} is {width}x{height} here but {existing.width}x{existing.height} in the project",
            )
        if check_files:
            if directory is None:
                raise CocoFormatError(
                    f"{check.source}: give the images folder (the project has none)"
                )
            try:
                actual = image_size(directory / PurePosixPath(file_name.replace("\\", "/")))
            except ImageLoadError as error:
                raise check.fail(f"{at}.file_name", str(error)) from None
            if (actual.width, actual.height) != (width, height):
                raise check.fail(
                    at,
                    f"{file_name} is {actual.width}x{actual.height} on disk but {width}x{height} here",
                )
        images[doc_id] = _Image(doc_id, name, width, height)
        image_extras[doc_id] = _kept(check, item, IMAGE_KEYS, at)

    categories: dict[int, tuple[str, str]] = {}
    category_names: set[str] = set()
    for i, item in enumerate(raw_categories):
        at = f"categories[{i}]"
        check.obj(item, at)
        doc_id = check.ident(check.key(item, "id", at), f"{at}.id")
        if doc_id in categories:
            raise check.fail(f"{at}.id", f"duplicate category id {doc_id}")
        name = check.name(check.key(item, "name", at), f"{at}.name")
        if name in category_names:
            raise check.fail(f"{at}.name", f"duplicate category name {name!r}")
        category_names.add(name)
        supercategory = item.get("supercategory", "")
        if supercategory is None:
            supercategory = ""
        if not isinstance(supercategory, str):
            raise check.fail(f"{at}.supercategory", f"must be a string, got {_kind(supercategory)}")
        if supercategory.strip():
            supercategory = check.name(supercategory, f"{at}.supercategory")
        categories[doc_id] = (name, supercategory)
        category_extras[doc_id] = _kept(check, item, CATEGORY_KEYS, at)

    annotations: list[_Annotation] = []
    seen: set[int] = set()
    skipped_crowd = skipped_empty = 0
    for i, item in enumerate(raw_annotations):
        at = f"annotations[{i}]"
        check.obj(item, at)
        doc_id = check.ident(check.key(item, "id", at), f"{at}.id")
        if doc_id in seen:
            raise check.fail(f"{at}.id", f"duplicate annotation id {doc_id}")
        seen.add(doc_id)
        image_id = check.ident(check.key(item, "image_id", at), f"{at}.image_id")
        if image_id not in images:
            raise check.fail(f"{at}.image_id", f"no image has id {image_id}")
        category_id = check.ident(check.key(item, "category_id", at), f"{at}.category_id")
        if category_id not in categories:
            raise check.fail(f"{at}.category_id", f"no category has id {category_id}")
        image = images[image_id]
        seg = item.get("segmentation")
        counts = None
        if seg is not None and seg != [] and seg != {}:
            counts = _segmentation(check, seg, f"{at}.segmentation", image.width, image.height)
        elif "bbox" not in item:
            raise check.fail(at, "has neither a segmentation nor a bbox")
        box = None
        if "bbox" in item:
            box = check.array(item["bbox"], f"{at}.bbox")
            if len(box) != 4:
                raise check.fail(
                    f"{at}.bbox", f"must have 4 numbers [x, y, width, height], got {len(box)}"
                )
            x, y, w, h = (check.number(v, f"{at}.bbox[{k}]") for k, v in enumerate(box))
            if w < 0 or h < 0:
                raise check.fail(f"{at}.bbox", f"negative width or height ({w:g}, {h:g})")
            image = images[image_id]
            box = bounds.box_xywh(
                (x, y, w, h),
                f"{check.source}: {at}.bbox",
                image.width,
                image.height,
                CocoFormatError,
            )
        if "area" in item and check.number(item["area"], f"{at}.area") < 0:
            raise check.fail(f"{at}.area", "must not be negative")
        score = item.get("score")
        if score is not None:
            score = check.number(score, f"{at}.score")
        crowd = item.get("iscrowd", 0) if item.get("iscrowd") is not None else 0
        if crowd not in (0, 1):
            raise check.fail(f"{at}.iscrowd", f"must be 0 or 1, got {crowd!r}")
        extra = _kept(check, item, ANNOTATION_KEYS, at)
        if crowd == 1:
            if not keep_crowd or counts is None:
                skipped_crowd += 1
                continue
            extra["iscrowd"] = 1
        if counts is None:
            assert box is not None
            if box[2] <= 0 or box[3] <= 0:
                skipped_empty += 1
                continue
            annotations.append(_Annotation(doc_id, image_id, category_id, None, score, box, extra))
            continue
        if rle_area({"size": [image.height, image.width], "counts": counts}) == 0:
            skipped_empty += 1
            continue
        authorship = {k: item[k] for k in AUTHORSHIP if isinstance(item.get(k), str)}
        if any(len(v) > 200 for v in authorship.values()):
            raise check.fail(at, "created/updated fields must be at most 200 characters")
        annotations.append(
            _Annotation(doc_id, image_id, category_id, counts, score, None, extra, authorship)
        )

    # Everything is valid: write it all in one transaction.
    before_images = {r.file_name for r in project.images()}
    before_categories = {c.name for c in project.categories()}
    added = duplicates = boxes_added = 0
    with project.transaction():
        category_map = {
            doc_id: project.add_category(name, supercategory, category_id=_kept_id(doc_id))
            for doc_id, (name, supercategory) in categories.items()
        }
        image_map = {
            doc_id: project.add_image(
                image.name, image.width, image.height, image_id=_kept_id(doc_id)
            )
            for doc_id, image in images.items()
        }
        for kind, kept, id_map in (
            ("category", category_extras, category_map),
            ("image", image_extras, image_map),
        ):
            for doc_id, extra in kept.items():
                if extra:
                    store_extras.set_extra(project, kind, id_map[doc_id], extra)
        existing = {
            (a.image_id, a.category_id, a.counts)
            for image_id in set(image_map.values())
            for a in project.annotations(image_id)
        }
        existing_boxes = {
            (b.image_id, b.category_id, b.bbox)
            for image_id in set(image_map.values())
            for b in store_extras.boxes(project, image_id)
        }
        for a in annotations:
            image = images[a.image_id]
            if a.counts is None:
                assert a.box is not None
                bkey = (image_map[a.image_id], category_map[a.category_id], a.box)
                if bkey in existing_boxes:
                    duplicates += 1
                    continue
                existing_boxes.add(bkey)
                ref = store_extras.add_box(
                    project,
                    image_map[a.image_id],
                    category_map[a.category_id],
                    a.box,
                    score=a.score,
                    box_id=a.doc_id,
                )
                if a.extra:
                    store_extras.set_extra(project, "box", ref, a.extra)
                boxes_added += 1
                continue
            key = (image_map[a.image_id], category_map[a.category_id], a.counts)
            if key in existing:
                duplicates += 1
                continue
            existing.add(key)
            ref = project.add_annotation_rle(
                image_map[a.image_id],
                {"size": [image.height, image.width], "counts": a.counts},
                category_map[a.category_id],
                score=a.score,
                annotation_id=_kept_id(a.doc_id),
                authorship=a.authorship,
            )
            if a.extra:
                store_extras.set_extra(project, "annotation", ref, a.extra)
            added += 1
    return {
        "path": str(path),
        "images": len(images),
        "images_added": len({i.name for i in images.values()} - before_images),
        "categories_added": len({n for n, _ in categories.values()} - before_categories),
        "annotations_added": added,
        "boxes_added": boxes_added,
        "skipped_crowd": skipped_crowd,
        "skipped_empty": skipped_empty,
        "skipped_duplicate": duplicates,
    }


def _kept_id(doc_id: int) -> int | None:
    """The id to ask the store for: the document's when small enough, else None (the store picks)."""
    return doc_id if 0 <= doc_id <= MAX_KEPT_ID else None
