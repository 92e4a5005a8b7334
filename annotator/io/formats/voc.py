"""Pascal VOC folder, as datumaro's (and so CVAT's) `voc` importer reads it.

OUT/labelmap.txt (`name:r,g,b::`, `background` first, then every project category in id order),
OUT/Annotations/<id>.xml (one <object> per annotation, <bndbox> in datumaro's convention: xmin = x,
xmax = x + w), OUT/JPEGImages/<file> (copied; EXIF-rotated ones written upright), OUT/SegmentationClass
/<id>.png and OUT/SegmentationObject/<id>.png (paletted PNGs: class index with the labelmap colours;
instance k = the k-th <object>, VOC's colour map), OUT/ImageSets/{Main,Segmentation}/default.txt.
<id> is the image's file name without extension.

What VOC cannot hold: overlaps (one class and one instance per pixel): instances are painted largest
first so small objects stay whole, and a warning counts the pixels lost; more than 254 instances or
classes per PNG (refused with an error, never truncated); scores and extra fields (warned). A box-only
annotation is an <object> after the masked ones, with no pixels in SegmentationObject.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from annotator.errors import DatasetFormatError
from annotator.io import bounds
from annotator.io.formats import _common as c
from annotator.io.images import show_path
from annotator.io.structured import parse_xml, read_file
from annotator.store.project import Project

NAME = "voc"
SUBSET = "default"
MAX_INDEX = 254  # 255 is VOC's "void" border colour
MAX_TEXT_BYTES = 64 * 2**20  # labelmap.txt, an ImageSets list
MAX_XML_BYTES = 16 * 2**20  # one image's Annotations/<id>.xml
_BYTE = re.compile(r"[0-9]{1,3}")


def colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """VOC's colour map (the devkit's bit-interleaving), also datumaro's."""
    out = []
    for i in range(n):
        r = g = b = 0
        cid = i
        for j in range(7, -1, -1):
            r |= ((cid >> 0) & 1) << j
            g |= ((cid >> 1) & 1) << j
            b |= ((cid >> 2) & 1) << j
            cid >>= 3
        out.append((r, g, b))
    return out


PALETTE = [v for rgb in colormap() for v in rgb]


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def _text(parent: ET.Element, tag: str, value: Any) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(value)
    return el


