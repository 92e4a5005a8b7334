"""Automatic mask proposals: NMS against pycocotools' IoU, upstream filters, the proposal cache."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from annotator.cache import ArrayCache
from annotator.discovery.proposals import (
    ProposalSettings,
    Proposer,
    box_nms,
    mask_iou_matrix,
    mask_nms,
    propose_masks,
)
from annotator.io.masks import mask_box

# Tiny random SAMs predict low IoUs and noisy masks: accept every candidate, keep NMS light.
LOOSE = ProposalSettings(
    points_per_side=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0, nms_thresh=0.9
)


def coco_iou(masks: list[np.ndarray]) -> np.ndarray:
    """Independent IoU matrix from pycocotools."""
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64)


def greedy_reference(masks: list[np.ndarray], scores: list[float], threshold: float) -> list[int]:
    iou = coco_iou(masks)
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if all(iou[i, j] <= threshold for j in kept):
            kept.append(int(i))
    return kept


def test_duplicate_masks_in_one_out():
    rng = np.random.default_rng(0)
    a = np.zeros((40, 50), dtype=bool)
    a[5:30, 10:40] = True
    b = np.zeros((40, 50), dtype=bool)
    b[20:38, 0:12] = True
    noisy = a.copy()
    noisy[5, 10] = False  # IoU with a just under 1
    masks = [a, b, a.copy(), noisy, rng.random((40, 50)) > 2]  # the last one is empty
    scores = [0.9, 0.8, 0.95, 0.7, 0.1]
    kept = mask_nms(masks, scores, 0.7)
    assert kept == [2, 1, 4]  # the best copy of a, then b, then the empty mask (IoU 0)
    assert kept == greedy_reference(masks, scores, 0.7)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 8),
    threshold=st.floats(0.05, 0.95),
)
def test_mask_nms_matches_pycocotools_greedy(seed, count, threshold):
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        m = np.zeros((24, 24), dtype=bool)
        x0, y0 = rng.integers(0, 16, 2)
        x1, y1 = x0 + rng.integers(1, 9), y0 + rng.integers(1, 9)
        m[y0:y1, x0:x1] = True
        masks.append(m)
    masks += masks[: rng.integers(0, count + 1)]  # exact duplicates
    scores = rng.random(len(masks)).tolist()
    np.testing.assert_allclose(mask_iou_matrix(masks, masks), coco_iou(masks), atol=1e-9)
    assert mask_nms(masks, scores, threshold) == greedy_reference(masks, scores, threshold)


def test_box_nms_drops_overlapping_box():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=np.float64)
    keep = box_nms(boxes, np.array([0.5, 0.9, 0.3]), 0.7)
    assert keep.tolist() == [1, 2]  # IoU([0,0,10,10], [1,1,10,10]) = 0.81


@pytest.fixture(scope="module")
def embedding(engine, photo):
    return engine.embed(photo)


def test_proposals_on_a_photo(engine, embedding):
    found = propose_masks(engine.sam, embedding, LOOSE)
    assert found, "no proposals"
    height, width = embedding.size
    scores = [p.score for p in found]
    assert scores == sorted(scores, reverse=True)
    for p in found:
        assert p.mask.shape == (height, width) and p.mask.dtype == np.bool_
        assert p.box == tuple(float(v) for v in mask_box(p.mask))
        assert 0 <= p.point[0] <= width and 0 <= p.point[1] <= height
    # no two survivors are duplicates by the NMS threshold
    iou = mask_iou_matrix([p.mask for p in found], [p.mask for p in found])
    np.fill_diagonal(iou, 0)
    assert iou.max() <= LOOSE.nms_thresh
    # each mask is what a click on its grid point gives with SAM's candidate of that score
    first = found[0]
    masks = engine.sam.decode(
        embedding.sam, np.array([first.point]), np.array([1]), None, multimask=True
    )
    pick = int(np.argmin(np.abs(masks.scores - first.score)))
    assert masks.scores[pick] == pytest.approx(first.score, abs=1e-5)
    assert np.array_equal(engine.sam.upscale(embedding.sam, masks.low_res_logits[pick]), first.mask)


def test_thresholds_filter_like_upstream(engine, embedding):
    everything = propose_masks(engine.sam, embedding, LOOSE)
    cut = float(np.median([p.score for p in everything]))
    strict = ProposalSettings(**{**LOOSE.__dict__, "pred_iou_thresh": cut})
    kept = propose_masks(engine.sam, embedding, strict)
    assert all(p.score > cut for p in kept)
    assert len(kept) < len(everything)
    none = ProposalSettings(**{**LOOSE.__dict__, "stability_score_thresh": 1.01})
    assert propose_masks(engine.sam, embedding, none) == []


def test_proposer_caches_in_memory_and_on_disk(engine, embedding, tmp_path):
    disk = ArrayCache(tmp_path)
    first = Proposer(engine.sam, LOOSE, disk=disk)
    found = first(embedding)
    assert first(embedding) is found and first.computed == 1
    assert disk.contains("proposals", first.model_id, embedding.image_hash)
    second = Proposer(engine.sam, LOOSE, disk=disk)
    again = second(embedding)
    assert second.computed == 0
    assert len(again) == len(found)
    for a, b in zip(found, again, strict=True):
        assert np.array_equal(a.mask, b.mask)
        assert (a.box, a.score, a.stability, a.point) == (b.box, b.score, b.stability, b.point)
    other = Proposer(engine.sam, ProposalSettings(points_per_side=3), disk=disk)
    assert other.model_id != first.model_id  # settings are part of the key


def test_an_image_without_proposals_is_cached_as_empty(engine, embedding, tmp_path):
    # issue 14: the disk-cache write of an empty proposal list crashed (reshape of size 0)
    disk = ArrayCache(tmp_path)
    none = ProposalSettings(**{**LOOSE.__dict__, "stability_score_thresh": 1.01})
    first = Proposer(engine.sam, none, disk=disk)
    assert first(embedding) == []
    assert disk.contains("proposals", first.model_id, embedding.image_hash)
    second = Proposer(engine.sam, none, disk=disk)
    assert second(embedding) == [] and second.computed == 0
