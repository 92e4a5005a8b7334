"""SAM 3 video (`--by sam3` on a sequence, issue 25): transformers' own `Sam3VideoModel` and
`Sam3VideoProcessor`, driven as their streaming example drives them: a session without a video
(`init_video_session`), the text prompts (`add_text_prompt`, one per class), then each frame
processed on its own (the processor's video processor on that one frame, the tensor the
whole-video session would hold -> `model(session, frame=..., frame_idx=...)` ->
`postprocess_outputs`), so frames are decoded one at a time from the sequence. The model detects
every instance of each prompt and keeps object ids across frames (its own tracker and
association); nothing of the model is re-implemented (parity with the whole-video reference
pipeline: tests/models/test_sam3_video.py).

The session keeps each processed frame's pixels; frames older than the tracker's memory window
(`num_maskmem` + 1) are dropped after each step and every frame is added under its explicit index,
so the pixels held do not grow with the clip (the parity test runs past the window: a read of a
dropped frame would fail it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import CheckpointError
from annotator.models.sam3 import _stamp, sam3_cache_dir


@dataclass
class Sam3Frame:
    """One frame's objects: SAM 3 object id -> bool (H, W) mask, score, prompt text."""

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)


class Sam3VideoTracker:
    """SAM 3 video on one device: every instance of text prompts through a frame stream."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", identity: str = "") -> None:
        self.model = model.eval()
        self.processor = processor
        self.device = device
        self.identity = identity or "sam3-video"
        self.session: Any = None

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> Sam3VideoTracker:
        """Model and processor from a `save_pretrained` folder (default: the downloaded
        `facebook/sam3`, whose checkpoint holds the video model). One line when it is not one."""
        folder = Path(path) if path is not None else sam3_cache_dir()
        if not (folder / "config.json").is_file():
            hint = "" if path is not None else " (run `annotator weights download sam3`)"
            raise CheckpointError(f"{folder}: no SAM 3 model here{hint}")
        from transformers import Sam3VideoModel, Sam3VideoProcessor

        try:
            model = Sam3VideoModel.from_pretrained(folder).to(device)
            processor = Sam3VideoProcessor.from_pretrained(folder)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{folder}: not a SAM 3 video model ({first})") from None
        return cls(model, processor, device, f"sam3-video:{folder.resolve()}:{_stamp(folder)}")

    def track(
        self,
        count: int,
        frame: Callable[[int], np.ndarray],
        prompts: list[str],
        start: int = 0,
    ) -> Iterator[Sam3Frame]:
        """Frames `start`..`count`-1 (RGB from `frame(i)`), every instance of each prompt."""
        import torch

        session = self.processor.init_video_session(
            inference_device=self.device, processing_device="cpu", video_storage_device="cpu"
        )
        self.session = session  # the last session, for inspection (the frames it holds)
        self.processor.add_text_prompt(session, list(prompts))
        keep = int(getattr(self.model.tracker_model.config, "num_maskmem", 7)) + 1
        for i in range(start, count):
            rgb = np.ascontiguousarray(frame(i))
            pixels = self.processor.video_processor(
                videos=rgb[None], device="cpu", return_tensors="pt"
            ).pixel_values_videos[0][0]  # the video processor on one frame: the reference's tensor
            size = [[int(rgb.shape[0]), int(rgb.shape[1])]]
            with torch.inference_mode():
                out = self.model(inference_session=session, frame=pixels, frame_idx=i - start)
                post = self.processor.postprocess_outputs(session, out, original_sizes=size)
            yield _frame(i, post)
            _forget_frames(session, out.frame_idx - keep)


def _frame(index: int, post: dict) -> Sam3Frame:
    by_prompt = {
        int(o): text for text, ids in (post.get("prompt_to_obj_ids") or {}).items() for o in ids
    }
    result = Sam3Frame(index)
    ids = [int(o) for o in post["object_ids"].tolist()]
    masks = post["masks"].cpu().numpy().astype(bool)
    scores = post["scores"].float().cpu().numpy()
    for k, o in enumerate(ids):
        result.masks[o] = masks[k]
        result.scores[o] = float(scores[k])
        result.prompts[o] = by_prompt.get(o, "")
    return result


def _forget_frames(session: Any, before: int) -> None:
    """Drop the stored pixels of frames before `before` (the streamed session keeps them all)."""
    frames = getattr(session, "processed_frames", None)
    if isinstance(frames, dict):
        for index in [i for i in frames if i < before]:
            del frames[index]


__all__ = ["Sam3Frame", "Sam3VideoTracker"]
