"""A very large image in the window, without Qt: which pyramid level and tiles a viewport shows, and
the working window a click is segmented in (issue 26, ADR 0036).

The canvas shows a 20,000-px TIFF through its pyramid (`io/pyramid.py`): for a viewport (a box in
level-0 pixels) and a zoom (screen pixels per level-0 pixel) `LargeView.tiles` names the level whose
pixels are closest to the screen's and the tiles of that level the viewport touches; the view's
tile loader decodes them off the GUI thread into a bounded `TileCache`. A click is answered in the
*working window* `click_window` gives: the region the view shows, snapped to the tile grid, at
native resolution when it fits the segmenter's input, else from the finest pyramid level at which
it does (downsampled). The worker answers such a request with `window_proposal`; masks stay at
window size and are stored as full-image RLE (`app/working_window.py`), and stored annotations are
drawn from their RLE's box (`annotation_crop`), never from a full-image array.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from annotator.app.working_window import (
    Window,
    WindowProposal,
    check_window,
    prompt_bounds,
    segment_in_window,
)

TILE = 512
"""Display tile side in a level's pixels (the built levels' own tile side)."""

DEFAULT_SIDE = 1024
"""The segmenter's input side when the view is not told another."""

TILE_CACHE_BYTES = 128 * 2**20
"""Decoded display tiles kept: 128 MiB (170 RGB tiles of 512 px). A view needs at most 4x its
screen pixels at the level that fits its zoom: ~100 MiB for a 4K screen, ~20 MiB for 1,600 x 1,000."""

MAX_OVERLAY_PIXELS = 4_000_000
"""An annotation's overlay is decoded from its RLE at most this large (a stride beyond it)."""

Box = tuple[float, float, float, float]
Point = tuple[float, float, bool]


@dataclass(frozen=True)
class LevelInfo:
    """One pyramid level: its size and how many level-0 pixels one of its pixels spans."""

    index: int
    width: int
    height: int
    sx: float
    sy: float


@dataclass(frozen=True)
class Tile:
    """Tile (tx, ty) of `level`: `box` in that level's pixels, `rect` where it lies in level 0."""

    level: int
    tx: int
    ty: int
    box: tuple[int, int, int, int]
    rect: tuple[float, float, float, float]

    @property
    def key(self) -> tuple[int, int, int]:
        return self.level, self.tx, self.ty


@lru_cache(maxsize=256)
def _large(path: str, size: int, mtime: int) -> bool:
    from annotator.io.pyramid import is_large

    return is_large(path)


def is_large_path(path: str | os.PathLike) -> bool:
    """A TIFF over the large threshold (`io/tiles.LARGE_PIXELS`): shown through its pyramid and
    clicked in a working window. Reads the TIFF header only (remembered per file version)."""
    try:
        stat = os.stat(path)
        return _large(str(path), stat.st_size, stat.st_mtime_ns)
    except Exception:  # noqa: BLE001 - unreadable: the ordinary loader says why
        return False


def pyramid_root(cache_dir: str | os.PathLike | None) -> Path:
    """Where built pyramid levels live: the window's cache folder, else the user cache."""
    if cache_dir:
        return Path(cache_dir)
    from annotator.cache import default_cache_dir

    return default_cache_dir()


def open_pyramid(path: str | os.PathLike, cache_dir: str | os.PathLike | None, progress=None):
    """The image's `Pyramid`, missing levels built once into the cache (call off the GUI thread)."""
    from annotator.io.pyramid import Pyramid

    return Pyramid.open(path, pyramid_root(cache_dir), progress=progress)