def export(
    project: Project,
    out: str | os.PathLike,
    progress: c.Progress | None = None,
    **_: Any,
) -> dict:
    """Write the project as a VOC folder at `out`."""
    root = Path(out)
    snap = c.read_project(project, progress)
    summary: dict[str, Any] = {"path": str(root), "format": NAME}
    if len(snap.categories) > MAX_INDEX:
        raise DatasetFormatError(
            f"VOC: {len(snap.categories)} categories, a VOC class PNG holds at most {MAX_INDEX}"
        )
    class_index = {cat.id: k + 1 for k, cat in enumerate(snap.categories)}
    cmap = colormap()
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [
        f"{cat.name}:{','.join(map(str, cmap[class_index[cat.id]]))}::" for cat in snap.categories
    ]
    c.write_atomic(root / "labelmap.txt", ("\n".join(lines) + "\n").encode("utf-8"))
    odd = [cat.name for cat in snap.categories if ":" in cat.name or cat.name.startswith("#")]
    if odd:
        c.warn(
            summary,
            f"VOC: {len(odd)} category name(s) with ':' or a leading '#' (first {odd[0]!r}): "
            "labelmap.txt holds them for this importer, other VOC readers split or skip them",
        )
    groups = snap.by_image()
    lost = scores = missing = 0
    ids = []
    seen: dict[str, str] = {}
    for done, image in enumerate(snap.images):
        c.report(progress, done, len(snap.images))
        stem = _stem(image.file_name)
        if stem in seen:
            raise DatasetFormatError(
                f"{image.file_name} and {seen[stem]}: same name without extension, VOC ids would clash"
            )
        seen[stem] = image.file_name
        ids.append(stem)
        annotations, boxes = groups[image.id]
        if len(annotations) + len(boxes) > MAX_INDEX:
            raise DatasetFormatError(
                f"VOC: {image.file_name} has {len(annotations) + len(boxes)} objects, a VOC instance "
                f"PNG holds at most {MAX_INDEX}"
            )
        H, W = image.height, image.width
        ordered = sorted(annotations, key=lambda a: (-a.area, a.id))
        cls = np.zeros((H, W), np.uint8)
        inst = np.zeros((H, W), np.uint8)
        doc = ET.Element("annotation")
        _text(doc, "folder", "VOC")
        _text(doc, "filename", Path(image.file_name).name)
        size = ET.SubElement(doc, "size")
        _text(size, "width", W)
        _text(size, "height", H)
        _text(size, "depth", 3)
        _text(doc, "segmented", int(bool(annotations)))
        painted = 0
        for k, a in enumerate(ordered, start=1):
            mask = c.decode(a)
            painted += int(mask.sum())
            cls[mask] = class_index[a.category_id]
            inst[mask] = k
        lost += painted - int(np.count_nonzero(inst))
        for item in [*ordered, *boxes]:
            scores += item.score is not None
            obj = ET.SubElement(doc, "object")
            _text(obj, "name", item.category)
            _text(obj, "pose", "Unspecified")
            _text(obj, "truncated", 0)
            _text(obj, "difficult", 0)
            _text(obj, "occluded", 0)
            x, y, w, h = item.bbox
            bb = ET.SubElement(obj, "bndbox")
            for tag, v in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
                _text(bb, tag, f"{v:g}")
        ET.indent(doc)
        c.write_atomic(root / "Annotations" / f"{stem}.xml", ET.tostring(doc, encoding="us-ascii"))
        c.write_png(root / "SegmentationClass" / f"{stem}.png", cls, PALETTE)
        c.write_png(root / "SegmentationObject" / f"{stem}.png", inst, PALETTE)
        ext = Path(image.file_name).suffix
        if not c.copy_image(c.image_path(snap, image), root / "JPEGImages" / f"{stem}{ext}"):
            missing += 1
    listing = "".join(f"{_listing_line(i)}\n" for i in ids).encode("utf-8")
    quoted = [i for i in ids if _quoted(i)]
    if quoted:
        c.warn(
            summary,
            f"VOC: {len(quoted)} image id(s) starting with '#' or a quote or with surrounding spaces "
            f"(first {quoted[0]!r}) written quoted in ImageSets: this importer reads them, other VOC "
            "readers skip or misread them",
        )
    for task in ("Main", "Segmentation"):
        c.write_atomic(root / "ImageSets" / task / f"{SUBSET}.txt", listing)
    summary.update(
        images=len(snap.images), categories=len(snap.categories),
        annotations=len(snap.annotations) + len(snap.boxes),
    )  # fmt: skip
    if lost:
        c.warn(
            summary,
            f"VOC: {lost} overlapping pixel(s) lost (one instance per pixel; larger objects underneath)",
        )
    extra = len(snap.extras["annotation"]) + len(snap.extras["box"])
    c.warn_unwritten(summary, "VOC", scores, extra, missing, "annotations")
    return summary


# ------------------------------------------------------------------------------------------ import
def detect(path: Path) -> bool:
    return (
        path.is_dir()
        and (path / "ImageSets").is_dir()
        and ((path / "Annotations").is_dir() or (path / "SegmentationObject").is_dir())
    )


