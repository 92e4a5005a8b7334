"""Segmenting a very large image in a working window: the region the segmenter sees, at full detail.

A 20,000-px orthophoto shrunk to the segmenter's 1,024 px turns a 40-px car into 2 px. Instead a
click is answered in a *window*: a region of the image (level-0 pixels, or a pyramid level when the
region is larger than the model's input), encoded on its own like an image of that size. Its
embedding (segmenter half and CLIP half) is cached under the region's content key
(`io/tiles.region_key`: stored tile bytes + box + level), so a return to the same window loads it
from disk instead of decoding and encoding. The mask comes back at the window's size and is placed
at full-image coordinates as an RLE of the whole image, built from the window's runs alone: a
20,000 x 20,000 bool mask (400 MB) is never allocated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotator.engine import Box, Engine, ImageEmbedding, Point, Proposal
from annotator.errors import PromptError
from annotator.io.masks import rle_area, rle_bbox, runs_to_rle
from annotator.io.pyramid import Pyramid

DEFAULT_SIDE = 1024  # when a segmenter names no input size


@dataclass(frozen=True)
class Window:
    """[x0, x1) x [y0, y1) in level-0 pixels, encoded from pyramid `level`."""

    x0: int
    y0: int
    x1: int
    y1: int
    level: int = 0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class WindowProposal:
    """A proposal made in `window`. `proposal.mask` covers the window at its level's pixels: the
    window itself at level 0, a downsampled copy of it at a coarser level (issue 26: a click on a
    zoomed-out view). Every other attribute is the engine's `Proposal`'s (labels, score, candidates),
    so the annotating session treats it like any proposal; `placement` says where its mask goes."""

    proposal: Proposal
    window: Window
    image_size: tuple[int, int]  # (H, W) of level 0

    def __getattr__(self, name: str):  # labels, score, candidates, chosen, vector ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.proposal, name)

    @property
    def mask(self) -> np.ndarray:
        """The mask over the window's pixels at its level (small: at most the model's input)."""
        return self.proposal.mask

    @property
    def placement(self) -> tuple[float, float, float, float]:
        """(x0, y0, sx, sy): level-0 pixel (x0 + sx * j, y0 + sy * i) is the mask's pixel (i, j)."""
        h, w = self.proposal.mask.shape[:2]
        return (
            float(self.window.x0),
            float(self.window.y0),
            self.window.width / w,
            self.window.height / h,
        )

    def rle(self) -> dict:
        """COCO RLE of the mask at full-image resolution (a downsampled window's mask resized by
        nearest neighbour to the window's level-0 size, without allocating that size)."""
        return placed_rle(
            self.proposal.mask,
            self.window.x0,
            self.window.y0,
            *self.image_size,
            size=(self.window.width, self.window.height),
        )

    def full_mask_in_window(self) -> np.ndarray:
        """The mask over the window's level-0 pixels (allocates the window's level-0 size)."""
        mask = self.proposal.mask
        h, w = mask.shape[:2]
        if (h, w) == (self.window.height, self.window.width):
            return mask
        rows, cols = _nearest(h, self.window.height), _nearest(w, self.window.width)
        return mask[rows][:, cols]

    def bbox(self) -> tuple[float, float, float, float]:
        """COCO XYWH box at full-image coordinates (zeros when the mask is empty)."""
        return rle_bbox(self.rle())

    def area(self) -> int:
        return int(rle_area(self.rle()))


def input_side(engine: Engine) -> int:
    """The segmenter's input side in pixels (SAM: 1,024 for official checkpoints)."""
    sam = engine.sam
    side = getattr(getattr(sam, "transform", None), "target_length", None)
    side = side or getattr(sam, "image_size", None)
    return int(side or DEFAULT_SIDE)


def prompt_bounds(points: Sequence[Point], box: Box | None) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points] + ([box[0], box[2]] if box is not None else [])
    ys = [p[1] for p in points] + ([box[1], box[3]] if box is not None else [])
    if not xs:
        raise PromptError("a mask needs at least one point or a box")
    return min(xs), min(ys), max(xs), max(ys)


def default_window(
    points: Sequence[Point], box: Box | None, side: int, width: int, height: int, margin: int = 16
) -> Window:
    """A `side` x `side` window at native resolution centred on the prompts, shifted to lie inside
    the image; grown (still centred) when the prompts span more than `side` - 2 * margin."""
    px0, py0, px1, py1 = prompt_bounds(points, box)
    w = min(width, max(side, math.ceil(px1 - px0) + 2 * margin))
    h = min(height, max(side, math.ceil(py1 - py0) + 2 * margin))
    cx, cy = (px0 + px1) / 2, (py0 + py1) / 2
    x0 = int(min(max(0, round(cx - w / 2)), width - w))
    y0 = int(min(max(0, round(cy - h / 2)), height - h))
    return Window(x0, y0, x0 + w, y0 + h)


