"""Checks on a click's prompts before they reach a segmenter: one clear PromptError, never NaN scores.

Why a module of its own: points and boxes come from the user (the CLI's flags, the window, a JSON
file); what makes them acceptable is written once, here, for every segmenter family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotator.engine_types import Box, Point
from annotator.errors import PromptError


def points_arrays(points: Sequence[Point]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not points:
        return None, None
    array = np.asarray([(p[0], p[1]) for p in points], dtype=np.float64)
    if not np.isfinite(array).all():
        raise PromptError("point coordinates must be finite numbers")
    labels = np.asarray([1 if (len(p) < 3 or p[2]) else 0 for p in points], dtype=np.int64)
    return array, labels


MAX_COORDINATE = 1e9
"""Largest prompt coordinate (pixels, either sign). SAM takes points and boxes outside the picture
(and the CLI allows negative coordinates), but coordinates near 1e300 overflow its float32 positional
encoding into NaN scores; a billion pixels is far beyond any image and still finite in float32."""


def check_reach(coords: np.ndarray | None, box: np.ndarray | None) -> None:
    for array in (coords, box):
        if array is not None and (np.abs(array) > MAX_COORDINATE).any():
            raise PromptError(
                f"prompt coordinates must lie within +-{MAX_COORDINATE:.0e} pixels, got "
                f"{float(np.abs(array).max()):.3g}"
            )


def box_coords(box: Box | None) -> np.ndarray | None:
    if box is None:
        return None
    array = np.asarray(box, dtype=np.float64).reshape(-1)
    if array.shape != (4,) or not np.isfinite(array).all():
        raise PromptError("a box is four finite numbers x0,y0,x1,y1")
    x0, y0, x1, y1 = array
    array = np.array([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
    if array[2] - array[0] < 1 or array[3] - array[1] < 1:
        raise PromptError(f"the box {tuple(float(v) for v in box)} has no area")
    return array
