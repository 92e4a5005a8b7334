"""Very large images read region by region (annotator.io.tiles, annotator.io.pyramid): pixels equal
the drawing, pyramid levels, and malformed TIFFs refused in one line with bounded memory."""

from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
import pytest
import tifffile

from annotator.errors import ImageLoadError
from annotator.io.pyramid import Pyramid
from annotator.io.tiles import MAX_SEGMENT_BYTES, TiledImage, is_tiff
from tests.large_data import draw_objects, render, write_tags, write_tiled

OBJECTS = [("disc", 1300, 1250, 30, (230, 40, 40)), ("square", 500, 700, 25, (30, 30, 220))]


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "flat.tif"
    return write_tiled(path, 3000, 2600, draw_objects(OBJECTS), tile=256)


def test_region_equals_the_drawing_across_tile_borders(flat):
    box = (1200, 1100, 1700, 1420)  # crosses tile borders at 1280 and 1536
    with TiledImage(flat) as image:
        assert (image.width, image.height) == (3000, 2600)
        assert is_tiff(flat)
        pixels = image.read(box)
    expected = render(3000, 2600, (96, 120, 72), draw_objects(OBJECTS), box)
    assert pixels.shape == (320, 500, 3) and pixels.flags.c_contiguous
    assert np.array_equal(pixels, expected)
    assert (pixels != pixels[0, 0]).any()  # the disc is in it


def test_region_is_cut_to_the_image_and_outside_is_refused(flat):
    with TiledImage(flat) as image:
        assert image.read((2900, 2500, 3100, 2700)).shape == (100, 100, 3)
        with pytest.raises(ImageLoadError, match="outside"):
            image.read((5000, 5000, 5100, 5100))


def test_region_key_names_the_content(flat, tmp_path):
    other = write_tiled(tmp_path / "other.tif", 3000, 2600, draw_objects(OBJECTS[:1]), tile=256)
    with TiledImage(flat) as a, TiledImage(other) as b:
        assert a.region_key((1200, 1100, 1700, 1420)) == b.region_key((1200, 1100, 1700, 1420))
        assert a.region_key((1200, 1100, 1700, 1420)) != a.region_key((1201, 1100, 1700, 1420))
        assert a.region_key((400, 600, 600, 800)) != b.region_key((400, 600, 600, 800))  # square


