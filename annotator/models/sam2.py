"""SAM 2.1 and EdgeTAM on single images, through transformers' `Sam2Model` / `EdgeTamModel`.

Both share SAM 2's image path: the image is resized (not padded) to a square, the encoder gives
three FPN levels, and the two high-resolution ones (already projected by the decoder's
`conv_s0`/`conv_s1`, as `get_image_embeddings` returns them) feed the mask decoder's upscaling.
All three are the cached embedding: 16 MB per image in float32 at 1024 px (32x256x256 +
64x128x128 + 256x64x64 floats). They stay float32: float16 storage flips mask pixels and moves
the predicted IoU by more than 1e-5 (measured, see docs/adr/0006-segmenter-defaults.md), which
would break parity with the reference pipeline.

Reference pipeline reproduced here: `Sam2Processor(images, input_points, input_labels,
input_boxes)` -> `model(...)` -> `processor.post_process_masks(pred_masks, original_sizes)`.
"""

from __future__ import annotations

import copy
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

# transformers 5.23's EdgeTamVisionConfig default misspells "architecture" ("archirecture") and
# so builds a resnet50 trunk; EdgeTAM's trunk is RepViT-M1 (timm), given explicitly.
EDGETAM_TRUNK = "repvit_m1"
EDGETAM_TRUNK_ARGS = {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]}


def _fix_edgetam_config(config: dict) -> dict:
    config = copy.deepcopy(config)
    vision = config.setdefault("vision_config", {})
    backbone = vision.get("backbone_config")
    if not isinstance(backbone, dict):
        backbone = {"model_type": "timm_wrapper"}
    misspelt = backbone.pop("archirecture", None)
    if misspelt:  # saved from the buggy default: "architecture" then says resnet50
        backbone["architecture"] = misspelt
    backbone.setdefault("architecture", EDGETAM_TRUNK)
    backbone.setdefault("model_type", "timm_wrapper")
    backbone.setdefault("model_args", dict(EDGETAM_TRUNK_ARGS))
    vision["backbone_config"] = backbone
    return config


