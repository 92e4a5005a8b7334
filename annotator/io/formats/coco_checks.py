"""COCO import checks: one-line errors naming the place (`annotations[12].segmentation`) and the
bounds a document may ask for; `coco_import.py` reads a document through them."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from annotator import names
from annotator.errors import CocoFormatError
from annotator.io import bounds
from annotator.io.files import open_regular, show_path
from annotator.io.formats.coco_export import free_fields
from annotator.io.masks import (
    polygons_to_rle,
    rle_runs,
    runs_to_rle,
)
from annotator.names import category_name

POLYGON_TOLERANCE = bounds.TOLERANCE
"""How far (pixels) a polygon vertex may lie outside the image: COCO's own files have vertices on the
far edge (x = width) and a little rounding beyond it."""

MAX_KEPT_ID = 2**31 - 1
"""Largest document id kept as the store's id on import; larger ones are renumbered."""

INT64 = (-(2**63), 2**63 - 1)

MAX_NAME_LENGTH = names.MAX_NAME_LENGTH
"""Longest category or supercategory name (the vocabulary's limit too)."""

MAX_DOCUMENT_BYTES = 4 * 2**30
"""Largest COCO file read (LVIS v1 train is 1.1 GB; parsing takes several times the file in memory)."""


def kept_fields(check: Checker, item: dict, reserved: set[str], where: str) -> dict:
    """The item's other fields, to keep as extras; they must be plain JSON (no NaN/Infinity)."""
    extra = free_fields(item, reserved)
    try:
        json.dumps(extra, allow_nan=False)
    except ValueError:
        bad = next(k for k, v in extra.items() if not_plain(v))
        raise check.fail(f"{where}.{bad}", "must not hold NaN or Infinity") from None
    return extra


def not_plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return True
    return False


# ------------------------------------------------------------------------------------------ import


class Checker:
    """Validation helpers that raise CocoFormatError naming the file and the place."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> CocoFormatError:
        return CocoFormatError(f"{self.source}: {where}: {message}")

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object, got {kind_of(value)}")
        return value

    def array(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, got {kind_of(value)}")
        return value

    def key(self, item: dict, name: str, where: str) -> Any:
        if name not in item:
            raise self.fail(where, f"missing key {name!r}")
        return item[name]

    def integer(
        self, value: Any, where: str, minimum: int | None = None, maximum: int = INT64[1]
    ) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"must be an integer, got {kind_of(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be at least {minimum}, got {kind_of(value)}")
        if value > maximum:
            raise self.fail(where, f"must be at most {maximum}, got {kind_of(value)}")
        return value

    def ident(self, value: Any, where: str) -> int:
        """A document id: any integer that fits in 64 bits (it is only a label in the file)."""
        return self.integer(value, where, minimum=INT64[0], maximum=INT64[1])

    def name(self, value: Any, where: str) -> str:
        """A category or supercategory name: one line, not blank, at most MAX_NAME_LENGTH."""
        text = self.text(value, where)
        return category_name(text, f"{self.source}: {where}", CocoFormatError)

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, got {kind_of(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise self.fail(where, f"must be finite, got {kind_of(value)}") from None
        if not math.isfinite(number):
            raise self.fail(where, f"must be finite, got {value}")
        return number

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {kind_of(value)}")
        return value


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        digits = (
            str(value)
            if value.bit_length() < 200
            else f"{str(value)[:20]}... ({len(str(value))} digits)"
        )
        return f"the number {digits}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def read_document(path: Path) -> Any:
    name = show_path(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DOCUMENT_BYTES:
                raise CocoFormatError(
                    f"{name}: {size / 2**30:.1f} GB is more than the {MAX_DOCUMENT_BYTES / 2**30:.0f} GB "
                    "a COCO file may have"
                )
            raw = handle.read()
    except FileNotFoundError:
        raise CocoFormatError(f"{name}: file not found") from None
    except ValueError:  # "embedded null byte"
        raise CocoFormatError(f"{name}: the file name contains a NUL byte") from None
    except OSError as error:
        raise CocoFormatError(
            f"{name}: cannot read the file ({error.strerror or error})"
        ) from error
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise CocoFormatError(f"{name}: not UTF-8 text (byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise CocoFormatError(
            f"{name}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error
    except RecursionError as error:
        raise CocoFormatError(f"{name}: JSON nested too deeply") from error
    except ValueError as error:  # an integer of more than 4300 digits
        raise CocoFormatError(f"{name}: a number in the JSON is too long ({error})") from None


def segmentation(check: Checker, seg: Any, where: str, width: int, height: int) -> str:
    """Canonical compressed RLE counts of a polygon list or RLE dict, validated."""
    if isinstance(seg, list):
        if not seg:
            raise check.fail(where, "polygon list is empty")
        polygons = []
        for j, polygon in enumerate(seg):
            at = f"{where}[{j}]"
            check.array(polygon, at)
            if len(polygon) < 6 or len(polygon) % 2:
                raise check.fail(
                    at, f"a polygon needs an even number (>= 6) of coordinates, got {len(polygon)}"
                )
            coords = [check.number(v, f"{at}[{k}]") for k, v in enumerate(polygon)]
            xs, ys = coords[0::2], coords[1::2]
            tol = POLYGON_TOLERANCE
            if min(xs) < -tol or max(xs) > width + tol or min(ys) < -tol or max(ys) > height + tol:
                raise check.fail(
                    at,
                    f"polygon reaches ({min(xs):g}..{max(xs):g}, {min(ys):g}..{max(ys):g}), "
                    f"outside the {width}x{height} image",
                )
            polygons.append(coords)
        return polygons_to_rle(polygons, height, width)["counts"]
    if isinstance(seg, dict):
        size = check.key(seg, "size", where)
        check.key(seg, "counts", where)
        if not (isinstance(size, list) and len(size) == 2 and size == [height, width]):
            raise check.fail(
                f"{where}.size",
                f"must be [{height}, {width}] (the image's height, width), got {size!r}",
            )
        try:
            runs = rle_runs(seg)
        except ValueError as error:
            raise check.fail(f"{where}.counts", str(error)) from None
        return runs_to_rle(runs, height, width)["counts"]
    raise check.fail(where, f"must be a polygon list or an RLE object, got {kind_of(seg)}")
