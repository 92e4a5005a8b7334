"""What the Engine takes and gives: prompts, an image's embedding, a proposal and its candidates.

Why a module of its own: the session (`app/`), discovery and evaluation read these values without
needing the models; `engine.py` re-exports them, so `from annotator.engine import Proposal` works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from annotator.vocab.exemplars import Suggestion

Point = tuple[float, float, bool]  # x, y in image pixels, True = positive
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class ImageEmbedding:
    """Everything a click needs, computed once per image and cached on disk."""

    sam: object  # the segmenter half: SamEmbedding (family sam) or FeatureEmbedding (the others)
    clip: dict[str, np.ndarray] | None  # what the region head prepared; None: not yet (mask only)
    image_hash: str  # sha256 of the file bytes (or of the pixels for an in-memory image)
    model_id: str  # segmenter identity | CLIP identity | region head

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.sam.original_size

    @property
    def complete(self) -> bool:
        """Both halves exist: masks and labels (False for `Engine.embed(..., clip=False)`)."""
        return self.clip is not None


@dataclass(frozen=True)
class Candidate:
    score: float  # SAM's predicted IoU
    low_res_logits: np.ndarray  # (256, 256) float32
    mask: np.ndarray | None = None  # bool (H, W), when upscaled with its siblings (see segment)


@dataclass(frozen=True)
class Proposal:
    mask: np.ndarray  # bool (H, W), the chosen candidate
    score: float
    candidates: tuple[Candidate, ...]
    chosen: int
    labels: list[tuple[str, float]] = field(default_factory=list)  # best first
    region: np.ndarray | None = None  # (D,) CLIP region embedding
    suggestions: tuple[Suggestion, ...] = ()  # the labels with why each is made (text/exemplars)
    # Labels were asked for but the embedding had only its segmenter half: `Engine.label` adds them.
    labels_pending: bool = False
