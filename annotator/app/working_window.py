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
from annotator.io.masks import runs_to_rle
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
    """A proposal made in `window`: `proposal.mask` covers the window (at its level's pixels)."""

    proposal: Proposal
    window: Window
    image_size: tuple[int, int]  # (H, W) of level 0

    def rle(self) -> dict:
        """COCO RLE of the mask at full-image resolution."""
        return placed_rle(
            self.full_mask_in_window(), self.window.x0, self.window.y0, *self.image_size
        )

    def full_mask_in_window(self) -> np.ndarray:
        """The mask over the window's pixels (level 0)."""
        return self.proposal.mask

    def bbox(self) -> tuple[float, float, float, float]:
        """COCO XYWH box at full-image coordinates (zeros when the mask is empty)."""
        mask = self.full_mask_in_window()
        ys, xs = np.nonzero(mask)
        if xs.size == 0:
            return (0.0, 0.0, 0.0, 0.0)
        x0, y0 = self.window.x0 + xs.min(), self.window.y0 + ys.min()
        return (
            float(x0),
            float(y0),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        )

    def area(self) -> int:
        return int(self.full_mask_in_window().sum())


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
) -> ImageEmbedding:
    """The window's embedding from the cache (by the region's content key) or the encoders."""
    box = level_box(image, window)
    key = image.region_key(box, window.level)
    return engine.embed(lambda: image.read(box, window.level), clip=clip, known=known, key=key)


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
) -> WindowProposal:
    """Mask + labels for prompts in full-image coordinates, answered in `window`; labels from the
    region head on the same window (the CLIP half is cached with the segmenter half)."""
    window = check_window(window, image.width, image.height)
    if window.level != 0:
        raise PromptError("a click is segmented at full resolution (level 0)")
    scale = 1.0
    shifted = [((p[0] - window.x0) / scale, (p[1] - window.y0) / scale, *p[2:]) for p in points]
    local_box = None
    if box is not None:
        local_box = tuple(
            (v - (window.x0 if i % 2 == 0 else window.y0)) / scale for i, v in enumerate(box)
        )
    if embedding is None:
        embedding = window_embedding(engine, image, window, clip=top_k > 0)
    proposal = engine.segment(embedding, shifted, local_box, top_k=top_k, multimask=multimask)
    return WindowProposal(proposal, window, (image.height, image.width))


def placed_rle(mask: np.ndarray, x0: int, y0: int, height: int, width: int) -> dict:
    """COCO RLE (column-major runs) of an (H, W) = (`height`, `width`) image that is `mask` at
    (x0, y0) and background elsewhere, computed from the mask's own transitions."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"a {w}x{h} mask at ({x0}, {y0}) does not fit a {width}x{height} image")
    padded = np.zeros((w, h + 2), dtype=np.int8)  # column-major: one row per image column
    padded[:, 1:-1] = mask.T
    change = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    cols, rows = np.nonzero(change)  # in column-major order: column, then row
    kinds = change[cols, rows]
    positions = (x0 + cols.astype(np.int64)) * height + y0 + rows.astype(np.int64)
    starts, ends = positions[kinds == 1], positions[kinds == -1]
    runs: list[int] = []
    previous = 0
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        runs.extend((start - previous, end - start))
        previous = end
    runs.append(height * width - previous)
    return runs_to_rle(runs, height, width)


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
