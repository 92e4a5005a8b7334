"""Bounds on every number a dataset file gives: coordinates, sizes and counts are finite and in range
before they reach numpy, pycocotools or a model.

One helper for every format reader (COCO, CVAT, labelme, VOC, YOLO, PNG masks): a number read from a
file is parsed here (`number`), and a coordinate must lie inside its image up to `TOLERANCE` pixels
(`coordinate`, `points`, `box_xyxy`). Without it, a polygon vertex of 1e9 crashes pycocotools' C
rasteriser (SIGSEGV: its upsampled integer coordinates overflow), and a box of 1e308 + 1e308 becomes
infinite on export. The rule is COCO's own (its files put vertices on the far edge, x = width, and a
little rounding beyond it); a point further out is a one-line error naming the place, never clipped
silently. Kept free of heavy imports (no numpy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from annotator.errors import AnnotatorError, DatasetFormatError

__all__ = [
    "TOLERANCE",
    "box_xywh",
    "box_xyxy",
    "coordinate",
    "integer",
    "number",
    "pixel_values",
    "points",
]

TOLERANCE = 1.0
"""How far (pixels) a vertex or box edge may lie outside its image and be kept as it is."""

CLIP_REACH = 1.0
"""How far beyond an edge, in image sizes, a vertex may lie and be clipped to the image (with a
warning) where the reader allows it: annotation tools let a shape hang over the border (CVAT boxes,
labelme polygons dragged past the edge), so refusing a whole dataset for that would be hostile; a
vertex further out is an error, and nothing beyond ±2 image sizes ever reaches a rasteriser."""

MAX_NUMBER_CHARS = 64
"""Longest text a number may have in a file (a float needs at most ~25 characters)."""

ErrorType = type[AnnotatorError]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


def number(value: Any, where: str, error: ErrorType = DatasetFormatError) -> float:
    """A finite float from a file: a JSON number or the text of one (XML attributes, YOLO lines).
    Booleans, huge integers, nan and ±inf are refused with one line naming `where`."""
    if isinstance(value, bool):
        raise error(f"{where}: must be a number, got {_show(value)}")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise error(f"{where}: not a number ({len(value)} characters)")
        try:
            result = float(value)
        except ValueError:
            raise error(f"{where}: not a number ({_show(value)})") from None
    elif isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise error(f"{where}: must be finite, got a {len(str(value))}-digit number") from None
    else:
        raise error(f"{where}: must be a number, got {type(value).__name__}")
    if not math.isfinite(result):
        raise error(f"{where}: must be finite, got {_show(value)}")
    return result


def integer(
    value: Any, where: str, minimum: int, maximum: int, error: ErrorType = DatasetFormatError
) -> int:
    """An integer in [minimum, maximum] (a count, an index, a size): '3' and 3.0 are 3; 3.5 is not."""
    result = number(value, where, error)
    if not result.is_integer():
        raise error(f"{where}: must be an integer, got {_show(value)}")
    if not minimum <= result <= maximum:
        raise error(f"{where}: must be {minimum}..{maximum}, got {_show(value)}")
    return int(result)


def coordinate(
    value: Any,
    where: str,
    extent: int,
    error: ErrorType = DatasetFormatError,
    clipped: Callable[[], None] | None = None,
) -> float:
    """A finite x (or y) inside an image `extent` pixels wide (or high), up to TOLERANCE outside.
    With `clipped`, a value up to CLIP_REACH image sizes beyond an edge is clipped to the edge and
    `clipped()` called (the reader counts it for its summary); further out it is an error."""
    result = number(value, where, error)
    if -TOLERANCE <= result <= extent + TOLERANCE:
        return result
    reach = CLIP_REACH * max(extent, 1)
    if clipped is not None and -reach <= result <= extent + reach:
        clipped()
        return min(max(result, 0.0), float(extent))
    raise error(f"{where}: {result:g} is outside the image (0..{extent})")


def points(
    values: Sequence[Any],
    where: str,
    width: int,
    height: int,
    error: ErrorType = DatasetFormatError,
    clipped: Callable[[], None] | None = None,
) -> list[float]:
    """Flat [x0, y0, x1, y1, ...] vertices, each finite and inside the width x height image (up to
    TOLERANCE, or clipped as `coordinate` says): safe for pycocotools, PIL and OpenCV rasterisers.
    `clipped()` is called at most once per call (once per shape)."""
    hits: list[bool] = []
    mark = None if clipped is None else (lambda: hits.append(True))
    out = []
    for k, value in enumerate(values):
        out.append(coordinate(value, f"{where}[{k}]", height if k % 2 else width, error, mark))
    if hits and clipped is not None:
        clipped()
    return out


def box_xyxy(
    corners: Sequence[Any],
    where: str,
    width: int,
    height: int,
    error: ErrorType = DatasetFormatError,
    clipped: Callable[[], None] | None = None,
) -> tuple[float, float, float, float]:
    """(x, y, w, h) of a box given by its corners (x0, y0, x1, y1), each inside the image (up to
    TOLERANCE, or clipped as `coordinate` says); w or h may be 0 or negative (the caller decides
    what an empty box is)."""
    if len(corners) != 4:
        raise error(f"{where}: a box needs 4 numbers, got {len(corners)}")
    x0, y0, x1, y1 = points(corners, where, width, height, error, clipped)
    return x0, y0, x1 - x0, y1 - y0


def pixel_values(
    array: Any, where: str, maximum: int, error: ErrorType = DatasetFormatError
) -> Any:
    """An index image (class or instance ids, a numpy array) whose values all lie in 0..maximum:
    a 32-bit PNG value of 2**31 would otherwise make `np.bincount` allocate 16 GB."""
    if array.size and (int(array.min()) < 0 or int(array.max()) > maximum):
        raise error(
            f"{where}: pixel values {int(array.min())}..{int(array.max())}, at most 0..{maximum} allowed"
        )
    return array


def box_xywh(
    box: Sequence[float],
    where: str,
    width: int,
    height: int,
    error: ErrorType = DatasetFormatError,
) -> tuple[float, float, float, float]:
    """A COCO-style (x, y, w, h) box of finite numbers whose corners lie inside the image (up to
    TOLERANCE): x + w cannot overflow to infinity on export."""
    x, y, w, h = (number(v, f"{where}[{k}]", error) for k, v in enumerate(box))
    for value, extent, what in ((x, width, "x"), (y, height, "y"), (x + w, width, "x + width"),
                                (y + h, height, "y + height")):  # fmt: skip
        if not -TOLERANCE <= value <= extent + TOLERANCE:
            raise error(f"{where}: {what} = {value:g} is outside the {width}x{height} image")
    return x, y, w, h
