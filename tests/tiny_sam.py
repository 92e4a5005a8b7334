"""Small, real Segment-Anything checkpoints built with the upstream classes (random, seeded).

They go through exactly the code paths of the official checkpoints (window + global attention,
relative positions, the two-way decoder) but encode a 256-pixel image in milliseconds.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

# The default tiny layout and a second one with every size changed, to prove shape inference is
# general (non-divisible window padding, no qkv bias, 2 multimask outputs, mlp ratio 2...).
TINY: dict[str, Any] = dict(
    img_size=256,
    patch_size=16,
    embed_dim=32,
    depth=2,
    num_heads=2,
    mlp_ratio=4.0,
    qkv_bias=True,
    window_size=4,
    global_attn_indexes=(1,),
    prompt_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=64,
    downsample_rate=2,
    num_multimask_outputs=3,
    iou_head_depth=3,
    iou_head_hidden_dim=32,
)
TINY_OTHER: dict[str, Any] = dict(
    img_size=160,
    patch_size=8,
    embed_dim=48,
    depth=3,
    num_heads=3,
    mlp_ratio=2.0,
    qkv_bias=False,
    window_size=3,
    global_attn_indexes=(0, 2),
    prompt_dim=64,
    mask_in_chans=16,
    decoder_depth=1,
    decoder_mlp_dim=96,
    downsample_rate=4,
    num_multimask_outputs=2,
    iou_head_depth=2,
    iou_head_hidden_dim=24,
)


def build_tiny_sam(seed: int = 0, **overrides: Any) -> Sam:
    """A random `Sam` with the TINY layout (or `overrides`); rel-pos tables are randomised too."""
    cfg = {**TINY, **overrides}
    torch.manual_seed(seed)
    grid = cfg["img_size"] // cfg["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=cfg["img_size"],
            patch_size=cfg["patch_size"],
            embed_dim=cfg["embed_dim"],
            depth=cfg["depth"],
            num_heads=cfg["num_heads"],
            mlp_ratio=cfg["mlp_ratio"],
            out_chans=cfg["prompt_dim"],
            qkv_bias=cfg["qkv_bias"],
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=cfg["window_size"],
            global_attn_indexes=tuple(cfg["global_attn_indexes"]),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg["prompt_dim"],
            image_embedding_size=(grid, grid),
            input_image_size=(cfg["img_size"], cfg["img_size"]),
            mask_in_chans=cfg["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg["num_multimask_outputs"],
            transformer=TwoWayTransformer(
                depth=cfg["decoder_depth"],
                embedding_dim=cfg["prompt_dim"],
                mlp_dim=cfg["decoder_mlp_dim"],
                num_heads=8,
                attention_downsample_rate=cfg["downsample_rate"],
            ),
            transformer_dim=cfg["prompt_dim"],
            iou_head_depth=cfg["iou_head_depth"],
            iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        ),
    )
    with torch.no_grad():
        # Zero-initialised upstream; random here so that a wrong window layout changes outputs.
        for name, p in sam.named_parameters():
            if "rel_pos" in name or name.endswith("pos_embed"):
                p.normal_(0.0, 0.5)
    return sam.eval()


def make_tiny_sam(
    path: Path,
    img_size: int = 256,
    embed_dim: int = 32,
    depth: int = 2,
    *,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Save a tiny random SAM's state dict (as the official .pth files are) and return `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sam = build_tiny_sam(seed, img_size=img_size, embed_dim=embed_dim, depth=depth, **overrides)
    torch.save(sam.state_dict(), path)
    return path


def load_reference(path: Path, **overrides: Any) -> Sam:
    """The same checkpoint loaded into an upstream `Sam` built from the known layout."""
    sam = build_tiny_sam(seed=12345, **overrides)
    sam.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return sam.eval()
