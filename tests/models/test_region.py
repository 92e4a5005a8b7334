"""Region heads: area weights, mask pooling parity with the towers' own pooling, crop head, registry."""

from __future__ import annotations

import copy
import math
import time

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator.errors import AnnotatorError
from annotator.models.clip import ClipModel
from annotator.models.region import (
    REGION_HEADS,
    CropHead,
    MaskPoolingHead,
    cell_coverage,
    default_head_name,
    make_head,
    mask_box,
)
from tests.timing import record
from tests.tiny_clip import make_tiny_clip

TOWERS = ("convnext", "vit", "vit_tok", "resnet")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, ClipModel]:
    root = tmp_path_factory.mktemp("tiny_clip_region")
    return {
        t: ClipModel.load(config=c, weights=w) for t in TOWERS for c, w in [make_tiny_clip(root, t)]
    }


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth 96x96 test image (structure at every scale, so cells differ)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    return cv2.resize(noise, (96, 96), interpolation=cv2.INTER_CUBIC)


def normalise(v) -> np.ndarray:
    v = torch.as_tensor(v).float().reshape(-1)
    return F.normalize(v, dim=0).numpy()


# ----------------------------------------------------------------------------------- geometry
@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(5, 90),
    w=st.integers(5, 90),
    gh=st.integers(1, 9),
    gw=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_cell_coverage_equals_cv2_area_resize(h, w, gh, gw, seed):
    gh, gw = (
        min(gh, h),
        min(gw, w),
    )  # feature grids are coarser than images (cv2 upsamples otherwise)
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=bool)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    mask[y0 : rng.integers(y0, h + 1), x0 : rng.integers(x0, w + 1)] = True
    mask |= rng.random((h, w)) < 0.05
    expected = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(cell_coverage(mask, (gh, gw)), expected, atol=1e-5)


def test_mask_box():
    mask = np.zeros((10, 20), dtype=bool)
    assert mask_box(mask) is None
    mask[2:5, 7:9] = True
    assert mask_box(mask) == (7, 2, 9, 5)


# -------------------------------------------------------------------------------- pooling head
@pytest.mark.parametrize("tower", ["convnext", "vit", "resnet"])
def test_full_mask_is_the_models_own_image_embedding(models, image, tower):
    """Pooling over every cell then the tower's head == the model's encode_image of the same input."""
    clip = models[tower]
    head = MaskPoolingHead(clip, long_side=128 if tower == "convnext" else 64)
    prepared = head.prepare(image)
    assert all(isinstance(v, np.ndarray) for v in prepared.values())
    assert tuple(prepared["image_size"]) == image.shape[:2]
    embedding = head.embed(prepared, np.ones(image.shape[:2], dtype=bool))
    with torch.inference_mode():
        own = clip.model.encode_image(head.input_tensor(image))
    assert embedding.shape == (clip.embed_dim,) and embedding.dtype == np.float32
    assert np.abs(embedding - normalise(own)).max() <= 1e-5
    # an empty mask falls back to the whole image
    empty = np.zeros(image.shape[:2], dtype=bool)
    np.testing.assert_allclose(head.embed(prepared, empty), embedding, atol=1e-6)


def test_convnext_non_square_image_and_higher_resolution(models):
    clip = models["convnext"]
    rng = np.random.default_rng(3)
    wide = cv2.resize(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), (150, 90))
    head = MaskPoolingHead(clip)  # default: 4x native = 256 px long side
    assert head.long_side == 256 and head.input_size((90, 150)) == (160, 256)
    prepared = head.prepare(wide)
    assert prepared["features"].shape[1:] == (5, 8)  # stride 32 cells tile the whole image
    embedding = head.embed(prepared, np.ones((90, 150), dtype=bool))
    with torch.inference_mode():
        own = clip.model.encode_image(head.input_tensor(wide))
    assert np.abs(embedding - normalise(own)).max() <= 1e-5


