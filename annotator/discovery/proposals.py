"""Automatic mask proposals: SAM prompted by a grid of points, through the cached image embedding.

The recipe is upstream `SamAutomaticMaskGenerator` (single crop): every grid point is a positive
prompt with three candidate masks; candidates below a predicted-IoU or a stability threshold are
dropped; duplicates are removed by box NMS (torchvision). Two differences, both for speed on a CPU:
the point batches go straight through the prompt encoder and mask decoder with the image embedding
already computed (no `SamPredictor.set_image`), and the filters and the NMS read the low-resolution
logits (restricted to the image's part of SAM's padded square), so only the survivors are upscaled to
full-size masks. A final mask-IoU NMS on the full masks removes duplicates that box NMS lets through.

Proposals are the expensive part of text search: `Proposer` keeps them in memory (a small LRU by
image hash) and, with an `ArrayCache`, on disk (kind "proposals") as bit-packed masks.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from segment_anything.utils.amg import (
    batch_iterator,
    batched_mask_to_box,
    build_point_grid,
    calculate_stability_score,
)
from torchvision.ops import nms as _torch_nms

from annotator.cache import ArrayCache
from annotator.engine import Box, ImageEmbedding
from annotator.io.masks import mask_box, mask_iou_matrix
from annotator.models.sam import SamModel
from annotator.models.segmenter import Segmenter
from annotator.preempt import yield_point


@dataclass(frozen=True)
class ProposalSettings:
    """The knobs of upstream `SamAutomaticMaskGenerator` that apply to one crop (same defaults,
    except 16x16 points instead of 32x32: a quarter of the decoder work)."""

    points_per_side: int = 16
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    nms_thresh: float = 0.7  # box IoU for torchvision NMS, then mask IoU on the survivors
    min_area: int = 0  # full-image pixels; smaller masks are dropped
    max_proposals: int = 200  # best by predicted IoU after NMS

    @property
    def key(self) -> str:
        """A short stable id of the settings (part of the cache key)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class MaskProposal:
    """One automatic mask. `box` is XYXY in image pixels with exclusive ends (x1 = last column + 1)."""

    mask: np.ndarray  # bool (H, W)
    box: Box
    score: float  # SAM's predicted IoU
    stability: float
    point: tuple[float, float]  # the grid point that produced it (image pixels)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


# ----------------------------------------------------------------------------------------- NMS
def mask_nms(
    masks: Sequence[np.ndarray] | np.ndarray, scores: Sequence[float], iou_threshold: float
) -> list[int]:
    """Greedy NMS on mask IoU: indices kept, best score first. A mask whose IoU with an already
    kept one exceeds `iou_threshold` is dropped (duplicates in -> one out)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    flat = [np.asarray(m, dtype=bool).reshape(-1) for m in masks]
    areas = [int(np.count_nonzero(m)) for m in flat]
    kept: list[int] = []
    for i in order:
        duplicate = False
        for j in kept:
            inter = int(np.count_nonzero(flat[i] & flat[j]))
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union > iou_threshold:
                duplicate = True
                break
        if not duplicate:
            kept.append(int(i))
    return kept


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """torchvision's NMS on XYXY boxes: indices kept, best score first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    keep = _torch_nms(
        torch.as_tensor(np.asarray(boxes), dtype=torch.float32),
        torch.as_tensor(np.asarray(scores), dtype=torch.float32),
        float(iou_threshold),
    )
    return keep.numpy().astype(np.int64)


