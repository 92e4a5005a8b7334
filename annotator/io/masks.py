"""Mask geometry in COCO terms: RLE, boxes, areas and polygons, all checked against pycocotools.

Masks are `bool` arrays (H, W). Pixel (x, y) covers the square [x, x+1) x [y, y+1), as in COCO, so a
mask's bbox is (x0, y0, x1 - x0 + 1, y1 - y0 + 1) and a polygon traced along pixel edges rasterises
back to exactly the same pixels.

Polygons cannot express holes (COCO's polygon segmentation is a union of filled rings), so
`mask_to_polygons` returns None for a mask with holes and callers keep RLE for it. That is the honest
choice: exporting the hole as one more polygon would fill it, and dropping it would add pixels the user
erased.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

XYWH = tuple[float, float, float, float]

_MAX_DIGITS = 13
"""Characters of one number in a compressed RLE string: 13 * 5 bits hold any run up to 2**63."""


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is a 2-D array, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def mask_to_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a bool (H, W) mask: {"size": [H, W], "counts": str}."""
    mask = _check_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": rle["counts"].decode("ascii"),
    }


def _py_rle(rle: dict) -> dict:
    """The same RLE with bytes counts, the form pycocotools' C functions take."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def decode_counts(counts: str | bytes) -> list[int]:
    """Run lengths of a compressed RLE string, the inverse of pycocotools' `rleToString`.

    Pure Python on purpose: pycocotools' C decoder trusts its input (a malformed string reads past its
    end; counts that overrun H*W write past the mask), so anything from outside is read here first.
    Raises ValueError on a character outside the alphabet, a truncated number or a negative run.
    """
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    runs: list[int] = []
    i, n = 0, len(counts)
    while i < n:
        x, k, more = 0, 0, True
        while more:
            if i >= n:
                raise ValueError("RLE counts string ends in the middle of a number")
            c = ord(counts[i]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts has an invalid character {counts[i]!r} at {i}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i += 1
            k += 1
            if k > _MAX_DIGITS:  # no run of a real mask needs more (and big ints get slow)
                raise ValueError(f"RLE counts has a number longer than {_MAX_DIGITS} characters")
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise ValueError(f"RLE counts has a negative run at position {len(runs)}")
        runs.append(x)
    return runs


def rle_runs(rle: dict) -> list[int]:
    """Validated run lengths of a compressed (str/bytes counts) or uncompressed (list) RLE.

    Raises ValueError unless the runs are non-negative integers summing to H*W.
    """
    size = rle.get("size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise ValueError(f"RLE size must be [height, width] of non-negative integers, got {size!r}")
    counts = rle.get("counts")
    if isinstance(counts, (str, bytes)):
        runs = decode_counts(counts)
    elif isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise ValueError("uncompressed RLE counts must be non-negative integers")
        runs = list(counts)
    else:
        raise ValueError(
            f"RLE counts must be a string or a list of integers, got {type(counts).__name__}"
        )
    total = sum(runs)
    if total != size[0] * size[1]:
        raise ValueError(
            f"RLE runs cover {total} pixels but size {size[0]}x{size[1]} has {size[0] * size[1]}"
        )
    return runs


def runs_to_rle(runs: Sequence[int], height: int, width: int) -> dict:
    """Canonical compressed RLE (counts str) from validated run lengths.

    Zero-length runs inside the list are merged away so that equal masks always store equal strings.
    Run i is background when i is even, as in COCO.
    """
    canon: list[int] = []
    last_fg = False
    for i, value in enumerate(runs):
        value, fg = int(value), i % 2 == 1
        if value == 0:
            continue
        if canon and fg == last_fg:
            canon[-1] += value
            continue
        if not canon and fg:
            canon.append(0)
        canon.append(value)
        last_fg = fg
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": canon or [0]}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _decode(rle: dict) -> np.ndarray:
    """pycocotools' decode, without the DeprecationWarning its Cython array raises under numpy 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(_py_rle(rle)).astype(bool)


def rle_to_mask(rle: dict) -> np.ndarray:
    """bool (H, W) mask of a compressed or uncompressed COCO RLE (validated first)."""
    runs = rle_runs(rle)
    h, w = int(rle["size"][0]), int(rle["size"][1])
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    return _decode(rle)