class LargeView:
    """What the canvas shows of one large image, and where a click on it is segmented.

    The canvas sets `view_box` (the visible box in level-0 pixels) and `zoom` as the user pans and
    zooms; `tiles()` and `window_for()` read them. Built from plain level sizes, so it is tested
    without a file and without a screen."""

    def __init__(
        self,
        path: str,
        width: int,
        height: int,
        levels: Sequence[tuple[int, int]],
        tile: int = TILE,
        side: int = DEFAULT_SIDE,
    ) -> None:
        self.path, self.width, self.height, self.tile, self.side = path, width, height, tile, side
        self.levels = [LevelInfo(i, w, h, width / w, height / h) for i, (w, h) in enumerate(levels)]
        self.view_box: Box = (0.0, 0.0, float(width), float(height))
        self.zoom = 1.0
        # the view's current (view_box, zoom), read before a click's window is taken (the canvas
        # sets it: a click right after a pan or zoom must not use the last painted view)
        self.source: Callable[[], tuple[Box, float]] | None = None

    @classmethod
    def of(cls, path: str, pyramid: Any, side: int = DEFAULT_SIDE) -> LargeView:
        sizes = [(level.width, level.height) for level in pyramid.levels]
        return cls(str(path), pyramid.width, pyramid.height, sizes, side=side)

    # ------------------------------------------------------------------ showing
    def level_for(self, zoom: float) -> int:
        """The coarsest level whose pixels are at least as fine as the screen's at `zoom`."""
        best = 0
        for level in self.levels:
            if max(level.sx, level.sy) <= 1.0001 / max(zoom, 1e-9):
                best = level.index
        return best

    def tiles(self, view_box: Box | None = None, zoom: float | None = None) -> list[Tile]:
        """The tiles of the level that fits `zoom` that `view_box` touches (default: the view's)."""
        view_box = self.view_box if view_box is None else view_box
        zoom = self.zoom if zoom is None else zoom
        return self.tiles_at(self.level_for(zoom), view_box)

    def tiles_at(self, level: int, view_box: Box) -> list[Tile]:
        info = self.levels[level]
        x0, y0, x1, y1 = _cut(view_box, self.width, self.height)
        if x1 <= x0 or y1 <= y0:
            return []
        t = self.tile
        tx0, ty0 = int(x0 / info.sx) // t, int(y0 / info.sy) // t
        tx1 = min(math.ceil(info.width / t), math.ceil(x1 / info.sx / t))
        ty1 = min(math.ceil(info.height / t), math.ceil(y1 / info.sy / t))
        found = []
        for ty in range(ty0, max(ty0 + 1, ty1)):
            for tx in range(tx0, max(tx0 + 1, tx1)):
                box = (
                    tx * t,
                    ty * t,
                    min(info.width, (tx + 1) * t),
                    min(info.height, (ty + 1) * t),
                )
                rect = (box[0] * info.sx, box[1] * info.sy, box[2] * info.sx, box[3] * info.sy)
                found.append(Tile(level, tx, ty, box, rect))
        return found

    # ------------------------------------------------------------------ clicking
    def window_for(self, points: Sequence[Point], box: Box | None = None) -> Window:
        """The working window of a click with the view as it is now."""
        if self.source is not None:
            self.view_box, self.zoom = self.source()
        return click_window(self, self.view_box, points, box, self.side)


