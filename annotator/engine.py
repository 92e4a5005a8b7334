"""The façade used by GUI and CLI: one `embed` per image, then cheap `segment` calls.

CONTRACT (being implemented by the integrator; the signatures below are stable).
No Qt and no threads here: callers decide where it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.models.sam import SamEmbedding

Point = tuple[float, float, bool]  # x, y in image pixels, True = positive
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class ImageEmbedding:
    """Everything a click needs, computed once per image and cached on disk."""

    sam: SamEmbedding
    clip: dict[str, np.ndarray]  # what the region head prepared
    image_hash: str  # sha256 of the decoded RGB pixels
    model_id: str  # SAM identity + CLIP identity + region head

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.sam.original_size


@dataclass(frozen=True)
class Candidate:
    score: float  # SAM's predicted IoU
    low_res_logits: np.ndarray  # (256, 256) float32


@dataclass(frozen=True)
class Proposal:
    mask: np.ndarray  # bool (H, W), the chosen candidate
    score: float
    candidates: tuple[Candidate, ...]
    chosen: int
    labels: list[tuple[str, float]] = field(default_factory=list)  # best first
    region: np.ndarray | None = None  # (D,) CLIP region embedding


class Engine:
    @classmethod
    def from_paths(
        cls,
        sam_checkpoint: Path | None = None,
        clip_model: str | None = None,
        clip_weights: Path | None = None,
        clip_pretrained: str | None = None,
        clip_config: Path | None = None,
        vocabulary: Path | str | None = None,
        region_head: str | None = None,
        device: str = "auto",
        cache_dir: Path | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Engine: ...

    def embed(self, image: np.ndarray | Path) -> ImageEmbedding: ...

    def segment(
        self,
        embedding: ImageEmbedding,
        points: Sequence[Point] = (),
        box: Box | None = None,
        top_k: int = 5,
        multimask: bool | None = None,
    ) -> Proposal: ...

    def select(self, embedding: ImageEmbedding, proposal: Proposal, index: int, top_k: int = 5) -> Proposal:
        """Another of SAM's candidates (Tab), upscaled and labelled."""
        ...

    def relabel(self, embedding: ImageEmbedding, mask: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """Labels for an arbitrary mask (after brush/eraser edits or a manual polygon)."""
        ...
