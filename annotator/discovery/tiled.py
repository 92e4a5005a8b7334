"""Proposals on a very large image: a tile grid with overlap, merged across tile borders.

A 6,000-px image shrunk to the segmenter's 1,024 px loses every small object, so `autolabel` and
`find` run on overlapping windows at full resolution (`tile_grid`) and merge what the windows
found (`merge_tiles`):

1. NMS by mask IoU over all windows (same category): an object seen whole by two windows (it lies
   in their overlap) is kept once. Only complete masks are dropped: a mask that touches a window
   edge inside the image (the object may continue beyond it) is a piece, which NMS would lose
   (two pieces of one object overlap by most of their area); pieces go to step 2 instead.
2. Mask union of the same object: two survivors from different windows are one object when, in the
   region the two windows share, their masks agree (IoU >= `join_iou`). The pieces of an object
   cut by a border agree exactly there; unions are transitive (an object across four windows
   becomes one).

Masks stay window-sized or smaller (`Placed`): a full-image mask of a 20,000-px image is 400 MB.
A window's proposals come from a `WindowSource`; `FinderSource` is the segmenter's grid proposals
scored by CLIP (the `find` recipe) on the window's cached embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from annotator.app.working_window import Window, placed_rle

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 256


@dataclass(frozen=True)
class Placed:
    """A mask at full-image coordinates: `mask` covers [x0, x0 + w) x [y0, y0 + h) (cut to the
    mask's box); `window` is the window it was found in."""

    x0: int
    y0: int
    mask: np.ndarray  # bool (h, w)
    score: float
    category: str
    window: Window
    cut: bool = False  # touches an edge of its window that lies inside the image

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def rle(self, height: int, width: int) -> dict:
        return placed_rle(self.mask, self.x0, self.y0, height, width)

    def bbox(self) -> tuple[float, float, float, float]:
        """COCO XYWH at full-image coordinates."""
        return (
            float(self.x0),
            float(self.y0),
            float(self.mask.shape[1]),
            float(self.mask.shape[0]),
        )


class WindowSource(Protocol):
    """Proposals of one window: (mask over the window, score, category)."""

    def __call__(
        self, image, window: Window, classes: Sequence[str]
    ) -> list[tuple[np.ndarray, float, str]]: ...


def tile_grid(
    width: int, height: int, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
) -> list[Window]:
    """Windows of `tile` px (less at a small image's edge) stepping by tile - overlap; the last
    row and column are shifted to end at the image's edge, so every pixel is covered."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > overlap >= 0, got tile {tile}, overlap {overlap}")

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        found = list(range(0, size - tile, tile - overlap))
        return found + [size - tile]

    return [
        Window(x, y, min(width, x + tile), min(height, y + tile))
        for y in starts(height)
        for x in starts(width)
    ]


def place(
    mask: np.ndarray, score: float, category: str, window: Window, width: int, height: int
) -> Placed | None:
    """A window's mask cut to its box and placed; None when empty."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    r0, r1 = int(np.argmax(rows)), len(rows) - int(np.argmax(rows[::-1]))
    c0, c1 = int(np.argmax(cols)), len(cols) - int(np.argmax(cols[::-1]))
    cut = (
        (c0 == 0 and window.x0 > 0)
        or (r0 == 0 and window.y0 > 0)
        or (c1 == mask.shape[1] and window.x1 < width)
        or (r1 == mask.shape[0] and window.y1 < height)
    )
    crop = np.ascontiguousarray(mask[r0:r1, c0:c1])
    return Placed(window.x0 + c0, window.y0 + r0, crop, float(score), category, window, cut)


def _overlap(a: Placed, b: Placed, region=None) -> tuple[int, int]:
    """(|A & B|, |A | B|) within `region` (x0, y0, x1, y1; default: everywhere)."""
    rx0, ry0, rx1, ry1 = region if region is not None else (-(2**62), -(2**62), 2**62, 2**62)
    x0, y0 = max(min(a.x0, b.x0), rx0), max(min(a.y0, b.y0), ry0)
    x1, y1 = min(max(a.x1, b.x1), rx1), min(max(a.y1, b.y1), ry1)
    if x1 <= x0 or y1 <= y0:
        return 0, 0

    def canvas(p: Placed) -> np.ndarray:
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        sx0, sy0, sx1, sy1 = max(p.x0, x0), max(p.y0, y0), min(p.x1, x1), min(p.y1, y1)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = p.mask[
                sy0 - p.y0 : sy1 - p.y0, sx0 - p.x0 : sx1 - p.x0
            ]
        return out

    ca, cb = canvas(a), canvas(b)
    return int(np.count_nonzero(ca & cb)), int(np.count_nonzero(ca | cb))


def _boxes_meet(a: Placed, b: Placed) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def merge_tiles(
    found: Sequence[Placed], nms_iou: float = 0.7, join_iou: float = 0.5
) -> list[Placed]:
    """NMS, then mask union of the same object across windows (module docstring); best first."""
    order = sorted(found, key=lambda p: (p.cut, -p.score, -p.area))
    kept: list[Placed] = []
    for p in order:
        duplicate = False
        for k in kept if not p.cut else ():  # a cut piece goes to the union, never dropped
            if k.category == p.category and _boxes_meet(k, p):
                inter, union = _overlap(k, p)
                if union and inter / union >= nms_iou:
                    duplicate = True
                    break
        if not duplicate:
            kept.append(p)
    parent = list(range(len(kept)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(kept):
        for j in range(i + 1, len(kept)):
            b = kept[j]
            if a.category != b.category or a.window == b.window or not _boxes_meet(a, b):
                continue
            shared = (
                max(a.window.x0, b.window.x0),
                max(a.window.y0, b.window.y0),
                min(a.window.x1, b.window.x1),
                min(a.window.y1, b.window.y1),
            )
            inter, union = _overlap(a, b, shared)
            if union and inter / union >= join_iou:
                parent[root(j)] = root(i)
    groups: dict[int, list[Placed]] = {}
    for i, p in enumerate(kept):
        groups.setdefault(root(i), []).append(p)
    merged = [_union(group) for group in groups.values()]
    return sorted(merged, key=lambda p: -p.score)


def _union(group: list[Placed]) -> Placed:
    if len(group) == 1:
        return group[0]
    x0, y0 = min(p.x0 for p in group), min(p.y0 for p in group)
    x1, y1 = max(p.x1 for p in group), max(p.y1 for p in group)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in group:
        mask[p.y0 - y0 : p.y1 - y0, p.x0 - x0 : p.x1 - x0] |= p.mask
    best = max(group, key=lambda p: p.score)
    whole = Window(x0, y0, x1, y1)
    return Placed(x0, y0, mask, best.score, best.category, whole, all(p.cut for p in group))


def propose_tiled(
    image,
    source: WindowSource,
    classes: Sequence[str],
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    nms_iou: float = 0.7,
    join_iou: float = 0.5,
) -> list[Placed]:
    """Every window's proposals, merged across borders. `image`: an `io/pyramid` image."""
    found: list[Placed] = []
    for window in tile_grid(image.width, image.height, tile, overlap):
        for mask, score, category in source(image, window, classes):
            placed = place(mask, score, category, window, image.width, image.height)
            if placed is not None:
                found.append(placed)
    return merge_tiles(found, nms_iou, join_iou)


def label_large(path, source: WindowSource, classes: Sequence[str], engine=None) -> list:
    """`autolabel`'s proposals for a large image: the tile grid merged, as full-image RLEs."""
    from annotator.io.pyramid import open_large
    from annotator.store.proposals import NewProposal

    with open_large(path) as image:  # the grid is at level 0: no pyramid built
        tile = DEFAULT_TILE
        if engine is not None:
            from annotator.app.working_window import input_side

            tile = input_side(engine)
        merged = propose_tiled(image, source, classes, tile=tile, overlap=tile // 4)
        h, w = image.height, image.width
    return [
        NewProposal(mask=None, category=p.category, score=p.score, rle=p.rle(h, w)) for p in merged
    ]


class FinderSource:
    """The `find` recipe on one window: the segmenter's grid proposals on the window's cached
    embedding, scored against each class by CLIP; a mask claimed by several classes goes to the
    class that scores it highest (as `ProposalLabeler`)."""

    def __init__(self, engine, finder, threshold: float | None, top_k: int | None):
        self.engine, self.finder = engine, finder
        self.threshold, self.top_k = threshold, top_k

    def __call__(self, image, window: Window, classes: Sequence[str]):
        from annotator.app.working_window import window_embedding

        embedding = window_embedding(self.engine, image, window)
        best: dict[int, tuple[float, str, np.ndarray]] = {}
        for name in classes:
            for m in self.finder.find(embedding, name, self.threshold, self.top_k):
                if m.index not in best or m.score > best[m.index][0]:
                    best[m.index] = (m.score, name, m.mask)
        return [(mask, score, name) for score, name, mask in best.values()]


__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "FinderSource",
    "Placed",
    "WindowSource",
    "label_large",
    "merge_tiles",
    "place",
    "propose_tiled",
    "tile_grid",
]