def test_convnext_half_mask_pools_that_half(models, image):
    clip = models["convnext"]
    head = MaskPoolingHead(clip, long_side=128)  # 4x4 cells of 24 original pixels
    prepared = head.prepare(image)
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[:, :48] = True
    visual = clip.model.visual
    with torch.inference_mode():
        feats = visual.trunk.forward_features(head.input_tensor(image))
        left = visual.head(visual.trunk.forward_head(feats[..., :2]))  # timm's own global pool
    assert np.abs(head.embed(prepared, mask) - normalise(left)).max() <= 1e-5
    # a mask inside one cell gives that cell's vector
    dot = np.zeros_like(mask)
    dot[30, 60] = True  # row cell 1, column cell 2
    with torch.inference_mode():
        cell = visual.head(visual.trunk.forward_head(feats[..., 1:2, 2:3]))
    assert np.abs(head.embed(prepared, dot) - normalise(cell)).max() <= 1e-5


def test_vit_half_mask_pools_projected_patch_tokens(models, image):
    clip = models["vit"]
    head = MaskPoolingHead(clip)
    prepared = head.prepare(image)  # native 64x64 input, 4x4 patches of 24 original pixels
    visual = copy.deepcopy(clip.model.visual)
    visual.output_tokens = True  # open_clip returns (pooled, ln_post(tokens))
    with torch.inference_mode():
        _, tokens = visual(head.input_tensor(image))
        projected = (tokens[0] @ visual.proj).reshape(4, 4, -1)
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[48:, :] = True  # bottom half: token rows 2..3
    expected = normalise(projected[2:].reshape(-1, projected.shape[-1]).mean(0))
    assert np.abs(head.embed(prepared, mask) - expected).max() <= 1e-5


def _attnpool_reference(pool, feats: torch.Tensor, pos: torch.Tensor, keep: torch.Tensor):
    """open_clip's AttentionPool2d math with torch's MHA over the kept cells only."""
    tokens = feats.flatten(1).T[keep]  # (n, C)
    x = torch.cat([tokens.mean(0, keepdim=True), tokens])
    x = (x + torch.cat([pool.positional_embedding[:1], pos[keep]]))[:, None, :]
    out, _ = F.multi_head_attention_forward(
        query=x,
        key=x,
        value=x,
        embed_dim_to_check=x.shape[-1],
        num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        training=False,
        need_weights=False,
    )
    return out[0, 0]


def _resnet_features(visual, tensor):
    x = visual.stem(tensor)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    return x[0]


