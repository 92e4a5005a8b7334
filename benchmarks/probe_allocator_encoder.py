"""Probe (ADR 41): the speed cost of the allocator setting on an encoder forward.

SAM ViT-B's image encoder (random weights, `segment_anything.modeling`) on a 1,024² input, with the
setting (`annotator.allocator.tune`) or without (`ANNOTATOR_MALLOC=default`). Run one process per
setting, interleaved, e.g.

    for i in 1 2 3; do ANNOTATOR_MALLOC=default python benchmarks/probe_allocator_encoder.py 2
                       python benchmarks/probe_allocator_encoder.py 2; done

Each prints the settings it applied and its N forward times (after one warm-up) as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(forwards: int) -> dict:
    from annotator import allocator

    applied = allocator.tune()  # before torch allocates anything (the product no longer calls it)

    import torch
    from segment_anything.modeling import ImageEncoderViT

    torch.manual_seed(0)
    torch.set_num_threads(2)
    encoder = ImageEncoderViT(
        depth=12,
        embed_dim=768,
        img_size=1024,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=12,
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=[2, 5, 8, 11],
        window_size=14,
        out_chans=256,
    ).eval()
    x = torch.randn(1, 3, 1024, 1024)
    times = []
    with torch.inference_mode():
        encoder(x)
        for _ in range(forwards):
            start = time.perf_counter()
            encoder(x)
            times.append(time.perf_counter() - start)
    return {"applied": applied, "times": times}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)))
