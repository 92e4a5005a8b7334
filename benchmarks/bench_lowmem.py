"""The encoders on slices (models/lowmem.py) against the upstream layers: peak memory and time of one
1,024-px window, and the same numbers out (issue 26).

    PYTHONPATH=$PWD python benchmarks/bench_lowmem.py [--work DIR] [--repeats 3]

Each measurement is a fresh child process (its peak RSS is that encode's alone): the full-size SAM 2.1
Hiera-T and CLIP convnext_base_w (random weights: memory and time do not depend on them, built once
by `benchmarks/models.py`) encode one 1,024 x 1,024 window twice (the first run maps the weights in;
the second is the steady state a later click sees), `sliced` as the product loads them, `upstream`
with the instance patches taken off (the layers' own forward). Peak RSS is `VmHWM` reset before the
second encode (`/proc/self/clear_refs`), over the RSS just before it. Runs alternate, so a busy
machine slows both alike; the JSON has every run and the ratios of the medians. The outputs of the
two are compared bit for bit in each child pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _unslice(module) -> None:
    for m in module.modules():
        m.__dict__.pop("forward", None)  # the class's own forward again
        m.__dict__.pop("_annotator_sliced", None)


def child(mode: str, which: str, work: Path, out: Path) -> None:
    import numpy as np
    import torch

    from annotator import allocator
    from annotator.models.clip import ClipModel
    from annotator.models.region import default_head_name, make_head
    from annotator.models.registry import load_segmenter
    from benchmarks.models import DEFAULT_CLIP, clip_weights, segmenter_checkpoint

    torch.set_num_threads(2)
    if which == "sam2":
        model = load_segmenter(segmenter_checkpoint("sam2", work), "sam2", "cpu")
        if mode == "upstream":
            _unslice(model.model)

        def encode(image):
            e = model.encode(image)
            arrays = model.to_arrays(e).values()
            return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    else:
        clip = ClipModel.load(DEFAULT_CLIP, weights=clip_weights(work))
        if mode == "upstream":
            _unslice(clip.model.visual)
        head = make_head(default_head_name(clip), clip)

        def encode(image):
            return head.prepare(image)["features"].ravel()

    image = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    with allocator.encoding():  # as the product encodes a large image's window (ADR 43)
        first = encode(image)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    with allocator.encoding():
        second = encode(image)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    assert np.array_equal(first, second)
    np.save(out.with_suffix(".npy"), second)
    result = {
        "mode": mode,
        "encoder": which,
        "seconds": round(seconds, 3),
        "rss_before_mb": round(before, 1),
        "peak_mb": round(peak, 1),
        "peak_over_before_mb": round(peak - before, 1),
    }
    out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/large-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encoders", default="sam2,clip")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child[0], args.child[1], args.work, args.out)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs: list[dict] = []
    summary: dict = {}
    for which in args.encoders.split(","):
        for repeat in range(args.repeats):
            outputs = {}
            order = ("sliced", "upstream") if repeat % 2 == 0 else ("upstream", "sliced")
            for mode in order:
                out = args.work / f"lowmem-{which}-{mode}.json"
                command = [sys.executable, __file__, "--child", mode, which]
                command += ["--work", str(args.work), "--out", str(out)]
                subprocess.run(command, check=True, env=env)
                run = json.loads(out.read_text())
                runs.append(run)
                outputs[mode] = out.with_suffix(".npy")
            import numpy as np

            same = np.array_equal(np.load(outputs["sliced"]), np.load(outputs["upstream"]))
            runs[-1]["same_output_as_pair"] = bool(same)
            runs[-2]["same_output_as_pair"] = bool(same)
        mine = [r for r in runs if r["encoder"] == which]

        def median(mode: str, key: str, rows=mine) -> float:
            return statistics.median(r[key] for r in rows if r["mode"] == mode)

        summary[which] = {
            "peak_over_before_mb": {
                m: median(m, "peak_over_before_mb") for m in ("sliced", "upstream")
            },
            "peak_mb": {m: median(m, "peak_mb") for m in ("sliced", "upstream")},
            "seconds": {m: median(m, "seconds") for m in ("sliced", "upstream")},
            "seconds_ratio_sliced_vs_upstream": round(
                median("sliced", "seconds") / median("upstream", "seconds"), 3
            ),
            "same_output": all(r["same_output_as_pair"] for r in mine),
        }
    result = {
        "benchmark": "lowmem",
        "window": "1024 x 1024 RGB, second encode of a fresh process (weights already mapped in)",
        "models": "SAM 2.1 Hiera-T, CLIP convnext_base_w dense at 1,024 px; full size, random weights",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "summary": summary,
        "runs": runs,
    }
    stamp = time.strftime("%Y-%m-%d-%H%M")
    path = ROOT / "benchmarks" / "results" / f"{stamp}-lowmem-cpu.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
