"""What the transformers families (SAM 2.1, EdgeTAM, HQ-SAM) share: prompts to tensors, the
embedding's arrays to tensors once per image, identity, validation of prompts.

Each family subclass reproduces its library's reference pipeline (the transformers processor ->
model forward -> `processor.post_process_masks`) step by step with the same tensor operations,
without the per-click work that depends only on the image (the positional embedding, the
feature maps' conversion) -- tests/models/test_segmenters.py checks the two agree.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from annotator.errors import PromptError
from annotator.models.lowmem import add_yield_points, slice_per_token_layers
from annotator.models.segmenter import FeatureEmbedding, Masks, logits_array


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def folder_digest(folder: Path, weights: Path) -> str:
    """sha256 over config.json and the weights file: the weights part of the identity."""
    from annotator.hashing import sha256_file

    h = hashlib.sha256((folder / "config.json").read_bytes())
    h.update(sha256_file(weights).encode())
    return h.hexdigest()


def check_image(image: np.ndarray) -> None:
    if not (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and min(image.shape[:2]) > 0
    ):
        raise ValueError(
            f"encode needs an RGB uint8 (H, W, 3) array, got {getattr(image, 'dtype', None)} "
            f"{getattr(image, 'shape', None)}"
        )


def check_prompts(
    points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(N, 2) float64 points, (N,) int64 labels, (4,) float64 box -- or a PromptError."""
    pts = lab = b = None
    if points is not None and len(points):
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lab = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
        if len(lab) != len(pts):
            raise PromptError(f"{len(pts)} points but {len(lab)} point labels")
        if not np.isfinite(pts).all():
            raise PromptError("a point has a non-finite coordinate")
        if not np.isin(lab, (0, 1)).all():
            raise PromptError("point labels must be 1 (positive) or 0 (negative)")
    if box is not None:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.shape != (4,) or not np.isfinite(b).all():
            raise PromptError("a box needs 4 finite numbers x0, y0, x1, y1")
        if b[2] <= b[0] or b[3] <= b[1]:
            raise PromptError(f"degenerate box {b.tolist()}: x1 > x0 and y1 > y0 needed")
    if pts is None and b is None:
        raise PromptError("a mask needs at least one point or a box")
    return pts, lab, b


class TransformersSegmenter:
    """Base of the transformers families; subclasses set the names and the pipelines."""

    family: str
    identity: str
    # Names of the embedding's arrays, highest resolution first; "features" is the decoder's input.
    ARRAY_NAMES: tuple[str, ...] = ("features",)

    def __init__(self, model, identity: str, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.identity = identity
        slice_per_token_layers(self.model)  # the encoder's peak memory (models/lowmem.py)
        add_yield_points(self.model)  # a click stops a prefetch encode (annotator.preempt)
        with torch.inference_mode():
            # Depends only on the weights: the reference pipeline recomputes it on every click.
            self._image_pe = model.get_image_wide_positional_embeddings()

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution logits (256 for official checkpoints)."""
        return int(self.model.prompt_encoder.mask_input_size[0])

    # -------------------------------------------------------------------------------- arrays
    def to_arrays(self, embedding: FeatureEmbedding) -> dict[str, np.ndarray]:
        return {
            **embedding.arrays,
            "original_size": np.asarray(embedding.original_size, dtype=np.int64),
            "input_size": np.asarray(embedding.input_size, dtype=np.int64),
        }

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> FeatureEmbedding:
        missing = [n for n in (*self.ARRAY_NAMES, "original_size", "input_size") if n not in arrays]
        if missing:
            raise ValueError(f"cached embedding lacks {', '.join(missing)}")
        h, w = (int(v) for v in arrays["original_size"])
        ih, iw = (int(v) for v in arrays["input_size"])
        return FeatureEmbedding(
            {n: arrays[n] for n in self.ARRAY_NAMES}, (h, w), (ih, iw), family=self.family
        )

    def _tensors(self, embedding: FeatureEmbedding) -> list[torch.Tensor]:
        """The embedding's maps as (1, C, h, w) float32 tensors on the device, made once."""
        key = str(self.device)
        cached = embedding._torch.get(key)
        if cached is None:
            cached = []
            for name in self.ARRAY_NAMES:
                array = embedding.arrays[name]
                if array.dtype != np.float32 or not array.flags.c_contiguous:
                    array = np.ascontiguousarray(array, dtype=np.float32)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # read-only cache arrays
                    cached.append(torch.from_numpy(array)[None].to(self.device))
            embedding._torch.clear()
            embedding._torch[key] = cached
        return cached

    def _mask_tensor(self, mask_input: np.ndarray | None) -> torch.Tensor | None:
        if mask_input is None:
            return None
        side = self.low_res_size
        m = np.asarray(mask_input, dtype=np.float32)
        if m.size != side * side:
            raise PromptError(f"a mask prompt has {m.shape}, expected ({side}, {side}) logits")
        return torch.as_tensor(m.reshape(1, 1, side, side), device=self.device)

    def _logits_tensor(self, low_res_logits: np.ndarray) -> tuple[torch.Tensor, bool]:
        side = self.low_res_size
        logits, single = logits_array(low_res_logits, side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(logits).reshape(1, -1, side, side)
        return t.to(self.device), single

    @staticmethod
    def _masks(low_res: torch.Tensor, iou: torch.Tensor) -> Masks:
        """(1, 1, N, s, s) and (1, 1, N) -> Masks of N candidates."""
        return Masks(low_res[0, 0].float().cpu().numpy(), iou[0, 0].float().cpu().numpy())

    def decode(self, embedding, points, labels, box, multimask, *, mask_input=None) -> Masks:
        raise NotImplementedError

    def encode(self, image: np.ndarray) -> FeatureEmbedding:
        raise NotImplementedError

    def upscale(self, embedding, low_res_logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError
