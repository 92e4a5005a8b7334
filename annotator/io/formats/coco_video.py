"""COCO with one image per frame, the video convention of TAO (ADR 0038): OUT/annotations.json and
the frames as OUT/images/<sequence>/<frame>.jpg (six-digit frame indices from 0).

The document is a COCO instances file (pycocotools reads it as one) plus:
- `videos`: {id, name, width, height, length, fps} per sequence;
- every image: `video_id` and `frame_index` (TAO), and `frame_id` with the same value (the
  CocoVID spelling of mmtracking / qdtrack / BDD100K); every frame is an image, with or without
  masks;
- every annotation: `video_id`, `track_id` (TAO) and `instance_id` with the same value (CocoVID);
  segmentation is compressed RLE (exact), `bbox` and `area` from the mask;
- `tracks`: {id, category_id, video_id, object_id} (TAO's list; `object_id` is the user's object
  id in annotator, which the import restores).
Track ids are numbered 1.. in (video, object id) order, unique in the file as TAO requires.
Only accepted, tracked masks are written (pending ones are not annotations).

Import reads either spelling (`frame_index` or `frame_id`; `track_id` or `instance_id`), RLE or
polygons; a video's frames must lie in one folder (under IMAGES_DIR, default OUT/images), which
becomes a sequence; an image is placed by its file's position in that folder. All or nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from annotator.errors import DatasetFormatError
from annotator.io.formats import _common as c
from annotator.io.formats import _tracks as t
from annotator.io.formats.coco_checks import Checker, read_document, segmentation
from annotator.io.masks import mask_box_xywh, mask_to_rle, rle_to_mask
from annotator.io.sequences import open_sequence
from annotator.store.project import Project

NAME = "coco-video"
DOCUMENT = "annotations.json"
IMAGES = "images"


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    """Write OUT/annotations.json and every frame of every sequence with accepted tracks."""
    root = Path(out)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "sequences": 0, "masks": 0}
    doc: dict[str, Any] = {
        "info": {"description": "annotator export (COCO video, TAO fields)"},
        "videos": [],
        "images": [],
        "annotations": [],
        "tracks": [],
        "categories": [],
    }
    category_ids: dict[str, int] = {}
    for seq in t.walk(project, summary):
        r = seq.record
        video_id = len(doc["videos"]) + 1
        doc["videos"].append(
            {"id": video_id, "name": seq.name, "width": r.width, "height": r.height,
             "length": r.frame_count, "fps": r.fps}
        )  # fmt: skip
        track_ids = {}
        for tr in seq.order:
            object_id, category = seq.tracks[tr]
            cid = category_ids.setdefault(category, len(category_ids) + 1)
            track_ids[tr] = len(doc["tracks"]) + 1
            doc["tracks"].append(
                {"id": track_ids[tr], "category_id": cid, "video_id": video_id,
                 "object_id": object_id}
            )  # fmt: skip
        t.write_frames(project, r, root / IMAGES / seq.name, "%06d.jpg")
        for f in range(r.frame_count):
            image_id = len(doc["images"]) + 1
            doc["images"].append(
                {"id": image_id, "file_name": f"{seq.name}/{f:06d}.jpg", "width": r.width,
                 "height": r.height, "video_id": video_id, "frame_index": f, "frame_id": f}
            )  # fmt: skip
            for o in seq.objects(f):
                rle = mask_to_rle(o.mask)
                doc["annotations"].append(
                    {"id": len(doc["annotations"]) + 1, "image_id": image_id,
                     "video_id": video_id, "category_id": category_ids[o.category],
                     "track_id": track_ids[o.track], "instance_id": track_ids[o.track],
                     "segmentation": {"size": rle["size"], "counts": rle["counts"]},
                     "area": int(o.mask.sum()), "bbox": list(mask_box_xywh(o.mask)),
                     "iscrowd": 0}
                )  # fmt: skip
                summary["masks"] += 1
    doc["categories"] = [
        {"id": cid, "name": name, "supercategory": ""} for name, cid in category_ids.items()
    ]
    c.write_atomic(root / DOCUMENT, json.dumps(doc, allow_nan=False).encode())
    summary["tracks"] = len(doc["tracks"])
    return summary


def _document(path: Path) -> Path:
    return path / DOCUMENT if path.is_dir() else path


def detect(path: Path) -> bool:
    """A COCO JSON (or a folder holding annotations.json) whose images carry a `video_id`."""
    file = _document(Path(path))
    if not file.is_file() or file.suffix.lower() != ".json":
        return False
    raw = c.head(file, 2**20)
    return raw is not None and b'"video_id"' in raw and b'"images"' in raw


def _field(check: Checker, item: dict, names: tuple[str, ...], where: str) -> int:
    """The first of `names` the item has (one value under two spellings), as an integer."""
    for name in names:
        if name in item:
            return check.integer(item[name], f"{where}.{name}", minimum=0)
    raise check.fail(where, f"missing key {names[0]!r} (or {names[1]!r})")


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Every video of the document as a sequence with its tracks, all or nothing."""
    file = _document(Path(path))
    base = Path(images_dir) if images_dir is not None else file.parent / IMAGES
    check = Checker(str(file))
    doc = check.obj(read_document(file), "document")
    categories = {}
    for k, cat in enumerate(check.array(doc.get("categories", []), "categories")):
        at = f"categories[{k}]"
        check.obj(cat, at)
        categories[check.ident(check.key(cat, "id", at), f"{at}.id")] = check.name(
            check.key(cat, "name", at), f"{at}.name"
        )
    objects = {}  # track id -> object id (TAO's tracks list, when it has ours)
    for k, tr in enumerate(check.array(doc.get("tracks", []), "tracks")):
        check.obj(tr, f"tracks[{k}]")
        if "object_id" in tr:
            objects[check.ident(check.key(tr, "id", f"tracks[{k}]"), f"tracks[{k}].id")] = (
                check.integer(tr["object_id"], f"tracks[{k}].object_id", minimum=1)
            )
    images: dict[int, tuple[int, str, int, int]] = {}  # id -> (video, file name, width, height)
    videos: dict[int, dict[str, int]] = {}  # video id -> {file name: image id}
    for k, image in enumerate(check.array(check.key(doc, "images", "document"), "images")):
        at = f"images[{k}]"
        check.obj(image, at)
        image_id = check.ident(check.key(image, "id", at), f"{at}.id")
        video = check.ident(check.key(image, "video_id", at), f"{at}.video_id")
        _field(check, image, ("frame_index", "frame_id"), at)
        name = check.text(check.key(image, "file_name", at), f"{at}.file_name")
        w = check.integer(check.key(image, "width", at), f"{at}.width", minimum=1)
        h = check.integer(check.key(image, "height", at), f"{at}.height", minimum=1)
        images[image_id] = (video, name, w, h)
        videos.setdefault(video, {})[name] = image_id
    by_image: dict[int, list[tuple[int, str, str]]] = {}  # image -> (track, category, counts)
    for k, a in enumerate(check.array(doc.get("annotations", []), "annotations")):
        at = f"annotations[{k}]"
        check.obj(a, at)
        image_id = check.ident(check.key(a, "image_id", at), f"{at}.image_id")
        if image_id not in images:
            raise check.fail(f"{at}.image_id", f"no image {image_id}")
        track = _field(check, a, ("track_id", "instance_id"), at)
        cid = check.ident(check.key(a, "category_id", at), f"{at}.category_id")
        if cid not in categories:
            raise check.fail(f"{at}.category_id", f"no category {cid}")
        _, _, w, h = images[image_id]
        counts = segmentation(check, check.key(a, "segmentation", at), f"{at}.segmentation", w, h)
        by_image.setdefault(image_id, []).append((track, categories[cid], counts))
    summary: dict[str, Any] = {"sequences": 0, "tracks": 0, "annotations": 0, "format": NAME}
    with project.transaction():
        for n, (video, names) in enumerate(sorted(videos.items())):
            c.report(progress, n, len(videos))
            folder, frame_of = _frames(base, names, f"{file}: video {video}")
            frames = []
            for name, image_id in names.items():
                _, _, w, h = images[image_id]
                found = [
                    (objects.get(track, track), category,
                     rle_to_mask({"size": [h, w], "counts": counts}))
                    for track, category, counts in by_image.get(image_id, [])
                ]  # fmt: skip
                if found:
                    frames.append((frame_of[name], found))
            done = t.import_tracks(project, folder, iter(sorted(frames, key=lambda x: x[0])))
            summary["sequences"] += 1
            summary["tracks"] += done["tracks"]
            summary["annotations"] += done["annotations"]
    return summary


def _frames(base: Path, names: dict[str, int], where: str) -> tuple[Path, dict[str, int]]:
    """The one folder holding a video's frames and each file name's frame index there."""
    folders = {(base / name).parent for name in names}
    if len(folders) != 1:
        raise DatasetFormatError(f"{where}: its frames lie in {len(folders)} folders, not one")
    (folder,) = folders
    if not folder.is_dir():
        raise DatasetFormatError(f"{where}: {folder}: no such folder (give the images folder)")
    with open_sequence(folder) as seq:
        index = {seq.frame_name(i): i for i in range(len(seq))}
    frame_of = {}
    for name in names:
        leaf = Path(name).name
        if leaf not in index:
            raise DatasetFormatError(f"{where}: {name}: not a frame of {folder}")
        frame_of[name] = index[leaf]
    return folder, frame_of
