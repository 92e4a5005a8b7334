"""Region heads: turn (image features prepared once, mask) into a CLIP embedding of the region.

CONTRACT (filled in by the CLIP work package; keep the public names and signatures).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from annotator.models.clip import ClipModel


class RegionHead(Protocol):
    name: str  # "pool" | "crop"

    def prepare(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image work done once inside `Engine.embed` (RGB uint8 HxWx3 in); arrays only,
        so the result can be cached on disk next to the SAM embedding."""
        ...

    def embed(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """bool (H, W) mask in original image pixels -> (D,) float32 L2-normalised."""
        ...


def default_head_name(clip: ClipModel) -> str:
    """'pool' for ConvNeXt/ResNet towers, 'crop' for ViT (documented choice)."""
    ...


def make_head(name: str, clip: ClipModel) -> RegionHead: ...
