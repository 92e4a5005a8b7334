"""The mask facts the views need, through the app layer (gui/ imports only app/): the one
mask-box helper, `io.masks.mask_box` (XYXY, exclusive ends; ADR 0028)."""

from __future__ import annotations

from annotator.io.masks import mask_box

__all__ = ["mask_box"]
