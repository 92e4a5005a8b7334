"""Stable per-category colours: the same name always gets the same colour, in every session."""

from __future__ import annotations

import colorsys
import hashlib

from PySide6.QtGui import QColor

_GOLDEN = 0.618033988749895


def category_rgb(name: str) -> tuple[int, int, int]:
    """An RGB triple derived from a hash of `name` (not Python's salted `hash`, so it is stable)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest()
    n = int.from_bytes(digest, "little")
    hue = (n * _GOLDEN) % 1.0
    sat = 0.65 + 0.3 * ((n >> 8) % 100) / 100.0
    val = 0.85 + 0.15 * ((n >> 16) % 100) / 100.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def category_color(name: str, alpha: int = 255) -> QColor:
    """`category_rgb` as a QColor with the given alpha."""
    r, g, b = category_rgb(name)
    return QColor(r, g, b, alpha)


PREVIEW_RGB = (30, 144, 255)  # the not-yet-accepted SAM proposal
POSITIVE_RGB = (40, 220, 60)
NEGATIVE_RGB = (235, 40, 40)