def check_window(window: Window, width: int, height: int) -> Window:
    """The window cut to the image; PromptError when it has no area there."""
    x0, y0 = max(0, window.x0), max(0, window.y0)
    x1, y1 = min(width, window.x1), min(height, window.y1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise PromptError(f"the window {window.box} lies outside the {width}x{height} image")
    return Window(x0, y0, x1, y1, window.level)


def window_embedding(
    engine: Engine,
    image: Pyramid,
    window: Window,
    clip: bool = True,
    known: ImageEmbedding | None = None,
    keep: bool = True,
) -> ImageEmbedding:
    """The window's embedding from the cache (by the region's content key) or the encoders;
    `keep=False`: not kept in memory (`Engine.embed`)."""
    box = level_box(image, window)
    key = image.region_key(box, window.level)
    return engine.embed(
        lambda: image.read(box, window.level), clip=clip, known=known, key=key, keep=keep
    )


def window_key(image, window: Window) -> str:
    """The cache key of a window's embedding (the region's content key at its level)."""
    return image.region_key(level_box(image, window), window.level)


def level_box(image, window: Window) -> tuple[int, int, int, int]:
    """The window in its level's pixels."""
    level = image.levels[window.level]
    if level.scale == 1:
        return window.box
    s = level.scale
    return (
        int(round(window.x0 / s)),
        int(round(window.y0 / s)),
        min(level.width, max(int(round(window.x0 / s)) + 1, int(round(window.x1 / s)))),
        min(level.height, max(int(round(window.y0 / s)) + 1, int(round(window.y1 / s)))),
    )


def segment_in_window(
    engine: Engine,
    image: Pyramid,
    window: Window,
    points: Sequence[Point] = (),
    box: Box | None = None,
    top_k: int = 5,
    multimask: bool | None = None,
    embedding: ImageEmbedding | None = None,
    restrict: Sequence[str] | None = None,
) -> WindowProposal:
    """Mask + labels for prompts in full-image coordinates, answered in `window` (at level 0, or
    downsampled from a pyramid level); labels from the region head on the same window (the CLIP
    half is cached with the segmenter half)."""
    window = check_window(window, image.width, image.height)
    if not 0 <= window.level < len(image.levels):
        raise PromptError(f"no pyramid level {window.level} (the image has {len(image.levels)})")
    # A window at a coarser level is encoded from that level's pixels (downsampled): the prompts
    # are moved into its pixels by the window's own scale in x and y.
    lx0, ly0, lx1, ly1 = level_box(image, window)
    sx, sy = window.width / (lx1 - lx0), window.height / (ly1 - ly0)
    shifted = [((p[0] - window.x0) / sx, (p[1] - window.y0) / sy, *p[2:]) for p in points]
    local_box = None
    if box is not None:
        local_box = (
            (box[0] - window.x0) / sx,
            (box[1] - window.y0) / sy,
            (box[2] - window.x0) / sx,
            (box[3] - window.y0) / sy,
        )
    if embedding is None:
        embedding = window_embedding(engine, image, window, clip=top_k > 0)
    proposal = engine.segment(
        embedding, shifted, local_box, top_k=top_k, multimask=multimask, restrict=restrict
    )
    return WindowProposal(proposal, window, (image.height, image.width))


def placed_rle(
    mask: np.ndarray,
    x0: int,
    y0: int,
    height: int,
    width: int,
    size: tuple[int, int] | None = None,
) -> dict:
    """COCO RLE (column-major runs) of an (H, W) = (`height`, `width`) image that is `mask` at
    (x0, y0) and background elsewhere, computed from the mask's own transitions. With `size`
    = (w, h) the mask is first resized to that size by nearest neighbour (pixel i of the output
    takes pixel i * n // size of the mask, n its side), still from the transitions alone: a
    downsampled window's mask is placed at full resolution without allocating it there."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    out_w, out_h = (w, h) if size is None else (int(size[0]), int(size[1]))
    if x0 < 0 or y0 < 0 or x0 + out_w > width or y0 + out_h > height:
        raise ValueError(
            f"a {out_w}x{out_h} mask at ({x0}, {y0}) does not fit a {width}x{height} image"
        )
    padded = np.zeros((w, h + 2), dtype=np.int8)  # column-major: one row per image column
    padded[:, 1:-1] = mask.T
    change = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    cols, rows = np.nonzero(change)  # in column-major order: column, then row
    kinds = change[cols, rows]
    cols, rows = cols.astype(np.int64), rows.astype(np.int64)
    if (out_w, out_h) != (w, h):
        # Mask row r covers output rows [ceil(r * out_h / h), ceil((r + 1) * out_h / h)); mask
        # column c is repeated for every output column that maps to it.
        rows = -(-rows * out_h // h)
        first = -(-np.arange(w + 1, dtype=np.int64) * out_w // w)  # first output column of c
        copies = first[1:] - first[:-1]
        repeat = copies[cols]
        offsets = np.arange(int(repeat.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(repeat) - repeat, repeat
        )
        cols = np.repeat(first[cols], repeat) + offsets
        rows, kinds = np.repeat(rows, repeat), np.repeat(kinds, repeat)
    positions = (x0 + cols) * height + y0 + rows
    if (out_w, out_h) != (w, h):
        # Runs of one column stay disjoint after the mapping; a run that maps to no output row
        # (shrinking) has its start and end at one position: the net change there is what counts.
        order = np.argsort(positions, kind="stable")
        positions, kinds = positions[order], kinds[order].astype(np.int64)
        if positions.size:
            positions, first = np.unique(positions, return_index=True)
            net = np.add.reduceat(kinds, first)
            positions, kinds = positions[net != 0], net[net != 0]
    starts, ends = positions[kinds == 1], positions[kinds == -1]
    runs: list[int] = []
    previous = 0
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        runs.extend((start - previous, end - start))
        previous = end
    runs.append(height * width - previous)
    return runs_to_rle(runs, height, width)


def _nearest(n: int, size: int) -> np.ndarray:
    """Source index of each of `size` outputs resized from `n` by nearest neighbour."""
    return np.arange(size, dtype=np.int64) * n // size


__all__ = [
    "Window",
    "WindowProposal",
    "check_window",
    "default_window",
    "input_side",
    "placed_rle",
    "segment_in_window",
    "level_box",
    "window_embedding",
    "window_key",
]
