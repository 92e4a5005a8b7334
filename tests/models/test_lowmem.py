"""models/lowmem: per-token layers run on slices give the same numbers as the whole layer.

Each encoder family is built twice from one seed with the upstream classes; one copy is sliced
with a small slice size (so that the tiny models' first stages are cut in many slices, as a
1,024-px window is at the product's 4,096 positions), and both encode the same image. The outputs
must be equal bit for bit, must vary (a constant output could not show a difference), and the
sliced copy must really have run its layers in slices (the inner `Linear` called more often).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from annotator.models.lowmem import CHUNK_ROWS, is_per_token_mlp, slice_per_token_layers

ROWS = 16  # positions per slice in these tests (the product: CHUNK_ROWS)


def _count_calls(modules: list[nn.Module]) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    for module in modules:
        module.register_forward_hook(hook)
    return calls


def _sam2_pair():
    from tests.tiny_hf import build

    whole, _ = build("sam2", seed=3)
    sliced = copy.deepcopy(whole)
    return whole, sliced


def test_sam2_encoder_sliced_gives_the_same_features_bit_for_bit():
    whole, sliced = _sam2_pair()
    patched = slice_per_token_layers(sliced, rows=ROWS)
    blocks = len(sliced.vision_encoder.backbone.blocks)
    assert patched >= 2 * blocks  # every Hiera block's MLP and windowed attention
    inner_whole = _count_calls([b.mlp.proj_in for b in whole.vision_encoder.backbone.blocks])
    inner_sliced = _count_calls([b.mlp.proj_in for b in sliced.vision_encoder.backbone.blocks])
    generator = torch.Generator().manual_seed(0)
    outputs = []
    for _ in range(2):
        pixels = torch.randn(1, 3, 128, 128, generator=generator)
        with torch.inference_mode():
            a = whole.get_image_embeddings(pixels)
            b = sliced.get_image_embeddings(pixels)
        assert len(a) == len(b) == 3
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
            assert float(x.std()) > 1e-3
        outputs.append(a[-1])
    assert not torch.equal(outputs[0], outputs[1])  # the features depend on the image
    assert inner_sliced[0] > 2 * inner_whole[0]  # the MLPs really ran in slices


def test_clip_convnext_dense_features_sliced_equal(tmp_path):
    from annotator.models.clip import ClipModel
    from tests.tiny_clip import make_tiny_clip

    config, weights = make_tiny_clip(tmp_path, tower="convnext")
    model = ClipModel.load(name=None, weights=weights, config=config)
    trunk = model.model.visual.trunk
    assert any(getattr(m, "_annotator_sliced", False) for m in trunk.modules())  # the product
    whole = copy.deepcopy(model.model.visual)
    for module in whole.modules():  # undo the instance patch: the upstream forward
        module.__dict__.pop("forward", None)
        module.__dict__.pop("_annotator_sliced", None)
    mlps = [m for n, m in model.model.visual.named_modules() if n.endswith(".mlp")]
    assert mlps and all(is_per_token_mlp(m) for m in mlps)
    assert slice_per_token_layers(model.model.visual, rows=ROWS) == 0  # idempotent
    sliced = copy.deepcopy(whole)
    slice_per_token_layers(sliced, rows=ROWS)
    inner_whole = _count_calls([m.fc1 for n, m in whole.named_modules() if n.endswith(".mlp")])
    inner_sliced = _count_calls([m.fc1 for n, m in sliced.named_modules() if n.endswith(".mlp")])
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 3, 256, 256, generator=generator)  # 4x the tower's 64 px: dense
    with torch.inference_mode():
        a = whole.trunk.forward_features(pixels)
        b = sliced.trunk.forward_features(pixels)
    assert torch.equal(a, b)
    assert float(a.std()) > 1e-3
    assert inner_sliced[0] > 2 * inner_whole[0]


def test_slicing_leaves_channels_first_mlps_and_global_attention_whole():
    from timm.layers import ConvMlp, Mlp

    assert is_per_token_mlp(Mlp(8, 32))
    assert not is_per_token_mlp(ConvMlp(8, 32))  # 1x1 convolutions on (B, C, H, W)
    assert not is_per_token_mlp(nn.Sequential(nn.Conv2d(8, 8, 1), nn.GELU()))
    assert not is_per_token_mlp(nn.Sequential(nn.GELU()))  # no Linear: not an MLP

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = ConvMlp(8, 32)

    block = Block()
    assert slice_per_token_layers(block, rows=ROWS) == 0
    assert "forward" not in block.mlp.__dict__

    whole, sliced = _sam2_pair()
    slice_per_token_layers(sliced, rows=ROWS)
    global_block = sliced.vision_encoder.backbone.blocks[3]  # window_size 0: one entry
    assert global_block.window_size == 0
    calls = _count_calls([global_block.attn.qkv])
    pixels = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        sliced.get_image_embeddings(pixels)
    assert calls[0] == 1


@pytest.mark.parametrize("family", ["sam2", "edgetam", "sam_hq"])
def test_the_segmenters_load_sliced(tmp_path, family):
    from annotator.models.registry import load_segmenter
    from tests.tiny_hf import save

    save(family, tmp_path / family)
    segmenter = load_segmenter(tmp_path / family, family, "cpu")
    flags = [getattr(m, "_annotator_sliced", False) for m in segmenter.model.modules()]
    if family == "sam2":
        assert sum(flags) >= 2 * len(segmenter.model.vision_encoder.backbone.blocks)
    image = np.random.default_rng(0).integers(0, 255, (96, 120, 3), dtype=np.uint8)
    embedding = segmenter.encode(image)  # the sliced encoder serves the product's encode
    assert embedding is not None
    assert CHUNK_ROWS >= 1024
