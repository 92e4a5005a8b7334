"""Segment-Anything: load any checkpoint, encode an image once, decode prompts cheaply.

The architecture is read from the checkpoint's tensor shapes (`sam_arch.infer_arch`), so the
official ViT-B/L/H files and the small checkpoints built in tests go through the same code; the file
is read and bounded by `sam_checkpoint.py`. The model is then assembled from the upstream
`segment_anything.modeling` classes and loaded strictly (on the meta device, weights assigned: one
copy of them in memory).

`encode` reproduces `SamPredictor.set_image`; `decode` reproduces `SamPredictor.predict` up to
the low-resolution logits; `upscale` turns ONE chosen candidate into a full-size mask exactly as
`SamPredictor.predict` would (it upscales all candidates; the engine only needs one).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from annotator.device import resolve_device
from annotator.errors import CheckpointError, PromptError
from annotator.hashing import sha256_file
from annotator.models import sam_decoder
from annotator.models.lowmem import add_yield_points
from annotator.models.sam_arch import (
    OFFICIAL_ARCHS,
    PIXEL_MEAN,
    PIXEL_STD,
    SamArch,
    build_sam_from_arch,
    infer_arch,
)
from annotator.models.sam_checkpoint import (
    check_bounds,
    hash_state_dict,
    one_line,
    read_checkpoint,
    unwrap_state_dict,
)
from annotator.models.segmenter import Masks, logits_array

# Where callers have always found them (tests, scripts): the architecture lives in sam_arch.py.
__all__ = [
    "OFFICIAL_ARCHS",
    "SamArch",
    "SamEmbedding",
    "SamModel",
    "build_sam_from_arch",
    "infer_arch",
]


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

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the GUI's prefetch budget counts this)."""
        return int(self.features.nbytes)


def _resolve_device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(resolve_device(device))


