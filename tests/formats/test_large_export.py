"""Exports of large images: full-image coordinates in every format, and GeoJSON (pixels, or a
GeoTIFF's CRS) read back by shapely with the same geometry."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shapely
from shapely.geometry import box as shapely_box
from shapely.geometry import shape

from annotator.app.working_window import placed_rle
from annotator.io import formats
from annotator.io.geo import from_tags, mask_polygons, rle_crop
from annotator.io.masks import rle_to_mask
from annotator.io.tiles import TiledImage
from annotator.store import Project
from tests.large_data import draw_objects, render, write_tiled

SIDE = 6_000
BACKGROUND = (96, 120, 72)
OBJECTS = {
    "disc": ("disc", 4_321, 5_102, 40, (230, 40, 40)),
    "square": ("square", 5_700, 300, 30, (30, 30, 220)),
}
# EPSG:32633 (UTM 33N), 0.5 m pixels, upper-left corner at (500000, 4649776)
UTM = [
    (33550, "d", 3, (0.5, 0.5, 0.0), True),
    (33922, "d", 6, (0, 0, 0, 500_000.0, 4_649_776.0, 0), True),
    (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), True),
]
# EPSG:4326 with a rotation/shear in ModelTransformation (row-major 4 x 4)
SHEARED = [
    (34264, "d", 16, (1e-5, 2e-6, 0, 12.5, 1.5e-6, -1e-5, 0, 41.9, 0, 0, 0, 0, 0, 0, 0, 1), True),
    (34735, "H", 12, (1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 4326), True),
]


def _object_mask(name: str, ring: bool = False) -> tuple[int, int, np.ndarray]:
    kind, cx, cy, r, colour = OBJECTS[name]
    box = (cx - r - 1, cy - r - 1, cx + r + 2, cy + r + 2)
    drawn = render(SIDE, SIDE, BACKGROUND, draw_objects([OBJECTS[name]]), box)
    mask = (drawn != np.asarray(BACKGROUND, np.uint8)).any(axis=-1)
    if ring:  # a hole in the middle
        mask[r - 8 : r + 12, r - 10 : r + 9] = False
    return box[0], box[1], mask


def _project(folder, name: str, tags=()) -> Project:
    write_tiled(folder / name, SIDE, SIDE, draw_objects(OBJECTS.values()), extratags=tags)
    project = Project.open_folder(folder)
    image_id = project.add_image(name, SIDE, SIDE)
    for category, ring in (("disc", True), ("square", False)):
        x0, y0, mask = _object_mask(category, ring)
        project.add_annotation_rle(image_id, placed_rle(mask, x0, y0, SIDE, SIDE), category, 0.9)
    return project


def _pixel_geometry(x0: int, y0: int, mask: np.ndarray):
    """The mask as the union of its pixels' squares (an independent reference)."""
    squares = []
    for r in range(mask.shape[0]):
        row = np.flatnonzero(np.diff(np.concatenate([[0], mask[r].astype(np.int8), [0]])))
        for a, b in zip(row[::2], row[1::2], strict=True):
            squares.append(shapely_box(x0 + a, y0 + r, x0 + b, y0 + r + 1))
    return shapely.unary_union(squares)


@pytest.mark.slow
@pytest.mark.parametrize("name", formats.FORMATS)
def test_every_format_keeps_full_image_coordinates(name, tmp_path):
    target = tmp_path / "dst"  # the importing project; holds the source project and exports,
    source = target / "src"  # as labelme's image paths are relative to its JSON files
    source.mkdir(parents=True)
    with _project(source, "big.tif") as project, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = {a.category: a for a in project.annotations()}
        out = target / ("out.json" if name == "coco" else "out.xml" if name == "cvat" else "out")
        formats.export(name, project, out)
    (target / "big.tif").write_bytes((source / "big.tif").read_bytes())
    with Project.open_folder(target) as back, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        formats.import_(out, target, back, name)
        found = {a.category: a for a in back.annotations()}
        assert {i.width for i in back.images()} == {SIDE}
    assert set(found) == {"disc", "square"}
    for category, a in original.items():
        b = found[category]
        assert b.rle["size"] == [SIDE, SIDE]
        assert np.allclose(b.bbox, a.bbox, atol=1.0), (category, b.bbox, a.bbox)  # not at 0, 0
        x0, y0, w, h = (int(v) for v in a.bbox)
        ma = rle_to_mask(a.rle)[y0 : y0 + h, x0 : x0 + w]
        mb = rle_to_mask(b.rle)[y0 : y0 + h, x0 : x0 + w]
        filled = category == "disc" and name in ("yolo", "voc", "labelme")  # holes filled there
        if not filled:
            assert (ma & mb).sum() / (ma | mb).sum() >= 0.98, category


