"""Pyramid levels of a very large image: the file's own overviews, or levels built once and cached.

A view of a 20,000-px image at 5 % zoom must not decode 400 MP to show 1 MP: it reads the level
whose pixels are closest to the screen's. A pyramidal TIFF (SubIFDs, OME, GDAL overviews) already
has them; for a flat tiled or striped TIFF `Pyramid.open` builds the missing halvings, each from the
one above it, a tile at a time (a striped source: a band of rows; never a whole level), into tiled
zlib TIFFs under `<cache>/pyramids/<key>/`. The key names the file by path, size, modification time
and its level-0 layout: building reads every tile once, so naming the levels by a hash of the
pixels would cost the same full read on every open.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.errors import ImageLoadError
from annotator.io.tiles import Level, TiledImage

SMALLEST_SIDE = 1024
"""Halvings stop once the long side is at most this (the whole image fits a window at once)."""

TILE = 512
"""Tile side of built levels."""


@dataclass(frozen=True)
class _Source:
    image: TiledImage
    level: int  # that file's own level index


class Pyramid:
    """Levels 0..n of one image, each read region by region; level 0 is the file's full resolution.

    `read(box, level)` takes the box in that level's pixels; `levels[i].scale` converts.
    """

    def __init__(self, base: TiledImage, sources: list[_Source]):
        self.base = base
        self._sources = sources
        self.levels = [
            Level(
                i,
                s.image.levels[s.level].width,
                s.image.levels[s.level].height,
                base.width / s.image.levels[s.level].width,
            )
            for i, s in enumerate(sources)
        ]

    @property
    def width(self) -> int:
        return self.base.width

    @property
    def height(self) -> int:
        return self.base.height

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        cache_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Pyramid:
        """The file's levels, plus built ones (cached under `cache_dir`) down to `SMALLEST_SIDE`.
        Without `cache_dir` only the file's own levels are used."""
        base = TiledImage(path)
        sources = [_Source(base, i) for i in range(len(base.levels))]
        last = base.levels[-1]
        if cache_dir is None or max(last.width, last.height) <= SMALLEST_SIDE:
            return cls(base, sources)
        folder = Path(cache_dir) / "pyramids" / _key(base)
        folder.mkdir(parents=True, exist_ok=True)
        width, height = last.width, last.height
        step = 0
        total = _halvings(width, height)
        while max(width, height) > SMALLEST_SIDE:
            width, height = -(-width // 2), -(-height // 2)
            file = folder / f"level{len(sources)}.tif"
            if not file.is_file():
                _halve(sources[-1], file)
            step += 1
            if progress is not None:
                progress(step, total)
            image = TiledImage(file)
            sources.append(_Source(image, 0))
        return cls(base, sources)

    def level_for(self, scale: float) -> int:
        """The coarsest level whose pixels are at least as fine as `scale` image px per screen px."""
        best = 0
        for level in self.levels:
            if level.scale <= scale * 1.0001:
                best = level.index
        return best

    def read(self, box: tuple[int, int, int, int], level: int = 0) -> np.ndarray:
        source = self._sources[level]
        return source.image.read(box, source.level)

    def region_key(self, box: tuple[int, int, int, int], level: int = 0) -> str:
        source = self._sources[level]
        return source.image.region_key(box, source.level)

    def close(self) -> None:
        for image in {id(s.image): s.image for s in self._sources}.values():
            image.close()

    def __enter__(self) -> Pyramid:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ArrayImage:
    """An image already in memory (a PNG or JPEG under the 150 MP limit) behind `Pyramid`'s
    interface, so that windows and tile grids treat every format alike. One level."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = np.ascontiguousarray(pixels)
        self.height, self.width = (int(v) for v in self.pixels.shape[:2])
        self.levels = [Level(0, self.width, self.height, 1.0)]

    def read(self, box: tuple[int, int, int, int], level: int = 0) -> np.ndarray:
        x0, y0, x1, y1 = (int(v) for v in box)
        return np.ascontiguousarray(self.pixels[max(0, y0) : y1, max(0, x0) : x1])

    def region_key(self, box: tuple[int, int, int, int], level: int = 0) -> str:
        from annotator.io.images import sha256_pixels

        return hashlib.sha256(
            f"array-v1|{box}|{sha256_pixels(self.read(box))}".encode()
        ).hexdigest()

    def close(self) -> None:
        pass

    def __enter__(self) -> ArrayImage:
        return self

    def __exit__(self, *exc) -> None:
        pass


def is_large(path: str | os.PathLike) -> bool:
    """A TIFF over `io/tiles.LARGE_PIXELS`: segmented in a window, proposed on a tile grid."""
    from annotator.io.tiles import LARGE_PIXELS, is_tiff

    if not is_tiff(path):
        return False
    try:
        with TiledImage(path) as image:
            return image.width * image.height > LARGE_PIXELS
    except ImageLoadError as refused:
        from annotator.io.images import image_size

        try:
            image_size(path)
        except ImageLoadError:
            raise refused from None  # tifffile's reason is the more precise one
        return False  # Pillow reads what tifffile refused (an old-style JPEG-in-TIFF...)


def image_size_any(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) by `io/images.image_size` (EXIF orientation, 150 MP), and for a TIFF it
    refuses (too large for Pillow) from tifffile's header: up to 10 gigapixels."""
    from annotator.io.images import image_size
    from annotator.io.tiles import is_tiff

    try:
        size = image_size(path)
    except ImageLoadError:
        if not is_tiff(path):
            raise
        with TiledImage(path) as image:
            return image.width, image.height
    return size.width, size.height


def open_large(path: str | os.PathLike, cache_dir: Path | None = None) -> Pyramid | ArrayImage:
    """A TIFF as a `Pyramid` (region by region, any size up to 10 gigapixels); any other format
    decoded whole by `io/images.load_image`, with its 150 MP limit."""
    from annotator.io.images import load_image
    from annotator.io.tiles import is_tiff

    if is_tiff(path):
        return Pyramid.open(path, cache_dir)
    return ArrayImage(load_image(path))


def _halvings(width: int, height: int) -> int:
    count = 0
    while max(width, height) > SMALLEST_SIDE:
        width, height, count = -(-width // 2), -(-height // 2), count + 1
    return count


def _key(image: TiledImage) -> str:
    stat = os.stat(image.path)
    page = image._pages[0]
    digest = hashlib.sha256(
        f"pyramid-v1|{Path(image.path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
        f"{image.width}x{image.height}|{len(image.levels)}".encode()
    )
    digest.update(np.asarray(page.dataoffsets, dtype=np.int64).tobytes())
    digest.update(np.asarray(page.databytecounts, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def _halve(source: _Source, target: Path) -> None:
    """Write `source`'s level at half size (2x2 mean) as a tiled zlib TIFF, a band at a time."""
    import tifffile

    level = source.image.levels[source.level]
    width, height = -(-level.width // 2), -(-level.height // 2)

    # A tiled source is read one 2*TILE square per output tile (a few MB); a striped one a band
    # of 2*TILE rows at a time, since each strip spans the whole width (one decode per strip).
    tiled = source.image.is_tiled(source.level)

    def tiles():
        for ty in range(0, height, TILE):
            y0, y1 = 2 * ty, min(level.height, 2 * (ty + TILE))
            band = None if tiled else source.image.read((0, y0, level.width, y1), source.level)
            for tx in range(0, width, TILE):
                x0, x1 = 2 * tx, min(level.width, 2 * (tx + TILE))
                if band is None:
                    block = source.image.read((x0, y0, x1, y1), source.level)
                else:
                    block = band[:, x0:x1]
                part = _mean2(block)
                tile = np.zeros((TILE, TILE, 3), np.uint8)
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile

    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tifffile.TiffWriter(temporary, bigtiff=True) as writer:
            writer.write(
                tiles(),
                shape=(height, width, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="zlib",
                photometric="rgb",
            )
        os.replace(temporary, target)  # readers see a whole level or none
    finally:
        temporary.unlink(missing_ok=True)


def _mean2(band: np.ndarray) -> np.ndarray:
    """2x2 mean of an (h, w, 3) uint8 band (an odd last row or column is repeated)."""
    h, w = band.shape[:2]
    if h % 2 or w % 2:
        band = np.pad(band, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    wide = band.astype(np.uint16)
    total = wide[0::2, 0::2] + wide[1::2, 0::2] + wide[0::2, 1::2] + wide[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


__all__ = ["SMALLEST_SIDE", "ArrayImage", "Pyramid", "image_size_any", "is_large", "open_large"]
