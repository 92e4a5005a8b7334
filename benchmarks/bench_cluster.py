"""`annotator embed --ray` against a single process, on the same images, models and machine.

    python benchmarks/bench_cluster.py [--images 12] [--full-images 3] [--skip-full] [--json out.json]

For each model size (the tiny test models; full-size random-initialised SAM ViT-B + `convnext_base_w`,
built as in bench_engine.py — speed does not depend on the weights):

- single: an encoder-only engine (what each worker loads) encoding every image into an empty cache,
  in this process, with torch using every core;
- ray x1: a local Ray cluster with the same cores, one worker with all of them;
- ray x2: two workers with half the cores each.

Each side first loads its models and encodes one warm-up image (a cluster loads once and then
encodes 100k images: that steady state is what the ratio is about); the load times are recorded
as well, and so are the end-to-end times. Every run writes its own cache; the JSON says whether the
files of each run are byte-identical to the single-process ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photos(count: int, folder: Path) -> list[Path]:
    """`count` distinct real photos (copies of the shared data with one byte appended each time
    round, so the content hashes differ), or random images when the data is absent."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    source = ROOT.parent / "shared" / "data" / "grabcut" / "images"
    originals = sorted(source.glob("*.jpg")) if source.is_dir() else []
    out = []
    for i in range(count):
        path = folder / f"img{i:04d}.jpg"
        if originals:
            data = originals[i % len(originals)].read_bytes()
            path.write_bytes(data + b"\0" * (i // len(originals)))
        else:
            rng = np.random.default_rng(i)
            Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.npz"))
    }


def single(spec, warm: Path, paths: list[Path]) -> dict:
    import torch

    from annotator.engine import build_engine

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    engine = build_engine(spec, build_index=False)
    engine.embed(warm)
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    for path in paths:
        if not engine.is_cached(path):
            engine.embed(path)
    seconds = time.perf_counter() - t1
    return {"load_and_warmup_s": loaded, "encode_s": seconds, "end_to_end_s": loaded + seconds}


def on_ray(spec, warm: Path, paths: list[Path], workers: int, cpus: int) -> dict:
    """The farm with `workers` workers of `cpus` cores (their niceness is in the JSON)."""
    import ray

    from annotator.cluster import Farm, plan_workers

    plan = plan_workers(ray.cluster_resources(), workers, cpus, "cpu")
    t0 = time.perf_counter()
    farm = Farm(spec, plan, batch_size=1)
    try:
        ray.get([actor.load.remote() for actor in farm.actors])  # every worker loads...
        ray.get([actor.embed_batch.remote([str(warm)]) for actor in farm.actors])  # ...and warms up
        loaded = time.perf_counter() - t0
        pids = ray.get([actor.pid.remote() for actor in farm.actors])
        niceness = [os.getpriority(os.PRIO_PROCESS, pid) for pid in pids]
        t1 = time.perf_counter()
        report = farm.run([str(p) for p in paths])
        seconds = time.perf_counter() - t1
    finally:
        farm.shutdown()
    assert report.embedded == len(paths) and not report.failed, report
    return {
        "workers": plan.workers,
        "threads_per_worker": plan.threads,
        "worker_niceness": niceness,
        "load_and_warmup_s": loaded,
        "encode_s": seconds,
        "end_to_end_s": loaded + seconds,
    }


def bench(name: str, spec_fields: dict, count: int, work: Path, save=lambda: None) -> dict:
    from annotator.cluster import portable_spec
    from annotator.spec import ModelSpec

    images = photos(count + 1, work / f"{name}-images")
    warm, paths = images[0], images[1:]
    cores = os.cpu_count() or 1
    out: dict[str, object] = {"images": len(paths), "cores": cores}
    partial = {}
    caches = {}
    for side in ("single", "ray_x1", "ray_x2"):
        cache = work / f"{name}-{side}-cache"
        shutil.rmtree(cache, ignore_errors=True)
        spec = portable_spec(ModelSpec(**spec_fields, device="cpu", cache_dir=cache))
        print(f"{name}: {side} ...", file=sys.stderr, flush=True)
        if side == "single":
            result = single(spec, warm, paths)
        elif side == "ray_x1":
            result = on_ray(spec, warm, paths, 1, cores)
        else:
            result = on_ray(spec, warm, paths, 2, max(1, cores // 2))
        result["per_image_s"] = result["encode_s"] / len(paths)
        out[side] = result
        caches[side] = digests(cache / "embeddings")
        print(f"  {json.dumps(result)}", file=sys.stderr, flush=True)
        partial[side] = result
        save(name, partial)  # a long run killed half-way keeps what it measured
    for side in ("ray_x1", "ray_x2"):
        out[f"{side}_vs_single"] = out[side]["encode_s"] / out["single"]["encode_s"]
        out[f"{side}_end_to_end_vs_single"] = (
            out[side]["end_to_end_s"] / out["single"]["end_to_end_s"]
        )
        out[f"{side}_cache_identical"] = caches[side] == caches["single"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="images for the tiny models")
    parser.add_argument("--full-images", type=int, default=3, help="images for full-size models")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    # Ray starts its workers at nice 15 (kind to a desktop, fatal to a comparison on a shared machine,
    # where every other process then outranks them); the single-process side runs at nice 0.
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    from tests.tiny_clip import make_tiny_clip
    from tests.tiny_sam import make_tiny_sam

    work = args.work or Path(tempfile.mkdtemp(prefix="annotator-bench-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    t0 = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=100 * 1024 * 1024,
    )
    results["ray_init_s"] = time.perf_counter() - t0

    def save(name: str | None = None, partial: dict | None = None) -> None:
        if args.json:
            snapshot = dict(results)
            if name is not None and name not in results:
                snapshot[name] = {"incomplete": True, **(partial or {})}
            args.json.write_text(json.dumps(snapshot, indent=2) + "\n")

    try:
        config, weights = make_tiny_clip(work / "tiny-clip", tower="convnext")
        tiny = {
            "checkpoint": make_tiny_sam(work / "tiny_sam.pth"),
            "clip_config": config,
            "clip_weights": weights,
        }
        results["tiny"] = bench("tiny", tiny, args.images, work, save)
        if not args.skip_full:
            from benchmarks.bench_engine import build_checkpoints

            sam_path, clip_path = build_checkpoints(work, "convnext_base_w")
            full = {
                "checkpoint": sam_path,
                "clip_model": "convnext_base_w",
                "clip_weights": clip_path,
            }
            results["full"] = bench("full", full, args.full_images, work, save)
    finally:
        ray.shutdown()
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