class SamModel:
    """Owns a `segment_anything.modeling.Sam` and the per-image pre/post-processing."""

    family = "sam"
    identity: str  # stable id of architecture + weights (e.g. "sam-vit_b-<sha256[:16]>")

    def __init__(self, sam: Sam, arch: SamArch, identity: str) -> None:
        self.model = sam  # the upstream module (e.g. for `SamPredictor(model.model)`)
        self.arch = arch
        self.identity = identity
        self.device = sam.device
        self.transform = ResizeLongestSide(arch.img_size)
        add_yield_points(sam.image_encoder)  # a click stops a prefetch encode (annotator.preempt)
        with torch.inference_mode():
            # Depends only on weights: computed once instead of on every click.
            self._dense_pe = sam.prompt_encoder.get_dense_pe()
        # The last image's prompt-independent decoder work (see sam_decoder.py), keyed by its features.
        self._state_key: tuple[weakref.ref, int] | None = None
        self._state: sam_decoder.DecoderState | None = None

    @property
    def sam(self) -> Sam:
        """Alias of `model`."""
        return self.model

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution logits (256 for official checkpoints)."""
        return 4 * self.arch.grid

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SamModel:
        """Load any segment-anything checkpoint file; `CheckpointError` if it is not one."""
        path = Path(path)
        sd = read_checkpoint(path)
        return cls._from_state_dict(
            sd, device, lambda arch: sha256_file(path), str(path), file_size=path.stat().st_size
        )

    @classmethod
    def from_state_dict(
        cls,
        sd: Mapping[str, torch.Tensor],
        device: str = "cpu",
        identity: str | None = None,
    ) -> SamModel:
        """Build from an in-memory state dict (identity: given, or a hash of the tensors)."""
        sd = unwrap_state_dict(sd, "state dict")
        if identity is not None:
            return cls._from_state_dict(sd, device, None, "state dict", identity=identity)
        return cls._from_state_dict(sd, device, lambda arch: hash_state_dict(sd), "state dict")

    @classmethod
    def _from_state_dict(
        cls,
        sd: dict[str, torch.Tensor],
        device: str,
        digest: Callable[[SamArch], str] | None,
        where: str,
        identity: str | None = None,
        file_size: int | None = None,
    ) -> SamModel:
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"SAM checkpoint {where}: values are not all tensors")
        try:
            arch = infer_arch(sd)
        except KeyError as exc:
            missing = exc.args[0].split(", ")
            more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
            has = ", ".join(list(sd)[:3]) or "no keys at all"
            raise CheckpointError(
                f"SAM checkpoint {where}: not a Segment-Anything state dict: missing "
                f"{', '.join(missing[:3])}{more}; it has {has}..."
            ) from None
        except (ValueError, IndexError, ZeroDivisionError) as exc:
            raise CheckpointError(f"SAM checkpoint {where}: inconsistent shapes: {exc}") from exc
        check_bounds(sd, arch, where, file_size)

        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        sam = build_sam_from_arch(arch, "meta")  # no random init: the weights come next
        try:
            sam.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"SAM checkpoint {where}: does not match the inferred {arch.name} layout: "
                f"{one_line(exc, 200)}"
            ) from exc
        sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
        sam = sam.to(_resolve_device(device)).eval()
        if identity is None:
            assert digest is not None
            identity = f"sam-{arch.name}-{digest(arch)[:16]}"
        return cls(sam, arch, identity)

    def to_arrays(self, embedding: SamEmbedding) -> dict[str, np.ndarray]:
        """The cache's view of an embedding."""
        return {
            "features": embedding.features,
            "original_size": np.asarray(embedding.original_size, dtype=np.int64),
            "input_size": np.asarray(embedding.input_size, dtype=np.int64),
        }

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> SamEmbedding:
        h, w = (int(v) for v in arrays["original_size"])
        ih, iw = (int(v) for v in arrays["input_size"])
        return SamEmbedding(arrays["features"], original_size=(h, w), input_size=(ih, iw))

    def encode(self, image: np.ndarray) -> SamEmbedding:
        """RGB uint8 (H, W, 3) -> embedding, exactly as `SamPredictor.set_image` computes it."""
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            raise ValueError(
                f"encode needs an RGB uint8 (H, W, 3) array, got {getattr(image, 'dtype', None)} "
                f"{getattr(image, 'shape', None)}"
            )
        original_size = (int(image.shape[0]), int(image.shape[1]))
        resized = self.transform.apply_image(image)
        with torch.inference_mode():
            x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
            input_size = (int(x.shape[-2]), int(x.shape[-1]))
            features = self.model.image_encoder(self.model.preprocess(x))
            features_np = features[0].cpu().numpy()
        return SamEmbedding(features_np, original_size, input_size)

    def _decoder_state(
        self, embedding: SamEmbedding, dense: torch.Tensor
    ) -> sam_decoder.DecoderState:
        """The image's `DecoderState`, computed on its first click and kept while it is clicked."""
        features = embedding.features
        key = self._state_key
        if key is None or key[0]() is not features or key[1] != id(features):
            self._state = sam_decoder.prepare(
                self.model.mask_decoder, self._features(embedding), self._dense_pe, dense
            )
            self._state_key = (weakref.ref(features), id(features))
        return self._state

    def _features(self, embedding: SamEmbedding) -> torch.Tensor:
        """(1, C, h, w) view of the cached features (no copy on CPU)."""
        f = embedding.features
        if f.dtype != np.float32 or not f.flags.c_contiguous:
            f = np.ascontiguousarray(f, dtype=np.float32)
        with warnings.catch_warnings():
            # A memory-mapped cache is read-only; the decoder never writes to it.
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(f)
        return t.to(self.device)[None]

    def decode(
        self,
        embedding: SamEmbedding,
        points: np.ndarray | None,  # (N, 2) float XY in original image pixels
        labels: np.ndarray | None,  # (N,) int 1 positive / 0 negative
        box: np.ndarray | None,  # (4,) XYXY in original image pixels
        multimask: bool,
        *,
        mask_input: np.ndarray | None = None,  # (1|-, 4h, 4w) logits of a previous answer
    ) -> Masks:
        """Prompts -> low-res logits + scores, as `SamPredictor.predict` before upscaling."""
        n_points = 0 if points is None else len(points)
        if n_points == 0 and box is None:
            raise PromptError("a mask needs at least one point or a box")
        coords_t = labels_t = box_t = mask_t = None
        orig = embedding.original_size
        if n_points:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            lab = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise PromptError(f"{len(pts)} points but {len(lab)} point labels")
            if not np.isfinite(pts).all():
                raise PromptError("a point has a non-finite coordinate")
            if not np.isin(lab, (0, 1)).all():
                raise PromptError("point labels must be 1 (positive) or 0 (negative)")
            pts = self.transform.apply_coords(pts, orig)
            coords_t = torch.as_tensor(pts, dtype=torch.float, device=self.device)[None]
            labels_t = torch.as_tensor(lab, dtype=torch.int, device=self.device)[None]
        if box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(-1)
            if b.shape != (4,) or not np.isfinite(b).all():
                raise PromptError("a box needs 4 finite numbers x0, y0, x1, y1")
            if b[2] <= b[0] or b[3] <= b[1]:
                raise PromptError(f"degenerate box {b.tolist()}: x1 > x0 and y1 > y0 needed")
            b = self.transform.apply_boxes(b, orig)
            box_t = torch.as_tensor(b, dtype=torch.float, device=self.device)[None]
        if mask_input is not None:
            m = np.asarray(mask_input, dtype=np.float32)
            side = self.low_res_size
            mask_t = torch.as_tensor(m.reshape(1, 1, side, side), device=self.device)

        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(
                points=None if coords_t is None else (coords_t, labels_t),
                boxes=box_t,
                masks=mask_t,
            )
            if mask_t is None:
                # The lean path: bit-identical to the upstream decoder, without the per-image work.
                state = self._decoder_state(embedding, dense)
                low_res, iou = sam_decoder.predict_masks(
                    self.model.mask_decoder, state, sparse, multimask
                )
            else:
                low_res, iou = self.model.mask_decoder(
                    image_embeddings=self._features(embedding),
                    image_pe=self._dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            return Masks(low_res[0].cpu().numpy(), iou[0].cpu().numpy())

    def upscale(self, embedding: SamEmbedding, low_res_logits: np.ndarray) -> np.ndarray:
        """(256, 256) logits -> bool (H, W) mask; (N, 256, 256) -> (N, H, W).

        Identical to SamPredictor.predict's masks when given all the candidates it returned at once:
        torch's bilinear kernel rounds differently for different channel counts (torch 2.14: one
        float32 ULP, enough to flip a pixel whose logit is ~0), and predict upsamples them together.
        """
        side = self.low_res_size
        logits, single = logits_array(low_res_logits, side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(logits).reshape(1, -1, side, side)
        with torch.inference_mode():
            masks = self.model.postprocess_masks(
                t.to(self.device), embedding.input_size, embedding.original_size
            )
            masks = (masks[0] > self.model.mask_threshold).cpu().numpy()
        return masks[0] if single else masks
