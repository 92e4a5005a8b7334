"""Tiny open_clip models built with the upstream classes, for fast tests (no downloads).

`make_tiny_clip(dir, tower)` writes an open_clip `model_configs/*.json`-style config and a seeded
random state dict (`torch.save`), the same two files a user passes for a custom model.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}

VISION_CFGS = {
    # timm's own tiny test ConvNeXt (dims 24..64, stride 32); open_clip wraps it as for convnext_base_w
    "convnext": {
        "timm_model_name": "test_convnext",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": 64,
    },
    # average-pooled ViT: its image embedding is the mean of the projected patch tokens
    "vit": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "pool_type": "avg"},
    # ViT pooled at the class token, as OpenAI's ViT-B/32
    "vit_tok": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "resnet": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None},
}


def tiny_config(tower: str = "convnext", embed_dim: int = 32) -> dict:
    """An open_clip model config with tiny towers."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": dict(VISION_CFGS[tower]),
        "text_cfg": dict(TEXT_CFG),
    }


def make_tiny_clip(dir: Path, tower: str = "convnext", seed: int = 0) -> tuple[Path, Path]:
    """Write `<tower>.json` and `<tower>-<seed>.pt` into `dir`; returns (config_json, weights)."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(tower)
    config = dir / f"{tower}.json"
    config.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    # open_clip leaves some weights at zero or identity (e.g. ResNet bn3 scales) that would make
    # features degenerate: jitter every float tensor so each layer carries signal.
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
    weights = dir / f"{tower}-{seed}.pt"
    torch.save(model.state_dict(), weights)
    return config, weights