def _labelmap(root: Path) -> list[tuple[str, tuple[int, int, int]]]:
    file = root / "labelmap.txt"
    if not file.exists():
        names = (
            "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog "
            "horse motorbike person pottedplant sheep sofa train tvmonitor"
        ).split()
        cmap = colormap()
        return [(n, cmap[k]) for k, n in enumerate(names)]
    out = []
    text = read_file(file, MAX_TEXT_BYTES).decode("utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(":", 3)  # the name may hold ':', the other three fields cannot
        entry = _labelmap_entry(parts, len(out))
        if line.startswith("#") and entry is None:
            continue  # a comment ("# label:color_rgb:parts:actions"); "#tag:1,2,3::" is a name
        if len(parts) != 4:
            raise DatasetFormatError(f"{show_path(file)}:{n}: expected 'name:r,g,b:parts:actions'")
        if entry is None:
            raise DatasetFormatError(f"{show_path(file)}:{n}: colour must be r,g,b integers")
        out.append(entry)
    return out


def _labelmap_entry(parts: list[str], index: int) -> tuple[str, tuple[int, int, int]] | None:
    """(name, colour) of a labelmap row split in its 4 fields, None when the colour is not r,g,b."""
    if len(parts) != 4:
        return None
    if not parts[1]:
        return parts[0].strip(), colormap()[index % 256]
    values = parts[1].split(",")
    if len(values) != 3 or not all(_BYTE.fullmatch(v.strip()) and int(v) <= 255 for v in values):
        return None
    r, g, b = (int(v) for v in values)
    return parts[0].strip(), (r, g, b)


def _listed_id(line: str) -> str | None:
    """The image id on one ImageSets line: the whole trimmed line, as datumaro reads it (spaces
    kept), or the inside of a quoted one ('"#1"': how ids other readers would misread are written)."""
    line = line.strip()
    if not line:
        return None
    if len(line) >= 2 and line[0] == line[-1] == '"':
        return line[1:-1]
    return line


def _listing_line(item: str) -> str:
    """How an id is written in ImageSets: as it is, or quoted when trimming would change it or it
    starts with '#' (a comment to datumaro) or a quote."""
    return f'"{item}"' if _quoted(item) else item


def _quoted(item: str) -> bool:
    return item != item.strip() or item.startswith(("#", '"'))


def _index_png(
    file: Path, colours: dict[tuple[int, int, int], int], where: str, size: tuple[int, int]
) -> np.ndarray:
    """Indices of a paletted (or RGB, mapped through `colours`) PNG; 255 (void) becomes 0. The size
    (W, H) is checked from the header, before any pixel is decoded."""
    try:
        with c.open_png(file, where) as im:
            if im.size != size:
                raise DatasetFormatError(
                    f"{show_path(file)}: is {im.size[0]}x{im.size[1]}, the image {size[0]}x{size[1]}"
                )
            if im.mode == "P":
                index = np.array(im)
                pal = im.getpalette() or []
                rgb = np.array(pal[: 3 * 256] + [0] * (768 - len(pal[: 3 * 256]))).reshape(-1, 3)
                lut = np.array([colours.get(tuple(int(v) for v in rgb[i]), -1) for i in range(256)])
                mapped = lut[index]
            elif im.mode in ("L", "I", "I;16"):
                values = np.array(im).astype(np.int64)
                values = np.where(values == 255, 0, values)
                return bounds.pixel_values(values, show_path(file), MAX_INDEX)
            else:
                arr = np.array(im.convert("RGB")).astype(np.int64)
                keys = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
                table = {(r << 16) | (g << 8) | b: i for (r, g, b), i in colours.items()}
                values, inverse = np.unique(keys, return_inverse=True)  # few colours, many pixels
                lut = np.array([table.get(int(v), -1) for v in values], dtype=np.int64)
                mapped = lut[inverse].reshape(keys.shape)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetFormatError(f"{where}: cannot read the PNG ({error})") from None
    void = mapped < 0
    return np.where(void, 0, mapped)


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: c.Progress | None = None,
) -> dict:
    """Import a VOC folder, all or nothing."""
    root = Path(path)
    if not detect(root):
        raise DatasetFormatError(
            f"{show_path(root)}: not a VOC folder (ImageSets/ and Annotations/)"
        )
    labels = _labelmap(root)
    names = [n for n, _ in labels]
    plan = c.Plan(show_path(root))
    for n in names[1:] if names and names[0] == "background" else names:
        plan.category(n)
    class_colours = {rgb: k for k, (_, rgb) in enumerate(labels)}
    inst_colours = {rgb: k for k, rgb in enumerate(colormap())}
    ids: list[str] = []
    seen: set[str] = set()
    for task in ("Segmentation", "Main"):
        for listing in sorted((root / "ImageSets" / task).glob("*.txt")):
            if "_" in listing.stem:
                continue  # per-class lists (aeroplane_train.txt)
            text = read_file(listing, MAX_TEXT_BYTES).decode("utf-8", errors="replace")
            for line in text.splitlines():
                item = _listed_id(line)
                if item is not None and item not in seen:
                    seen.add(item)
                    ids.append(item)
    directory = Path(images_dir) if images_dir is not None else root / "JPEGImages"
    for done, item in enumerate(ids):
        c.report(progress, done, len(ids))
        at = f"{show_path(root)}: {item}"
        image_file = c.find_image(directory, item)
        if image_file is None:
            raise DatasetFormatError(f"{at}: no image {item}.* in {show_path(directory)}")
        W, H = c.checked_size(image_file, at)
        name = c.project_name(directory, image_file, project, at)
        plan.image(name, W, H, at)
        objects: list[tuple[str, tuple[float, float, float, float] | None]] = []
        xml = root / "Annotations" / f"{item}.xml"
        if xml.exists():  # a named pipe or folder there is an error, not "no objects"
            doc = parse_xml(xml, MAX_XML_BYTES)
            for k, obj in enumerate(doc.iterfind("object")):
                label = (obj.findtext("name") or "").strip()
                if not label:
                    raise DatasetFormatError(f"{show_path(xml)}: object[{k}].name: missing")
                box = None
                bb = obj.find("bndbox")
                if bb is not None:
                    corners = [bb.findtext(t) or "" for t in ("xmin", "ymin", "xmax", "ymax")]
                    x, y, w, h = bounds.box_xyxy(
                        corners, f"{show_path(xml)}: object[{k}].bndbox", W, H, clipped=plan.clip
                    )
                    if w > 0 and h > 0:
                        box = (x, y, w, h)
                objects.append((label, box))
                if obj.find("part") is not None:
                    plan.drop("VOC object parts")
        inst_file = root / "SegmentationObject" / f"{item}.png"
        cls_file = root / "SegmentationClass" / f"{item}.png"
        inst = _index_png(inst_file, inst_colours, at, (W, H)) if inst_file.exists() else None
        cls = _index_png(cls_file, class_colours, at, (W, H)) if cls_file.exists() else None
        for arr, file in ((inst, inst_file), (cls, cls_file)):
            if arr is not None and arr.shape != (H, W):
                raise DatasetFormatError(
                    f"{show_path(file)}: is {arr.shape[1]}x{arr.shape[0]}, the image {W}x{H}"
                )
        used: set[int] = set()
        if inst is not None:
            for k in sorted(int(v) for v in np.unique(inst) if v):
                mask = inst == k
                if k <= len(objects):
                    label = objects[k - 1][0]
                elif cls is not None:
                    values = np.bincount(cls[mask].ravel())
                    label_id = int(values.argmax())
                    if not 0 < label_id < len(names):
                        raise DatasetFormatError(
                            f"{show_path(cls_file)}: instance {k} has no class"
                        )
                    label = names[label_id]
                else:
                    raise DatasetFormatError(
                        f"{show_path(inst_file)}: instance {k} has no object and no class"
                    )
                used.add(k)
                plan.annotations.append(
                    c.PlanAnnotation(name, plan.category(label), counts=c.mask_counts(mask))
                )
        for k, (label, box) in enumerate(objects, start=1):
            if k in used:
                continue
            if box is None:
                plan.drop("VOC objects without box or mask")
                continue
            plan.annotations.append(c.PlanAnnotation(name, plan.category(label), box=box))
    summary = c.apply_plan(project, plan)
    summary["format"] = NAME
    return summary
