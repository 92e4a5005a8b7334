"""GeoJSON export (issue 26): one FeatureCollection per image, a Polygon or MultiPolygon per mask.

Written as `<out>/<image name>.geojson` (the image's relative path with '/' turned into '__', as
YOLO's flat names), because each image has its own coordinate system:
- a georeferenced GeoTIFF (an affine transform and an EPSG code, `io/geo.py`): coordinates in its
  CRS, named in the collection's `crs` member (`urn:ogc:def:crs:EPSG::<code>`, the 2008 GeoJSON
  form that GDAL, QGIS and geopandas read; RFC 7946 itself only allows WGS 84 longitude/latitude);
- any other image: pixel-edge coordinates (x right, y down, pixel (x, y) covers [x, x+1)), and the
  collection says `"annotator:coordinates": "pixels"`.

Rings follow pixel edges, holes included (GeoJSON polygons have holes, unlike COCO's): the polygons
cover exactly the mask's pixels. Masks are traced from their RLE's box only (`io/geo.rle_crop`).
Boxes without a mask become rectangles. Export only: there is no GeoJSON import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import DatasetFormatError
from annotator.io.formats import _common as c
from annotator.io.geo import GeoReference, georeference, mask_polygons, rle_crop
from annotator.store.project import Project

NAME = "geojson"


def _ring(points: np.ndarray, geo: GeoReference | None, exterior: bool) -> list[list[float]]:
    """Coordinates of one closed ring, exterior counter-clockwise and holes clockwise in the
    output coordinates (RFC 7946's right-hand rule; a north-up transform flips the y axis)."""
    pts = geo.apply(points) if geo is not None else np.asarray(points, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    signed = float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))  # twice the signed area
    if (signed > 0) != exterior:
        pts = pts[::-1]
    return [[float(a), float(b)] for a, b in pts]


def geometry(polygons: list[list[np.ndarray]], geo: GeoReference | None) -> dict | None:
    """GeoJSON geometry of `io/geo.mask_polygons` output; None when empty."""
    if not polygons:
        return None
    out = [[_ring(ring, geo, k == 0) for k, ring in enumerate(rings)] for rings in polygons]
    if len(out) == 1:
        return {"type": "Polygon", "coordinates": out[0]}
    return {"type": "MultiPolygon", "coordinates": out}


def export(
    project: Project, out: str | os.PathLike, progress: c.Progress | None = None, **_: Any
) -> dict:
    """Write one `.geojson` per image with annotations into the folder `out`."""
    root = Path(out)
    snap = c.read_project(project, progress)
    root.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"path": str(root), "format": NAME, "images": 0, "features": 0}
    groups = snap.by_image()
    georeferenced = pixels = 0
    seen: dict[str, str] = {}
    for done, image in enumerate(snap.images):
        c.report(progress, done, len(snap.images))
        annotations, boxes = groups[image.id]
        name = image.file_name.replace("/", "__") + ".geojson"
        if name in seen:
            raise DatasetFormatError(f"{image.file_name} and {seen[name]}: same GeoJSON file name")
        seen[name] = image.file_name
        geo = georeference(c.image_path(snap, image)) if snap.folder is not None else None
        features = []
        for a in annotations:
            x0, y0, crop = rle_crop(a.rle)
            shape = geometry(mask_polygons(x0, y0, crop), geo)
            if shape is None:
                continue
            features.append(_feature(a.id, a.category, a.score, image.file_name, shape))
        for b in boxes:
            x, y, w, h = b.bbox
            ring = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], float)
            shape = geometry([[ring]], geo)
            features.append(
                _feature(f"box-{b.id}", b.category, b.score, image.file_name, shape, box=True)
            )
        if not features:
            continue
        collection: dict[str, Any] = {"type": "FeatureCollection", "name": image.file_name}
        if geo is not None:
            collection["crs"] = {"type": "name", "properties": {"name": geo.crs_name}}
            georeferenced += 1
        else:
            collection["annotator:coordinates"] = "pixels"
            pixels += 1
        collection["annotator:image"] = {"width": image.width, "height": image.height}
        collection["features"] = features
        c.write_atomic(root / name, json.dumps(collection).encode("utf-8"))
        summary["images"] += 1
        summary["features"] += len(features)
    c.report(progress, len(snap.images), len(snap.images))
    summary["georeferenced"] = georeferenced
    if pixels:
        c.warn(
            summary,
            f"{NAME}: {pixels} image(s) are not georeferenced GeoTIFFs: written in pixel "
            "coordinates",
        )
    return summary


def _feature(ident, category, score, file_name, shape, box: bool = False) -> dict:
    properties = {"category": category, "image": file_name}
    if score is not None:
        properties["score"] = float(score)
    if box:
        properties["box_only"] = True
    return {"type": "Feature", "id": ident, "properties": properties, "geometry": shape}


def import_(path, images_dir, project, progress=None) -> dict:
    raise DatasetFormatError("GeoJSON is an export format here: it cannot be imported")


def detect(path: Path) -> bool:
    return False
