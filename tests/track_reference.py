"""The transformers reference pipeline for video tracking, as its documentation drives it:
`Sam2VideoProcessor.init_video_session(video)` (every frame in memory) ->
`add_inputs_to_inference_session` + `model(session, frame_idx)` on each prompted frame ->
`propagate_in_video_iterator` -> `post_process_masks`. Used only by the tests and benchmarks."""

from __future__ import annotations

import numpy as np
import torch


def reference_track(model, processor, video: np.ndarray, prompts, direction: str = "forward"):
    """{frame: {object_id: bool (H, W)}}; `prompts` = [(frame, {object_id: dict(points=,
    labels=, box=)})], every object of one frame added in one call, as a user would."""
    height, width = video.shape[1:3]
    session = processor.init_video_session(video=video, inference_device="cpu", dtype=torch.float32)
    frames = sorted(f for f, _ in prompts)
    with torch.inference_mode():
        for frame, objects in sorted(prompts, key=lambda p: p[0]):
            # one call per prompt kind (the processor takes points or boxes for all ids at once)
            kinds: dict[tuple[bool, bool], list[int]] = {}
            for i, o in objects.items():
                kinds.setdefault(
                    (o.get("points") is not None, o.get("box") is not None), []
                ).append(i)
            for (has_points, has_box), ids in kinds.items():
                kwargs = {}
                if has_points:
                    kwargs["input_points"] = [[list(map(list, objects[i]["points"])) for i in ids]]
                    kwargs["input_labels"] = [[list(objects[i]["labels"]) for i in ids]]
                if has_box:
                    kwargs["input_boxes"] = [[list(objects[i]["box"]) for i in ids]]
                processor.add_inputs_to_inference_session(
                    session, frame_idx=frame, obj_ids=ids, **kwargs
                )
                model(inference_session=session, frame_idx=frame)
        passes = {
            "forward": [dict(start_frame_idx=frames[0])],
            "backward": [dict(start_frame_idx=frames[-1], reverse=True)],
            "both": [
                dict(start_frame_idx=frames[0]),
                dict(start_frame_idx=frames[0], reverse=True),
            ],
        }[direction]
        out: dict[int, dict[int, np.ndarray]] = {}
        for kwargs in passes:
            for output in model.propagate_in_video_iterator(session, **kwargs):
                masks = processor.post_process_masks(
                    [output.pred_masks], [[height, width]], binarize=False
                )[0]
                if output.frame_idx in out:
                    continue
                out[output.frame_idx] = {
                    int(o): (masks[i, 0] > 0).numpy() for i, o in enumerate(output.object_ids)
                }
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
