"""A SAM's architecture read from a state dict's tensor shapes, and the upstream `Sam` built from it.

Why a module of its own: the official ViT-B/L/H files and the small checkpoints built in tests go
through the same code, so what the layout of a checkpoint means is written once, here; loading a
file (`sam_checkpoint.py`) and running the model (`sam.py`) build on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

# Not stored in checkpoints (non-persistent buffers / constructor constants): upstream values.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
ENCODER_NORM_EPS = 1e-6
# The decoder's attention head count changes no tensor shape, so it cannot be read from a
# checkpoint: every published SAM uses 8 (segment_anything/build_sam.py).
DECODER_NUM_HEADS = 8
# Head width assumed when an encoder has no relative-position tables to read it from.
DEFAULT_HEAD_DIM = 64
# Bounds on what a state dict may declare, checked before anything is allocated: every published
# SAM has a 64x64 grid at 1024 px; a stride-0 tensor can declare any shape in a few bytes.
MAX_GRID = 256
MAX_IMAGE_SIZE = 4096

REQUIRED_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.neck.0.weight",
    "prompt_encoder.point_embeddings.0.weight",
    "prompt_encoder.mask_downscaling.3.weight",
    "mask_decoder.iou_token.weight",
    "mask_decoder.mask_tokens.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
    "mask_decoder.iou_prediction_head.layers.0.weight",
)


@dataclass(frozen=True)
class SamArch:
    """Every hyper-parameter of a `Sam`, as read from a state dict's shapes."""

    img_size: int
    patch_size: int
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    mlp_ratio: float
    qkv_bias: bool
    use_abs_pos: bool
    use_rel_pos: bool
    window_size: int
    global_attn_indexes: tuple[int, ...]
    out_chans: int
    prompt_embed_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    decoder_attention_downsample_rate: int
    num_multimask_outputs: int
    iou_head_depth: int
    iou_head_hidden_dim: int

    @property
    def grid(self) -> int:
        """Side of the image embedding (64 for official checkpoints)."""
        return self.img_size // self.patch_size

    @property
    def name(self) -> str:
        """The official name (vit_b, vit_l, vit_h) when it matches, else a compact description."""
        for name, arch in OFFICIAL_ARCHS.items():
            if arch == self:
                return name
        return (
            f"vit-i{self.img_size}p{self.patch_size}-e{self.encoder_embed_dim}"
            f"d{self.encoder_depth}h{self.encoder_num_heads}-o{self.out_chans}"
        )


def _official(embed_dim: int, depth: int, heads: int, global_idx: tuple[int, ...]) -> SamArch:
    return SamArch(
        img_size=1024,
        patch_size=16,
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=14,
        global_attn_indexes=global_idx,
        out_chans=256,
        prompt_embed_dim=256,
        mask_in_chans=16,
        decoder_depth=2,
        decoder_mlp_dim=2048,
        decoder_attention_downsample_rate=2,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )


