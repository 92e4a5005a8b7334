"""Segment-Anything: load any checkpoint, encode an image once, decode prompts cheaply.

CONTRACT (filled in by the SAM work package; keep the public names and signatures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamEmbedding:
    """What SAM needs to answer prompts for one image without re-running the encoder.

    features: (C, h, w) float32, C=256, h=w=image_size/patch (64 for official checkpoints).
    original_size: (H, W) of the RGB image the user sees.
    input_size: (h, w) of the image after ResizeLongestSide, before padding.
    """

    features: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]


@dataclass(frozen=True)
class Masks:
    """SAM's answer to one prompt set, before upscaling.

    low_res_logits: (N, 256, 256) float32 (N=3 with multimask, else 1).
    scores: (N,) float32 predicted IoU.
    """

    low_res_logits: np.ndarray
    scores: np.ndarray


class SamModel:
    """Owns a `segment_anything.modeling.Sam` and the per-image pre/post-processing."""

    identity: str  # stable id of architecture + weights (e.g. "sam-vit_b-<sha256[:16]>")

    @classmethod
    def load(cls, path, device: str = "cpu") -> SamModel: ...

    def encode(self, image: np.ndarray) -> SamEmbedding: ...

    def decode(
        self,
        embedding: SamEmbedding,
        points: np.ndarray | None,  # (N, 2) float XY in original image pixels
        labels: np.ndarray | None,  # (N,) int 1 positive / 0 negative
        box: np.ndarray | None,  # (4,) XYXY in original image pixels
        multimask: bool,
    ) -> Masks: ...

    def upscale(self, embedding: SamEmbedding, low_res_logits: np.ndarray) -> np.ndarray:
        """(256,256) logits -> bool (H, W) mask identical to SamPredictor.predict's."""
        ...
