"""Very large images (tiled, striped or pyramidal TIFF: BigTIFF, GeoTIFF, OME-TIFF) read region by region.

An aerial orthophoto or a slide scan is 10,000-100,000 px on a side: decoded whole it is gigabytes.
`TiledImage` opens the file with `tifffile` (header and IFDs only) and decodes only the tiles or
strips a region touches, one segment at a time, with `TiffPage.decode` (imagecodecs' codecs), so the
memory a read needs is the region plus one segment. Pyramid levels are the file's own overviews
(SubIFDs, OME pyramids, reduced-resolution pages) when it has them; `annotator.io.pyramid` builds the
missing ones once and caches them.

Bad input is refused before anything is allocated, with one line naming the file:
- more than `MAX_LARGE_PIXELS` pixels (10 gigapixels);
- a tile or strip that decodes to more than `MAX_SEGMENT_BYTES` (absurd tile sizes, a 1 x 10^9
  strip), or stores more than that;
- a tile or strip whose offset + byte count points past the end of the file;
- a compression, predictor or sample type tifffile/imagecodecs cannot decode in this process;
- volumetric tiles (ImageDepth > 1), subsampled YCbCr that is not JPEG.

Pixels come out as RGB uint8, with the same rules as `annotator.io.images` where they apply:
greyscale is repeated into three channels, an alpha channel is composited on white, bands after the
third are dropped (a 4-band RGBN satellite image shows its RGB), 16-bit samples are scaled with
v * 255 / 65535, floats are taken as 0..1 and clipped. Scaling is by sample type, never by the
values of one region, so that neighbouring tiles join without a seam.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.errors import ImageLoadError
from annotator.io.files import show_path

MAX_LARGE_PIXELS = 10_000_000_000
"""Largest image read region by region: 10 gigapixels (a 100,000 x 100,000 slide)."""

MAX_SEGMENT_BYTES = 64 * 2**20
"""Largest tile or strip, decoded or stored (64 MiB: a 4,096 x 4,096 RGBA tile). A segment is the
unit of decoding, so this bounds the memory one read needs besides the region itself."""

LARGE_PIXELS = 4096 * 4096
"""Above this many pixels an image is segmented in a working window and proposed on a tile grid
(the segmenter sees at most ~1,024 px: a whole 16 MP image would lose objects under 16 px)."""

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class Level:
    """One resolution of the image: `scale` level-0 pixels per pixel of this level (1 for level 0)."""

    index: int
    width: int
    height: int
    scale: float


def is_tiff(path: str | os.PathLike) -> bool:
    """True when the file starts with a TIFF or BigTIFF signature (by content, not extension)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in TIFF_MAGICS
    except OSError:
        return False


