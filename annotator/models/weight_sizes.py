"""Approximate download sizes of the weights that have no published byte count.

Computed, never invented: `scripts/weight_sizes.py` builds each model with its real configuration
(transformers' conversion-script configs for SAM 2.1 Hiera-T/S/B+/L and HQ-SAM ViT-B/L/H, the
library defaults for EdgeTAM and open_clip convnext_base_w) on the meta device, counts the tensors
its checkpoint saves and sizes the fp32 file (safetensors header included; torch.save bookkeeping
estimated for the CLIP .bin). The SAM 2.1 / EdgeTAM hub files hold the video models, memory
modules included. For display only ("≈156 MB"): a download is never checked against these.
"""

from __future__ import annotations

# registry name -> estimated bytes (fp32 parameters in millions in the comment)
APPROX_SIZE: dict[str, int] = {
    "sam2.1_hiera_tiny": 155_908_064,  # 38.96M
    "sam2.1_hiera_small": 184_305_280,  # 46.06M
    "sam2.1_hiera_base_plus": 323_476_296,  # 80.85M
    "sam2.1_hiera_large": 897_897_416,  # 224.45M
    "edgetam": 144_987_208,  # 36.23M
    "sam_hq_vit_b": 379_266_384,  # 94.81M
    "sam_hq_vit_l": 1_254_763_616,  # 313.68M
    "sam_hq_vit_h": 2_570_816_384,  # 642.69M
    "clip_convnext_base_w_laion2b_s13b_b82k_augreg": 717_672_556,  # 179.39M
}


def size_label(size: int | None, approx_size: int | None) -> str | None:
    """ "375 MB" for a published size, "≈156 MB" for an estimate, None when neither is known."""
    if size is not None:
        return f"{size / 1e6:.0f} MB"
    return None if approx_size is None else f"\u2248{approx_size / 1e6:.0f} MB"