def _read(path) -> dict:
    return json.loads(path.read_text())


def test_geojson_in_pixels_reads_back_with_the_same_geometry(tmp_path):
    with _project(tmp_path, "plain.tif") as project:
        with pytest.warns(formats.FormatWarning, match="pixel coordinates"):
            summary = formats.export("geojson", project, tmp_path / "geo")
    assert summary["features"] == 2 and summary["georeferenced"] == 0
    collection = _read(tmp_path / "geo" / "plain.tif.geojson")
    assert "crs" not in collection and collection["annotator:coordinates"] == "pixels"
    by_category = {f["properties"]["category"]: f for f in collection["features"]}
    for category, ring in (("disc", True), ("square", False)):
        geometry = shape(by_category[category]["geometry"])
        assert geometry.is_valid
        x0, y0, mask = _object_mask(category, ring)
        reference = _pixel_geometry(x0, y0, mask)
        assert geometry.area == mask.sum()
        assert geometry.symmetric_difference(reference).area == 0
    disc = shape(by_category["disc"]["geometry"])
    assert disc.geom_type == "Polygon" and len(disc.interiors) == 1  # the hole is kept


@pytest.mark.parametrize("tags", [UTM, SHEARED], ids=["utm-tiepoint", "wgs84-transformation"])
def test_geojson_of_a_geotiff_is_in_its_crs(tmp_path, tags):
    with _project(tmp_path, "geo.tif", tags) as project:
        summary = formats.export("geojson", project, tmp_path / "geo")
        stored = {a.category: a for a in project.annotations()}
    assert summary["georeferenced"] == 1 and not summary["warnings"]
    collection = _read(tmp_path / "geo" / "geo.tif.geojson")
    epsg = 32633 if tags is UTM else 4326
    assert collection["crs"]["properties"]["name"] == f"urn:ogc:def:crs:EPSG::{epsg}"
    # the affine transform, written out from the tags independently of io/geo
    if tags is UTM:
        a, b, c, d, e, f = 0.5, 0.0, 500_000.0, 0.0, -0.5, 4_649_776.0
    else:
        a, b, c, d, e, f = 1e-5, 2e-6, 12.5, 1.5e-6, -1e-5, 41.9
    for feature in collection["features"]:
        geometry = shape(feature["geometry"])
        x0, y0, mask = rle_crop(stored[feature["properties"]["category"]].rle)
        pixel = _pixel_geometry(x0, y0, mask)
        expected = shapely.affinity.affine_transform(pixel, [a, b, d, e, c, f])
        scale = max(abs(c), abs(f))
        assert geometry.hausdorff_distance(expected) <= 1e-6 * scale
        assert abs(geometry.area - expected.area) <= 1e-6 * expected.area
        # every vertex is a pixel corner mapped by the transform (<= 1e-6 relative)
        inverse = np.linalg.inv(np.array([[a, b], [d, e]]))
        for ring in feature["geometry"]["coordinates"]:
            xy = np.asarray(ring) - [c, f]
            cols_rows = xy @ inverse.T
            assert np.abs(cols_rows - np.round(cols_rows)).max() <= 1e-6 * SIDE


def test_polygons_follow_pixel_edges_with_holes():
    mask = np.zeros((10, 12), bool)
    mask[1:9, 1:11] = True
    mask[3:6, 4:7] = False
    mask[0, 11] = True  # a separate pixel, diagonal to nothing
    polygons = mask_polygons(100, 200, mask)
    shapes = shapely.unary_union([shapely.Polygon(p[0], p[1:]) for p in polygons])
    assert shapes.area == mask.sum()
    assert shapes.symmetric_difference(_pixel_geometry(100, 200, mask)).area == 0


def test_tags_without_an_epsg_code_are_not_georeferenced(tmp_path):
    assert from_tags({"ModelPixelScale": [1, 1, 0], "ModelTiepoint": [0, 0, 0, 5, 5, 0]}) is None
    assert from_tags({"ProjectedCSTypeGeoKey": 32767, "ModelPixelScale": [1, 1, 0],
                      "ModelTiepoint": [0, 0, 0, 5, 5, 0]}) is None  # fmt: skip
    point = from_tags({"ProjectedCSTypeGeoKey": 32633, "GTRasterTypeGeoKey": 2,
                       "ModelPixelScale": [2, 2, 0], "ModelTiepoint": [0, 0, 0, 10, 20, 0]})  # fmt: skip
    assert point.apply(np.array([[0.5, 0.5]])).tolist() == [[10.0, 20.0]]  # PixelIsPoint
    write_tiled(tmp_path / "g.tif", 600, 400, draw_objects([]), extratags=UTM)
    with TiledImage(tmp_path / "g.tif") as image:
        assert from_tags(image.geotiff_tags).epsg == 32633
