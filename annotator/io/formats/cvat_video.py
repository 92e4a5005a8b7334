"""CVAT for video 1.1 (ADR 0039): CVAT's own export layout, OUT/annotations.xml with the frames as
OUT/images/frame_<6 digits>.png; several sequences: one such folder each, OUT/<sequence>/.

Export: <meta><task> holds the labels, `mode` interpolation, `size` and `original_size`. Every
accepted track is a <track id label source> (id = the user's object id, unique in a sequence).
CVAT tracks hold one shape type, so a track whose masks are each one part without holes is a run
of <polygon>s (pixel-edge vertices, which CVAT and datumaro rasterise back exactly); any other
track is a run of CVAT <mask>s (row-major runs in a box, exact), which CVAT reads but datumaro's
`cvat` importer cannot (it has no image size inside a track; warned). Every written shape is a
keyframe; the frame after a visible one where the object is gone gets a copy with outside="1"
(CVAT's end of a track, or of a gap).

Import: every <track> (ids from 0, as CVAT numbers them, are shifted to start at 1)'s <polygon>, <mask> and <box> (a box becomes its filled box, counted);
CVAT's semantics: a shape holds until the track's next shape, outside="1" hides the object from
that frame on. Frames come from images/ beside the XML (or IMAGES_DIR), placed by the name
frame_<frame> when there is one, else by position from <start_frame>. The XML is parsed without a
DTD, at most `cvat.MAX_XML_BYTES`. All or nothing.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.formats import _tracks as t
from annotator.io.formats.cvat import MAX_XML_BYTES, cvat_rle_to_mask, has_tracks, mask_to_cvat_rle
from annotator.io.images import show_path
from annotator.io.masks import mask_to_polygons, polygons_to_mask
from annotator.io.sequences import open_sequence
from annotator.io.structured import parse_xml
from annotator.store.project import Project

NAME = "cvat-video"
DOCUMENT = "annotations.xml"
FRAME = "frame_%06d.png"


def _polygon_points(mask: np.ndarray) -> str | None:
    rings = mask_to_polygons(mask)
    if rings is None or len(rings) != 1:
        return None
    pts = rings[0]
    return ";".join(f"{pts[i]:g},{pts[i + 1]:g}" for i in range(0, len(pts), 2))


def _meta(root: ET.Element, seq: t.SequenceTracks) -> None:
    r = seq.record
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for key, value in (
        ("id", "1"), ("name", seq.name), ("size", str(r.frame_count)), ("mode", "interpolation"),
        ("overlap", "0"), ("start_frame", "0"), ("stop_frame", str(r.frame_count - 1)),
    ):  # fmt: skip
        ET.SubElement(task, key).text = value
    labels = ET.SubElement(task, "labels")
    for name in seq.categories:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "any"
        ET.SubElement(label, "attributes")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(r.width)
    ET.SubElement(size, "height").text = str(r.height)


def _track(root: ET.Element, seq: t.SequenceTracks, tr: int) -> bool:
    """Write one track; whether it had to use <mask>s."""
    object_id, category = seq.tracks[tr]
    masks = {f: o.mask for f in sorted(seq.frames) for o in seq.objects(f) if o.track == tr}
    points = {f: _polygon_points(m) for f, m in masks.items()}
    as_polygons = all(p is not None for p in points.values())
    node = ET.SubElement(root, "track", id=str(object_id), label=category, source="semi-auto")

    def shape(f: int, source: int, outside: bool) -> None:
        common = {"frame": str(f), "keyframe": "1", "outside": str(int(outside)),
                  "occluded": "0", "z_order": "0"}  # fmt: skip
        if as_polygons:
            ET.SubElement(node, "polygon", **common, points=points[source])
        else:
            rle, left, top, w, h = mask_to_cvat_rle(masks[source])
            ET.SubElement(
                node, "mask", **common, rle=rle, left=str(left), top=str(top),
                width=str(w), height=str(h),
            )  # fmt: skip

    for f in sorted(masks):
        shape(f, f, False)
        if f + 1 < seq.record.frame_count and f + 1 not in masks:
            shape(f + 1, f, True)
    return not as_polygons


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    """One CVAT for video task folder per sequence with accepted tracks (the root when one)."""
    root = Path(out)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "sequences": 0, "tracks": 0}
    all_seqs = t.sequences(project)
    mask_tracks = 0
    for seq in t.walk(project, summary, all_seqs):
        folder = root if len(all_seqs) == 1 else root / seq.name
        doc = ET.Element("annotations")
        _meta(doc, seq)
        for tr in seq.order:
            mask_tracks += _track(doc, seq, tr)
            summary["tracks"] += 1
        ET.indent(doc)
        c.write_atomic(folder / DOCUMENT, ET.tostring(doc, encoding="utf-8", xml_declaration=True))
        t.write_frames(project, seq.record, folder / "images", FRAME)
    if mask_tracks:
        c.warn(
            summary,
            f"cvat-video: {mask_tracks} track(s) with holes or several parts written as CVAT "
            "<mask>s (CVAT reads them; datumaro's cvat importer does not)",
        )
    return summary


# ------------------------------------------------------------------------------------------ import
def _documents(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / DOCUMENT).is_file():
        return [path / DOCUMENT]
    return sorted(d / DOCUMENT for d in path.iterdir() if (d / DOCUMENT).is_file())


def detect(path: Path) -> bool:
    """A CVAT 1.1 XML (or a folder of task folders) with <track>s near its start."""
    path = Path(path)
    if not path.exists():
        return False
    files = _documents(path) if path.is_dir() else [path]
    if not files or files[0].suffix.lower() != ".xml":
        return False
    raw = c.head(files[0], 4096)
    return (
        raw is not None
        and b"<annotations" in raw
        and b"<version>1.1</version>" in raw
        and has_tracks(files[0])
    )


def _int_text(root: ET.Element, path: str, where: str, default: int | None = None) -> int | None:
    text = root.findtext(path)
    if text is None:
        return default
    return bounds.integer(text.strip(), f"{where}: {path}", 0, 10**9)


def _shape_mask(shape: ET.Element, H: int, W: int, where: str, counts: dict) -> np.ndarray | None:
    if shape.tag == "polygon":
        pairs = [pair.split(",") for pair in shape.attrib.get("points", "").split(";")]
        if len(pairs) < 3 or any(len(pair) != 2 for pair in pairs):
            raise DatasetFormatError(f"{where}: points: must be at least 3 'x,y' pairs")
        pts = bounds.points([v for pair in pairs for v in pair], f"{where}: points", W, H)
        return polygons_to_mask([pts], H, W)
    if shape.tag == "mask":
        ints = []
        for key, extent in (("left", W), ("top", H), ("width", W), ("height", H)):
            if key not in shape.attrib:
                raise DatasetFormatError(f"{where}: {key}: missing")
            ints.append(bounds.integer(shape.attrib[key], f"{where}: {key}", 0, extent))
        return cvat_rle_to_mask(shape.attrib.get("rle", ""), *ints, H, W, where)
    if shape.tag == "box":
        x0, y0, x1, y1 = (
            bounds.coordinate(shape.attrib.get(k, ""), f"{where}: {k}", e)
            for k, e in (("xtl", W), ("ytl", H), ("xbr", W), ("ybr", H))
        )
        mask = np.zeros((H, W), bool)
        mask[round(y0) : round(y1), round(x0) : round(x1)] = True
        counts["boxes"] += 1
        return mask
    counts["dropped"] += 1
    return None


def _read_tracks(root: ET.Element, frame_count: int, H: int, W: int, where: str, counts: dict):
    """{frame: [(object id, category, mask)]} of every track, CVAT's hold-until-next semantics."""
    frames: dict[int, list] = {}
    seen: set[int] = set()
    nodes = list(root.iterfind("track"))
    ids = [
        bounds.integer(n.attrib.get("id", ""), f"{where}: track[{k}]: id", 0, 10**9)
        for k, n in enumerate(nodes)
    ]
    shift = 1 if 0 in ids else 0  # CVAT numbers its tracks from 0; an object id is from 1
    for k, (node, track_id) in enumerate(zip(nodes, ids, strict=True)):
        at = f"{where}: track[{k}]"
        object_id = track_id + shift
        if object_id in seen:
            raise DatasetFormatError(f"{at}: id: {track_id} is used by another track")
        seen.add(object_id)
        label = (node.attrib.get("label") or "").strip()
        if not label:
            raise DatasetFormatError(f"{at}: label: missing")
        shapes = []
        for m, shape in enumerate(node):
            if shape.tag == "attribute":
                continue
            sat = f"{at}.{shape.tag}[{m}]"
            f = bounds.integer(shape.attrib.get("frame", ""), f"{sat}: frame", 0, 10**9)
            outside = shape.attrib.get("outside", "0") == "1"
            mask = None if outside else _shape_mask(shape, H, W, sat, counts)
            if mask is not None or outside:
                shapes.append((f, mask))
        shapes.sort(key=lambda s: s[0])
        for (f, mask), nxt in zip(shapes, [*shapes[1:], (frame_count, None)], strict=True):
            if mask is None or not mask.any():
                continue
            for g in range(f, min(nxt[0], frame_count)):
                frames.setdefault(g, []).append((object_id, label, mask))
    return frames


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Every task XML as a sequence (its images/ folder) with its tracks, all or nothing."""
    files = _documents(Path(path))
    if not files:
        raise DatasetFormatError(f"{show_path(path)}: no {DOCUMENT}")
    summary: dict[str, Any] = {"sequences": 0, "tracks": 0, "annotations": 0, "format": NAME}
    counts = {"boxes": 0, "dropped": 0}
    with project.transaction():
        for n, file in enumerate(files):
            c.report(progress, n, len(files))
            where = show_path(file)
            root = parse_xml(file, MAX_XML_BYTES)
            if root.tag != "annotations":
                raise DatasetFormatError(f"{where}: the root element must be <annotations>")
            images = Path(images_dir) if images_dir is not None else file.parent / "images"
            if not images.is_dir():
                raise DatasetFormatError(f"{where}: no frames folder {show_path(images)}")
            with open_sequence(images) as seq:
                names = [seq.frame_name(i) for i in range(len(seq))]
                H, W = seq.size
            size = (
                _int_text(root, "meta/task/original_size/height", where),
                _int_text(root, "meta/task/original_size/width", where),
            )
            if size[0] is not None and size != (H, W):
                raise DatasetFormatError(
                    f"{where}: original_size {size[1]}x{size[0]}, the frames are {W}x{H}"
                )
            start = _int_text(root, "meta/task/start_frame", where, 0) or 0
            by_name = {Path(name).stem.lower(): i for i, name in enumerate(names)}
            tracks = _read_tracks(root, start + len(names), H, W, where, counts)
            frames = []
            for f, objects in sorted(tracks.items()):
                index = by_name.get((FRAME % f).rsplit(".", 1)[0], f - start)
                if not 0 <= index < len(names):
                    raise DatasetFormatError(f"{where}: frame {f} has no image in {images}")
                frames.append((index, objects))
            done = t.import_tracks(project, images, iter(sorted(frames, key=lambda x: x[0])))
            summary["sequences"] += 1
            summary["tracks"] += done["tracks"]
            summary["annotations"] += done["annotations"]
    if counts["boxes"]:
        c.warn(summary, f"cvat-video: {counts['boxes']} box shape(s) imported as filled boxes")
    if counts["dropped"]:
        c.warn(summary, f"cvat-video: {counts['dropped']} shape(s) without a mask not imported")
    return summary