def click_window(
    view: LargeView,
    view_box: Box,
    points: Sequence[Point],
    box: Box | None,
    side: int,
    margin: int = 16,
) -> Window:
    """The region the view shows (grown to hold every prompt), snapped to the tile grid: at level 0
    a `side` x `side` window when the region fits one (the segmenter sees native pixels), else the
    region at the finest pyramid level where it, snapped to that level's tiles, is at most `side`
    (the segmenter sees it downsampled, as the user does)."""
    px0, py0, px1, py1 = prompt_bounds(points, box)
    vx0, vy0, vx1, vy1 = _cut(view_box, view.width, view.height)
    x0, y0 = min(vx0, px0 - margin), min(vy0, py0 - margin)
    x1, y1 = max(vx1, px1 + margin), max(vy1, py1 + margin)
    x0, y0, x1, y1 = _cut((x0, y0, x1, y1), view.width, view.height)
    t = view.tile
    if max(x1 - x0, y1 - y0) <= side:
        wx0 = _snapped_start(x0, x1, side, t, view.width)
        wy0 = _snapped_start(y0, y1, side, t, view.height)
        return check_window(Window(wx0, wy0, wx0 + side, wy0 + side), view.width, view.height)
    for info in view.levels[1:]:
        lx0, ly0 = int(x0 / info.sx) // t * t, int(y0 / info.sy) // t * t
        lx1 = min(info.width, -(-math.ceil(x1 / info.sx) // t) * t)
        ly1 = min(info.height, -(-math.ceil(y1 / info.sy) // t) * t)
        if max(lx1 - lx0, ly1 - ly0) <= side or info is view.levels[-1]:
            return Window(
                int(round(lx0 * info.sx)),
                int(round(ly0 * info.sy)),
                min(view.width, int(round(lx1 * info.sx))),
                min(view.height, int(round(ly1 * info.sy))),
                info.index,
            )
    # one level only (no pyramid): the whole region at level 0, however large
    return Window(int(x0), int(y0), math.ceil(x1), math.ceil(y1), 0)


def _snapped_start(a: float, b: float, side: int, tile: int, extent: int) -> int:
    """Start of a `side`-long span holding [a, b) inside [0, extent): on the tile grid when one
    such start is, else on the finest of the half, quarter, eighth tile grids that has one (the
    same place gives the same window, so its embedding is found in the cache)."""
    if extent <= side:
        return 0
    centred = (a + b) / 2 - side / 2
    grid = tile
    while grid >= max(1, tile // 8):
        low = math.ceil((b - side) / grid) * grid  # the starts on this grid that hold [a, b)
        high = math.floor(a / grid) * grid
        starts = [s for s in range(int(low), int(high) + 1, grid) if 0 <= s <= extent - side] + (
            [extent - side] if extent - side <= a and b <= extent else []
        )
        starts = [s for s in starts if s <= a and b <= s + side]
        if starts:
            return int(min(starts, key=lambda s: abs(s - centred)))
        grid //= 2
    return int(min(max(0, round(centred)), extent - side))


def _cut(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)


# ---------------------------------------------------------------------------------------- tiles
class TileCache:
    """Decoded tiles by key, least recently used dropped past `max_bytes` (thread-safe: the loader
    thread puts, the GUI thread gets)."""

    def __init__(self, max_bytes: int = TILE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _key, (_value, size) = self._items.popitem(last=False)
                self._bytes -= size

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def read_tile(pyramid: Any, tile: Tile) -> np.ndarray:
    """The tile's RGB pixels (decoded: call on the loader thread)."""
    return pyramid.read(tile.box, tile.level)


# ---------------------------------------------------------------------------------------- the model
_opened: dict[tuple[int, str], Any] = {}
_opened_lock = threading.Lock()


def window_proposal(engine: Any, request: Any) -> WindowProposal:
    """The worker's answer to a `DecodeRequest` with a `window`: the mask (or, for Tab, another
    candidate of `request.proposal`) in that working window, its embedding from the cache by the
    region's content key, else the encoders. Each thread keeps its own open pyramid per file."""
    pyramid = pyramid_of(engine, request.path)
    if request.select is not None and request.proposal is not None:
        from annotator.app.working_window import window_embedding

        embedding = window_embedding(engine, pyramid, request.proposal.window)
        chosen = engine.select(
            embedding, request.proposal.proposal, request.select, restrict=request.restrict
        )
        return WindowProposal(chosen, request.proposal.window, (pyramid.height, pyramid.width))
    return segment_in_window(
        engine, pyramid, request.window, request.points, request.box, restrict=request.restrict
    )


def pyramid_of(engine: Any, path: str) -> Any:
    """The open pyramid of `path` for this thread (levels built into the engine's cache folder)."""
    cache_root = engine.cache.root.parent if getattr(engine, "cache", None) is not None else None
    return _pyramid_for(path, cache_root)


def _pyramid_for(path: str, cache_root: Path | None) -> Any:
    key = (threading.get_ident(), str(path))
    with _opened_lock:
        found = _opened.get(key)
    if found is None:
        found = open_pyramid(path, cache_root)
        with _opened_lock:
            mine = [k for k in _opened if k[0] == key[0]]
            for old in mine:  # one open file per thread: the current large image
                _opened.pop(old).close()
            _opened[key] = found
    return found


# ---------------------------------------------------------------------------------------- overlays
def annotation_crop(
    record: Any, max_pixels: int = MAX_OVERLAY_PIXELS
) -> tuple[float, float, int, np.ndarray]:
    """(x0, y0, step, mask) of a stored annotation for its overlay: its RLE decoded over its box
    only, every `step`-th pixel when the box holds more than `max_pixels` (a full-image mask of a
    20,000-px image is 400 MB; its overlay is at most a few MB)."""
    from annotator.io.masks import rle_bbox, rle_runs

    rle = record.rle if isinstance(record.rle, dict) else record.rle()
    height = int(rle["size"][0])
    x, y, w, h = (int(v) for v in rle_bbox(rle))
    step = max(1, math.ceil(math.sqrt(w * h / max_pixels))) if w * h else 1
    crop = np.zeros((-(-h // step), -(-w // step)), dtype=bool)
    if w == 0 or h == 0:
        return float(x), float(y), step, crop
    runs = np.asarray(rle_runs(rle), dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    for start, end in zip(starts[1::2].tolist(), ends[1::2].tolist(), strict=True):
        for col in range(start // height, (end - 1) // height + 1):
            if (col - x) % step:
                continue
            r0 = max(start, col * height) - col * height - y
            r1 = min(end, (col + 1) * height) - col * height - y
            crop[-(-r0 // step) : -(-r1 // step), (col - x) // step] = True
    return float(x), float(y), step, crop


__all__ = [
    "DEFAULT_SIDE",
    "TILE",
    "LargeView",
    "LevelInfo",
    "Tile",
    "TileCache",
    "annotation_crop",
    "click_window",
    "is_large_path",
    "open_pyramid",
    "pyramid_root",
    "read_tile",
    "window_proposal",
]
