"""open_clip models: loading by name/tag, local weights or config JSON; fast text encoding.

CONTRACT (filled in by the CLIP work package; keep the public names and signatures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_CLIP_MODEL = "convnext_base_w"
DEFAULT_CLIP_PRETRAINED = "laion2b_s13b_b82k_augreg"


class ClipModel:
    """An open_clip model plus its tokenizer and preprocessing constants."""

    identity: str  # stable id: model name/config hash + weights hash/tag
    embed_dim: int
    tower: str  # "convnext" | "resnet" | "vit" | "other"
    image_size: int  # native input resolution
    logit_scale: float

    @classmethod
    def load(
        cls,
        name: str | None = DEFAULT_CLIP_MODEL,
        pretrained: str | None = None,
        weights: Path | None = None,
        config: Path | None = None,
        device: str = "cpu",
    ) -> ClipModel: ...

    def encode_text(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(N, D) float32, L2-normalised; context cut after the longest EOT of each batch."""
        ...

    def encode_text_reference(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's own `encode_text` (normalised), for parity tests and the benchmark."""
        ...

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        """(D,) normalised global embedding of a whole RGB uint8 image (native preprocessing)."""
        ...