# The layouts of segment_anything/build_sam.py, used to name an architecture.
OFFICIAL_ARCHS: dict[str, SamArch] = {
    "vit_b": _official(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": _official(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": _official(1280, 32, 16, (7, 15, 23, 31)),
}


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct integers `i` such that some key matches `pattern` with (\\d+)."""
    rx = re.compile(pattern)
    return len({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def infer_arch(sd: Mapping[str, torch.Tensor]) -> SamArch:
    """Read a `Sam`'s hyper-parameters from its state dict (only `.shape` is used).

    Raises `ValueError` with a short reason when the shapes are inconsistent; `SamModel`
    turns it into a `CheckpointError` naming the file.
    """
    missing = [k for k in REQUIRED_KEYS if k not in sd]
    if missing:
        raise KeyError(", ".join(missing))

    patch_w = sd["image_encoder.patch_embed.proj.weight"]  # (E, 3, p, p)
    embed_dim, _, patch_size, _ = patch_w.shape
    depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.norm1\.weight")
    if depth == 0:
        raise ValueError("the image encoder has no transformer blocks")

    use_abs_pos = "image_encoder.pos_embed" in sd
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in sd
    rel_rows = []
    if use_rel_pos:
        rel_rows = [sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
    if use_abs_pos:
        grid = sd["image_encoder.pos_embed"].shape[1]
    elif rel_rows:
        grid = (max(rel_rows) + 1) // 2  # the global blocks span the whole grid
    else:
        raise ValueError("neither pos_embed nor relative positions: cannot tell the image size")
    if not 1 <= grid <= MAX_GRID or grid * patch_size > MAX_IMAGE_SIZE:
        raise ValueError(
            f"declares a {grid}x{grid} position grid of {patch_size}-px patches (at most "
            f"{MAX_GRID} and {MAX_IMAGE_SIZE} px): refused"
        )
    img_size = grid * patch_size

    if use_rel_pos:
        head_dim = sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        global_idx = tuple(i for i, r in enumerate(rel_rows) if r == 2 * grid - 1)
        windows = {(r + 1) // 2 for i, r in enumerate(rel_rows) if i not in global_idx}
        if len(windows) > 1:
            raise ValueError(f"window blocks disagree on the window size {sorted(windows)}")
        window_size = windows.pop() if windows else 0
    else:
        head_dim = min(DEFAULT_HEAD_DIM, embed_dim)
        global_idx, window_size = (), 0
    if embed_dim % head_dim:
        raise ValueError(f"encoder width {embed_dim} is not a multiple of head width {head_dim}")

    mlp_hidden = sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    out_chans = sd["image_encoder.neck.0.weight"].shape[0]
    prompt_dim = sd["prompt_encoder.point_embeddings.0.weight"].shape[1]
    decoder_dim = sd["mask_decoder.iou_token.weight"].shape[1]
    if not out_chans == prompt_dim == decoder_dim:
        raise ValueError(
            f"encoder output ({out_chans}), prompt ({prompt_dim}) and decoder ({decoder_dim}) "
            "widths differ"
        )
    cross_dim = sd["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"]
    return SamArch(
        img_size=int(img_size),
        patch_size=int(patch_size),
        encoder_embed_dim=int(embed_dim),
        encoder_depth=depth,
        encoder_num_heads=int(embed_dim // head_dim),
        mlp_ratio=mlp_hidden / embed_dim,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in sd,
        use_abs_pos=use_abs_pos,
        use_rel_pos=use_rel_pos,
        window_size=int(window_size),
        global_attn_indexes=global_idx,
        out_chans=int(out_chans),
        prompt_embed_dim=int(prompt_dim),
        mask_in_chans=int(sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_depth=_count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\.norm1\.weight"),
        decoder_mlp_dim=int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        decoder_attention_downsample_rate=int(decoder_dim // cross_dim.shape[0]),
        num_multimask_outputs=int(sd["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
        iou_head_depth=_count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight"),
        iou_head_hidden_dim=int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )


def build_sam_from_arch(arch: SamArch, device: str | torch.device = "cpu") -> Sam:
    """Assemble an (untrained) upstream `Sam`; `device="meta"` allocates nothing."""
    grid = arch.grid
    with torch.device(device):
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=arch.img_size,
                patch_size=arch.patch_size,
                embed_dim=arch.encoder_embed_dim,
                depth=arch.encoder_depth,
                num_heads=arch.encoder_num_heads,
                mlp_ratio=arch.mlp_ratio,
                out_chans=arch.out_chans,
                qkv_bias=arch.qkv_bias,
                norm_layer=partial(torch.nn.LayerNorm, eps=ENCODER_NORM_EPS),
                use_abs_pos=arch.use_abs_pos,
                use_rel_pos=arch.use_rel_pos,
                window_size=arch.window_size,
                global_attn_indexes=arch.global_attn_indexes,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=arch.prompt_embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(arch.img_size, arch.img_size),
                mask_in_chans=arch.mask_in_chans,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=arch.num_multimask_outputs,
                transformer=TwoWayTransformer(
                    depth=arch.decoder_depth,
                    embedding_dim=arch.prompt_embed_dim,
                    mlp_dim=arch.decoder_mlp_dim,
                    num_heads=DECODER_NUM_HEADS,
                    attention_downsample_rate=arch.decoder_attention_downsample_rate,
                ),
                transformer_dim=arch.prompt_embed_dim,
                iou_head_depth=arch.iou_head_depth,
                iou_head_hidden_dim=arch.iou_head_hidden_dim,
            ),
            pixel_mean=list(PIXEL_MEAN),
            pixel_std=list(PIXEL_STD),
        )
    return sam.eval()