def rle_bbox(rle: dict) -> XYWH:
    """XYWH box of a compressed RLE, from pycocotools (all zeros for an empty mask)."""
    x, y, w, h = mask_utils.toBbox(_py_rle(rle)).tolist()
    return (float(x), float(y), float(w), float(h))


def rle_area(rle: dict) -> int:
    """Pixel count of a compressed RLE."""
    return int(mask_utils.area(_py_rle(rle)))


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The one mask-box helper (ADR 0028): XYXY (x0, y0, x1, y1) of the True pixels with exclusive
    ends, the house's box convention; None for an empty mask. Reads the mask once per axis."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_box_xywh(mask: np.ndarray) -> XYWH:
    """COCO's XYWH box of the mask's pixels (width = x1 - x0 with `mask_box`'s exclusive x1), as
    floats; zeros when empty. Only for COCO-shaped output (`bbox` fields)."""
    box = mask_box(_check_mask(mask))
    if box is None:
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0, x1, y1 = box
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def mask_area(mask: np.ndarray) -> int:
    """Number of pixels in the mask: COCO's `area`, never the box's area."""
    return int(np.count_nonzero(_check_mask(mask)))


def has_holes(mask: np.ndarray) -> bool:
    """True when some background region is enclosed by the mask (4-connected background)."""
    return _trace(_check_mask(mask))[1]


def _trace(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """Outer rings along pixel edges, and whether any hole exists.

    The mask's box is upscaled 2x (pixel replication) and traced by OpenCV; a contour vertex at upscaled
    column c lies on the left edge of original pixel c // 2 when c is even and on its right edge when
    c is odd, so (c + 1) // 2 is the exact pixel-edge coordinate (same for rows).
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [], False
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[y0:y1, x0:x1].astype(np.uint8)  # only the box: tracing cost follows the object
    up = np.zeros((2 * crop.shape[0] + 2, 2 * crop.shape[1] + 2), np.uint8)
    up[1:-1, 1:-1] = crop.repeat(2, axis=0).repeat(2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([x0, y0])
    rings: list[list[float]] = []
    holes = False
    for contour, links in zip(contours, hierarchy[0], strict=True):
        if links[3] != -1:  # has a parent: a hole
            holes = True
            continue
        pts = contour.reshape(-1, 2) // 2 + offset  # (c - 1 for the padding + 1) // 2
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) > 1 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        rings.append(pts.astype(float).reshape(-1).tolist())
    return rings, holes


def mask_to_polygons(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons [[x0, y0, x1, y1, ...], ...] along pixel edges, or None if the mask has holes.

    Without holes the polygons rasterise (pycocotools) back to exactly the mask. An empty mask gives [].
    """
    rings, holes = _trace(_check_mask(mask))
    return None if holes else rings


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict:
    """Compressed RLE (counts str) of the union of COCO polygons, rasterised by pycocotools."""
    if not polygons:
        return mask_to_rle(np.zeros((height, width), dtype=bool))
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    rle = mask_utils.merge(rles)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """bool (H, W) mask of the union of COCO polygons, rasterised by pycocotools."""
    return _decode(polygons_to_rle(polygons, height, width))


def mask_iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """IoU of two bool masks of one shape, counting only pixels where `valid` (all when None).
    1.0 when the union is empty: two empty masks agree. The one IoU of the project (evaluation,
    compare, tests)."""
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} and {b.shape}")
    union_px = np.logical_or(a, b)
    inter_px = np.logical_and(a, b)
    if valid is not None:
        union_px &= valid
        inter_px &= valid
    union = int(np.count_nonzero(union_px))
    return 1.0 if union == 0 else int(np.count_nonzero(inter_px)) / union


def mask_iou_matrix(
    a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray
) -> np.ndarray:
    """(len(a), len(b)) IoU of bool masks of one shape, as one matrix product (NMS of proposals).
    0 where both are empty: an empty proposal duplicates nothing."""
    fa = np.asarray([np.asarray(m, dtype=bool).reshape(-1) for m in a], dtype=np.float32)
    fb = np.asarray([np.asarray(m, dtype=bool).reshape(-1) for m in b], dtype=np.float32)
    if fa.size == 0 or fb.size == 0:
        return np.zeros((len(fa), len(fb)), dtype=np.float64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float64)
