"""A small, real SAM 3 built with the transformers classes (random, seeded) and saved with
`save_pretrained`, next to the real CLIP tokenizer (open_clip's BPE file) and a processor sized to it.

It runs exactly the code of `facebook/sam3` (ViT backbone with windowed + global attention and RoPE,
FPN neck, CLIP text encoder, DETR encoder/decoder, presence head, mask decoder) on a 112-pixel input.
"""

from __future__ import annotations

import gzip
from pathlib import Path

IMAGE_SIZE = 112  # 8x8 patches of 14 pixels


def clip_tokenizer():
    """The CLIP BPE tokenizer, built from open_clip's packaged merges (no download)."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=pairs)


def tiny_config(hidden: int = 32):
    from transformers import (
        CLIPTextConfig,
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    side = IMAGE_SIZE // 14
    backbone = Sam3ViTConfig(
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=14,
        window_size=4,
        global_attn_indexes=[1],
        pretrain_image_size=IMAGE_SIZE,
    )
    vision = Sam3VisionConfig(
        backbone_config=backbone,
        fpn_hidden_size=hidden,
        backbone_feature_sizes=[[side * 4] * 2, [side * 2] * 2, [side] * 2],
    )
    text = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        hidden_act="gelu",
    )
    small = dict(hidden_size=hidden, num_attention_heads=2, intermediate_size=64)
    return Sam3Config(
        vision_config=vision,
        text_config=text,
        geometry_encoder_config=Sam3GeometryEncoderConfig(num_layers=1, **small),
        detr_encoder_config=Sam3DETREncoderConfig(num_layers=1, **small),
        detr_decoder_config=Sam3DETRDecoderConfig(num_layers=2, num_queries=20, **small),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=hidden, num_attention_heads=2),
    )


def make_tiny_sam3(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random SAM 3 (model, tokenizer, processor) to `folder` and return it."""
    import torch
    from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor

    folder = Path(folder)
    torch.manual_seed(seed)
    model = Sam3Model(tiny_config()).eval()
    model.save_pretrained(folder)
    tokenizer = clip_tokenizer()
    side = IMAGE_SIZE // 14 * 4
    images = Sam3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, mask_size={"height": side, "width": side}
    )
    Sam3Processor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_video_config(score_threshold: float = 0.25, queries: int = 6):
    """A tiny `Sam3VideoConfig`: the detector above (width 128: the tracker splits its object
    pointers into 64-wide memory tokens, and its memory attention reads 64 channels), a tracker
    of the same width, no hot-start delay (a short clip yields every frame at once)."""
    from transformers import Sam3TrackerVideoConfig, Sam3VideoConfig

    hidden = 128
    side = IMAGE_SIZE // 14
    tracker = Sam3TrackerVideoConfig(
        vision_config=dict(
            backbone_feature_sizes=[[side * 4] * 2, [side * 2] * 2, [side] * 2],
            fpn_hidden_size=hidden,
        ),
        prompt_encoder_config=dict(hidden_size=hidden, image_size=IMAGE_SIZE, patch_size=14),
        mask_decoder_config=dict(
            hidden_size=hidden, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=hidden
        ),
        image_size=IMAGE_SIZE,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[side, side],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
        num_maskmem=2,  # a short memory window: a 6-frame clip runs past it
    )
    detector = tiny_config(hidden)
    detector.detr_decoder_config.num_queries = queries
    return Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=side * 4,
        hotstart_delay=0,
        score_threshold_detection=score_threshold,
        new_det_thresh=score_threshold,
    )


def make_tiny_sam3_video(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random `Sam3VideoModel` with its `Sam3VideoProcessor` to `folder`."""
    import torch
    from transformers import (
        Sam2VideoVideoProcessor,
        Sam3ImageProcessor,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    Sam3VideoModel(tiny_video_config()).eval().save_pretrained(folder)
    side = IMAGE_SIZE // 14 * 4
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=size, mask_size={"height": side, "width": side}),
        video_processor=Sam2VideoVideoProcessor(size=size),
        tokenizer=clip_tokenizer(),
    ).save_pretrained(folder)
    return folder
