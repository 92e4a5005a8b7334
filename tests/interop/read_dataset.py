"""Read a dataset with a foreign tool's own reader and save what it saw, for the format tests.

Runs in the interop interpreter (tests/interop/make_env.py), never in the test process: datumaro
pins an older Pillow/OpenCV and labelme imports PyQt5, neither of which may share a process with
the project. So this file imports nothing from the project; it only needs numpy and the reader.

    python read_dataset.py FORMAT PATH OUT.npz
    FORMAT: voc | cvat | coco_instances (datumaro's importers) | labelme (a folder of JSON files)

OUT.npz holds `meta`, a JSON string:
    {"labels": [class names in the reader's order], "boxes": number of box annotations,
     "items": [{"id": item id, "size": [h, w], "annotations": [{"label": name, "kind": "mask" |
     "polygon" | "rectangle" | ..., "mask": key of a bool (h, w) array in the same file}]}],
     "image_data": [item ids whose image the reader could load]}
Masks are rasterised by the reader itself (datumaro through pycocotools, labelme through PIL), so
the test compares the project against the reader's pixels, not against its own rasteriser.
Exit status 3: the reader cannot be imported here (the test turns that into a skip or a failure).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

NO_READER = 3
try:
    import numpy as np
except ImportError as _error:  # not the interop interpreter: same status as a missing tool
    print(f"{sys.executable}: {_error}", file=sys.stderr)
    raise SystemExit(NO_READER) from None


def read_datumaro(path: Path, fmt: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Items of `path` as datumaro's `fmt` importer reads them. A COCO object's polygons share
    its id and become one mask (their union, as pycocotools draws it); a CVAT polygon has no id
    and is a mask of its own."""
    import datumaro as dm
    from datumaro.components.annotation import AnnotationType
    from datumaro.util.mask_tools import rles_to_mask

    logging.getLogger().setLevel(logging.ERROR)
    dataset = dm.Dataset.import_from(str(path), fmt)
    labels = [label.name for label in dataset.categories()[AnnotationType.label]]
    arrays: dict[str, np.ndarray] = {}
    items, boxes = [], 0

    def keep(mask: np.ndarray) -> str:
        key = f"m{len(arrays)}"
        arrays[key] = np.asarray(mask, dtype=bool)
        return key

    for item in dataset:
        h, w = item.media.size
        annotations, parts = [], {}
        for ann in item.annotations:
            if ann.type == AnnotationType.mask:
                annotations.append(
                    {"label": labels[ann.label], "kind": "mask", "mask": keep(ann.image)}
                )
            elif ann.type == AnnotationType.polygon:
                key = ann.id or f"unnumbered {len(parts)}"
                parts.setdefault((key, ann.label), []).append(list(ann.points))
            elif ann.type == AnnotationType.bbox:
                boxes += 1
        for (_, label), polygons in parts.items():
            mask = rles_to_mask(polygons, w, h)
            annotations.append({"label": labels[label], "kind": "polygon", "mask": keep(mask)})
        items.append({"id": item.id, "size": [h, w], "annotations": annotations})
    image_data = [item["id"] for item in items]
    return {"labels": labels, "boxes": boxes, "items": items, "image_data": image_data}, arrays


def read_labelme(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every *.json under `folder` through labelme's `LabelFile`, each shape rasterised by
    `labelme.utils.shape_to_mask`; shapes with one (label, group_id) are one instance, as in
    labelme's own `shapes_to_label`. A `mask` shape is pasted at its box as labelme does."""
    from labelme import LabelFile
    from labelme.utils import img_data_to_arr, shape_to_mask

    arrays: dict[str, np.ndarray] = {}
    items, image_data, boxes, labels = [], [], 0, []
    for path in sorted(folder.rglob("*.json")):
        label_file = LabelFile(str(path))
        item_id = path.relative_to(folder).with_suffix("").as_posix()
        if label_file.imageData:  # imagePath resolved by labelme itself
            image_data.append(item_id)
            h, w = img_data_to_arr(label_file.imageData).shape[:2]
        else:
            h, w = label_file.otherData["imageHeight"], label_file.otherData["imageWidth"]
        instances: dict[tuple, tuple[str, str, np.ndarray]] = {}
        for k, shape in enumerate(label_file.shapes):
            kind = shape.get("shape_type") or "polygon"
            boxes += kind == "rectangle"
            if shape["label"] not in labels:
                labels.append(shape["label"])
            if kind == "mask":
                mask = np.zeros((h, w), dtype=bool)
                (x1, y1), (x2, y2) = np.asarray(shape["points"]).astype(int)
                mask[y1 : y2 + 1, x1 : x2 + 1] = shape["mask"]
            else:
                mask = shape_to_mask((h, w), shape["points"], kind)
            group = shape.get("group_id")
            key = (shape["label"], ("shape", k) if group is None else ("group", group))
            if key in instances:
                label, first_kind, union = instances[key]
                instances[key] = (label, first_kind, union | mask)
            else:
                instances[key] = (shape["label"], kind, mask)
        annotations = []
        for label, kind, mask in instances.values():
            arrays[f"m{len(arrays)}"] = mask
            annotations.append({"label": label, "kind": kind, "mask": f"m{len(arrays) - 1}"})
        items.append({"id": item_id, "size": [h, w], "annotations": annotations})
    return {"labels": labels, "boxes": boxes, "items": items, "image_data": image_data}, arrays


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    fmt, path, out = argv[1], Path(argv[2]), Path(argv[3])
    try:
        if fmt == "labelme":
            import labelme  # noqa: F401
        else:
            import datumaro  # noqa: F401
    except ImportError as error:
        print(f"{sys.executable}: {error}", file=sys.stderr)
        return NO_READER
    meta, arrays = read_labelme(path) if fmt == "labelme" else read_datumaro(path, fmt)
    np.savez_compressed(out, meta=np.array(json.dumps(meta)), **arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