def test_strips_planar_and_16_bit(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "strips.tif", rgb, rowsperstrip=64, compression="zlib")
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.moveaxis(rgb, -1, 0),
        planarconfig="separate",
        photometric="rgb",
        tile=(128, 128),
    )
    grey = rng.integers(0, 65536, (700, 900), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "grey16.tif", grey, tile=(256, 256))
    box = (130, 70, 610, 333)
    for name in ("strips.tif", "planar.tif"):
        with TiledImage(tmp_path / name) as image:
            assert np.array_equal(image.read(box), rgb[70:333, 130:610]), name
    with TiledImage(tmp_path / "grey16.tif") as image:
        got = image.read(box)
    want = ((grey[70:333, 130:610].astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    assert np.array_equal(got, np.repeat(want[..., None], 3, axis=-1))


def test_own_overviews_are_the_levels(tmp_path):
    path = write_tiled(tmp_path / "p.tif", 3000, 2600, draw_objects(OBJECTS), tile=256, overviews=2)
    with Pyramid.open(path) as pyramid:
        assert [(lv.width, lv.height) for lv in pyramid.levels] == [
            (3000, 2600),
            (1500, 1300),
            (750, 650),
        ]
        assert pyramid.level_for(3.0) == 1 and pyramid.level_for(0.5) == 0
        small = pyramid.read((0, 0, 750, 650), 2)
    assert tuple(small[1250 // 4, 1300 // 4]) == (230, 40, 40)


def test_missing_levels_are_built_once_and_cached(flat, tmp_path):
    with Pyramid.open(flat, tmp_path) as pyramid:
        sizes = [(lv.width, lv.height) for lv in pyramid.levels]
        small = pyramid.read((0, 0, 750, 650), 2)
    assert sizes == [(3000, 2600), (1500, 1300), (750, 650)]
    full = render(3000, 2600, (96, 120, 72), draw_objects(OBJECTS), (0, 0, 3000, 2600))
    mean = full.reshape(650, 4, 750, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - mean).max() <= 1.0  # two rounded 2x2 means
    built = sorted(p.name for p in tmp_path.glob("pyramids/*/*.tif"))
    assert built == ["level1.tif", "level2.tif"]
    stamps = [p.stat().st_mtime_ns for p in tmp_path.glob("pyramids/*/*.tif")]
    with Pyramid.open(flat, tmp_path):
        pass
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("pyramids/*/*.tif")] == stamps


# ------------------------------------------------------------------------------------ bad input
def _refused(path, match: str) -> str:
    """Opening and reading fail with one ImageLoadError line, allocating under 32 MB."""
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match=match) as caught:
            with TiledImage(path) as image:
                image.read((0, 0, image.width, min(image.height, 64)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


def test_tile_offsets_past_the_end_of_the_file(flat, tmp_path):
    data = flat.read_bytes()
    cut = tmp_path / "cut.tif"
    with tifffile.TiffFile(flat) as tif:
        last = int(max(tif.pages[0].dataoffsets))
    cut.write_bytes(data[: last - 10])
    _refused(cut, "past the end of the file")


def test_absurd_tile_size(tmp_path):
    tags = {
        256: 100_000,
        257: 100_000,
        258: 8,
        259: 8,
        262: 1,
        277: 1,
        322: 60_000,
        323: 60_000,
        324: -1,
        325: 16,
    }
    _refused(write_tags(tmp_path / "tile.tif", tags, b"\0" * 16), "absurd tile or strip size")


def test_a_one_by_a_billion_strip(tmp_path):
    packed = zlib.compress(b"\0" * 1000)
    tags = {
        256: 1_000_000_000,
        257: 1,
        258: 8,
        259: 8,
        262: 1,
        273: -1,
        277: 1,
        278: 1,
        279: len(packed),
    }
    _refused(write_tags(tmp_path / "strip.tif", tags, packed), "absurd tile or strip size")


def test_unsupported_compression(tmp_path):
    tags = {256: 64, 257: 64, 258: 8, 259: 60_000, 262: 1, 273: -1, 277: 1, 278: 64, 279: 16}
    assert "60000" in _refused(
        write_tags(tmp_path / "codec.tif", tags, b"\0" * 16), "unsupported TIFF compression"
    )


def test_corrupt_tile_data(flat, tmp_path):
    data = bytearray(flat.read_bytes())
    with tifffile.TiffFile(flat) as tif:
        page = tif.pages[0]
        offset, count = int(page.dataoffsets[0]), int(page.databytecounts[0])
    data[offset : offset + count] = b"\xff" * count
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    _refused(bad, "cannot be decoded")


def test_not_a_tiff_and_too_many_pixels(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"hello world, not a tiff")
    _refused(tmp_path / "x.tif", "not a readable TIFF")
    tags = {
        256: 200_000,
        257: 200_000,
        258: 8,
        259: 1,
        262: 1,
        277: 1,
        322: 256,
        323: 256,
        324: -1,
        325: 16,
    }
    assert MAX_SEGMENT_BYTES > 256 * 256
    _refused(write_tags(tmp_path / "huge.tif", tags, b"\0" * 16), "gigapixels")


def test_levels_of_a_striped_file_are_built_from_bands(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (1300, 2100, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "strips.tif", rgb, rowsperstrip=50, compression="zlib")
    with Pyramid.open(tmp_path / "strips.tif", tmp_path / "cache") as pyramid:
        sizes = [(lv.width, lv.height) for lv in pyramid.levels]
        assert sizes == [(2100, 1300), (1050, 650), (525, 325)]
        half = pyramid.read((0, 0, 1050, 650), 1)
    want = (rgb.reshape(650, 2, 1050, 2, 3).astype(np.uint16).sum(axis=(1, 3)) + 2) // 4
    assert np.array_equal(half, want.astype(np.uint8))
