"""Equivalence, not faith: every option `precision.EQUIVALENT` lists (and so every option `auto`
may pick) gives the fp32 answers on real photos.

Per part and option, against the same weights in fp32 eager:
- segmenter encoder: feature cosine >= 0.9999 on every cached array, and the same masks
  (IoU >= 0.99) along `eval clicks`' simulated click sequences on GrabCut / Berkeley photos;
- CLIP image trunk: dense-feature cosine >= 0.9999, the same top-1 label for >= 99 % of regions
  (ground-truth masks of COCO_MVal photos) over a slice of the default vocabulary;
- CLIP text encoder: text-vector cosine >= 0.9999 and the same top-1 label for those regions.

Models (random weights, built with the upstream classes; CI time on 2 cores bounds the sizes):
the CLIP part is the full-size convnext_base_w (both towers, open_clip's init, the ConvNeXt
blocks' layer scales drawn in a trained model's range instead of 1e-6) at its native 256 px; SAM 1 is the full ViT-B encoder (768 wide, 12 blocks, 4 global) and SAM 2.1 the full
Hiera-T (the library's init), all at a 256-px input instead of 1,024 (16x fewer positions; the
depth, width and kernels that accumulate rounding are the real ones). HQ-SAM is its tiny test
config. Not listed, so not tested here (ADR 25): SAM 2.1 in bf16 (feature cosine 0.99992 but a
click sequence's masks at IoU 0.989) and EdgeTAM in bf16 (its RepViT trunk at cosine 0.88). The decoders stay fp32 in every option, so a mask differs only through
the features.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from annotator.models import precision as P

pytestmark = pytest.mark.slow

COSINE = 0.9999
MASK_IOU = 0.99
LABELS_AGREE = 0.99
SIDE = 256  # segmenter input side (the real models: 1,024)
CLICKS = 3  # simulated clicks per object
VOCAB_ENTRIES = 150  # entries of the default vocabulary, in its own (priority) order


def _cases(part: str) -> list[tuple[str, str]]:
    """(kind, option) pairs the table claims for `part`, fp32 aside."""
    return [(k, o) for k, options in P.EQUIVALENT[part].items() for o in options if o != "fp32"]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _samples(folder: str, count: int):
    from annotator.evaluation.datasets import folder_dataset
    from tests.conftest import shared_data

    root = shared_data(folder)
    images = root / ("img" if folder == "coco_mval80" else "images")
    masks = root / ("gt" if folder == "coco_mval80" else "masks")
    samples = folder_dataset(images, masks).samples
    step = max(1, len(samples) // count)
    return samples[::step][:count]


# ---------------------------------------------------------------------------------- segmenters
def _sam1(folder):
    from annotator.models.sam import SamModel
    from tests.tiny_sam import build_tiny_sam

    sam = build_tiny_sam(
        seed=0,
        img_size=SIDE,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        window_size=14,
        global_attn_indexes=(2, 5, 8, 11),
        prompt_dim=256,
        mask_in_chans=16,
        decoder_depth=2,
        decoder_mlp_dim=2048,
        downsample_rate=2,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return SamModel.from_state_dict(sam.state_dict(), identity="sam-vitb-256")


def _hf(family, folder):
    from annotator.models.registry import load_segmenter
    from tests import tiny_hf

    tiny_hf.save(family, folder)  # HQ-SAM: its tiny test config, weights drawn wide
    return load_segmenter(folder, family)


@pytest.fixture(scope="module")
def click_samples():
    return _samples("grabcut", 1) + _samples("berkeley", 1)


@pytest.mark.parametrize(("family", "option"), _cases("segmenter"))
def test_segmenter_options_are_equivalent(family, option, click_samples, tmp_path):
    from annotator.evaluation.clicks import simulate
    from annotator.evaluation.datasets import load_rgb

    reference = _sam1(tmp_path) if family == "sam" else _hf(family, tmp_path / family)
    nontrivial = 0
    other = copy.deepcopy(reference)
    P.apply_segmenter(other, option)
    assert other.identity == P.tagged(reference.identity, option)
    for sample in click_samples:
        image = load_rgb(sample.image_path)
        truth = sample.load()
        ref_emb, opt_emb = reference.encode(image), other.encode(image)
        ref_arrays, opt_arrays = reference.to_arrays(ref_emb), other.to_arrays(opt_emb)
        for name, array in ref_arrays.items():
            if array.dtype.kind == "f":
                cos = _cosine(array, opt_arrays[name])
                assert cos >= COSINE, (family, option, sample.name, name, cos)
        ious = []

        def session(clicks, segmenter=reference, embedding=ref_emb):
            return _mask(segmenter, embedding, clicks)

        result = simulate(session, truth, max_clicks=CLICKS, name=sample.name)
        for k in range(1, len(result.clicks) + 1):
            a = _mask(reference, ref_emb, result.clicks[:k])
            b = _mask(other, opt_emb, result.clicks[:k])
            nontrivial += 0.01 < a.mean() < 0.99
            union = np.logical_or(a, b).sum()
            ious.append(1.0 if union == 0 else np.logical_and(a, b).sum() / union)
        assert min(ious) >= MASK_IOU, (family, option, sample.name, ious)
    assert nontrivial >= 3, "the random model's masks are all empty or full: nothing compared"


def _mask(segmenter, embedding, clicks) -> np.ndarray:
    points = np.asarray([(c.x, c.y) for c in clicks], dtype=np.float64)
    labels = np.asarray([1 if c.positive else 0 for c in clicks], dtype=np.int64)
    masks = segmenter.decode(embedding, points, labels, None, len(clicks) == 1)
    best = int(np.argmax(masks.scores))
    return np.asarray(segmenter.upscale(embedding, masks.low_res_logits)[best], dtype=bool)


# ----------------------------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def clip_reference():
    from annotator.models.clip import ClipModel

    clip = ClipModel.random("convnext_base_w", seed=0)
    _trained_layer_scales(clip.model.visual.trunk)
    return clip


def _trained_layer_scales(trunk: torch.nn.Module) -> None:
    """ConvNeXt initialises every block's layer scale (`gamma`) at 1e-6, which makes a random
    trunk the identity around its stem and downsamplers: any error inside the blocks would be
    scaled away and the comparison could not fail. Trained models have scales of order 0.1-1."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in trunk.named_parameters():
            if name.endswith(".gamma"):
                param.copy_(0.1 + 0.9 * torch.rand(param.shape, generator=generator))