class TiledImage:
    """A TIFF read region by region; a context manager (closes the file).

    `read(x0, y0, x1, y1, level)` is the region [x0, x1) x [y0, y1) in that level's pixels;
    `region_key` is the sha256 that names its content for caches.
    """

    def __init__(self, path: str | os.PathLike):
        import tifffile

        self.path = Path(path)
        self.name = show_path(self.path)
        try:
            self._file_size = os.stat(self.path).st_size
        except FileNotFoundError:
            raise ImageLoadError(f"{self.name}: file not found") from None
        except OSError as error:
            raise ImageLoadError(f"{self.name}: cannot read the file ({error})") from error
        try:
            self._tif = tifffile.TiffFile(self.path)
        except Exception as error:  # tifffile raises TiffFileError, ValueError, struct.error ...
            raise ImageLoadError(
                f"{self.name}: not a readable TIFF ({type(error).__name__}: {error})"
            ) from error
        try:
            self._pages = self._level_pages()
            for page in self._pages:
                self._check_page(page)
        except BaseException:
            self._tif.close()
            raise
        base = self._pages[0]
        self.height, self.width = int(base.imagelength), int(base.imagewidth)
        self.levels = [
            Level(i, int(p.imagewidth), int(p.imagelength), self.width / int(p.imagewidth))
            for i, p in enumerate(self._pages)
        ]

    # ------------------------------------------------------------------------------------ opening
    def _level_pages(self) -> list:
        try:
            series = self._tif.series
            if not series:
                raise ImageLoadError(f"{self.name}: the TIFF holds no image")
            pages = [level.keyframe for level in series[0].levels]
        except ImageLoadError:
            raise
        except Exception as error:
            raise ImageLoadError(
                f"{self.name}: corrupt TIFF structure ({type(error).__name__}: {error})"
            ) from error
        pages = [p for p in pages if p is not None]
        if not pages:
            raise ImageLoadError(f"{self.name}: the TIFF holds no image")
        # Overviews must shrink: anything else is not a pyramid of this image.
        kept = [pages[0]]
        for page in pages[1:]:
            if (
                0 < page.imagewidth < kept[-1].imagewidth
                and 0 < page.imagelength < kept[-1].imagelength
            ):
                kept.append(page)
        return kept

    def _check_page(self, page) -> None:
        import tifffile

        name = self.name
        width, height = int(page.imagewidth), int(page.imagelength)
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"{name}: image has no pixels ({width}x{height})")
        if width * height > MAX_LARGE_PIXELS:
            raise ImageLoadError(
                f"{name}: image too large ({width}x{height} = {width * height / 1e9:.1f} gigapixels, "
                f"the limit is {MAX_LARGE_PIXELS / 1e9:.0f})"
            )
        if int(getattr(page, "imagedepth", 1) or 1) > 1:
            raise ImageLoadError(f"{name}: volumetric TIFF tiles (ImageDepth > 1) are not read")
        if page.dtype is None:
            raise ImageLoadError(
                f"{name}: unsupported sample type ({page.bitspersample}-bit, "
                f"SampleFormat {int(page.sampleformat)})"
            )
        compression = int(page.compression)
        if compression != 1 and compression not in tifffile.TIFF.DECOMPRESSORS:
            raise ImageLoadError(
                f"{name}: unsupported TIFF compression {_enum_name(page.compression)} "
                f"(code {compression})"
            )
        if int(page.predictor) != 1 and int(page.predictor) not in tifffile.TIFF.UNPREDICTORS:
            raise ImageLoadError(f"{name}: unsupported TIFF predictor {int(page.predictor)}")
        if page.photometric == 6 and compression != 7 and page.subsampling not in (None, (1, 1)):
            raise ImageLoadError(f"{name}: subsampled YCbCr outside JPEG is not read")
        th, tw = self._segment_shape(page)
        samples = int(page.samplesperpixel) if page.planarconfig == 1 else 1
        decoded = th * tw * samples * page.dtype.itemsize
        if decoded > MAX_SEGMENT_BYTES:
            kind = "tile" if page.is_tiled else "strip"
            raise ImageLoadError(
                f"{name}: a {tw}x{th} {kind} decodes to {decoded / 2**20:.0f} MiB, more than the "
                f"{MAX_SEGMENT_BYTES / 2**20:.0f} MiB read at once (absurd tile or strip size)"
            )
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        expected = self._segment_count(page)
        if offsets.size < expected or counts.size < expected:
            raise ImageLoadError(
                f"{name}: the TIFF lists {min(offsets.size, counts.size)} tiles or strips where its "
                f"size needs {expected}"
            )
        if (counts > MAX_SEGMENT_BYTES).any():
            raise ImageLoadError(
                f"{name}: a stored tile or strip is {int(counts.max()) / 2**20:.0f} MiB, more than "
                f"the {MAX_SEGMENT_BYTES / 2**20:.0f} MiB read at once"
            )
        past = (offsets < 0) | (offsets + counts > self._file_size)
        past &= counts > 0
        if past.any():
            i = int(np.argmax(past))
            raise ImageLoadError(
                f"{name}: tile or strip {i} points past the end of the file (offset {int(offsets[i])}"
                f" + {int(counts[i])} bytes, the file has {self._file_size}); truncated or corrupt"
            )

    @staticmethod
    def _segment_shape(page) -> tuple[int, int]:
        """(rows, columns) of one tile or strip."""
        if page.is_tiled:
            return int(page.tilelength), int(page.tilewidth)
        rows = int(page.rowsperstrip or page.imagelength)
        return min(rows, int(page.imagelength)), int(page.imagewidth)

    def _grid(self, page) -> tuple[int, int, int]:
        """(tiles across, tiles down, planes): the layout of the segment index."""
        th, tw = self._segment_shape(page)
        across = math.ceil(int(page.imagewidth) / tw)
        down = math.ceil(int(page.imagelength) / th)
        planes = int(page.samplesperpixel) if page.planarconfig == 2 else 1
        return across, down, planes

    def _segment_count(self, page) -> int:
        across, down, planes = self._grid(page)
        return across * down * planes

    # ------------------------------------------------------------------------------------ reading
    def level(self, level: int) -> Level:
        if not 0 <= level < len(self.levels):
            raise ImageLoadError(
                f"{self.name}: no pyramid level {level} (the file has {len(self.levels)})"
            )
        return self.levels[level]

    def is_tiled(self, level: int = 0) -> bool:
        """Tiles (True) or strips spanning the width (False) at this level."""
        return bool(self._pages[level].is_tiled)

    def clamp(self, box: tuple[int, int, int, int], level: int = 0) -> tuple[int, int, int, int]:
        """The box cut to the level's bounds; ValueError when nothing is left."""
        lv = self.level(level)
        x0, y0, x1, y1 = (int(v) for v in box)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(lv.width, x1), min(lv.height, y1)
        if x1 <= x0 or y1 <= y0:
            raise ImageLoadError(
                f"{self.name}: the region {box} lies outside the {lv.width}x{lv.height} image"
            )
        return x0, y0, x1, y1

    def _segments(self, page, box: tuple[int, int, int, int]) -> list[tuple[int, int]]:
        """(index, plane) of every segment the box touches, in file order within each plane."""
        x0, y0, x1, y1 = box
        th, tw = self._segment_shape(page)
        across, down, planes = self._grid(page)
        found = []
        for plane in range(planes):
            for ty in range(y0 // th, (y1 - 1) // th + 1):
                for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                    found.append((plane * across * down + ty * across + tx, plane))
        return found

    def _raw(self, page, index: int) -> bytes | None:
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0 or offset == 0:
            return None  # a sparse (never written) tile: tifffile fills it with zeros
        handle = self._tif.filehandle
        handle.seek(offset)
        data = handle.read(count)
        if len(data) != count:
            raise ImageLoadError(f"{self.name}: tile or strip {index} is truncated")
        return data

    def read_raw(self, box: tuple[int, int, int, int], level: int = 0) -> np.ndarray:
        """The region's stored samples, (h, w, samples) in the file's sample type."""
        page = self._pages[level]
        x0, y0, x1, y1 = box = self.clamp(box, level)
        samples = int(page.samplesperpixel)
        out = np.zeros((y1 - y0, x1 - x0, samples), dtype=page.dtype)
        decode = page.decode
        jpegtables = getattr(page, "jpegtables", None)
        for index, plane in self._segments(page, box):
            data = self._raw(page, index)
            if data is None:
                continue
            try:
                segment, where, _shape = decode(data, index, jpegtables=jpegtables)
            except Exception as error:  # corrupt compressed data: any codec error
                raise ImageLoadError(
                    f"{self.name}: tile or strip {index} cannot be decoded "
                    f"({type(error).__name__}: {error})"
                ) from error
            if segment is None:
                continue
            segment = segment.reshape(segment.shape[-3:])  # (rows, cols, contig samples)
            sy, sx = int(where[2]), int(where[3])
            # The overlap of the segment [sy, sy+rows) x [sx, sx+cols) with the box.
            ay0, ay1 = max(y0, sy), min(y1, sy + segment.shape[0])
            ax0, ax1 = max(x0, sx), min(x1, sx + segment.shape[1])
            if ay1 <= ay0 or ax1 <= ax0:
                continue
            part = segment[ay0 - sy : ay1 - sy, ax0 - sx : ax1 - sx]
            target = out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
            if page.planarconfig == 2:
                target[..., plane] = part[..., 0]
            else:
                target[...] = part[..., :samples]
        return out

    def read(self, box: tuple[int, int, int, int], level: int = 0) -> np.ndarray:
        """RGB uint8 (h, w, 3) C-contiguous pixels of the region (cut to the image's bounds)."""
        raw = self.read_raw(box, level)
        return to_rgb(raw, self._pages[level])

    def region_key(self, box: tuple[int, int, int, int], level: int = 0) -> str:
        """sha256 naming the region's pixels: the stored bytes of the tiles it touches, the page's
        layout and codec, the level and the box. Reads only those tiles (no decoding), so a cache
        lookup for a place already visited costs a few reads, not a decode."""
        page = self._pages[level]
        box = self.clamp(box, level)
        digest = hashlib.sha256(
            (
                f"tiles-v1|{level}|{page.imagewidth}x{page.imagelength}|{page.dtype}|"
                f"{int(page.samplesperpixel)}|{int(page.photometric)}|{int(page.compression)}|"
                f"{int(page.predictor)}|{int(page.planarconfig)}|{self._segment_shape(page)}|{box}|"
            ).encode()
        )
        jpegtables = getattr(page, "jpegtables", None)
        if jpegtables:
            digest.update(bytes(jpegtables))
        for index, _plane in self._segments(page, box):
            data = self._raw(page, index)
            digest.update(f"{index}:{-1 if data is None else len(data)}:".encode())
            if data is not None:
                digest.update(data)
        return digest.hexdigest()

    @property
    def geotiff_tags(self) -> dict | None:
        """tifffile's parsed GeoTIFF tags of level 0, or None when the file is not georeferenced."""
        try:
            return self._pages[0].geotiff_tags or None
        except Exception:  # a broken GeoKeyDirectory: treat the image as not georeferenced
            return None

    def close(self) -> None:
        self._tif.close()

    def __enter__(self) -> TiledImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _enum_name(value) -> str:
    return getattr(value, "name", str(value))


def to_rgb(raw: np.ndarray, page) -> np.ndarray:
    """(h, w, samples) stored samples to RGB uint8 by the rules of the module docstring."""
    photometric = int(page.photometric)
    extrasamples = tuple(int(v) for v in (page.extrasamples or ()))
    values = raw
    if photometric == 3 and page.colormap is not None:  # palette
        colormap = np.asarray(page.colormap)
        index = np.clip(values[..., 0].astype(np.int64), 0, colormap.shape[1] - 1)
        values = np.moveaxis(colormap[:, index], 0, -1)  # 16-bit colour map entries
    alpha = None
    colour_samples = values.shape[-1] - len(extrasamples) if photometric != 3 else 3
    if extrasamples and extrasamples[0] in (1, 2) and photometric != 3:
        alpha = _to_uint8(values[..., colour_samples : colour_samples + 1], raw.dtype)
    colour = values[..., : max(1, min(3, colour_samples))]
    rgb = _to_uint8(colour, values.dtype)
    if photometric == 0:  # MinIsWhite
        rgb = 255 - rgb
    if rgb.shape[-1] != 3:
        rgb = np.repeat(rgb[..., :1], 3, axis=-1)
    if alpha is not None:
        a = alpha.astype(np.uint16)
        rgb = ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _to_uint8(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if values.dtype == np.uint8:
        return values
    if dtype.kind == "f":
        scaled = np.nan_to_num(values.astype(np.float32)) * 255.0
        return np.clip(scaled, 0, 255).round().astype(np.uint8)
    if dtype.kind == "b":
        return values.astype(np.uint8) * 255
    wide = np.clip(values.astype(np.int64), 0, 65535)
    if values.dtype.itemsize == 1:  # int8
        return np.clip(values, 0, 255).astype(np.uint8)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


__all__ = [
    "LARGE_PIXELS",
    "MAX_LARGE_PIXELS",
    "MAX_SEGMENT_BYTES",
    "Level",
    "TiledImage",
    "is_tiff",
    "to_rgb",
]
