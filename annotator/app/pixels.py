"""The pixels the window shows: an image file decoded to contiguous 8-bit RGB (the loader thread
wraps them in a QImage). The one place the window's image loading meets `io.images`, whose
decoder bounds the size and refuses what is not an image with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.io.images import load_image


def display_pixels(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8, C-contiguous (a QImage reads the buffer row by row)."""
    return np.ascontiguousarray(load_image(Path(path)))


__all__ = ["display_pixels"]
