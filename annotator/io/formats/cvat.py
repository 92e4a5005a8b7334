"""CVAT for images 1.1: one XML file (OUT, or OUT/annotations.xml when OUT is a folder).

Export: every project category is a <label> in <meta><task><labels>. A mask is CVAT's own <mask>: `rle`
is row-major run lengths (background first) inside the box `left, top, width, height`, which holds any
mask exactly (holes, several parts, 1 px). With `polygons=True`, a mask that is one part without holes
is a <polygon> (pixel-edge vertices, which CVAT and datumaro rasterise back exactly); the others stay
<mask> and the summary counts them. A box-only annotation is a <box>. A score is an <attribute
name="score">, COCO `attributes` are <attribute>s; other extra fields have no place (warned).

Import: <polygon>, <box>, <mask> of every <image>; <polyline>, <points>, <cuboid>, <skeleton>, <ellipse>
and <tag> have no mask and are counted as dropped. The XML is refused if it has a DOCTYPE (no entity
expansion). Images are found by `name` under `images_dir` (default: OUT/images, then the XML's folder).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.images import show_path
from annotator.io.masks import mask_to_polygons, polygons_to_mask
from annotator.io.outputs import published, staged_folder
from annotator.io.structured import parse_xml
from annotator.store.project import Project

NAME = "cvat"
MAX_XML_BYTES = 128 * 2**20
"""Largest CVAT XML read: its element tree takes about 6.5x the file (a 64 MB file: 419 MB peak RSS),
so 128 MiB stays under 1 GB."""
NO_MASK = ("polyline", "points", "cuboid", "skeleton", "ellipse", "tag")


def _xml_path(out: Path) -> Path:
    return out if out.suffix.lower() == ".xml" else out / "annotations.xml"


def mask_to_cvat_rle(mask: np.ndarray) -> tuple[str, int, int, int, int]:
    """(rle, left, top, width, height) of a non-empty mask, CVAT's encoding."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    flat = mask[y0 : y1 + 1, x0 : x1 + 1].reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    if flat[0]:
        runs = [0, *runs]
    return ", ".join(map(str, runs)), x0, y0, x1 - x0 + 1, y1 - y0 + 1


def cvat_rle_to_mask(
    rle: str, left: int, top: int, w: int, h: int, H: int, W: int, where: str
) -> np.ndarray:
    if rle.count(",") > w * h:  # more runs than pixels: refused before a list is built
        raise DatasetFormatError(f"{where}: rle: more runs than the box has pixels ({w * h})")
    try:
        runs = [int(v) for v in rle.split(",")]
    except ValueError:
        raise DatasetFormatError(f"{where}: rle: must be comma-separated integers") from None
    if any(r < 0 for r in runs) or sum(runs) != w * h:
        raise DatasetFormatError(
            f"{where}: rle: runs cover {sum(runs)} pixels, the box has {w * h}"
        )
    if left < 0 or top < 0 or w <= 0 or h <= 0 or left + w > W or top + h > H:
        raise DatasetFormatError(f"{where}: left/top/width/height: outside the {W}x{H} image")
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    mask = np.zeros((H, W), bool)
    mask[top : top + h, left : left + w] = flat.reshape(h, w)
    return mask


def _attributes(element: ET.Element, values: dict[str, Any]) -> None:
    for name, value in values.items():
        attribute = ET.SubElement(element, "attribute", name=str(name))
        attribute.text = ("true" if value else "false") if isinstance(value, bool) else str(value)


