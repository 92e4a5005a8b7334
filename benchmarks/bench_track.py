"""Frames per second of `annotator track` against transformers' reference video pipeline.

Full-size random-weight video models (SAM 2.1 Hiera-T: `Sam2VideoConfig()`; EdgeTAM:
`EdgeTamVideoConfig()` with the RepViT trunk), saved once into the work folder; one synthetic clip
(lossless, two moving discs). For each family, in one process and alternating: the reference
(`init_video_session(video)` with the whole clip decoded -> `add_inputs_to_inference_session` ->
`model(session, 0)` -> `propagate_in_video_iterator` -> `post_process_masks`, timed from the
session's creation) and `annotator track` (in process, its summary's `frames_per_second`, timed
from the start of the job: the sequence added, tracking, masks stored). The machine is shared:
the ratio is what counts, not the absolute numbers.

    PYTHONPATH=. python benchmarks/bench_track.py [--frames 8] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import save_result  # noqa: E402


def video_folder(family: str, work: Path) -> Path:
    folder = work / f"{family}_video_random"
    if (folder / "model.safetensors").is_file():
        return folder
    torch.manual_seed(0)
    if family == "sam2":
        from transformers import Sam2VideoConfig, Sam2VideoModel

        model = Sam2VideoModel(Sam2VideoConfig())
    else:
        from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

        from annotator.models.sam2 import _fix_edgetam_config

        config = EdgeTamVideoConfig.from_dict(_fix_edgetam_config(EdgeTamVideoConfig().to_dict()))
        model = EdgeTamVideoModel(config)
    model.eval().save_pretrained(folder)
    return folder


def reference(family: str, folder: Path, video: np.ndarray, point) -> float:
    from transformers import EdgeTamVideoModel, Sam2VideoModel

    from annotator.models.tracking import make_processor

    model = (
        (Sam2VideoModel if family == "sam2" else EdgeTamVideoModel).from_pretrained(folder).eval()
    )
    side = model.config.prompt_encoder_config.image_size
    processor = make_processor(side, int(model.prompt_encoder.mask_input_size[0]))
    start = time.perf_counter()
    session = processor.init_video_session(video=video, inference_device="cpu", dtype=torch.float32)
    processor.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=[1], input_points=[[[list(point)]]], input_labels=[[[1]]]
    )
    frames = 0
    with torch.inference_mode():
        model(inference_session=session, frame_idx=0)
        for output in model.propagate_in_video_iterator(session):
            processor.post_process_masks(
                [output.pred_masks], [list(video.shape[1:3])], binarize=False
            )
            frames += 1
    return frames / (time.perf_counter() - start)


def ours(family: str, folder: Path, clip: Path, work: Path, point) -> float:
    from annotator.cli import main

    project = work / f"project-{family}-{time.time_ns()}"
    project.mkdir()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "track",
                str(clip),
                "--frame",
                "0",
                "--point",
                f"{point[0]},{point[1]}",
                "--save",
                str(project),
                "--segmenter",
                family,
                "--checkpoint",
                str(folder),
                "--cache-dir",
                str(work / "cache"),
                "--device",
                "cpu",
            ]
        )
    if code:
        raise SystemExit(f"annotator track failed ({code})")
    return json.loads(out.getvalue().strip().splitlines()[-1])["frames_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-track-"))
    work.mkdir(parents=True, exist_ok=True)
    from tests import clips

    video = clips.frames(args.frames, height=360, width=640)
    clip = clips.write_lossless(work / "clip.mkv", video)
    point = (200.0, 144.0)
    results = {}
    for family in ("edgetam", "sam2"):
        folder = video_folder(family, work)
        ref = reference(family, folder, video, point)
        our = ours(family, folder, clip, work, point)
        results[family] = {"reference_fps": ref, "ours_fps": our, "ratio": our / ref}
        print(family, results[family], file=sys.stderr)
    record = {
        "benchmark": "track_speed",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "note": "shared 2-core box: ratio only",
        },
        "clip": {"frames": args.frames, "size": [640, 360]},
        "models": "full-size random SAM 2.1 Hiera-T and EdgeTAM video configs",
        "results": results,
    }
    print(save_result(record, "track-speed-cpu"))


if __name__ == "__main__":
    main()
