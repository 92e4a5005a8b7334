"""Georeferencing of a GeoTIFF and mask geometry as polygons with holes, for the GeoJSON export.

`georeference(path)` reads the GeoTIFF tags (tifffile parses the GeoKeyDirectory): the affine
transform from pixel-edge coordinates (col, row) to model coordinates, from ModelTransformation, or
ModelTiepoint + ModelPixelScale; and the CRS's EPSG code (ProjectedCSTypeGeoKey, else
GeographicTypeGeoKey). PixelIsPoint rasters refer their tiepoint to a pixel's centre, so the
transform is shifted by half a pixel (GDAL does the same); masks are traced along pixel edges.
A file without a transform, or whose CRS is user-defined (32767) or absent, is not georeferenced:
the export then writes pixels and says so.

`mask_polygons` traces a mask's rings along pixel edges with their holes, from the RLE's box only
(`rle_crop`): a 20,000 x 20,000 image's mask is never decoded whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from annotator.io.masks import rle_bbox, rle_runs

USER_DEFINED = 32767


@dataclass(frozen=True)
class GeoReference:
    """X = a*col + b*row + c, Y = d*col + e*row + f (col, row: pixel-edge coordinates)."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float
    epsg: int

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (col, row) -> (N, 2) model (X, Y), float64."""
        p = np.asarray(points, dtype=np.float64)
        x = self.a * p[:, 0] + self.b * p[:, 1] + self.c
        y = self.d * p[:, 0] + self.e * p[:, 1] + self.f
        return np.stack([x, y], axis=1)

    @property
    def crs_name(self) -> str:
        return f"urn:ogc:def:crs:EPSG::{self.epsg}"


def _code(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def from_tags(tags: dict | None) -> GeoReference | None:
    """A `GeoReference` from tifffile's `geotiff_tags`, or None (see the module docstring)."""
    if not tags:
        return None
    epsg = _code(tags.get("ProjectedCSTypeGeoKey"))
    if epsg is None or epsg == USER_DEFINED:
        epsg = _code(tags.get("GeographicTypeGeoKey"))
    if epsg is None or epsg == USER_DEFINED or epsg <= 0:
        return None
    shift = 0.5 if _code(tags.get("GTRasterTypeGeoKey")) == 2 else 0.0  # PixelIsPoint
    try:
        if "ModelTransformation" in tags:
            m = np.asarray(tags["ModelTransformation"], dtype=np.float64).reshape(4, 4)
            a, b, c = m[0, 0], m[0, 1], m[0, 3]
            d, e, f = m[1, 0], m[1, 1], m[1, 3]
        elif "ModelTiepoint" in tags and "ModelPixelScale" in tags:
            i, j, _k, x, y, _z = (float(v) for v in list(tags["ModelTiepoint"])[:6])
            sx, sy = (float(v) for v in list(tags["ModelPixelScale"])[:2])
            a, b, c = sx, 0.0, x - i * sx
            d, e, f = 0.0, -sy, y + j * sy
        else:
            return None
    except (TypeError, ValueError):
        return None
    c, f = c - shift * (a + b), f - shift * (d + e)
    values = (a, b, c, d, e, f)
    if not all(np.isfinite(values)) or a * e - b * d == 0:
        return None
    return GeoReference(*(float(v) for v in values), epsg=int(epsg))


def georeference(path: str | os.PathLike) -> GeoReference | None:
    """The file's `GeoReference`, or None for a file that is not a georeferenced TIFF."""
    from annotator.errors import ImageLoadError
    from annotator.io.tiles import TiledImage, is_tiff

    if not is_tiff(path):
        return None
    try:
        with TiledImage(path) as image:
            return from_tags(image.geotiff_tags)
    except ImageLoadError:
        return None


def rle_crop(rle: dict) -> tuple[int, int, np.ndarray]:
    """(x0, y0, mask over the RLE's box) without decoding the whole image."""
    height, width = (int(v) for v in rle["size"])
    x, y, w, h = (int(v) for v in rle_bbox(rle))
    crop = np.zeros((h, w), dtype=bool)
    if w == 0 or h == 0:
        return x, y, crop
    runs = np.asarray(rle_runs(rle), dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    for start, end in zip(starts[1::2].tolist(), ends[1::2].tolist(), strict=True):
        for col in range(start // height, (end - 1) // height + 1):
            r0 = max(start, col * height) - col * height
            r1 = min(end, (col + 1) * height) - col * height
            crop[r0 - y : r1 - y, col - x] = True
    return x, y, crop


def mask_polygons(x0: int, y0: int, crop: np.ndarray) -> list[list[np.ndarray]]:
    """Polygons [exterior, hole, hole, ...] of a mask (placed at x0, y0) along pixel edges, as
    (N, 2) float arrays of pixel-edge (col, row) vertices, rings closed (first == last).

    The crop is upscaled 2x and traced by OpenCV (RETR_CCOMP: outer rings and their holes); a
    vertex at upscaled column c lies on a pixel edge at (c + 1) // 2 (as io/masks._trace).
    """
    if not crop.any():
        return []
    up = np.zeros((2 * crop.shape[0] + 2, 2 * crop.shape[1] + 2), np.uint8)
    up[1:-1, 1:-1] = crop.astype(np.uint8).repeat(2, axis=0).repeat(2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([x0, y0])
    rings = []
    for contour in contours:
        pts = contour.reshape(-1, 2) // 2 + offset
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) > 1 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        rings.append(np.vstack([pts, pts[:1]]).astype(np.float64))
    polygons: dict[int, list[np.ndarray]] = {}
    for i, links in enumerate(hierarchy[0]):
        parent = int(links[3])
        if parent == -1:
            polygons.setdefault(i, []).insert(0, rings[i])
        else:
            polygons.setdefault(parent, []).append(rings[i])
    return [p for p in polygons.values() if len(p[0]) >= 4]


__all__ = ["GeoReference", "from_tags", "georeference", "mask_polygons", "rle_crop"]