def export(
    project: Project,
    out: str | os.PathLike,
    polygons: bool = False,
    copy_images: bool = False,
    progress: c.Progress | None = None,
    **_: Any,
) -> dict:
    """Write the project as a CVAT for images 1.1 XML; `copy_images` also writes the images (upright)
    to images/ beside it, the layout of CVAT's own export with images."""
    path = _xml_path(Path(out))
    snap = c.read_project(project, progress)
    summary: dict[str, Any] = {"path": str(path), "format": NAME}
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = "annotator export"
    ET.SubElement(task, "size").text = str(len(snap.images))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for cat in snap.categories:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = cat.name
        ET.SubElement(label, "type").text = "any"
        ET.SubElement(label, "attributes")
    groups = snap.by_image()
    kept_masks = dropped_extra = 0
    for k, image in enumerate(snap.images):
        c.report(progress, k, len(snap.images))
        node = ET.SubElement(
            root,
            "image",
            id=str(k),
            name=image.file_name,
            width=str(image.width),
            height=str(image.height),
        )
        annotations, boxes = groups[image.id]
        items = [(a.id, "a", a) for a in annotations] + [(b.id, "b", b) for b in boxes]
        for _, kind, item in sorted(items, key=lambda t: t[0]):
            extra = snap.extras["annotation" if kind == "a" else "box"].get(item.id, {})
            common = {"label": item.category, "source": "manual", "occluded": "0", "z_order": "0"}
            if kind == "b":
                x, y, w, h = item.bbox
                el = ET.SubElement(
                    node,
                    "box",
                    **common,
                    xtl=f"{x:g}",
                    ytl=f"{y:g}",
                    xbr=f"{x + w:g}",
                    ybr=f"{y + h:g}",
                )
            else:
                mask = c.decode(item)
                rings = mask_to_polygons(mask) if polygons else None
                if rings is not None and len(rings) == 1:
                    pts = rings[0]
                    el = ET.SubElement(
                        node,
                        "polygon",
                        **common,
                        points=";".join(
                            f"{pts[i]:g},{pts[i + 1]:g}" for i in range(0, len(pts), 2)
                        ),
                    )
                else:
                    kept_masks += polygons
                    rle, left, top, w, h = mask_to_cvat_rle(mask)
                    el = ET.SubElement(
                        node, "mask", **common, rle=rle, left=str(left), top=str(top),
                        width=str(w), height=str(h),
                    )  # fmt: skip
            values = (
                dict(extra.get("attributes") or {})
                if isinstance(extra.get("attributes"), dict)
                else {}
            )
            if item.score is not None and math.isfinite(item.score):
                values["score"] = item.score
            _attributes(el, values)
            dropped_extra += bool(set(extra) - {"attributes"})
    ET.indent(root)
    data = ET.tostring(root, encoding="us-ascii", xml_declaration=True)
    c.write_atomic(path, data)
    if copy_images:
        images = path.parent / "images"
        staging = contextlib.nullcontext(images)
        if published(path) == path:  # an .xml file target: images/ beside it, published whole
            staging = staged_folder(images, kind="images")
        with staging as folder:
            for image in snap.images:
                c.copy_image(c.image_path(snap, image), folder / image.file_name)
    summary.update(
        images=len(snap.images), categories=len(snap.categories),
        annotations=len(snap.annotations) + len(snap.boxes),
    )  # fmt: skip
    if kept_masks:
        c.warn(
            summary,
            f"CVAT: {kept_masks} mask(s) with holes or several parts kept as <mask>, not polygons",
        )
    if dropped_extra:
        c.warn(
            summary,
            f"CVAT: extra fields (other than attributes) of {dropped_extra} annotation(s) not written",
        )
    return summary