def _check_geometry(config, where: str) -> None:
    """The sizes every later tensor is made of, consistent and bounded."""
    side = config.prompt_encoder_config.image_size
    patch = config.prompt_encoder_config.patch_size
    if not (isinstance(side, int) and isinstance(patch, int)):
        raise CheckpointError(f"checkpoint {where}: image_size and patch_size must be integers")
    if not 16 <= side <= MAX_IMAGE_SIZE or patch < 1 or side % patch or side % 16:
        raise CheckpointError(
            f"checkpoint {where}: image_size {side} / patch_size {patch} out of range "
            f"(a multiple of 16 up to {MAX_IMAGE_SIZE})"
        )
    expected = [[side // 4] * 2, [side // 8] * 2, [side // 16] * 2]
    sizes = [list(s) for s in config.vision_config.backbone_feature_sizes]
    if sizes != expected or side // patch != side // 16:
        raise CheckpointError(
            f"checkpoint {where}: backbone_feature_sizes {sizes} do not fit image_size {side} "
            f"(expected {expected})"
        )
    widths = {
        config.vision_config.fpn_hidden_size,
        config.prompt_encoder_config.hidden_size,
        config.mask_decoder_config.hidden_size,
    }
    if len(widths) != 1:
        raise CheckpointError(f"checkpoint {where}: encoder/prompt/decoder widths differ {widths}")


class Sam2Segmenter(TransformersSegmenter):
    """SAM 2.1 (`family="sam2"`) or EdgeTAM (`family="edgetam"`) on single images."""

    ARRAY_NAMES = ("high_res_0", "high_res_1", "features")

    def __init__(self, model, family: str, identity: str, device="cpu") -> None:
        from transformers import Sam2ImageProcessor

        super().__init__(model, identity, device)
        self.family = family
        self.image_size = int(model.config.prompt_encoder_config.image_size)
        low = self.low_res_size
        self.processor = Sam2ImageProcessor(
            size={"height": self.image_size, "width": self.image_size},
            mask_size={"height": low, "width": low},
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", family: str = "sam2") -> Sam2Segmenter:
        """A transformers folder of this family; `CheckpointError` (one line) otherwise."""
        if family == "sam2":
            from transformers import Sam2Config as config_class
            from transformers import Sam2Model as model_class

            fix = None
        elif family == "edgetam":
            from transformers import EdgeTamConfig as config_class
            from transformers import EdgeTamModel as model_class

            fix = _fix_edgetam_config
        else:
            raise ValueError(f"Sam2Segmenter serves sam2 and edgetam, not {family!r}")

        model, folder, weights = load_model(
            Path(path),
            family,
            config_class,
            model_class,
            fix,
            _check_geometry,
            superset_types=(f"{family}_video",),  # one folder serves images and video
        )
        side = model.config.prompt_encoder_config.image_size
        identity = f"{family}-i{side}-{folder_digest(folder, weights)[:16]}"
        return cls(model, family, identity, device)

    def encode(self, image: np.ndarray) -> FeatureEmbedding:
        """RGB uint8 (H, W, 3) -> the three feature maps, as the reference pipeline makes them."""
        check_image(image)
        if not image.flags.writeable:  # torch.from_numpy warns on read-only arrays
            image = image.copy()
        inputs = self.processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            maps = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
            arrays = {n: m[0].cpu().numpy() for n, m in zip(self.ARRAY_NAMES, maps, strict=True)}
        original = (int(image.shape[0]), int(image.shape[1]))
        return FeatureEmbedding(
            arrays, original, (self.image_size, self.image_size), family=self.family
        )

    def _scaled(self, values: np.ndarray, original: tuple[int, int]) -> torch.Tensor:
        """Sam2Processor._normalize_coordinates, with the same dtypes and operations."""
        coords = torch.tensor(values.tolist(), dtype=torch.float32).reshape(-1, 2)
        old_h, old_w = torch.tensor(original, dtype=torch.int64)
        coords[..., 0] = coords[..., 0] * (self.image_size / old_w)
        coords[..., 1] = coords[..., 1] * (self.image_size / old_h)
        return coords

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
        """Prompts (image pixels) -> low-res logits + predicted IoU of each candidate."""
        pts, lab, b = check_prompts(points, labels, box)
        original = embedding.original_size
        points_t = labels_t = boxes_t = None
        if pts is not None:
            points_t = self._scaled(pts, original).reshape(1, 1, -1, 2).to(self.device)
            labels_t = torch.tensor(lab.tolist(), dtype=torch.int64).reshape(1, 1, -1)
            labels_t = labels_t.to(self.device)
        if b is not None:
            boxes_t = self._scaled(b, original).reshape(1, 1, 4).to(self.device)
        mask_t = self._mask_tensor(mask_input)
        maps = self._tensors(embedding)
        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(
                input_points=points_t,
                input_labels=labels_t,
                input_boxes=boxes_t,
                input_masks=mask_t,
            )
            low_res, iou, _, _ = self.model.mask_decoder(
                image_embeddings=maps[-1],
                image_positional_embeddings=self._image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                high_resolution_features=maps[:-1],
            )
        return self._masks(low_res, iou)

    def upscale(self, embedding: FeatureEmbedding, low_res_logits: np.ndarray) -> np.ndarray:
        """(s, s) logits -> bool (H, W); (N, s, s) -> (N, H, W), as `post_process_masks`
        (which upsamples all candidates in one call: pass them together for identical masks)."""
        t, single = self._logits_tensor(low_res_logits)
        with torch.inference_mode():
            full = F.interpolate(t, embedding.original_size, mode="bilinear", align_corners=False)
            masks = (full[0] > 0.0).cpu().numpy()
        return masks[0] if single else masks
