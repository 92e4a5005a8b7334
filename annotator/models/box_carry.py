"""Tracking for families without a video memory (SAM 1, HQ-SAM, image-only SAM 2.1 / EdgeTAM
folders): each frame is segmented on its own, prompted with the box of the object's mask on the
previous frame (in the direction of travel); the prompted frames use the user's prompts. An object
whose mask comes back empty is lost from then on in that direction. The score of a mask is the
segmenter's predicted IoU, clipped to [0, 1]. Same `track` / `checkpoint` interface as
`VideoTracker`; a resumed run restarts each pass from the last stored box."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from annotator.io.masks import mask_box
from annotator.models.tracking import check_track_request, load_state, save_state
from annotator.track_prompts import FrameMasks, ObjectPrompt


def _box(mask: np.ndarray) -> np.ndarray | None:
    """The mask's box as the prompt array SAM takes (XYXY, `io.masks.mask_box`), or None."""
    box = mask_box(mask)
    return None if box is None else np.array(box, dtype=np.float64)


class BoxCarryTracker:
    """Per-frame prompts carried from the previous frame's mask box (module docstring)."""

    mode = "box-carry"

    def __init__(self, segmenter) -> None:
        self.segmenter = segmenter
        self.identity = f"{segmenter.identity}-boxcarry"
        self.family = segmenter.family

    def _segment(self, image: np.ndarray, points, labels, box) -> tuple[np.ndarray, float]:
        embedding = self.segmenter.encode(image)
        masks = self.segmenter.decode(embedding, points, labels, box, False)
        mask = self.segmenter.upscale(embedding, masks.low_res_logits[0])
        return mask, float(np.clip(masks.scores[0], 0.0, 1.0))

    def track(
        self,
        count: int,
        size: tuple[int, int],
        frame: Callable[[int], np.ndarray],
        prompts: list[ObjectPrompt],
        direction: str = "forward",
        state: dict | None = None,
    ) -> Iterator[FrameMasks]:
        check_track_request(direction, prompts)
        by_frame: dict[int, dict[int, ObjectPrompt]] = {}
        for p in prompts:
            by_frame.setdefault(p.frame, {})[p.object_id] = p
        objects = sorted({p.object_id for p in prompts})
        frames = sorted(by_frame)
        passes = {
            "forward": [(frames[0], 1)],
            "backward": [(frames[-1], -1)],
            "both": [(frames[0], 1), (frames[0], -1)],
        }[direction]
        resume_pass = -1 if state is None else int(state["pass"])
        for number, (start, step) in enumerate(passes):
            if number < resume_pass:
                continue
            boxes: dict[int, np.ndarray | None] = dict.fromkeys(objects)
            f = start
            if number == resume_pass:
                boxes = {
                    int(k): (None if v is None else np.asarray(v))
                    for k, v in state["boxes"].items()
                }
                f = int(state["frame"]) + step
            while 0 <= f < count:
                result = FrameMasks(f)
                image = None
                for o in objects:
                    prompt = by_frame.get(f, {}).get(o)
                    if prompt is None and boxes.get(o) is None:
                        continue  # not started yet, or lost
                    image = frame(f) if image is None else image
                    if prompt is not None:
                        mask, score = self._segment(image, prompt.points, prompt.labels, prompt.box)
                    else:
                        mask, score = self._segment(image, None, None, boxes[o])
                    boxes[o] = _box(mask)
                    result.masks[o], result.scores[o] = mask, score
                self.last = (
                    number,
                    f,
                    {k: (None if v is None else v.tolist()) for k, v in boxes.items()},
                )
                if not (number > 0 and f == start):
                    yield result
                f += step

    def checkpoint(self) -> dict:
        number, frame, boxes = self.last
        return {"pass": number, "frame": frame, "boxes": boxes}

    @staticmethod
    def save_state(path: Path, state: dict) -> None:
        save_state(path, state)

    @staticmethod
    def load_state(path: Path) -> dict | None:
        return load_state(path)
