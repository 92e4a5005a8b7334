"""SAM 2.1 / EdgeTAM / HQ-SAM: parity with the library's reference pipeline, engine + cache, bad input.

The reference is what a transformers user writes: the processor -> the model's forward (from
pixels) -> `processor.post_process_masks`. Our segmenters must give the same masks (IoU 1.000)
and predicted IoU within 1e-5 for every prompt kind. Models are tiny, random and built here with
the upstream classes (tests/tiny_hf.py). SAM 1's parity with `SamPredictor` is tests/models/test_sam.py.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from annotator.errors import AnnotatorError, CheckpointError
from annotator.models.registry import load_segmenter
from tests import tiny_hf

FAMILIES = ("sam2", "edgetam", "sam_hq")

IMAGE = (np.random.RandomState(3).rand(90, 140, 3) * 255).astype(np.uint8)

# name -> (points, labels, box, multimask); coordinates in image pixels
PROMPTS = {
    "point": ([[60.0, 40.0]], [1], None, True),
    "box": (None, None, [20.0, 15.0, 110.0, 70.0], False),
    "point+box": ([[60.0, 40.0]], [1], [20.0, 15.0, 110.0, 70.0], False),
    "two points": ([[60.0, 40.0], [100.5, 20.25]], [1, 0], None, False),
}


@pytest.fixture(scope="module", params=FAMILIES)
def family_setup(request, tmp_path_factory):
    family = request.param
    folder = tmp_path_factory.mktemp(family)
    model, processor = tiny_hf.save(family, folder)
    segmenter = load_segmenter(folder, family)
    return family, folder, model, processor, segmenter


def _reference(family, model, processor, points, labels, box, multimask, mask_input=None):
    kwargs = {}
    if points is not None:
        kwargs["input_points"] = [[points]]
        kwargs["input_labels"] = [[labels]]
    if box is not None:
        kwargs["input_boxes"] = [[box]]
    inputs = processor(images=IMAGE, return_tensors="pt", **kwargs)
    extra = {}
    if mask_input is not None:
        extra["input_masks"] = torch.from_numpy(mask_input).reshape(1, 1, *mask_input.shape)
    with torch.no_grad():
        out = model(**inputs, multimask_output=multimask, **extra)
    if family == "sam_hq":
        masks = processor.post_process_masks(
            out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )
    else:
        masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])
    return masks[0][0].numpy(), out.iou_scores[0, 0].numpy(), out.pred_masks[0, 0].numpy()


def _ours(segmenter, embedding, points, labels, box, multimask, mask_input=None):
    answer = segmenter.decode(
        embedding,
        None if points is None else np.asarray(points),
        None if labels is None else np.asarray(labels),
        None if box is None else np.asarray(box),
        multimask,
        mask_input=mask_input,
    )
    return segmenter.upscale(embedding, answer.low_res_logits), answer.scores, answer


def _assert_same(ours_masks, ours_scores, ref_masks, ref_scores):
    assert ours_masks.shape == ref_masks.shape
    for a, b in zip(ours_masks, ref_masks, strict=True):
        union = np.logical_or(a, b).sum()
        iou = np.logical_and(a, b).sum() / union if union else 1.0
        assert iou == 1.0
    np.testing.assert_allclose(ours_scores, ref_scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_parity_with_reference_pipeline(family_setup, prompt):
    family, _, model, processor, segmenter = family_setup
    points, labels, box, multimask = PROMPTS[prompt]
    embedding = segmenter.encode(IMAGE)
    ours_masks, ours_scores, answer = _ours(segmenter, embedding, points, labels, box, multimask)
    ref_masks, ref_scores, ref_logits = _reference(
        family, model, processor, points, labels, box, multimask
    )
    _assert_same(ours_masks, ours_scores, ref_masks, ref_scores)
    # the logits themselves, which cannot hide a difference behind an all-full mask
    assert ref_logits.std() > 0.1
    np.testing.assert_allclose(answer.low_res_logits, ref_logits, rtol=1e-4, atol=1e-3)


def test_parity_with_mask_input(family_setup):
    """A refinement click: the previous answer's low-res logits as the mask prompt."""
    family, _, model, processor, segmenter = family_setup
    embedding = segmenter.encode(IMAGE)
    _, _, first = _ours(segmenter, embedding, [[60.0, 40.0]], [1], None, True)
    prior = first.low_res_logits[int(np.argmax(first.scores))]
    points, labels = [[60.0, 40.0], [30.0, 70.0]], [1, 0]
    ours_masks, ours_scores, answer = _ours(
        segmenter, embedding, points, labels, None, False, mask_input=prior
    )
    ref_masks, ref_scores, _ = _reference(
        family, model, processor, points, labels, None, False, mask_input=prior
    )
    _assert_same(ours_masks, ours_scores, ref_masks, ref_scores)
    _, _, without = _ours(segmenter, embedding, points, labels, None, False)
    # the mask prompt is really used (tiny EdgeTAM's effect is small, but never exactly nil)
    assert np.abs(without.low_res_logits - answer.low_res_logits).max() > 0


