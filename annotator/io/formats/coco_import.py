"""COCO import: a COCO document into a project (the registry record is in `io/formats/coco.py`;
the export is `coco_export.py`).

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

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from annotator.errors import CocoFormatError, ImageLoadError
from annotator.io import bounds
from annotator.io.files import show_path
from annotator.io.formats.coco_checks import (
    MAX_KEPT_ID,
    Checker,
    kept_fields,
    kind_of,
    read_document,
    segmentation,
)
from annotator.io.formats.coco_export import (
    ANNOTATION_KEYS,
    AUTHORSHIP,
    CATEGORY_KEYS,
    IMAGE_KEYS,
)
from annotator.io.images import MAX_PIXELS, image_size
from annotator.io.masks import (
    rle_area,
)
from annotator.store import extras as store_extras
from annotator.store.project import Project


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


def _project_name(
    check: Checker, file_name: str, where: str, images_dir: Path | None, folder: Path | None
) -> str:
    """The document's file name as a name relative to the project folder."""
    if "\0" in file_name:
        raise check.fail(where, f"a file name cannot contain a NUL byte, got {kind_of(file_name)}")
    posix = PurePosixPath(file_name.replace("\\", "/"))
    if posix.name in ("", ".") or file_name.endswith(("/", "\\")):
        raise check.fail(where, f"must name a file, got {kind_of(file_name)}")
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
    check = Checker(show_path(path))
    doc = check.obj(read_document(path), "document")
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
        image_extras[doc_id] = kept_fields(check, item, IMAGE_KEYS, at)

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
            raise check.fail(
                f"{at}.supercategory", f"must be a string, got {kind_of(supercategory)}"
            )
        if supercategory.strip():
            supercategory = check.name(supercategory, f"{at}.supercategory")
        categories[doc_id] = (name, supercategory)
        category_extras[doc_id] = kept_fields(check, item, CATEGORY_KEYS, at)

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
            counts = segmentation(check, seg, f"{at}.segmentation", image.width, image.height)
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
        extra = kept_fields(check, item, ANNOTATION_KEYS, at)
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
        existing, existing_boxes = store_extras.held_keys(project, image_map.values())
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
