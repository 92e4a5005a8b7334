"""Recompute the approximate download sizes in `annotator.models.weights` from the architectures.

No published byte count for the transformers folders (SAM 2.1, EdgeTAM, HQ-SAM) or the open_clip
file can be read offline, and a size is never invented: each model is built with its real
configuration on the `meta` device (no memory, no weights), the tensors its checkpoint saves are
counted (the persistent state dict, tied tensors once) and the fp32 file size is estimated:

- safetensors (`model.safetensors`): 4 bytes per element + the JSON header (built here the way
  safetensors writes it) + its 8-byte length;
- torch.save (`open_clip_pytorch_model.bin`): 4 bytes per element + zip/pickle bookkeeping of
  about 64 bytes of alignment and 200 bytes of record per tensor, plus 1 KiB.

The configurations are those of transformers' conversion scripts (sam2 `get_config`: Hiera
tiny/small/base_plus/large; sam `get_config`: ViT-B/L/H for HQ-SAM) and the library defaults
(EdgeTAM, open_clip `convnext_base_w`). The hub repositories hold the video models' weights
(`Sam2VideoModel`, `EdgeTamVideoModel` load them), so the memory modules are counted too.

Usage: `python scripts/weight_sizes.py` prints the table; `--check` exits 1 when the registry
differs from what is computed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch

HIERA = {  # transformers' convert_sam2_to_hf.get_config
    "sam2.1_hiera_tiny": {},
    "sam2.1_hiera_small": {
        "blocks_per_stage": [1, 2, 11, 2],
        "global_attention_blocks": [7, 10, 13],
    },
    "sam2.1_hiera_base_plus": {
        "hidden_size": 112,
        "embed_dim_per_stage": [112, 224, 448, 896],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 3, 16, 3],
        "global_attention_blocks": [12, 16, 20],
        "window_positional_embedding_background_size": [14, 14],
    },
    "sam2.1_hiera_large": {
        "hidden_size": 144,
        "embed_dim_per_stage": [144, 288, 576, 1152],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 6, 36, 4],
        "global_attention_blocks": [23, 33, 43],
        "window_positional_embedding_background_size": [7, 7],
        "window_size_per_stage": [8, 4, 16, 8],
    },
}
SAM_VIT = {  # transformers' convert_sam_to_hf.get_config (HQ-SAM uses the same encoders)
    "sam_hq_vit_b": {},
    "sam_hq_vit_l": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "global_attn_indexes": [5, 11, 17, 23],
    },
    "sam_hq_vit_h": {
        "hidden_size": 1280,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "global_attn_indexes": [7, 15, 23, 31],
    },
}


def _sam2(name: str) -> torch.nn.Module:
    from transformers import Sam2VideoConfig, Sam2VideoModel
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig

    trunk = Sam2HieraDetConfig(**HIERA[name])
    vision = Sam2VisionConfig(
        backbone_config=trunk, backbone_channel_list=list(reversed(trunk.embed_dim_per_stage))
    )
    config = Sam2VideoConfig(
        vision_config=vision,
        enable_temporal_pos_encoding_for_object_pointers=True,
        enable_occlusion_spatial_embedding=True,
    )
    return Sam2VideoModel(config)


def _edgetam(name: str) -> torch.nn.Module:
    from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

    return EdgeTamVideoModel(EdgeTamVideoConfig())


def _sam_hq(name: str) -> torch.nn.Module:
    from transformers import SamHQConfig, SamHQModel
    from transformers.models.sam_hq.configuration_sam_hq import (
        SamHQMaskDecoderConfig,
        SamHQVisionConfig,
    )

    vision = SamHQVisionConfig(**SAM_VIT[name])
    decoder = SamHQMaskDecoderConfig(vit_dim=vision.hidden_size)
    return SamHQModel(SamHQConfig(vision_config=vision, mask_decoder_config=decoder))


def _clip(name: str) -> torch.nn.Module:
    import open_clip

    return open_clip.create_model("convnext_base_w", pretrained=None, device="meta")


BUILDERS: dict[str, tuple[Callable[[str], torch.nn.Module], str]] = {
    **{n: (_sam2, "safetensors") for n in HIERA},
    "edgetam": (_edgetam, "safetensors"),
    **{n: (_sam_hq, "safetensors") for n in SAM_VIT},
    "clip_convnext_base_w_laion2b_s13b_b82k_augreg": (_clip, "torch"),
}


def saved_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The persistent state dict with each tied tensor once (as save_pretrained writes it)."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out[key] = tensor
    return out


def safetensors_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Size of a fp32 safetensors file holding `tensors`: data + JSON header + 8-byte length."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key in sorted(tensors):
        n = tensors[key].numel() * 4
        header[key] = {
            "dtype": "F32",
            "shape": list(tensors[key].shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    text = json.dumps(header, separators=(",", ":"))
    pad = -len(text) % 8
    return 8 + len(text) + pad + offset


def torch_save_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Approximate size of a fp32 torch.save zip of `tensors` (data + per-record bookkeeping)."""
    data = sum(t.numel() * 4 for t in tensors.values())
    return data + len(tensors) * (64 + 200) + 1024


def approx_size(name: str) -> int:
    """Estimated fp32 file size in bytes of registry entry `name`, from its architecture."""
    build, fmt = BUILDERS[name]
    with torch.device("meta"):
        model = build(name)
    tensors = saved_tensors(model)
    return safetensors_bytes(tensors) if fmt == "safetensors" else torch_save_bytes(tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registry names (default: all computed ones)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the registry differs")
    args = parser.parse_args(argv)
    from annotator.models.weights import KNOWN

    bad = 0
    for name in args.names or list(BUILDERS):
        size = approx_size(name)
        recorded = KNOWN[name].approx_size
        mark = "ok" if recorded == size else f"registry has {recorded}"
        bad += recorded != size
        print(f"{name:<48} {size:>14,d} bytes  ≈{size / 1e6:.0f} MB  {mark}")
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