def test_cache_round_trip_and_engine(family_setup, engine_args, tmp_path):
    """Engine.embed caches every family under its identity; a re-open decodes identically."""
    from annotator.engine import Engine

    family, folder, *_ = family_setup
    args = {k: v for k, v in engine_args.items() if k != "sam_checkpoint"}
    engine = Engine.from_paths(**args, segmenter=family, checkpoint=folder, cache_dir=tmp_path)
    assert engine.sam.family == family and engine.sam.identity.startswith(family + "-")
    image_path = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(IMAGE).save(image_path)
    first = engine.embed(image_path)
    files = list((tmp_path / "embeddings" / "sam").rglob("*.npz"))
    assert len(files) == 1 and family in files[0].parent.parent.name
    again = engine.embed(image_path)  # from the cache
    for name, array in first.sam.arrays.items():
        np.testing.assert_array_equal(array, again.sam.arrays[name])
    a = engine.segment(first, [(60.0, 40.0, True)], top_k=2)
    b = engine.segment(again, [(60.0, 40.0, True)], top_k=2)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert [n for n, _ in a.labels] == [n for n, _ in b.labels] and a.labels  # CLIP half: its own
    assert a.mask.shape == IMAGE.shape[:2]
    refined = engine.segment(
        again,
        [(60.0, 40.0, True), (30.0, 70.0, False)],
        top_k=0,
        mask_input=a.candidates[a.chosen].low_res_logits,
    )
    assert refined.mask.shape == IMAGE.shape[:2]


# ------------------------------------------------------------------------------------- bad input
def _copy_folder(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _one_line(error: AnnotatorError) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


@pytest.fixture(scope="module")
def sam2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sam2-bad-src")
    tiny_hf.save("sam2", folder)
    return folder


def test_bad_safetensors_header(sam2_folder, tmp_path):
    folder = _copy_folder(sam2_folder, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])  # declares a 1 TB header
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert "bad safetensors header" in _one_line(info.value)
    weights.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert "bad safetensors header" in _one_line(info.value)


def _rewrite(folder, edit):
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    edit(tensors)
    save_file(tensors, weights, metadata={"format": "pt"})


def test_wrong_shape_and_missing_keys(sam2_folder, tmp_path):
    folder = _copy_folder(sam2_folder, tmp_path / "shape")
    key = "mask_decoder.iou_token.weight"
    _rewrite(folder, lambda t: t.__setitem__(key, torch.zeros(1, 7)))
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert key in _one_line(info.value) and "shape" in str(info.value)

    folder = _copy_folder(sam2_folder, tmp_path / "missing")
    _rewrite(folder, lambda t: t.pop(key))
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert "missing" in _one_line(info.value) and key in str(info.value)


def test_truncated_weights(sam2_folder, tmp_path):
    folder = _copy_folder(sam2_folder, tmp_path / "trunc")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert "truncated" in _one_line(info.value)


def test_unknown_architecture_and_huge_config(sam2_folder, tmp_path):
    folder = _copy_folder(sam2_folder, tmp_path / "arch")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "llama"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder)
    assert "unknown architecture" in _one_line(info.value)

    folder = _copy_folder(sam2_folder, tmp_path / "huge")
    config = json.loads((folder / "config.json").read_text())
    config["prompt_encoder_config"]["image_size"] = 100_000
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_segmenter(folder, "sam2")
    assert "out of range" in _one_line(info.value)


def test_family_mismatch_both_ways(sam2_folder, tiny_sam_path):
    with pytest.raises(CheckpointError) as info:
        load_segmenter(sam2_folder, "sam")
    assert "sam2" in _one_line(info.value) and "--segmenter sam2" in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_segmenter(tiny_sam_path, "sam2")
    assert "--sam-checkpoint" in _one_line(info.value)
    with pytest.raises(CheckpointError):
        load_segmenter(sam2_folder, "edgetam")


def test_sam1_stride0_pos_embed_is_refused(tmp_path, tiny_sam_path):
    """A 100000x100000 grid declared by a broadcast tensor: refused before any allocation."""
    sd = torch.load(tiny_sam_path, weights_only=True)
    width = sd["image_encoder.pos_embed"].shape[-1]
    sd["image_encoder.pos_embed"] = torch.zeros(1, 1, 1, width).expand(1, 100_000, 100_000, width)
    path = tmp_path / "evil.pth"
    torch.save(sd, path)
    assert path.stat().st_size < 50 << 20
    with pytest.raises(CheckpointError) as info:
        load_segmenter(path, "sam")
    assert "refused" in _one_line(info.value)


def test_edgetam_misspelt_backbone_key_is_repaired(tmp_path):
    """A config saved from transformers' default keeps 'archirecture': we build RepViT anyway."""
    folder = tmp_path / "edgetam"
    tiny_hf.save("edgetam", folder)
    config = json.loads((folder / "config.json").read_text())
    backbone = config["vision_config"]["backbone_config"]
    backbone["archirecture"] = backbone.pop("architecture")
    backbone["architecture"] = "resnet50"
    (folder / "config.json").write_text(json.dumps(config))
    segmenter = load_segmenter(folder, "edgetam")
    trunk = segmenter.model.vision_encoder.backbone.config.architecture
    assert trunk == "repvit_m1"
