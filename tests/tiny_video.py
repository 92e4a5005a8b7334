"""Tiny random-config SAM 2.1 / EdgeTAM *video* folders (`Sam2VideoModel`, `EdgeTamVideoModel`)
built with the upstream classes, as tests/tiny_hf.py builds the image ones: the same image path
(Hiera / RepViT trunk at 128 px) plus a small memory attention, memory encoder and (EdgeTAM)
perceiver resampler. Weights are re-drawn with tiny_hf's spread so masks vary between frames."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.tiny_hf import SIDE, edgetam_config, sam2_config

WIDTH = 128  # > the 64-channel memory (hard-coded upstream): pointers split into 64-wide pieces


def _widened(image) -> dict:
    """The image config's parts with every width at WIDTH (the object pointers are split into
    memory-sized pieces, so the width must be a multiple of the 64-channel memory)."""
    vision = image.vision_config.to_dict()
    vision["fpn_hidden_size"] = WIDTH
    prompt = image.prompt_encoder_config.to_dict()
    prompt["hidden_size"] = WIDTH
    decoder = image.mask_decoder_config.to_dict()
    decoder["hidden_size"] = WIDTH
    return {
        "vision_config": vision,
        "prompt_encoder_config": prompt,
        "mask_decoder_config": decoder,
    }


MEMORY = {
    "image_size": SIDE,
    "memory_attention_hidden_size": WIDTH,
    "memory_attention_num_layers": 2,
    "memory_attention_rope_feat_sizes": [SIDE // 16, SIDE // 16],
    "memory_encoder_hidden_size": WIDTH,
    "memory_encoder_output_channels": 64,
    "mask_downsampler_embed_dim": WIDTH,
    "memory_fuser_embed_dim": WIDTH,
    "memory_fuser_intermediate_dim": 64,
    "max_object_pointers_in_encoder": 4,  # a window of 8 frames: short clips exercise pruning
}


def sam2_video_config(side: int = SIDE):
    from transformers import Sam2VideoConfig

    image = sam2_config(side)
    return Sam2VideoConfig(
        **_widened(image),
        memory_attention_feed_forward_hidden_size=64,
        **MEMORY,
    )


def edgetam_video_config(side: int = SIDE):
    from transformers import EdgeTamVideoConfig

    image = edgetam_config(side)
    return EdgeTamVideoConfig(
        **_widened(image),
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_k_sizes=[SIDE // 32, SIDE // 32],
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=16,  # a 4x4 grid over the 8x8 features
        perceiver_resampler_hidden_size=64,  # the memory's width
        perceiver_resampler_mlp_intermediate_size=64,
        perceiver_resampler_attention_head_dim=64,
        **MEMORY,
    )


IMAGE_PARTS = ("vision_encoder", "prompt_encoder", "mask_decoder", "shared_image_embedding")


def _randomize_video(model: torch.nn.Module, seed: int) -> None:
    """The image path as tiny_hf draws it; the memory parts fan-in scaled (the memory attention
    3x), so that tracked masks depend on each object's memory rather than collapsing to one mask
    for every object (measured: with tiny_hf's flat spread both objects get identical masks)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if ".backbone.timm_model." in name and param.ndim > 1:
                param.copy_(noise * (1.0 / param[0].numel()) ** 0.5)
            elif name.endswith("weight") and param.ndim == 1:
                param.copy_(1.0 + 0.1 * noise)
            elif name.startswith(IMAGE_PARTS):
                param.copy_(0.3 * noise)
            elif param.ndim > 1:
                gain = 3.0 if name.startswith("memory_attention") else 1.0
                param.copy_(gain * noise * (1.0 / param[0].numel()) ** 0.5)
            else:
                param.copy_(0.1 * noise)


def build(family: str, seed: int = 1):
    """(model, processor): a tiny random `family` video model ("sam2" or "edgetam")."""
    from transformers import EdgeTamVideoModel, Sam2VideoModel

    torch.manual_seed(seed)
    if family == "sam2":
        model = Sam2VideoModel(sam2_video_config())
    elif family == "edgetam":
        model = EdgeTamVideoModel(edgetam_video_config())
    else:
        raise ValueError(family)
    _randomize_video(model, seed)
    return model.eval(), processor()


def processor():
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import (
        Sam2VideoVideoProcessor,
    )

    low = 4 * SIDE // 16
    size = {"height": SIDE, "width": SIDE}
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size, mask_size={"height": low, "width": low}),
        video_processor=Sam2VideoVideoProcessor(size=size),
        target_size=SIDE,
    )


def save(family: str, folder: Path, seed: int = 1):
    """Write the folder; (model as `from_pretrained` gives it, processor) -- see tiny_hf.save."""
    model, proc = build(family, seed)
    model.save_pretrained(folder)
    return type(model).from_pretrained(folder).eval(), proc
