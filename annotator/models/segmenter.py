"""One small interface for every segmenter family (the registry that builds them: registry.py).

A family (SAM 1 through segment-anything, SAM 2.1 / EdgeTAM / HQ-SAM through transformers) only has
to answer five things, which is all the engine, the cache and the evaluation need:

- `encode(image)` -> an embedding whose `arrays` are a plain dict of numpy arrays (cacheable);
- `decode(embedding, points, labels, box, multimask, mask_input=...)` -> low-res logits + IoU;
- `upscale(embedding, logits)` -> full-resolution bool masks;
- `to_arrays` / `from_arrays` -> the cache's view of an embedding;
- `identity` -> a string naming family, architecture and weights (part of every cache key).

The families' modules import these types; `registry.py` imports the families: no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Masks:
    """A segmenter's answer to one prompt set, before upscaling.

    low_res_logits: (N, s, s) float32 (N=3 with multimask, else 1; s=256 for official models).
    scores: (N,) float32 predicted IoU.
    """

    low_res_logits: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class FeatureEmbedding:
    """A transformers-family embedding: named feature maps plus the two sizes upscaling needs.

    arrays: the image features, e.g. SAM 2's three FPN levels; stored as written (float16 where
    the family allows it, see `Sam2Segmenter`), converted to float32 when decoded.
    original_size: (H, W) of the RGB image; input_size: (h, w) of the resized image before padding.
    """

    arrays: dict[str, np.ndarray]
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    family: str = ""
    _torch: dict = field(default_factory=dict, compare=False, repr=False)  # per-device tensors

    @property
    def features(self) -> np.ndarray:
        """The lowest-resolution map (what the prompt decoder attends to)."""
        return self.arrays["features"]

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the GUI's prefetch budget counts this)."""
        return int(sum(a.nbytes for a in self.arrays.values()))


@runtime_checkable
class Segmenter(Protocol):
    """What the engine needs of a segmenter family (see the module docstring)."""

    family: str
    identity: str

    @property
    def low_res_size(self) -> int: ...

    def encode(self, image: np.ndarray): ...

    def decode(
        self,
        embedding,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        multimask: bool,
        *,
        mask_input: np.ndarray | None = None,
    ) -> Masks: ...

    def upscale(self, embedding, low_res_logits: np.ndarray) -> np.ndarray: ...

    def to_arrays(self, embedding) -> dict[str, np.ndarray]: ...

    def from_arrays(self, arrays: dict[str, np.ndarray]): ...


def logits_array(low_res_logits: np.ndarray, side: int) -> tuple[np.ndarray, bool]:
    """(N, side, side) float32 C-contiguous logits, and whether one (side, side) plane was given;
    ValueError for any other shape (what every family's `upscale` accepts)."""
    logits = np.asarray(low_res_logits, dtype=np.float32)
    if logits.shape[-2:] != (side, side) or logits.ndim not in (2, 3):
        raise ValueError(
            f"expected ({side}, {side}) or (N, {side}, {side}) logits, got {logits.shape}"
        )
    return np.ascontiguousarray(logits.reshape(-1, side, side)), logits.ndim == 2


def embedding_nbytes(embedding) -> int:
    """Bytes of any family's embedding (SAM 1's has one feature array)."""
    nbytes = getattr(embedding, "nbytes", None)
    if nbytes is not None:
        return int(nbytes)
    return int(embedding.features.nbytes)


__all__ = ["FeatureEmbedding", "Masks", "Segmenter", "embedding_nbytes", "logits_array"]
