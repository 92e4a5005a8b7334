"""COCO instance-segmentation files: export a project, import a document into one.

Export decisions:
- ids are the store's ids (images, categories, annotations), so they stay stable from one export to
  the next; only categories used by at least one annotation are listed (a 22k-name vocabulary is not a
  category list), all images are listed, annotated or not.
- `segmentation` is compressed RLE (counts as str) by default. With `polygons=True`, masks are traced
  along pixel edges (exact: the polygons rasterise back to the same pixels), except masks with holes,
  which a COCO polygon cannot express: they stay RLE and the summary counts them (`rle_fallback`).
- `area` is the mask's pixel count and `bbox` the mask's box; `iscrowd` is 0; `score` is an extra key
  when the annotation has one. The file is written atomically (temp file + `os.replace`).

Import decisions:
- Everything is validated before anything is written, and the writes are one transaction: an import
  either fully succeeds or changes nothing. Errors name the place, e.g. `annotations[12].segmentation`.
- Polygons, compressed RLE and uncompressed RLE are accepted; masks are stored as canonical RLE, with
  area and bbox recomputed from the mask (the document's are checked for sanity, not trusted).
- `iscrowd: 1` regions are validated but not imported (the store has no crowd flag; importing them as
  objects would change their meaning), masks that cover no pixel are skipped, and an annotation
  identical to one already stored (same image, category and mask) is skipped, so re-importing a file is
  harmless. The summary counts each.
- Images are matched by file name; ids of new images, categories and annotations are kept when free,
  so export -> import into an empty project -> export gives the same document.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.errors import CocoFormatError, ImageLoadError, ProjectError
from annotator.io.images import image_size, show_path
from annotator.io.masks import mask_to_polygons, polygons_to_rle, rle_area, rle_runs, runs_to_rle
from annotator.store.project import Project

POLYGON_TOLERANCE = 1.0
"""How far (pixels) a polygon vertex may lie outside the image: COCO's own files have vertices on the
far edge (x = width) and a little rounding beyond it."""


# ------------------------------------------------------------------------------------------ export
def export_coco(project: Project, out_path: str | os.PathLike, polygons: bool = False) -> dict:
    """Write the project as a COCO file at `out_path` (atomically); returns a summary dict."""
    out = Path(out_path)
    with project.snapshot():
        images = project.images()
        annotations = project.annotations()
        categories = project.categories()
    used = {a.category_id for a in annotations}
    doc_annotations = []
    n_polygons = n_fallback = 0
    for a in annotations:
        segmentation: Any = a.rle
        if polygons:
            rings = mask_to_polygons(a.mask())
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
        if a.score is not None:
            entry["score"] = a.score
        doc_annotations.append(entry)
    doc = {
        "info": {
            "description": "exported by annotator",
            "version": "1.0",
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": [
            {"id": i.id, "file_name": i.file_name, "width": i.width, "height": i.height}
            for i in images
        ],
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": c.supercategory}
            for c in categories
            if c.id in used
        ],
        "annotations": doc_annotations,
    }
    _write_atomic(out, doc)
    return {
        "path": str(out),
        "images": len(images),
        "categories": len(doc["categories"]),
        "annotations": len(doc_annotations),
        "polygons": n_polygons,
        "rle": len(doc_annotations) - n_polygons,
        "rle_fallback": n_fallback,
    }


def _write_atomic(out: Path, doc: dict) -> None:
    """JSON to a temp file in the same folder, fsync, then `os.replace`: readers see old or new, whole."""
    try:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name (Linux): keep it as a \udcNN escape
        text = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as error:
        raise ProjectError(
            f"{show_path(out)}: cannot write the export ({error.strerror})"
        ) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise ProjectError(
            f"{show_path(out)}: cannot write the export ({error.strerror or error})"
        ) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(out.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
    counts: str  # canonical compressed RLE
    score: float | None


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

    def integer(self, value: Any, where: str, minimum: int | None = None) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"must be an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise self.fail(where, f"must be finite, got {value}")
        return float(value)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _read_document(path: Path) -> Any:
    name = show_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CocoFormatError(f"{name}: file not found") from None
    except OSError as error:
        raise CocoFormatError(f"{name}: cannot read the file ({error.strerror})") from error
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
    posix = PurePosixPath(file_name.replace("\\", "/"))
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
) -> dict:
    """Import a COCO document whose file names are relative to `images_dir` (default: the project
    folder) into `project`, all or nothing. Returns a summary dict.

    With `check_files`, every image must exist and have the size the document gives it. Raises
    CocoFormatError, naming the place in the document, and then nothing was imported.
    """
    path = Path(json_path)
    check = _Checker(show_path(path))
    doc = check.obj(_read_document(path), "document")
    folder = project.folder
    directory = Path(images_dir) if images_dir is not None else folder

    raw_images = check.array(check.key(doc, "images", "document"), "images")
    raw_categories = check.array(check.key(doc, "categories", "document"), "categories")
    raw_annotations = check.array(check.key(doc, "annotations", "document"), "annotations")

    images: dict[int, _Image] = {}
    names: set[str] = set()
    for i, item in enumerate(raw_images):
        at = f"images[{i}]"
        check.obj(item, at)
        doc_id = check.integer(check.key(item, "id", at), f"{at}.id")
        if doc_id in images:
            raise check.fail(f"{at}.id", f"duplicate image id {doc_id}")
        file_name = check.text(check.key(item, "file_name", at), f"{at}.file_name")
        width = check.integer(check.key(item, "width", at), f"{at}.width", minimum=1)
        height = check.integer(check.key(item, "height", at), f"{at}.height", minimum=1)
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

    categories: dict[int, tuple[str, str]] = {}
    category_names: set[str] = set()
    for i, item in enumerate(raw_categories):
        at = f"categories[{i}]"
        check.obj(item, at)
        doc_id = check.integer(check.key(item, "id", at), f"{at}.id")
        if doc_id in categories:
            raise check.fail(f"{at}.id", f"duplicate category id {doc_id}")
        name = check.text(check.key(item, "name", at), f"{at}.name").strip()
        if name in category_names:
            raise check.fail(f"{at}.name", f"duplicate category name {name!r}")
        category_names.add(name)
        supercategory = item.get("supercategory", "")
        if supercategory is None:
            supercategory = ""
        if not isinstance(supercategory, str):
            raise check.fail(f"{at}.supercategory", f"must be a string, got {_kind(supercategory)}")
        categories[doc_id] = (name, supercategory)

    annotations: list[_Annotation] = []
    seen: set[int] = set()
    skipped_crowd = skipped_empty = 0
    for i, item in enumerate(raw_annotations):
        at = f"annotations[{i}]"
        check.obj(item, at)
        doc_id = check.integer(check.key(item, "id", at), f"{at}.id")
        if doc_id in seen:
            raise check.fail(f"{at}.id", f"duplicate annotation id {doc_id}")
        seen.add(doc_id)
        image_id = check.integer(check.key(item, "image_id", at), f"{at}.image_id")
        if image_id not in images:
            raise check.fail(f"{at}.image_id", f"no image has id {image_id}")
        category_id = check.integer(check.key(item, "category_id", at), f"{at}.category_id")
        if category_id not in categories:
            raise check.fail(f"{at}.category_id", f"no category has id {category_id}")
        image = images[image_id]
        counts = _segmentation(
            check,
            check.key(item, "segmentation", at),
            f"{at}.segmentation",
            image.width,
            image.height,
        )
        if "bbox" in item:
            box = check.array(item["bbox"], f"{at}.bbox")
            if len(box) != 4:
                raise check.fail(
                    f"{at}.bbox", f"must have 4 numbers [x, y, width, height], got {len(box)}"
                )
            x, y, w, h = (check.number(v, f"{at}.bbox[{k}]") for k, v in enumerate(box))
            if w < 0 or h < 0:
                raise check.fail(f"{at}.bbox", f"negative width or height ({w:g}, {h:g})")
        if "area" in item and check.number(item["area"], f"{at}.area") < 0:
            raise check.fail(f"{at}.area", "must not be negative")
        score = item.get("score")
        if score is not None:
            score = check.number(score, f"{at}.score")
        crowd = item.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise check.fail(f"{at}.iscrowd", f"must be 0 or 1, got {crowd!r}")
        if crowd == 1:
            skipped_crowd += 1
            continue
        if rle_area({"size": [image.height, image.width], "counts": counts}) == 0:
            skipped_empty += 1
            continue
        annotations.append(_Annotation(doc_id, image_id, category_id, counts, score))

    # Everything is valid: write it all in one transaction.
    before_images = {r.file_name for r in project.images()}
    before_categories = {c.name for c in project.categories()}
    added = duplicates = 0
    with project.transaction():
        category_map = {
            doc_id: project.add_category(name, supercategory, category_id=doc_id)
            for doc_id, (name, supercategory) in categories.items()
        }
        image_map = {
            doc_id: project.add_image(image.name, image.width, image.height, image_id=doc_id)
            for doc_id, image in images.items()
        }
        existing = {
            (a.image_id, a.category_id, a.counts)
            for image_id in set(image_map.values())
            for a in project.annotations(image_id)
        }
        for a in annotations:
            image = images[a.image_id]
            key = (image_map[a.image_id], category_map[a.category_id], a.counts)
            if key in existing:
                duplicates += 1
                continue
            existing.add(key)
            project.add_annotation_rle(
                image_map[a.image_id],
                {"size": [image.height, image.width], "counts": a.counts},
                category_map[a.category_id],
                score=a.score,
                annotation_id=a.doc_id,
            )
            added += 1
    return {
        "path": str(path),
        "images": len(images),
        "images_added": len({i.name for i in images.values()} - before_images),
        "categories_added": len({n for n, _ in categories.values()} - before_categories),
        "annotations_added": added,
        "skipped_crowd": skipped_crowd,
        "skipped_empty": skipped_empty,
        "skipped_duplicate": duplicates,
    }
