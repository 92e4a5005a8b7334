"""Peak memory of `annotator track` through a long 1920x1080 video, against its length.

Writes a 300-frame 1080p H.264 clip (two moving discs on a textured background), then runs
`annotator track` (a tiny random SAM 2.1 video folder, tests/tiny_video.py: memory here is the
video and the tracking state, not the weights) over the first 100 and all 300 frames, each in a fresh
process, and reads the process's peak RSS (`ru_maxrss`). The reference pipeline (the whole video
decoded into memory, `init_video_session(video)`, `propagate_in_video_iterator`) runs on the first
100 frames the same way. The bound is 2.5 GB for 300 frames, and the peak must not grow with the
length (300 vs 100 frames).

    PYTHONPATH=. python benchmarks/bench_track_memory.py [--frames 300] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import save_result  # noqa: E402

OURS = """
import resource, sys, json
from annotator.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}),
      file=sys.stderr)
"""

REFERENCE = """
import resource, sys, json, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from transformers import Sam2VideoModel
from annotator.io.sequences import open_sequence
from tests import tiny_video
clip, folder, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
model = Sam2VideoModel.from_pretrained(folder).eval()
processor = tiny_video.processor()
with open_sequence(clip) as seq:
    video = np.stack([seq.frame(i) for i in range(n)])  # what a user hands the reference
start = time.perf_counter()
session = processor.init_video_session(video=video, inference_device="cpu", dtype=torch.float32)
processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[1],
    input_points=[[[[600.0, 430.0]]]], input_labels=[[[1]]])
with torch.inference_mode():
    model(inference_session=session, frame_idx=0)
    frames = sum(1 for _ in model.propagate_in_video_iterator(session))
print(json.dumps({"frames": frames, "seconds": time.perf_counter() - start,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)
"""


def write_clip(path: Path, count: int, height: int = 1080, width: int = 1920) -> Path:
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            80 + 40 * np.sin(xx / 37.0),
            90 + 40 * np.cos(yy / 29.0),
            70 + 30 * np.sin((xx + yy) / 41.0),
        ],
        axis=-1,
    ).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(count):
            image = base.copy()
            cx, cy = 600 + 3 * i, 430
            y0, y1, x0, x1 = cy - 150, cy + 150, cx - 150, cx + 150
            disc = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= 150**2
            image[y0:y1, x0:x1][disc] = (230, 30, 30)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _last_json(stderr: str) -> dict:
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no result:\n{stderr[-2000:]}")


def run_ours(clip: Path, folder: Path, frames: int, work: Path) -> dict:
    project = work / f"project-{frames}"
    project.mkdir(exist_ok=True)
    argv = [
        "track",
        str(clip),
        "--frame",
        "0",
        "--point",
        "600,430",
        "--frames",
        f"0:{frames}",
        "--save",
        str(project),
        "--segmenter",
        "sam2",
        "--checkpoint",
        str(folder),
        "--cache-dir",
        str(work / "cache"),
        "--device",
        "cpu",
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", OURS, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    result = _last_json(done.stderr)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "frames": frames,
        "peak_rss_mb": result["maxrss_kb"] / 1024,
        "wall_s": time.perf_counter() - started,
        "summary": summary,
    }


def run_reference(clip: Path, folder: Path, frames: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(ROOT), str(clip), str(folder), str(frames)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result = _last_json(done.stderr)
    return {
        "frames": frames,
        "peak_rss_mb": result["maxrss_kb"] / 1024,
        "seconds": result["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-track-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    from tests import tiny_video

    folder = work / "sam2_video_tiny"
    if not (folder / "model.safetensors").is_file():
        tiny_video.save("sam2", folder)
    clip = work / f"clip-{args.frames}-1080p.mp4"
    if not clip.is_file():
        t = time.perf_counter()
        write_clip(clip, args.frames)
        print(f"clip written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    ours = [run_ours(clip, folder, n, work) for n in (args.short, args.frames)]
    for r in ours:
        print(f"ours {r['frames']} frames: peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    reference = run_reference(clip, folder, args.short)
    print(
        f"reference {args.short} frames: peak RSS {reference['peak_rss_mb']:.0f} MB",
        file=sys.stderr,
    )
    result = {
        "benchmark": "track_memory",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "clip": {"frames": args.frames, "size": [1920, 1080], "codec": "h264"},
        "model": "tiny random SAM 2.1 video folder (tests/tiny_video.py)",
        "ours": ours,
        "reference": reference,
        "bound_mb": 2500,
        "within_bound": ours[-1]["peak_rss_mb"] <= 2500,
        "growth_300_vs_100": ours[-1]["peak_rss_mb"] / ours[0]["peak_rss_mb"],
    }
    out = save_result(result, "track-memory-cpu")
    print(json.dumps({k: result[k] for k in ("within_bound", "growth_300_vs_100")}), out)


if __name__ == "__main__":
    main()