@pytest.fixture(scope="module")
def vocabulary_texts():
    from annotator.vocab.index import DEFAULT_TEMPLATES
    from annotator.vocab.vocabulary import load_vocabulary

    entries = list(load_vocabulary("default"))[:VOCAB_ENTRIES]
    return [e.name for e in entries], [DEFAULT_TEMPLATES[0].format(e.name) for e in entries]


@pytest.fixture(scope="module")
def regions(clip_reference):
    """(images, masks) of COCO_MVal objects: whole ground-truth masks."""
    from annotator.evaluation.datasets import load_rgb

    out = []
    for sample in _samples("coco_mval80", 4):
        out.append((load_rgb(sample.image_path), sample.load().mask))
    return out


def _region_vectors(clip, images_masks) -> np.ndarray:
    from annotator.models.region import make_head

    head = make_head("pool", clip, long_side=clip.image_size)
    vectors, features = [], []
    for image, mask in images_masks:
        prepared = head.prepare(image)
        features.append(prepared["features"])
        vectors.append(head.embed(prepared, mask))
    return np.stack(vectors), features


def _top1(regions: np.ndarray, texts: np.ndarray) -> np.ndarray:
    return np.argmax(regions @ texts.T, axis=1)


@pytest.fixture(scope="module")
def clip_fp32(clip_reference, regions, vocabulary_texts):
    vectors, features = _region_vectors(clip_reference, regions)
    texts = clip_reference.encode_text(vocabulary_texts[1])
    return vectors, features, texts


@pytest.mark.parametrize(("tower", "option"), _cases("clip"))
def test_clip_trunk_options_are_equivalent(tower, option, clip_reference, regions, clip_fp32):
    assert clip_reference.tower == tower == "convnext"  # the one tower the table lists
    vectors, features, texts = clip_fp32
    other = copy.deepcopy(clip_reference)
    P.apply_clip(other, option, "fp32")
    opt_vectors, opt_features = _region_vectors(other, regions)
    for a, b in zip(features, opt_features, strict=True):
        assert _cosine(a, b) >= COSINE, (option, _cosine(a, b))
    assert min(_cosine(a, b) for a, b in zip(vectors, opt_vectors, strict=True)) >= COSINE
    agree = np.mean(_top1(vectors, texts) == _top1(opt_vectors, texts))
    assert agree >= LABELS_AGREE, (option, agree)


@pytest.mark.parametrize(("kind", "option"), _cases("text"))
def test_text_encoder_options_are_equivalent(
    kind, option, clip_reference, clip_fp32, vocabulary_texts
):
    vectors, _, texts = clip_fp32
    other = copy.deepcopy(clip_reference)
    P.apply_clip(other, "fp32", option)
    opt_texts = other.encode_text(vocabulary_texts[1])
    cosines = np.sum(texts * opt_texts, axis=1)  # unit rows
    assert cosines.min() >= COSINE, (option, float(cosines.min()))
    agree = np.mean(_top1(vectors, texts) == _top1(vectors, opt_texts))
    assert agree >= LABELS_AGREE, (option, agree)
