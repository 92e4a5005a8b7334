"""Write a dataset with a foreign tool's own writer, for the corpus tests to import.

Runs in the interop interpreter (tests/interop/make_env.py), like read_dataset.py and for the same
reason: datumaro and labelme may not share a process with the project. Imports nothing from it.

    python write_dataset.py SPEC.npz

SPEC.npz holds `spec`, a JSON string, and the bool masks it names:
    datumaro: {"format": "coco_instances" | "voc" | "cvat" | "yolo_ultralytics" | ..., "out": folder,
               "labels": [names], "items": [{"id", "subset" (or null), "image": path,
               "annotations": [{"type": "mask", "mask": key, "label": index, "id", "group"} |
                               {"type": "polygon", "points": [x0, y0, ...], ...} |
                               {"type": "bbox", "xywh": [x, y, w, h], ...}]}]}
              exported with `Dataset.export(out, format, save_media=True)`.
    labelme:  {"format": "labelme", "json": path, "shapes": [labelme shape dicts],
               "image_path": relative to the JSON, "height", "width"}
              written with labelme's own `write_label_file`.
Exit status 3: the writer cannot be imported here.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

NO_WRITER = 3
try:
    import numpy as np
except ImportError as _error:  # not the interop interpreter: same status as a missing tool
    print(f"{sys.executable}: {_error}", file=sys.stderr)
    raise SystemExit(NO_WRITER) from None


def write_datumaro(spec: dict[str, Any], arrays: Any) -> None:
    """Build a datumaro Dataset from `spec` and export it with datumaro's exporter."""
    import datumaro as dm
    from datumaro.components.annotation import Bbox, LabelCategories, Mask, Polygon
    from datumaro.components.media import Image

    logging.getLogger().setLevel(logging.ERROR)

    def annotation(a: dict[str, Any]):
        common = {"label": a["label"], "id": a["id"], "group": a["group"]}
        if a["type"] == "mask":
            return Mask(image=np.asarray(arrays[a["mask"]], dtype=bool), **common)
        if a["type"] == "polygon":
            return Polygon(a["points"], **common)
        return Bbox(*a["xywh"], **common)

    items = [
        dm.DatasetItem(
            id=item["id"],
            subset=item["subset"],
            media=Image.from_file(item["image"]),
            annotations=[annotation(a) for a in item["annotations"]],
        )
        for item in spec["items"]
    ]
    categories = {dm.AnnotationType.label: LabelCategories.from_iterable(spec["labels"])}
    dataset = dm.Dataset.from_iterable(items, categories=categories)
    dataset.export(spec["out"], spec["format"], save_media=True)


def write_labelme(spec: dict[str, Any]) -> None:
    """One labelme JSON file, as labelme's own save writes it."""
    from labelme._label_file import write_label_file

    write_label_file(
        spec["json"],
        shapes=spec["shapes"],
        image_path=spec["image_path"],
        image_height=spec["height"],
        image_width=spec["width"],
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with np.load(argv[1]) as data:
        arrays = {k: data[k] for k in data.files}
    spec = json.loads(str(arrays.pop("spec")))
    try:
        if spec["format"] == "labelme":
            import labelme  # noqa: F401
        else:
            import datumaro  # noqa: F401
    except ImportError as error:
        print(f"{sys.executable}: {error}", file=sys.stderr)
        return NO_WRITER
    if spec["format"] == "labelme":
        write_labelme(spec)
    else:
        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        write_datumaro(spec, arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
