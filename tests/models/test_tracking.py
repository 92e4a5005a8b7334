"""Video tracking in the models layer (annotator/models/tracking.py): the streaming session equals
transformers' reference pipeline, keeps bounded state, and one folder serves images and video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.models.registry import load_segmenter
from annotator.models.tracking import LazyFrames, VideoTracker
from annotator.track_prompts import ObjectPrompt
from tests import clips, tiny_video
from tests.track_reference import iou, reference_track

VIDEO = clips.frames(14)


@pytest.fixture(scope="module", params=["sam2", "edgetam"])
def video_setup(request, tmp_path_factory):
    family = request.param
    folder = tmp_path_factory.mktemp(f"{family}_video")
    model, _ = tiny_video.save(family, folder)
    return family, folder, model, tiny_video.processor(), VideoTracker.load(folder, family)


def _prompts(spec):
    out = []
    for frame, objects in spec:
        for object_id, d in objects.items():
            points = d.get("points")
            out.append(
                ObjectPrompt(
                    object_id,
                    frame,
                    None if points is None else np.asarray(points, dtype=float),
                    None if points is None else np.asarray(d["labels"]),
                    None if d.get("box") is None else np.asarray(d["box"], dtype=float),
                )
            )
    return out


def _compare(tracker, model, processor, spec, direction):
    ref = reference_track(model, processor, VIDEO, spec, direction)
    ours = {
        r.frame: r
        for r in tracker.track(
            len(VIDEO), VIDEO.shape[1:3], lambda i: VIDEO[i], _prompts(spec), direction
        )
    }
    assert sorted(ours) == sorted(ref) and ref
    for f in ref:
        for o, mask in ref[f].items():
            assert iou(ours[f].masks[o], mask) >= 0.99, (f, o)
            assert 0.0 <= ours[f].scores[o] <= 1.0
    sizes = [m.sum() for f in ref for m in ref[f].values()]
    assert min(sizes) > 0 and max(sizes) < VIDEO[0].size // 3  # neither empty nor full
    return ref


@pytest.mark.parametrize("direction", ["both", "backward"])
def test_directions_equal_reference(video_setup, direction):
    _, _, model, processor, tracker = video_setup
    spec = [(6, {1: {"points": [[46.0, 38.0]], "labels": [1]}, 2: {"box": [80, 10, 105, 45]}})]
    ref = _compare(tracker, model, processor, spec, direction)
    expected = range(14) if direction == "both" else range(7)
    assert sorted(ref) == list(expected)


def test_state_is_bounded(video_setup):
    _, _, _, _, tracker = video_setup
    spec = [(0, {1: {"points": [[35.0, 38.0]], "labels": [1]}})]
    video = clips.frames(30)
    seen = []
    for result in tracker.track(len(video), video.shape[1:3], lambda i: video[i], _prompts(spec)):
        session = tracker._session
        outputs = session.output_dict_per_obj[0]
        seen.append(len(outputs["non_cond_frame_outputs"]))
        assert all("high_res_masks" not in e for e in outputs["non_cond_frame_outputs"].values())
        assert len(session.processed_frames._recent) <= 2
        assert result.frame in session.processed_frames
    # the window (8 frames with the tiny config) around the current frame and the prompted frame
    assert max(seen) <= 2 * tracker.window + 1 < len(video) - 1
    assert isinstance(session.processed_frames, LazyFrames)
    assert session.processed_frames.loads <= len(video) + 2  # each frame preprocessed ~once


def test_video_folder_serves_single_images(video_setup):
    """`Sam2Model.from_pretrained(video folder)` loads the image part; so does our loader, and
    its masks equal that model's reference pipeline."""
    family, folder, _, _, _ = video_setup
    from transformers import EdgeTamModel, Sam2Model, Sam2Processor

    from tests.tiny_hf import SIDE

    reference = (Sam2Model if family == "sam2" else EdgeTamModel).from_pretrained(folder).eval()
    segmenter = load_segmenter(folder, family)
    image = VIDEO[3]
    low = 4 * SIDE // 16
    processor = Sam2Processor(
        image_processor=__import__("transformers").Sam2ImageProcessor(
            size={"height": SIDE, "width": SIDE}, mask_size={"height": low, "width": low}
        )
    )
    inputs = processor(
        images=image, input_points=[[[[35.0, 38.0]]]], input_labels=[[[1]]], return_tensors="pt"
    )
    with torch.no_grad():
        out = reference(**inputs, multimask_output=False)
    ref = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0][0, 0].numpy()
    emb = segmenter.encode(image)
    masks = segmenter.decode(emb, np.array([[35.0, 38.0]]), np.array([1]), None, False)
    ours = segmenter.upscale(emb, masks.low_res_logits[0])
    assert 0 < ref.sum() < ref.size and iou(ours, ref) >= 0.99
