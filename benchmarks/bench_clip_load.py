"""Building the default CLIP model from a local weights file: ours vs open_clip's own, one run.

    PYTHONPATH=$PWD python benchmarks/bench_clip_load.py [--work DIR] [--repeats 5]

Ours (`annotator.models.clip_load.create_from_file`): the model is built on the meta device, given uninitialised
memory, its causal masks rebuilt, then the file loaded by open_clip's `load_checkpoint` (strict).
The baseline, `open_clip.create_model(name, pretrained=FILE)`, draws random weights for every
parameter first. Alternating runs, the file in the page cache after a warm-up of each; the weights
are a random state dict of the real architecture (benchmarks/models.py), which loads like the
published one. Raw JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import save_result  # noqa: E402
from benchmarks.models import DEFAULT_CLIP, clip_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/annotator-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    import open_clip
    import torch

    from annotator.models.clip_load import create_from_file

    weights = clip_weights(args.work)

    def ours() -> None:
        create_from_file(DEFAULT_CLIP, str(weights), weights, None, "cpu")

    def theirs() -> None:
        open_clip.create_model(DEFAULT_CLIP, pretrained=str(weights), pretrained_text=False)

    samples: dict[str, list[float]] = {"ours": [], "open_clip": []}
    ours(), theirs()  # warm-up: page cache, imports, timm's registry
    for i in range(args.repeats):
        runs = [("ours", ours), ("open_clip", theirs)]
        for name, run in runs if i % 2 == 0 else runs[::-1]:
            started = time.perf_counter()
            run()
            samples[name].append(round(time.perf_counter() - started, 3))
    ours_s, theirs_s = statistics.median(samples["ours"]), statistics.median(samples["open_clip"])
    result = {
        "benchmark": "bench_clip_load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{os.cpu_count()} cpus, torch {torch.__version__}",
        "command": "python benchmarks/bench_clip_load.py " + " ".join(sys.argv[1:]),
        "model": DEFAULT_CLIP,
        "weights_mb": round(weights.stat().st_size / 2**20, 1),
        "samples_s": samples,
        "ours_p50_s": ours_s,
        "open_clip_p50_s": theirs_s,
        "ours_vs_open_clip": round(ours_s / theirs_s, 3),
    }
    out = save_result(result, "clip-load-cpu", indent=1)
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
