"""SAM's mask decoder with the work that depends only on the image done once per image.

Upstream `MaskDecoder.predict_masks` recomputes, for every click, things that do not depend on the prompts:
the image embedding plus the "no mask" dense embedding (two full copies of the 256x64x64 tensor), and in the
first two-way attention block the three projections of the 4096 image tokens (keys and values of the
token-to-image attention, queries of the image-to-token attention). These are 3 of the 10 large matrix
products of a decode. `DecoderState` holds them for one image; `predict_masks` runs the remaining steps with
the upstream modules, in the upstream order, so the result is bit-identical to `SamPredictor.predict`
(`tests/models/test_sam.py` and `tests/models/test_engine.py` compare them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.transformer import Attention


@dataclass(frozen=True)
class DecoderState:
    """Per-image tensors of the first decoder block (batch of one prompt set)."""

    src_shape: tuple[int, int, int, int]
    keys: torch.Tensor  # (1, HW, C) image tokens + no-mask embedding
    key_pe: torch.Tensor  # (1, HW, C) positional encoding
    t2i_k: torch.Tensor  # token->image attention: projected keys (1, HW, C')
    t2i_v: torch.Tensor  # token->image attention: projected values
    i2t_q: torch.Tensor  # image->token attention: projected queries


def prepare(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    dense: torch.Tensor,
) -> DecoderState:
    """The prompt-independent part of a decode, for `dense` = the prompt encoder's no-mask embedding."""
    src = torch.repeat_interleave(image_embeddings, 1, dim=0)
    src = src + dense
    pos_src = torch.repeat_interleave(image_pe, 1, dim=0)
    keys = src.flatten(2).permute(0, 2, 1)
    key_pe = pos_src.flatten(2).permute(0, 2, 1)
    block = decoder.transformer.layers[0]
    k = keys + key_pe
    return DecoderState(
        src_shape=tuple(src.shape),
        keys=keys,
        key_pe=key_pe,
        t2i_k=block.cross_attn_token_to_image.k_proj(k),
        t2i_v=block.cross_attn_token_to_image.v_proj(keys),
        i2t_q=block.cross_attn_image_to_token.q_proj(k),
    )


def _attend(
    attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """`Attention.forward` after the input projections (same operations, same order)."""
    q = attention._separate_heads(q, attention.num_heads)
    k = attention._separate_heads(k, attention.num_heads)
    v = attention._separate_heads(v, attention.num_heads)
    _, _, _, c_per_head = q.shape
    attn = q @ k.permute(0, 1, 3, 2)
    attn = attn / math.sqrt(c_per_head)
    attn = torch.softmax(attn, dim=-1)
    out = attn @ v
    out = attention._recombine_heads(out)
    return attention.out_proj(out)


def predict_masks(
    decoder: MaskDecoder, state: DecoderState, sparse: torch.Tensor, multimask_output: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`MaskDecoder.forward` for one prompt set, reusing the image's `DecoderState`."""
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    b, c, h, w = state.src_shape

    transformer = decoder.transformer
    first = transformer.layers[0]
    # First block (skip_first_layer_pe): self-attention of the tokens, no positional encoding.
    queries = first.self_attn(q=tokens, k=tokens, v=tokens)
    queries = first.norm1(queries)
    # Tokens attend to the image: keys and values are the image's, precomputed.
    q = queries + tokens
    attn_out = _attend(first.cross_attn_token_to_image, first.cross_attn_token_to_image.q_proj(q),
                       state.t2i_k, state.t2i_v)  # fmt: skip
    queries = queries + attn_out
    queries = first.norm2(queries)
    mlp_out = first.mlp(queries)
    queries = queries + mlp_out
    queries = first.norm3(queries)
    # The image attends to the tokens: its queries are precomputed.
    q = queries + tokens
    attention = first.cross_attn_image_to_token
    attn_out = _attend(attention, state.i2t_q, attention.k_proj(q), attention.v_proj(queries))
    keys = state.keys + attn_out
    keys = first.norm4(keys)

    for layer in transformer.layers[1:]:
        queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=state.key_pe)
    q = queries + tokens
    k = keys + state.key_pe
    attn_out = transformer.final_attn_token_to_image(q=q, k=k, v=keys)
    queries = queries + attn_out
    hs = transformer.norm_final_attn(queries)

    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    src = keys.transpose(1, 2).view(b, c, h, w)
    upscaled_embedding = decoder.output_upscaling(src)
    hyper_in = torch.stack(
        [
            decoder.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :])
            for i in range(decoder.num_mask_tokens)
        ],
        dim=1,
    )
    b, c, h, w = upscaled_embedding.shape
    masks = (hyper_in @ upscaled_embedding.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = decoder.iou_prediction_head(iou_token_out)
    mask_slice = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, mask_slice, :, :], iou_pred[:, mask_slice]
