"""Refine box-only annotations into masks: each box is SAM's prompt, each mask a pending proposal.

Detection datasets (COCO / YOLO / VOC boxes without segmentations) import as box-only annotations
(`store.extras.boxes`). `refine_boxes` encodes each of their images once, asks the segmenter for the
single mask a box prompt gives (`Engine.segment` with a box alone is single-mask output, as SAM
recommends for boxes) and stores it as a pending proposal (`ProposalStore`, source `REFINE`) for
the box it would replace; nothing changes until a reviewer accepts it (`annotator review`, the
window's Review panel). Accepting gives the box its mask: the annotation keeps the box's id,
category, score and kept fields (`store.extras.mask_for_box`), and undo brings the box back.

The mask is cut to the box by default: a detection box is the annotated extent of its object, so a
pixel outside it contradicts the dataset (SAM's leaks into the background), and a reviewer accepting
by score should not have to look for that.

Idempotent and crash-safe as auto-label: each box is its own run (`box_run`), one image's proposals
and the boxes' done marks are one transaction, so a stop at any moment keeps the images finished, a
rerun skips every box already refined (pending, rejected, or accepted: then the box is gone), and
never duplicates a proposal. A box whose mask came out empty gets no mark: a rerun (e.g. with
another model) tries it again. Headless: no argparse, no Qt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.errors import AnnotatorError
from annotator.store import extras
from annotator.store.extras import Box
from annotator.store.project import Project
from annotator.store.proposals import REFINE, NewProposal, ProposalStore, box_run

Progress = Callable[[int, int, str], None]  # done, total, file name


@dataclass(frozen=True)
class BoxMask:
    """The segmenter's answer for one box (mask None: empty or refused, nothing to propose)."""

    box: Box
    mask: np.ndarray | None
    score: float
    error: str = ""


@dataclass
class RefineReport:
    """What a run did: boxes found / refined now / skipped as done / empty; images encoded."""

    boxes: int = 0
    proposals: int = 0
    skipped: int = 0
    empty: int = 0
    images: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def xyxy(box: Box) -> tuple[float, float, float, float]:
    """The box as SAM's prompt (XYXY pixels) from the store's XYWH."""
    x, y, w, h = box.bbox
    return (x, y, x + w, y + h)


def clip_to_box(mask: np.ndarray, box: Box) -> np.ndarray:
    """The mask without its pixels outside the box (a pixel counts when it overlaps the box)."""
    x0, y0, x1, y1 = xyxy(box)
    h, w = mask.shape
    c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    out = np.zeros_like(mask, dtype=bool)
    if c1 > c0 and r1 > r0:
        out[r0:r1, c0:c1] = mask[r0:r1, c0:c1]
    return out


def waiting_boxes(
    store: ProposalStore, image_ids: Sequence[int] | None = None
) -> dict[int, list[Box]]:
    """Box-only annotations not refined yet, by image id (in image then box id order)."""
    wanted = None if image_ids is None else set(image_ids)
    done = store.refined_boxes()
    out: dict[int, list[Box]] = {}
    for b in extras.boxes(store.project):
        if (wanted is None or b.image_id in wanted) and b.id not in done:
            out.setdefault(b.image_id, []).append(b)
    return dict(sorted(out.items()))


def segment_boxes(
    engine: Any, embedding: Any, boxes: Sequence[Box], clip: bool = True
) -> list[BoxMask]:
    """One `BoxMask` per box from one image's embedding (no labels: top_k 0, no text index). A box
    the segmenter refuses (under a pixel wide) comes back with its error and no mask."""
    out = []
    for b in boxes:
        try:
            proposal = engine.segment(embedding, box=xyxy(b), top_k=0)
        except AnnotatorError as error:
            out.append(BoxMask(b, None, 0.0, f"box {b.id}: {error}"))
            continue
        mask = np.asarray(proposal.mask, dtype=bool)
        if clip:
            mask = clip_to_box(mask, b)
        out.append(BoxMask(b, mask if mask.any() else None, float(proposal.score)))
    return out


def store_image(store: ProposalStore, image_id: int, found: Sequence[BoxMask]) -> tuple[int, int]:
    """One image's masks as pending proposals, with each box's done mark, in ONE transaction.

    Returns (proposals stored, boxes skipped because they were refined meanwhile)."""
    stored = skipped = 0
    with store.project.transaction():
        for m in found:
            if m.mask is None:
                continue  # no mark: a rerun tries this box again
            new = NewProposal(mask=m.mask, category=m.box.category, score=m.score)
            n = store.finish_image(image_id, box_run(m.box.id), REFINE, [new])
            if n is None:
                skipped += 1
            else:
                stored += n
    return stored, skipped


def refine_boxes(
    project: Project,
    engine: Any,
    image_ids: Sequence[int] | None = None,
    clip: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RefineReport:
    """Pending mask proposals for the project's box-only annotations (or those of `image_ids`).

    `should_stop` is polled between images (the window's cancel); Ctrl-C may come anywhere and
    leaves the same consistent state: the image in progress is not stored.
    """
    if project.folder is None:
        raise AnnotatorError(f"{project.path}: the project does not know its image folder")
    store = ProposalStore(project)
    every = extras.boxes(project)
    wanted = None if image_ids is None else set(image_ids)
    todo = waiting_boxes(store, image_ids)
    report = RefineReport(boxes=sum(wanted is None or b.image_id in wanted for b in every))
    report.skipped = report.boxes - sum(len(v) for v in todo.values())
    start = time.perf_counter()
    for done, (image_id, boxes) in enumerate(todo.items(), 1):
        if should_stop is not None and should_stop():
            break
        name = project.image(image_id).file_name
        try:
            embedding = engine.embed(project.folder / name, clip=False)  # masks only: no labels
            found = segment_boxes(engine, embedding, boxes, clip)
        except AnnotatorError as error:
            report.failed.append(str(error))
        else:
            stored, skipped = store_image(store, image_id, found)
            report.images += 1
            report.proposals += stored
            report.skipped += skipped
            report.empty += sum(m.mask is None and not m.error for m in found)
            report.failed.extend(m.error for m in found if m.error)
        if progress is not None:
            progress(done, len(todo), name)
    report.seconds = time.perf_counter() - start
    return report


__all__ = [
    "BoxMask",
    "RefineReport",
    "clip_to_box",
    "refine_boxes",
    "segment_boxes",
    "store_image",
    "waiting_boxes",
    "xyxy",
]