def test_resnet_masked_attention_pool_at_higher_resolution(models, image):
    """At 2x native (4x4 cells, interpolated positions) a half mask == attention pooling over
    those cells only, computed with torch's own multi-head attention."""
    clip = models["resnet"]
    head = MaskPoolingHead(clip)  # default 2x native: 128 px, 4x4 cells
    assert head.long_side == 128
    prepared = head.prepare(image)
    pool = clip.model.visual.attnpool
    with torch.inference_mode():
        feats = _resnet_features(clip.model.visual, head.input_tensor(image))
        assert feats.shape[1:] == (4, 4)
        native = pool.positional_embedding[1:].reshape(1, 2, 2, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(
            native, size=(4, 4), mode="bicubic", antialias=True, align_corners=False
        )
        pos = pos[0].permute(1, 2, 0).reshape(16, -1)
        keep = torch.zeros(4, 4, dtype=torch.bool)
        keep[:, :2] = True
        half = _attnpool_reference(pool, feats, pos, keep.flatten())
        whole = _attnpool_reference(pool, feats, pos, torch.ones(16, dtype=torch.bool))
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[:, :48] = True
    assert np.abs(head.embed(prepared, mask) - normalise(half)).max() <= 1e-5
    full = head.embed(prepared, np.ones_like(mask))
    assert np.abs(full - normalise(whole)).max() <= 1e-5


def test_partial_cells_are_area_weighted(models, image):
    """A mask covering 1 + 1/2 cells weighs the half-covered cell by 1/2 (ViT: a plain mean)."""
    clip = models["vit"]
    head = MaskPoolingHead(clip)
    prepared = head.prepare(image)
    feats = prepared["features"]  # (D, 4, 4), cells of 24 px
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[0:24, 0:36] = True
    expected = normalise((feats[:, 0, 0] + 0.5 * feats[:, 0, 1]) / 1.5)
    assert np.abs(head.embed(prepared, mask) - expected).max() <= 1e-5


def test_mask_shape_is_checked(models, image):
    head = MaskPoolingHead(models["vit"])
    prepared = head.prepare(image)
    with pytest.raises(ValueError, match="bool mask"):
        head.embed(prepared, np.ones((10, 10), dtype=bool))


# ----------------------------------------------------------------------------------- crop head
def test_crop_head_encodes_the_crop_it_shows(models, image):
    clip = models["vit_tok"]
    head = CropHead(clip)
    prepared = head.prepare(image)
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[20:50, 30:70] = True
    crop = head.crop(prepared, mask)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    embedding = head.embed(prepared, mask)
    assert np.abs(embedding - clip.encode_image(crop)).max() <= 1e-5  # open_clip's PIL transform
    other = mask.copy()
    other[:] = False
    other[60:90, 5:25] = True
    assert float(embedding @ head.embed(prepared, other)) < 0.999


def test_crop_geometry_context_and_grey(models):
    clip = models["vit_tok"]
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[50:150, 100:200] = (255, 0, 0)  # the object: a red square
    mask = np.zeros((200, 300), dtype=bool)
    mask[50:150, 100:200] = True
    plain = CropHead(clip, context=0.0, grey=0.0)
    exact = plain.crop(plain.prepare(image), mask)
    assert plain.crop_box(plain.prepare(image), mask) == (100, 50, 200, 150)
    assert (exact == (255, 0, 0)).all()
    head = CropHead(clip, context=0.5, grey=1.0)  # box doubled: object in the central half
    crop = head.crop(head.prepare(image), mask)
    fill = np.rint(clip.mean * 255).astype(np.uint8)
    assert (crop[24:40, 24:40] == (255, 0, 0)).all()
    assert np.abs(crop[:8, :8].astype(int) - fill).max() <= 1
    half = CropHead(clip, context=0.5, grey=0.5).crop(head.prepare(image), mask)
    assert np.abs(half[:8, :8] - clip.mean * 255 * 0.5).max() <= 1  # black dimmed halfway


def test_crop_head_downscales_large_images_once(models):
    clip = models["vit_tok"]
    head = CropHead(clip, max_side=100)
    big = np.zeros((300, 400, 3), dtype=np.uint8)
    prepared = head.prepare(big)
    assert prepared["image"].shape == (75, 100, 3)
    assert tuple(prepared["image_size"]) == (300, 400)
    empty = head.crop(prepared, np.zeros((300, 400), dtype=bool))  # whole image
    assert empty.shape == (64, 64, 3)


# ------------------------------------------------------------------------------------ registry
def test_registry_and_defaults(models):
    assert set(REGION_HEADS) == {"pool", "crop"}
    assert default_head_name(models["convnext"]) == "pool"
    assert default_head_name(models["resnet"]) == "pool"
    assert default_head_name(models["vit"]) == "crop"
    assert isinstance(make_head("pool", models["vit"]), MaskPoolingHead)
    assert make_head("crop", models["convnext"], grey=0.0).grey == 0.0
    assert MaskPoolingHead(models["convnext"]).identity == "pool@256"
    assert MaskPoolingHead(models["convnext"], long_side=512).identity == "pool@512"
    assert CropHead(models["vit"]).identity == "crop@1024"
    with pytest.raises(AnnotatorError, match="crop, pool"):
        make_head("nope", models["vit"])


# -------------------------------------------------------------------------------- click speed
@pytest.mark.slow
def test_pool_head_click_cost_on_full_size_convnext():
    """Full-size random-initialised convnext_base_w (1024-px dense pass once), a 1500x1000 mask:
    one click's `embed` must cost a few milliseconds."""
    clip = ClipModel.random("convnext_base_w")
    head = MaskPoolingHead(clip)
    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(0, 256, (10, 15, 3), dtype=np.uint8), (1500, 1000))
    prepared = head.prepare(photo)
    assert prepared["features"].shape == (1024, 21, 32)
    yy, xx = np.mgrid[:1000, :1500]
    mask = ((yy - 500) / 450) ** 2 + ((xx - 750) / 700) ** 2 < 1
    head.embed(prepared, mask)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        embedding = head.embed(prepared, mask)
        times.append(time.perf_counter() - start)  # best of 30: other processes' load filtered
    assert embedding.shape == (640,) and math.isclose(
        float(np.linalg.norm(embedding)), 1, abs_tol=1e-5
    )
    record("pooled region embedding per click", best_s=min(times), bound_was=0.005)