# ----------------------------------------------------------------------------------- proposing
def propose_masks(
    sam: Segmenter, embedding: ImageEmbedding, settings: ProposalSettings | None = None
) -> list[MaskProposal]:
    """Automatic masks of one image, best predicted IoU first (no caching; see `Proposer`).

    SAM 1 decodes the whole point grid in batches straight through its modules, as upstream
    `SamAutomaticMaskGenerator` does; the other families go through their `decode` one point at a
    time with the same thresholds (stability measured on their low-resolution logits)."""
    settings = settings or ProposalSettings()
    if not isinstance(sam, SamModel):
        return _propose_generic(sam, embedding, settings)
    height, width = embedding.sam.original_size
    input_h, input_w = embedding.sam.input_size
    side = sam.low_res_size
    scale = side / sam.arch.img_size  # low-res pixels per padded-input pixel
    valid_h, valid_w = input_h * scale, input_w * scale  # the image's part of the low-res square
    crop_h, crop_w = min(side, math.ceil(valid_h)), min(side, math.ceil(valid_w))
    to_image = np.array([width / valid_w, height / valid_h] * 2, dtype=np.float64)

    grid = build_point_grid(settings.points_per_side) * np.array([width, height], dtype=np.float64)
    features = sam._features(embedding.sam)
    threshold = sam.model.mask_threshold
    kept_logits, kept_scores, kept_stability, kept_boxes, kept_points = [], [], [], [], []
    with torch.inference_mode():
        for (batch,) in batch_iterator(settings.points_per_batch, grid):
            yield_point()  # a click in the window goes first (annotator.preempt)
            coords = sam.transform.apply_coords(batch, (height, width))
            coords_t = torch.as_tensor(coords, dtype=torch.float, device=sam.device)[:, None, :]
            labels_t = torch.ones(len(batch), 1, dtype=torch.int, device=sam.device)
            sparse, dense = sam.model.prompt_encoder(
                points=(coords_t, labels_t), boxes=None, masks=None
            )
            low_res, iou = sam.model.mask_decoder(
                image_embeddings=features,
                image_pe=sam._dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            n = low_res.shape[1]
            logits = low_res.flatten(0, 1)[:, :crop_h, :crop_w]  # (B*n, h, w)
            scores = iou.flatten()
            points = np.repeat(batch, n, axis=0)
            keep = scores > settings.pred_iou_thresh
            stability = calculate_stability_score(
                logits, threshold, settings.stability_score_offset
            )
            keep &= stability >= settings.stability_score_thresh
            boxes = batched_mask_to_box(logits > threshold).double()
            nonempty = (logits > threshold).flatten(1).any(1)
            keep &= nonempty
            if not keep.any():
                continue
            idx = keep.nonzero().flatten()
            # exclusive right/bottom edges, then image pixels
            b = boxes[idx].cpu().numpy() + np.array([0.0, 0.0, 1.0, 1.0])
            kept_boxes.append(b * to_image)
            kept_logits.append(low_res.flatten(0, 1)[idx].cpu().numpy())
            kept_scores.append(scores[idx].cpu().numpy())
            kept_stability.append(stability[idx].cpu().numpy())
            kept_points.append(points[idx.cpu().numpy()])
    if not kept_scores:
        return []
    all_scores = np.concatenate(kept_scores)
    all_boxes = np.concatenate(kept_boxes)
    order = box_nms(all_boxes, all_scores, settings.nms_thresh)
    logits_all = np.concatenate(kept_logits)
    stability_all = np.concatenate(kept_stability)
    points_all = np.concatenate(kept_points)

    return _finish_proposals(
        sam, embedding, settings, order, logits_all, all_scores, stability_all, points_all
    )


def _propose_generic(
    sam: Segmenter, embedding: ImageEmbedding, settings: ProposalSettings
) -> list[MaskProposal]:
    height, width = embedding.sam.original_size
    grid = build_point_grid(settings.points_per_side) * np.array([width, height], dtype=np.float64)
    label = np.ones(1, dtype=np.int64)
    kept_logits, kept_scores, kept_stability, kept_boxes, kept_points = [], [], [], [], []
    for point in grid:
        yield_point()
        masks = sam.decode(embedding.sam, point[None, :], label, None, True)
        for logits, score in zip(masks.low_res_logits, masks.scores, strict=True):
            if float(score) <= settings.pred_iou_thresh:
                continue
            t = torch.as_tensor(logits[None], dtype=torch.float32)
            stability = float(calculate_stability_score(t, 0.0, settings.stability_score_offset)[0])
            if stability < settings.stability_score_thresh:
                continue
            mask = np.asarray(sam.upscale(embedding.sam, logits), dtype=bool)
            box = mask_box(mask)
            if box is None:
                continue
            kept_boxes.append(np.asarray(box, dtype=np.float64))
            kept_logits.append(np.asarray(logits, dtype=np.float32))
            kept_scores.append(float(score))
            kept_stability.append(stability)
            kept_points.append(point)
    if not kept_scores:
        return []
    scores = np.asarray(kept_scores, dtype=np.float32)
    order = box_nms(np.stack(kept_boxes), scores, settings.nms_thresh)
    return _finish_proposals(
        sam,
        embedding,
        settings,
        order,
        np.stack(kept_logits),
        scores,
        np.asarray(kept_stability, dtype=np.float32),
        np.stack(kept_points),
    )


def _finish_proposals(
    sam, embedding, settings, order, logits_all, all_scores, stability_all, points_all
) -> list[MaskProposal]:
    """Upscale the survivors of box NMS, drop tiny ones, then mask NMS (all families)."""
    proposals: list[MaskProposal] = []
    for i in order[: settings.max_proposals * 2]:  # mask NMS below may drop a few more
        mask = sam.upscale(embedding.sam, logits_all[i])
        box = mask_box(mask)
        if box is None or int(np.count_nonzero(mask)) < max(settings.min_area, 1):
            continue
        proposals.append(
            MaskProposal(
                mask=mask,
                box=tuple(float(v) for v in box),
                score=float(all_scores[i]),
                stability=float(stability_all[i]),
                point=(float(points_all[i][0]), float(points_all[i][1])),
            )
        )
    keep = mask_nms([p.mask for p in proposals], [p.score for p in proposals], settings.nms_thresh)
    return [proposals[i] for i in keep][: settings.max_proposals]


# ------------------------------------------------------------------------------------- caching
def _to_arrays(proposals: list[MaskProposal], size: tuple[int, int]) -> dict[str, np.ndarray]:
    # the row length comes from the image size, not from the masks: an image without proposals
    # (nothing survived the filters) is an empty (0, H*W) array, stored like any other result
    pixels = int(size[0]) * int(size[1])
    flat = np.zeros((len(proposals), pixels), dtype=bool)
    for i, p in enumerate(proposals):
        flat[i] = p.mask.reshape(-1)
    return {
        "size": np.asarray(size, dtype=np.int64),
        "packed": np.packbits(flat, axis=1),
        "boxes": np.asarray([p.box for p in proposals], dtype=np.float64).reshape(-1, 4),
        "scores": np.asarray([p.score for p in proposals], dtype=np.float64),
        "stability": np.asarray([p.stability for p in proposals], dtype=np.float64),
        "points": np.asarray([p.point for p in proposals], dtype=np.float64).reshape(-1, 2),
    }


def _from_arrays(arrays: dict[str, np.ndarray]) -> list[MaskProposal]:
    height, width = (int(v) for v in arrays["size"])
    packed = arrays["packed"]
    out = []
    for i in range(len(arrays["scores"])):
        mask = np.unpackbits(packed[i], count=height * width).astype(bool).reshape(height, width)
        out.append(
            MaskProposal(
                mask=mask,
                box=tuple(float(v) for v in arrays["boxes"][i]),
                score=float(arrays["scores"][i]),
                stability=float(arrays["stability"][i]),
                point=(float(arrays["points"][i][0]), float(arrays["points"][i][1])),
            )
        )
    return out


class Proposer:
    """`propose_masks` with a cache in front: in memory (the last `memory_items` images) and, with
    `disk`, on disk keyed by image hash, SAM identity and settings. Thread-safe."""

    def __init__(
        self,
        sam: SamModel,
        settings: ProposalSettings | None = None,
        disk: ArrayCache | None = None,
        memory_items: int = 8,
    ) -> None:
        self.sam = sam
        self.settings = settings or ProposalSettings()
        self.disk = disk
        self.memory_items = memory_items
        self.computed = 0  # images whose proposals were computed (not cached): tests, diagnostics
        self._memory: OrderedDict[str, list[MaskProposal]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """What the proposals depend on: the SAM weights and the settings."""
        return f"{self.sam.identity}|amg-{self.settings.key}"

    def __call__(self, embedding: ImageEmbedding) -> list[MaskProposal]:
        """The image's proposals, best first; computed once per image."""
        key = embedding.image_hash
        with self._lock:
            if key and key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        found = None
        if key and self.disk is not None:
            arrays = self.disk.load("proposals", self.model_id, key)
            if arrays is not None and tuple(int(v) for v in arrays["size"]) == embedding.size:
                found = _from_arrays(arrays)
        if found is None:
            found = propose_masks(self.sam, embedding, self.settings)
            self.computed += 1
            if key and self.disk is not None:
                self.disk.save("proposals", self.model_id, key, _to_arrays(found, embedding.size))
        if key:
            with self._lock:
                self._memory[key] = found
                while len(self._memory) > self.memory_items:
                    self._memory.popitem(last=False)
        return found


__all__ = [
    "MaskProposal",
    "ProposalSettings",
    "Proposer",
    "box_nms",
    "mask_iou_matrix",
    "mask_nms",
    "propose_masks",
]
