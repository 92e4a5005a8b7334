"""Large TIFF files for tests, generated cheaply: constant tiles are compressed once and repeated.

`write_tiled` writes a tiled (Big)TIFF whose tiles are the zlib stream of a constant tile except
where objects are drawn; a 20,000 x 20,000 RGB image takes a few MB and well under a second.
`write_tags` writes a minimal classic TIFF from raw tags, for the malformed files a writer refuses
to produce (absurd tile sizes, a 1 x 10^9 strip, an unknown compression).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Painter = Callable[..., bool]
"""paint(tile, x0, y0, step=1): draws into an (T, T, 3) tile whose pixel (i, j) samples the
full-resolution point (x0 + step * j, y0 + step * i); True if it drew."""


def draw_objects(objects: Sequence[tuple[str, int, int, int, tuple[int, int, int]]]) -> Painter:
    """A painter for shapes ('disc', cx, cy, r, colour) and ('square', cx, cy, half side, colour)
    in full-image coordinates."""

    def paint(tile: np.ndarray, x0: int, y0: int, step: int = 1) -> bool:
        drew = False
        t_h, t_w = tile.shape[:2]
        for kind, cx, cy, r, colour in objects:
            if cx + r < x0 or cx - r >= x0 + t_w * step or cy + r < y0 or cy - r >= y0 + t_h * step:
                continue
            yy = (y0 + step * np.arange(t_h))[:, None]
            xx = (x0 + step * np.arange(t_w))[None, :]
            if kind == "disc":
                inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            else:
                inside = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
            tile[inside] = colour
            drew = drew or bool(inside.any())
        return drew

    return paint


def render(
    width: int, height: int, background: tuple[int, int, int], paint: Painter, box
) -> np.ndarray:
    """The pixels of box (x0, y0, x1, y1) as write_tiled stores them (for reference pipelines)."""
    x0, y0, x1, y1 = box
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    out[:] = background
    paint(out, x0, y0)
    return out


def write_tiled(
    path: Path,
    width: int,
    height: int,
    paint: Painter,
    tile: int = 512,
    background: tuple[int, int, int] = (96, 120, 72),
    overviews: int = 0,
    bigtiff: bool = True,
    extratags: Sequence = (),
    level: int = 1,
) -> Path:
    """A tiled zlib RGB TIFF; `overviews` halvings as SubIFDs (tifffile's pyramid layout)."""
    import tifffile

    constant = np.empty((tile, tile, 3), np.uint8)
    constant[:] = background
    packed = zlib.compress(constant.tobytes(), level)

    def tiles(w: int, h: int, scale: int):
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                block = constant.copy()  # an overview samples the full-resolution drawing
                drew = paint(block, tx * scale, ty * scale, scale)
                yield zlib.compress(block.tobytes(), level) if drew else packed

    with tifffile.TiffWriter(path, bigtiff=bigtiff) as writer:
        options = dict(dtype=np.uint8, tile=(tile, tile), compression="zlib", photometric="rgb")
        writer.write(
            tiles(width, height, 1),
            shape=(height, width, 3),
            subifds=overviews,
            extratags=list(extratags),
            **options,
        )
        for i in range(1, overviews + 1):
            scale = 2**i
            w, h = -(-width // scale), -(-height // scale)
            writer.write(tiles(w, h, scale), shape=(h, w, 3), subfiletype=1, **options)
    return path


def write_tags(path: Path, tags: dict[int, int | Sequence[int]], data: bytes = b"") -> Path:
    """A little-endian classic TIFF with one IFD of LONG tags (values as given) and `data` after
    it; tag 273/324 (offsets) values of -1 are replaced by the data's offset."""
    entries = sorted(tags.items())
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = ifd_offset + ifd_size
    extra = b""
    data_at = extra_at + 4 * sum(
        len(v) for _, v in entries if isinstance(v, (list, tuple)) and len(v) > 1
    )
    body = struct.pack("<H", len(entries))
    for tag, value in entries:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        values = [data_at if v == -1 else v for v in values]
        if len(values) == 1:
            body += struct.pack("<HHII", tag, 4, 1, values[0])
        else:
            body += struct.pack("<HHII", tag, 4, len(values), extra_at + len(extra))
            extra += struct.pack(f"<{len(values)}I", *values)
    body += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_offset) + body + extra + data)
    return path
