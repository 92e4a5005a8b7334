"""Tracking objects through a sequence with a family's video memory (SAM 2.1, EdgeTAM), streaming frames.

The model, the memory and every tensor operation are transformers' own (`Sam2VideoModel`,
`EdgeTamVideoModel`, `Sam2VideoInferenceSession`, `Sam2VideoProcessor`); what differs from their
reference pipeline (`init_video_session(video)` -> `add_inputs_to_inference_session` ->
`model(session, frame_idx)` -> `propagate_in_video_iterator` -> `post_process_masks`) is memory:

- the reference session holds the whole video as float tensors (1024x1024x3x4 bytes = 12 MB a frame
  for the official models: 3.6 GB for 300 frames); ours gets a `LazyFrames` mapping that preprocesses
  a frame when the model asks for it (the video processor on that one frame, the same operations)
  and keeps the last two;
- the reference keeps every frame's outputs (the memory features, object pointer, low- and
  high-resolution masks: about 5 MB a frame and object at 1024 px); ours drops the high-resolution
  masks once the frame's memory is encoded (nothing reads them again) and the outputs of frames the
  model can no longer reach: it reads the `num_maskmem - 1` frames before the current one and the
  object pointers of `max_object_pointers_in_encoder - 1` frames before it, plus the conditioning
  frames; so outputs within `window` frames of the current frame or of a conditioning frame (which
  the backward pass of `both` reads) are kept and the rest removed.

Both are exact: tests/models/test_track_parity.py checks the masks equal the reference pipeline's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from annotator.atomic import atomic_write_with
from annotator.errors import CheckpointError, PromptError
from annotator.models.hf_checkpoint import load_model, read_config
from annotator.models.hf_segmenter import check_prompts, folder_digest, resolve_device
from annotator.track_prompts import FrameMasks, ObjectPrompt

VIDEO_MODEL_TYPES = {"sam2": "sam2_video", "edgetam": "edgetam_video"}
DIRECTIONS = ("forward", "backward", "both")


def check_track_request(direction: str, prompts: list[ObjectPrompt]) -> None:
    """What every tracker refuses before it touches a frame: an unknown direction, no prompt."""
    if direction not in DIRECTIONS:
        raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if not prompts:
        raise PromptError("tracking needs a click or a box on a frame")


class LazyFrames:
    """What the inference session takes as `processed_frames`, made on demand: frame i is
    `preprocess(load(i))`, and only the last `keep` preprocessed frames stay in memory."""

    def __init__(self, count: int, load: Callable[[int], torch.Tensor], keep: int = 2) -> None:
        self.count = int(count)
        self.load = load
        self.keep = max(1, keep)
        self._recent: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.loads = 0  # how many frames were preprocessed (a test counts them)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and 0 <= index < self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if index not in self:
            raise KeyError(index)
        tensor = self._recent.get(index)
        if tensor is None:
            tensor = self.load(index)
            self.loads += 1
            self._recent[index] = tensor
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(index)
        return tensor

    def __setitem__(self, index: int, value: torch.Tensor) -> None:
        raise TypeError("frames come from the sequence; streaming new frames is not supported")


def _fix_config(family: str):
    if family == "edgetam":
        from annotator.models.sam2 import _fix_edgetam_config

        return _fix_edgetam_config
    return None


def _classes(family: str):
    if family == "sam2":
        from transformers import Sam2VideoConfig, Sam2VideoModel

        return Sam2VideoConfig, Sam2VideoModel
    if family == "edgetam":
        from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

        return EdgeTamVideoConfig, EdgeTamVideoModel
    raise ValueError(f"no video model for family {family!r} (video families: sam2, edgetam)")


def is_video_folder(path: str | Path, family: str) -> bool:
    """Whether the transformers folder at `path` holds the `family`'s video model."""
    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    try:
        return read_config(folder).get("model_type") == VIDEO_MODEL_TYPES.get(family)
    except CheckpointError:
        return False


def make_processor(side: int, low: int):
    """The `Sam2VideoProcessor` a folder of input side `side` (low-res masks `low`) needs."""
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import (
        Sam2VideoVideoProcessor,
    )

    size = {"height": side, "width": side}
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size, mask_size={"height": low, "width": low}),
        video_processor=Sam2VideoVideoProcessor(size=size),
        target_size=side,
    )


