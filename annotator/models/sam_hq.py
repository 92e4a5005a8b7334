"""HQ-SAM through transformers' `SamHQModel`: SAM 1's image path plus an early ViT feature map.

The image is resized so its longest side is the model's input side and padded to a square (as
SAM 1); the cached embedding is the encoder's output (256 x 64 x 64 at 1024 px) plus the first
global block's ViT features (64 x 64 x width), the only intermediate map the HQ decoder reads:
16.6 MB per image for ViT-B in float32 (4 MB + 12.6 MB).

Reference pipeline reproduced here: `SamHQProcessor(images, input_points, input_labels,
input_boxes)` -> `model(...)` -> `processor.post_process_masks(pred_masks, original_sizes,
reshaped_input_sizes)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from annotator.errors import CheckpointError
from annotator.models.hf_checkpoint import MAX_IMAGE_SIZE, load_model
from annotator.models.hf_segmenter import (
    TransformersSegmenter,
    check_image,
    check_prompts,
    folder_digest,
)
from annotator.models.segmenter import FeatureEmbedding, Masks


def _check_geometry(config, where: str) -> None:
    side = config.vision_config.image_size
    patch = config.vision_config.patch_size
    if not (isinstance(side, int) and isinstance(patch, int)):
        raise CheckpointError(f"checkpoint {where}: image_size and patch_size must be integers")
    if not 16 <= side <= MAX_IMAGE_SIZE or not 1 <= patch <= side or side % patch:
        raise CheckpointError(
            f"checkpoint {where}: image_size {side} / patch_size {patch} out of range "
            f"(a multiple of the patch, up to {MAX_IMAGE_SIZE})"
        )
    prompt = config.prompt_encoder_config
    if (prompt.image_size, prompt.patch_size) != (side, patch):
        raise CheckpointError(
            f"checkpoint {where}: the prompt encoder's image_size/patch_size "
            f"{prompt.image_size}/{prompt.patch_size} differ from the vision encoder's {side}/{patch}"
        )
    if not config.vision_config.global_attn_indexes:
        raise CheckpointError(f"checkpoint {where}: no global attention block (HQ needs one)")


def _preprocess_shape(original: tuple[int, int], longest: int) -> tuple[int, int]:
    """SamImageProcessor._get_preprocess_shape."""
    h, w = original
    scale = longest * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class SamHQSegmenter(TransformersSegmenter):
    """HQ-SAM on single images (`family="sam_hq"`)."""

    family = "sam_hq"
    ARRAY_NAMES = ("vit_early", "features")
    # False as in the reference forward's default: SAM's mask plus the HQ token's correction.
    HQ_TOKEN_ONLY = False

    def __init__(self, model, identity: str, device="cpu") -> None:
        from transformers import SamImageProcessor

        super().__init__(model, identity, device)
        self.image_size = int(model.config.vision_config.image_size)
        low = self.low_res_size
        self.processor = SamImageProcessor(
            size={"longest_edge": self.image_size},
            pad_size={"height": self.image_size, "width": self.image_size},
            mask_size={"longest_edge": low},
            mask_pad_size={"height": low, "width": low},
        )

    @property
    def low_res_size(self) -> int:
        return 4 * int(self.model.prompt_encoder.image_embedding_size[0])

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SamHQSegmenter:
        from transformers import SamHQConfig, SamHQModel

        model, folder, weights = load_model(
            Path(path), "sam_hq", SamHQConfig, SamHQModel, None, _check_geometry
        )
        side = model.config.vision_config.image_size
        width = model.config.vision_config.hidden_size
        identity = f"sam_hq-i{side}e{width}-{folder_digest(folder, weights)[:16]}"
        return cls(model, identity, device)

    def encode(self, image: np.ndarray) -> FeatureEmbedding:
        check_image(image)
        if not image.flags.writeable:  # torch.from_numpy warns on read-only arrays
            image = image.copy()
        inputs = self.processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            features, intermediate = self.model.get_image_embeddings(
                inputs["pixel_values"].to(self.device)
            )
            arrays = {
                # (1, h, w, C) channels-last as the encoder returns it; the decoder permutes it.
                "vit_early": intermediate[0][0].cpu().numpy(),
                "features": features[0].cpu().numpy(),
            }
        original = (int(image.shape[0]), int(image.shape[1]))
        reshaped = tuple(int(v) for v in inputs["reshaped_input_sizes"][0])
        return FeatureEmbedding(arrays, original, reshaped, family=self.family)

    def _scaled(self, values: np.ndarray, original: tuple[int, int], box: bool) -> torch.Tensor:
        """SamHQProcessor._normalize_coordinates: float64 numpy, as the processor leaves it."""
        old_h, old_w = np.asarray(original, dtype=np.int64)
        new_h, new_w = _preprocess_shape(original, self.image_size)
        coords = values.astype(float).reshape(-1, 2, 2) if box else values.astype(float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return torch.from_numpy(coords.reshape(-1, 4) if box else coords)

    def decode(
        self,
        embedding: FeatureEmbedding,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        multimask: bool,
        *,
        mask_input: np.ndarray | None = None,
    ) -> Masks:
        pts, lab, b = check_prompts(points, labels, box)
        original = embedding.original_size
        points_t = labels_t = boxes_t = None
        if pts is not None:
            points_t = self._scaled(pts, original, False).reshape(1, 1, -1, 2).to(self.device)
            labels_t = torch.from_numpy(lab.reshape(1, 1, -1)).to(self.device)
        if b is not None:
            boxes_t = self._scaled(b.reshape(1, 4), original, True).reshape(1, 1, 4)
            boxes_t = boxes_t.to(self.device)
        mask_t = self._mask_tensor(mask_input)
        vit_early, features = self._tensors(embedding)
        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(
                input_points=points_t,
                input_labels=labels_t,
                input_boxes=boxes_t,
                input_masks=mask_t,
            )
            low_res, iou = self.model.mask_decoder(
                image_embeddings=features,
                image_positional_embeddings=self._image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                hq_token_only=self.HQ_TOKEN_ONLY,
                intermediate_embeddings=[vit_early],
            )
        return self._masks(low_res, iou)

    def upscale(self, embedding: FeatureEmbedding, low_res_logits: np.ndarray) -> np.ndarray:
        """As SamImageProcessor.post_process_masks: to the padded side, crop, to the image."""
        t, single = self._logits_tensor(low_res_logits)
        side = self.image_size
        ih, iw = embedding.input_size
        with torch.inference_mode():
            full = F.interpolate(t, (side, side), mode="bilinear", align_corners=False)
            full = full[..., :ih, :iw]
            full = F.interpolate(
                full, embedding.original_size, mode="bilinear", align_corners=False
            )
            masks = (full[0] > 0.0).cpu().numpy()
        return masks[0] if single else masks
