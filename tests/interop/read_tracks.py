"""Read a track dataset with datumaro (`mots`, `mot_seq` or `cvat`) in the interop interpreter and save
what it saw: OUT.npz with `meta` (JSON: items -> frame, annotations with label, track_id,
outside, and a mask key (a polygon rasterised by datumaro's own mask_tools) or a bbox) and the
masks. Imports nothing from the project.

    python read_tracks.py FORMAT PATH OUT.npz
"""

from __future__ import annotations

import json
import sys

try:
    import datumaro as dm
    import numpy as np
    from datumaro.util.mask_tools import rles_to_mask
except ImportError as error:
    print(error, file=sys.stderr)
    raise SystemExit(3) from None


def main() -> None:
    fmt, path, out = sys.argv[1:4]
    dataset = dm.Dataset.import_from(path, fmt)
    labels = [c.name for c in dataset.categories()[dm.AnnotationType.label]]
    items, arrays = [], {}
    for item in dataset:
        anns = []
        for a in item.annotations:
            entry = {
                "label": labels[a.label] if a.label is not None else None,
                "track_id": a.attributes.get("track_id"),
                "outside": a.attributes.get("outside"),
            }
            if a.type == dm.AnnotationType.mask:
                key = f"m{len(arrays)}"
                arrays[key] = np.asarray(a.image, dtype=bool)
                entry["mask"] = key
            elif a.type == dm.AnnotationType.polygon:
                key = f"m{len(arrays)}"
                h, w = item.media.size
                arrays[key] = np.asarray(rles_to_mask([list(a.points)], w, h), dtype=bool)
                entry["mask"] = key
            elif a.type == dm.AnnotationType.bbox:
                entry["bbox"] = [float(a.x), float(a.y), float(a.w), float(a.h)]
            anns.append(entry)
        frame = item.attributes.get("frame")
        items.append(
            {"id": str(item.id), "frame": frame, "subset": item.subset, "annotations": anns}
        )
    meta = json.dumps({"labels": labels, "items": items}, default=lambda v: v.item())
    np.savez(out, meta=meta, **arrays)


if __name__ == "__main__":
    main()