class VideoTracker:
    """A family's video model and processor; `track` runs one tracking job over a frame source."""

    mode = "video-memory"

    def __init__(self, model, family: str, identity: str, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.family = family
        self.identity = identity
        config = model.config
        self.side = int(config.prompt_encoder_config.image_size)
        self.low = int(model.prompt_encoder.mask_input_size[0])
        self.processor = make_processor(self.side, self.low)
        # Frames whose outputs the model can read from the current one (see the module docstring).
        self.window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder)) + 1

    @classmethod
    def load(cls, path: str | Path, family: str, device: str = "cpu") -> VideoTracker:
        """A transformers folder saved from `Sam2VideoModel` / `EdgeTamVideoModel`."""
        from annotator.models.sam2 import _check_geometry

        config_class, model_class = _classes(family)
        model, folder, weights = load_model(
            Path(path),
            VIDEO_MODEL_TYPES[family],
            config_class,
            model_class,
            _fix_config(family),
            _check_geometry,
        )
        side = model.config.prompt_encoder_config.image_size
        identity = f"{family}-video-i{side}-{folder_digest(folder, weights)[:16]}"
        return cls(model, family, identity, device)

    # ------------------------------------------------------------------------------- frames
    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> (3, side, side) float32, the video processor on one frame."""
        if not frame.flags.writeable:
            frame = frame.copy()
        out = self.processor.video_processor(videos=frame[None], return_tensors="pt")
        return out.pixel_values_videos[0][0]

    def session(self, count: int, size: tuple[int, int], frame: Callable[[int], np.ndarray]):
        """An inference session over `count` frames of `size` (H, W) read through `frame(i)`."""
        from transformers import Sam2VideoInferenceSession

        session = Sam2VideoInferenceSession(
            video=None,
            video_height=int(size[0]),
            video_width=int(size[1]),
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=torch.float32,
        )
        session.processed_frames = LazyFrames(count, lambda i: self.preprocess(frame(i)))
        return session

    # ------------------------------------------------------------------------------ prompts
    def add_prompt(self, session, prompt: ObjectPrompt) -> None:
        """One object's clicks and/or box on a frame, as `add_inputs_to_inference_session` takes them."""
        points, labels, box = check_prompts(prompt.points, prompt.labels, prompt.box)
        if not 0 <= prompt.frame < session.num_frames:
            raise PromptError(f"frame {prompt.frame} is outside the tracked frames")
        kwargs: dict = {}
        if points is not None:
            kwargs["input_points"] = [[points.tolist()]]
            kwargs["input_labels"] = [[labels.tolist()]]
        if box is not None:
            kwargs["input_boxes"] = [[box.tolist()]]
        self.processor.add_inputs_to_inference_session(
            session, frame_idx=prompt.frame, obj_ids=[int(prompt.object_id)], **kwargs
        )

    # ---------------------------------------------------------------------------- tracking
    def _masks(self, session, output) -> FrameMasks:
        size = [[session.video_height, session.video_width]]
        logits = self.processor.post_process_masks([output.pred_masks], size, binarize=False)[0]
        scores = torch.sigmoid(output.object_score_logits.reshape(-1).float())
        result = FrameMasks(int(output.frame_idx))
        for i, object_id in enumerate(output.object_ids):
            result.masks[int(object_id)] = (logits[i, 0] > 0.0).cpu().numpy()
            result.scores[int(object_id)] = float(scores[i])
        return result

    def _prune(self, session, frame: int) -> None:
        """Drop what the model will never read again (module docstring)."""
        for outputs in session.output_dict_per_obj.values():
            cond = outputs["cond_frame_outputs"]
            for store in (cond, outputs["non_cond_frame_outputs"]):
                entry = store.get(frame)
                if entry is not None:
                    entry.pop("high_res_masks", None)
            non_cond = outputs["non_cond_frame_outputs"]
            for old in list(non_cond):
                near = abs(old - frame) <= self.window or any(
                    abs(old - c) <= self.window for c in cond
                )
                if not near:
                    del non_cond[old]

    def track(
        self,
        count: int,
        size: tuple[int, int],
        frame: Callable[[int], np.ndarray],
        prompts: list[ObjectPrompt],
        direction: str = "forward",
        state: dict | None = None,
    ) -> Iterator[FrameMasks]:
        """Every object of `prompts` through frames 0..count-1, each frame yielded once.

        As the reference is driven: each prompted frame in frame order gets its prompts
        (`add_inputs_to_inference_session`, one object at a time) and a `model(session, frame)`;
        then `propagate_in_video_iterator`'s passes: `forward` from the earliest prompted frame,
        `backward` from the latest, `both` forward then backward from the earliest (whose frame
        the backward pass does not yield again).

        `state` (from `checkpoint`) resumes a run: the memory is put back as it was after frame
        `state["frame"]` of pass `state["pass"]`, and tracking goes on with the next frame."""
        check_track_request(direction, prompts)
        session = self.session(count, size, frame)
        self._session = session
        frames = sorted({p.frame for p in prompts})
        passes = {
            "forward": [(frames[0], False)],
            "backward": [(frames[-1], True)],
            "both": [(frames[0], False), (frames[0], True)],
        }[direction]
        with torch.inference_mode():
            for f in frames:
                for prompt in (p for p in prompts if p.frame == f):
                    self.add_prompt(session, prompt)
                    self.model(inference_session=session, frame_idx=f)
                self._prune(session, f)
            resume_pass, resume_frame = (-1, -1) if state is None else restore(session, state)
            for number, (start, reverse) in enumerate(passes):
                if number < resume_pass:
                    continue
                order = list(range(start, -1, -1) if reverse else range(start, count))
                if reverse and start == 0:
                    order = []  # as the reference: no reverse tracking from frame 0
                if number == resume_pass:
                    order = order[order.index(resume_frame) + 1 :]
                for f in order:
                    output = self.model(inference_session=session, frame_idx=f, reverse=reverse)
                    self._prune(session, f)
                    self.last = (number, f)
                    if number > 0 and f == start:
                        continue  # the first pass yielded it
                    yield self._masks(session, output)

    def checkpoint(self) -> dict:
        """The memory after the last yielded frame, enough for `track(state=...)` to go on."""
        session = self._session
        number, frame = self.last
        outputs = {}
        for obj_idx, per in session.output_dict_per_obj.items():
            outputs[int(obj_idx)] = {
                f: {k: v for k, v in entry.items() if k != "high_res_masks"}
                for f, entry in per["non_cond_frame_outputs"].items()
            }
        tracked = {
            int(o): {int(f): bool(v["reverse"]) for f, v in d.items()}
            for o, d in session.frames_tracked_per_obj.items()
        }
        return {"pass": number, "frame": frame, "outputs": outputs, "tracked": tracked}

    @staticmethod
    def save_state(path: Path, state: dict) -> None:
        save_state(path, state)

    @staticmethod
    def load_state(path: Path) -> dict | None:
        return load_state(path)


def restore(session, state: dict) -> tuple[int, int]:
    """Put a checkpoint's non-conditioning outputs back into a session whose prompted frames
    were just recomputed; (pass, frame) where tracking stopped."""
    for obj_idx, frames in state["outputs"].items():
        per = session.output_dict_per_obj[int(obj_idx)]["non_cond_frame_outputs"]
        per.clear()
        for f, entry in frames.items():
            per[int(f)] = dict(entry)
    for obj_idx, frames in state["tracked"].items():
        tracked = session.frames_tracked_per_obj[int(obj_idx)]
        for f, reverse in frames.items():
            tracked[int(f)] = {"reverse": reverse}
    return int(state["pass"]), int(state["frame"])


def save_state(path: Path, state: dict) -> None:
    """A checkpoint to `path`, atomically (`atomic.atomic_write_with`, ADR 8: a kill mid-write
    leaves the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda handle: torch.save(state, handle))


def load_state(path: Path) -> dict | None:
    """A checkpoint written by `save_state`, or None when missing or unreadable (tensors,
    numbers and dicts only: `weights_only` loading runs no code from the file)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError):
        return None
    return state if isinstance(state, dict) and {"pass", "frame"} <= set(state) else None