# ------------------------------------------------------------------------------------------ import
def detect(path: Path) -> bool:
    file = path if path.is_file() else _xml_path(path)
    if not file.is_file() or file.suffix.lower() != ".xml":
        return False
    raw = c.head(file, 2048)
    if raw is None:
        return False
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark
        text = raw.decode("utf-16", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    if "<annotations" not in text or "<version>1.1</version>" not in text:
        return False
    return not has_tracks(file)  # tracks: CVAT for video (cvat_video.py)


TRACK_SNIFF_BYTES = 2**18


def has_tracks(file: Path) -> bool:
    """Whether a CVAT XML has a <track> in its first 256 KiB (CVAT for video)."""
    raw = c.head(file, TRACK_SNIFF_BYTES)
    return raw is not None and (b"<track " in raw or b"<track>" in raw)


def _float(el: ET.Element, key: str, where: str, extent: int, clipped=None) -> float:
    """A coordinate attribute, finite and inside the image (`bounds.coordinate`; CVAT lets a
    shape hang over the frame's edge: such vertices are clipped and counted by `clipped`)."""
    if key not in el.attrib:
        raise DatasetFormatError(f"{where}: {key}: missing")
    return bounds.coordinate(el.attrib[key], f"{where}: {key}", extent, clipped=clipped)


def _int(el: ET.Element, key: str, where: str, maximum: int) -> int:
    if key not in el.attrib:
        raise DatasetFormatError(f"{where}: {key}: missing")
    return bounds.integer(el.attrib[key], f"{where}: {key}", 0, maximum)


def _parse(file: Path) -> ET.Element:
    return parse_xml(file, MAX_XML_BYTES)


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Import a CVAT for images 1.1 XML, all or nothing."""
    file = Path(path) if Path(path).is_file() else _xml_path(Path(path))
    where0 = show_path(file)
    root = _parse(file)
    if root.tag != "annotations":
        raise DatasetFormatError(
            f"{where0}: the root element must be <annotations>, got <{root.tag}>"
        )
    plan = c.Plan(where0)
    for label in root.iterfind("meta/task/labels/label") or []:
        name = label.findtext("name")
        if name and name.strip():
            plan.category(name)
    for label in root.iterfind("meta/project/labels/label"):
        name = label.findtext("name")
        if name and name.strip():
            plan.category(name)
    if root.find("track") is not None:
        raise DatasetFormatError(
            f"{where0}: <track>: CVAT for video: import it with --format cvat-video"
        )
    bases = [Path(images_dir)] if images_dir is not None else [file.parent / "images", file.parent]
    nodes = root.findall("image")
    for n, node in enumerate(nodes):
        c.report(progress, n, len(nodes))
        at = f"{where0}: image[{n}]"
        name = node.attrib.get("name")
        if not name:
            raise DatasetFormatError(f"{at}: name: missing")
        image_file = next((b / name for b in bases if (b / name).is_file()), None)
        if image_file is None:
            raise DatasetFormatError(f"{at}: name: {name!r} not found under {show_path(bases[0])}")
        W, H = c.checked_size(image_file, at)
        for key, actual in (("width", W), ("height", H)):
            if key in node.attrib and node.attrib[key] != str(actual):
                raise DatasetFormatError(
                    f"{at}: {key}: {node.attrib[key]} but the image is {W}x{H}"
                )
        directory = next(b for b in bases if (b / name).is_file())
        pname = c.project_name(directory, image_file, project, at)
        plan.image(pname, W, H, at)
        for m, shape in enumerate(node):
            sat = f"{at}.{shape.tag}[{m}]"
            if shape.tag in NO_MASK:
                plan.drop(f"CVAT <{shape.tag}> shapes")
                continue
            if shape.tag not in ("polygon", "box", "mask"):
                continue
            label = shape.attrib.get("label")
            if not label or not label.strip():
                raise DatasetFormatError(f"{sat}: label: missing")
            category = plan.category(label)
            attrs = {a.attrib.get("name", ""): a.text or "" for a in shape.iterfind("attribute")}
            score = None
            if "score" in attrs:
                score = bounds.number(attrs.pop("score"), f"{sat}: attribute score")
            extra = {"attributes": attrs} if attrs else {}
            if shape.tag == "box":
                hits: list[bool] = []
                hit = functools.partial(hits.append, True)
                x0, y0 = _float(shape, "xtl", sat, W, hit), _float(shape, "ytl", sat, H, hit)
                x1, y1 = _float(shape, "xbr", sat, W, hit), _float(shape, "ybr", sat, H, hit)
                if hits and (x1 <= x0 or y1 <= y0):
                    plan.drop("CVAT boxes wholly outside their image")
                    continue
                if x1 <= x0 or y1 <= y0:
                    raise DatasetFormatError(f"{sat}: xbr/ybr must be beyond xtl/ytl")
                if hits:
                    plan.clip()
                rotation = shape.attrib.get("rotation") or "0"
                if bounds.number(rotation, f"{sat}: rotation") != 0:
                    plan.drop("rotated CVAT boxes")
                    continue
                plan.annotations.append(
                    c.PlanAnnotation(
                        pname, category, box=(x0, y0, x1 - x0, y1 - y0), score=score, extra=extra
                    )
                )
                continue
            if shape.tag == "polygon":
                if "points" not in shape.attrib:
                    raise DatasetFormatError(f"{sat}: points: missing")
                pairs = [pair.split(",") for pair in shape.attrib["points"].split(";")]
                if any(len(pair) != 2 for pair in pairs):
                    raise DatasetFormatError(f"{sat}: points: must be 'x,y;x,y;...' numbers")
                if len(pairs) < 3:
                    raise DatasetFormatError(f"{sat}: points: a polygon needs at least 3 points")
                pts = bounds.points(
                    [v for pair in pairs for v in pair], f"{sat}: points", W, H, clipped=plan.clip
                )
                mask = polygons_to_mask([pts], H, W)
            else:
                ints = [
                    _int(shape, key, sat, extent)
                    for key, extent in (("left", W), ("top", H), ("width", W), ("height", H))
                ]
                if "rle" not in shape.attrib:
                    raise DatasetFormatError(f"{sat}: rle: missing")
                mask = cvat_rle_to_mask(shape.attrib["rle"], *ints, H, W, sat)
            counts = c.mask_counts(mask)
            if counts is None:
                plan.drop("empty CVAT shapes")
                continue
            plan.annotations.append(
                c.PlanAnnotation(pname, category, counts=counts, score=score, extra=extra)
            )
    summary = c.apply_plan(project, plan)
    summary["format"] = NAME
    return summary
