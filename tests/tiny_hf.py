"""Tiny random-config SAM 2.1 / EdgeTAM / HQ-SAM folders built with the upstream transformers classes.

Same code paths as the official checkpoints (Hiera with windowed + global blocks and q-pooling,
the timm RepViT trunk, the HQ decoder's early-ViT features), at 128-256 px and a few hundred
thousand parameters. Weights are re-drawn with a larger spread than the library's init so that
masks and IoU predictions are far from constant: a parity test on near-constant logits could
not fail.
"""

from __future__ import annotations

from pathlib import Path

import torch

SIDE = 128  # SAM 2 / EdgeTAM tiny input side
HQ_SIDE = 128


def _randomize(model: torch.nn.Module, seed: int, spread: float = 0.3) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if ".backbone.timm_model." in name and param.ndim > 1:
                # the deep timm trunk: fan-in scaled, or its activations overflow float32
                param.copy_(noise * (1.0 / param[0].numel()) ** 0.5)
            elif name.endswith("weight") and param.ndim == 1:  # norms: around 1
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(spread * noise)


def sam2_config(side: int = SIDE):
    from transformers import Sam2Config
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[3],
        image_size=[side, side],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=32,
    )
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=side),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )


def edgetam_config(side: int = SIDE, architecture: str = "repvit_m1"):
    from transformers import EdgeTamConfig, TimmWrapperConfig
    from transformers.models.edgetam.configuration_edgetam import (
        EdgeTamMaskDecoderConfig,
        EdgeTamPromptEncoderConfig,
        EdgeTamVisionConfig,
    )

    vision = EdgeTamVisionConfig(
        backbone_config=TimmWrapperConfig(
            architecture=architecture,
            model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
        ),
        backbone_channel_list=[384, 192, 96, 48],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=32,
    )
    return EdgeTamConfig(
        vision_config=vision,
        prompt_encoder_config=EdgeTamPromptEncoderConfig(hidden_size=32, image_size=side),
        mask_decoder_config=EdgeTamMaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )


def sam_hq_config(side: int = HQ_SIDE):
    from transformers import SamHQConfig
    from transformers.models.sam_hq.configuration_sam_hq import (
        SamHQMaskDecoderConfig,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
    )

    vision = SamHQVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=side,
        patch_size=16,
        mlp_dim=64,
        window_size=4,
        global_attn_indexes=[1],
        num_pos_feats=16,
    )
    return SamHQConfig(
        vision_config=vision,
        prompt_encoder_config=SamHQPromptEncoderConfig(
            hidden_size=32, image_size=side, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=SamHQMaskDecoderConfig(
            hidden_size=32,
            mlp_dim=64,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
            vit_dim=32,
        ),
    )


def build(family: str, seed: int = 0):
    """(model, processor) of a tiny random model of `family`."""
    from transformers import (
        EdgeTamModel,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
        SamHQModel,
        SamHQProcessor,
        SamImageProcessor,
    )

    torch.manual_seed(seed)
    if family == "sam2":
        model, side = Sam2Model(sam2_config()), SIDE
    elif family == "edgetam":
        model, side = EdgeTamModel(edgetam_config()), SIDE
    elif family == "sam_hq":
        model, side = SamHQModel(sam_hq_config()), HQ_SIDE
    else:
        raise ValueError(family)
    _randomize(model, seed)
    model.eval()
    low = 4 * side // 16
    if family == "sam_hq":
        processor = SamHQProcessor(
            image_processor=SamImageProcessor(
                size={"longest_edge": side},
                pad_size={"height": side, "width": side},
                mask_size={"longest_edge": low},
                mask_pad_size={"height": low, "width": low},
            )
        )
    else:
        processor = Sam2Processor(
            image_processor=Sam2ImageProcessor(
                size={"height": side, "width": side}, mask_size={"height": low, "width": low}
            )
        )
    return model, processor


def save(family: str, folder: Path, seed: int = 0):
    """Write a tiny `family` folder (config.json + model.safetensors); (model, processor), the
    model as a transformers user gets it: `from_pretrained(folder)`.

    Not the in-memory model that was saved: `from_pretrained` (transformers 5.25) leaves every
    parameter at an address that is not 64-byte aligned, and the CPU kernels then sum in another
    order, so the two differ by float rounding, which the tiny random models amplify (features
    of ~10^7 differing by ~10^2) until a mask pixel flips. The reference pipeline is the one a
    user runs on the same files."""
    model, processor = build(family, seed)
    model.save_pretrained(folder)
    return type(model).from_pretrained(folder).eval(), processor
