"""`autolabel` on a sequence (issue 25), the CPU path: the image autolabel's proposals on one
frame (the first by default), then each proposal followed through the sequence as a track with
its class as category, every frame's mask stored pending (app/tracking.py's `run_track`: resumable,
scored by the object score's sigmoid, accepted per track or by `review --accept-above`).

A proposal becomes a tracker prompt as a click would: its mask's box plus one positive point at
the mask's most interior pixel (the farthest from its edge), so a ring or an L-shape is not
prompted on the background. An object id is reused when an earlier run gave the same prompt on
the same frame (a rerun resumes the same tracks), else the next free one of the sequence (manual
tracks are never merged into). Headless; the labeler and the tracker are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from annotator.app.tracking import ObjectRequest, run_track
from annotator.errors import AnnotatorError, PromptError
from annotator.io.masks import mask_box
from annotator.io.sequences import Sequence as FrameSequence
from annotator.store.project import Project
from annotator.store.tracks import TrackStore


def mask_request(object_id: int, frame: int, mask: np.ndarray, category: str) -> ObjectRequest:
    """The tracker prompt of a proposal's mask: its box and its most interior pixel."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("an empty mask has no prompt")
    inside = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    x0, y0, x1, y1 = box
    return ObjectRequest(
        object_id, frame, [(float(x), float(y), True)], (x0, y0, x1 - 1, y1 - 1), category
    )


def proposal_requests(
    store: TrackStore, sequence_id: int, frame: int, proposals: Sequence
) -> list[ObjectRequest]:
    """One request per proposal (mask, category, score), object ids as the module says."""
    tracks = store.tracks(sequence_id)
    taken = {t.object_id for t in tracks}
    next_id = max(taken, default=0) + 1
    out = []
    for p in proposals:
        request = mask_request(0, frame, np.asarray(p.mask, dtype=bool), p.category)
        prompt = request.prompt().to_json()
        same = [t.object_id for t in tracks if t.prompts.get(str(frame)) == prompt]
        if same:
            request.object_id = same[0]
        else:
            request.object_id, next_id = next_id, next_id + 1
        out.append(request)
    return out


def autolabel_sequence(
    project: Project,
    sequence: FrameSequence,
    labeler,
    tracker,
    classes: Sequence[str],
    state_dir: Path,
    frame: int = 0,
    direction: str = "forward",
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Proposals on `frame` for `classes`, each tracked through the sequence; the JSON summary
    (`run_track`'s, plus `proposals` and the per-object `classes`)."""
    classes = list(classes)
    if not classes:
        raise AnnotatorError("no classes to label: give --classes NAME,NAME")
    if not 0 <= frame < len(sequence):
        raise PromptError(f"--frame {frame} is outside the sequence's {len(sequence)} frames")
    found = [p for p in labeler.label_image(sequence.frame(frame), classes) if p.mask.any()]
    store = TrackStore(project)
    with project.transaction():
        sequence_id = store.add_sequence(sequence)
    summary: dict = {"proposals": len(found), "classes": {}}
    if not found:
        summary.update(sequence=sequence_id, frames=0, objects=[], pending=0)
        return summary
    requests = proposal_requests(store, sequence_id, frame, found)
    summary["classes"] = {str(r.object_id): r.category for r in requests}
    summary.update(
        run_track(
            project,
            sequence,
            tracker,
            requests,
            state_dir,
            direction,
            progress=progress,
            cancelled=cancelled,
        )  # fmt: skip
    )
    return summary


__all__ = ["autolabel_sequence", "mask_request", "proposal_requests"]
