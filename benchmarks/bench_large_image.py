"""A 20,000 x 20,000 tiled TIFF: open it, show it, click in three places, come back (issue 26).

    PYTHONPATH=$PWD python benchmarks/bench_large_image.py [--work DIR] [--naive]

The image is generated (tests/large_data.py): RGB, 512-px zlib tiles, its own five overviews
(pyramidal, as a GDAL/QGIS or slide-scanner TIFF is), a constant background and 30 small objects.
A fresh child process, so that its peak RSS is this scenario's alone, does:

- show: `Pyramid.open` + reading the view the window opens on (the whole image fitted into a
  1,600 x 1,000 viewport: the level `level_for` picks and the tiles it shows): the same loading
  code the window uses, timed from nothing open to pixels in memory;
- the same for a flat tiled TIFF without overviews: the first open builds the levels (cached),
  the second reads them;
- three clicks on three objects: each a default working window (1,024 px at full resolution,
  centred on the click), its embedding computed (tile decode, SAM ViT-B, CLIP convnext_base_w),
  the mask and top-5 labels (`segment_in_window`) and the full-image RLE;
- a return to the first place: `window_embedding` answered from the cache (the target: <= 10 ms;
  the last windows are kept in memory, `Engine.recent_regions`), the same once it has left memory
  (read from the disk cache: `return_embedding_disk_ms_p50`), and the whole click from the cache;
- peak RSS (ru_maxrss) of the child, models included (the target: <= 2 GB).

Models are full-size with random weights (benchmarks/models.py: speed and memory do not depend on
the weights); the vocabulary is COCO's 80 names (the labels' text index is not what is measured).
The scenario runs what ships: glibc's thresholds set low only while an encoder runs
(`annotator/allocator.encoding`, ADR 43). With `--allocator-baseline` the same scenario also runs
with glibc left alone (`ANNOTATOR_MALLOC=default`), both children at the same time so that the
click-time ratio is taken under the same load.
With `--naive` a second child reads level 0 whole (`tifffile.imread`), the way a flat decoder
would, for the contrast. Raw JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import save_result  # noqa: E402

SIDE = 20_000
VIEWPORT = (1600, 1000)
CLICKS = [(10_300, 10_250), (4_020, 15_010), (16_500, 3_300)]


def objects() -> list:
    rng = np.random.default_rng(0)
    found = [("disc", x, y, 40, (230, 40, 40)) for x, y in CLICKS]
    for _ in range(27):
        x, y = (int(v) for v in rng.integers(500, SIDE - 500, 2))
        r = int(rng.integers(15, 60))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        found.append(("square" if r % 2 else "disc", x, y, r, colour))
    return found


def make_images(work: Path) -> tuple[Path, Path]:
    from tests.large_data import draw_objects, write_tiled

    paint = draw_objects(objects())
    pyramidal, flat = work / "big-pyramid.tif", work / "big-flat.tif"
    if not pyramidal.is_file():
        write_tiled(pyramidal, SIDE, SIDE, paint, tile=512, overviews=5)
    if not flat.is_file():
        write_tiled(flat, SIDE, SIDE, paint, tile=512)
    return pyramidal, flat


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def show(path: Path, cache: Path | None) -> tuple[float, dict]:
    """Seconds from nothing open to the fitted view's pixels, and what was read."""
    from annotator.io.pyramid import Pyramid

    start = time.perf_counter()
    pyramid = Pyramid.open(path, cache)
    scale = max(pyramid.width / VIEWPORT[0], pyramid.height / VIEWPORT[1])
    level = pyramid.level_for(scale)
    lv = pyramid.levels[level]
    pixels = pyramid.read((0, 0, lv.width, lv.height), level)
    seconds = time.perf_counter() - start
    pyramid.close()
    return seconds, {"level": level, "level_size": [lv.width, lv.height], "shape": pixels.shape}


def child(work: Path, out: Path, family: str) -> None:
    import torch

    from annotator.app.working_window import (
        default_window,
        input_side,
        segment_in_window,
        window_embedding,
    )
    from annotator.engine import Engine
    from annotator.io.pyramid import Pyramid
    from benchmarks.models import DEFAULT_CLIP, clip_weights, segmenter_checkpoint

    torch.set_num_threads(2)
    pyramidal, _ = make_images(work)
    plain = os.environ.get("ANNOTATOR_MALLOC") == "default"
    cache = work / (f"cache-{family}-plain" if plain else f"cache-{family}")
    shutil.rmtree(cache / "embeddings", ignore_errors=True)  # the three clicks encode
    result: dict = {"segmenter": family, "rss_mb_start": round(_rss_mb(), 1)}
    result["allocator"] = "default" if plain else "encoding"
    seconds, view = show(pyramidal, cache)
    result["show_pyramidal_s"] = round(seconds, 4)
    result["show_view"] = {k: list(v) if isinstance(v, tuple) else v for k, v in view.items()}
    result["rss_mb_after_show"] = round(_rss_mb(), 1)

    start = time.perf_counter()
    engine = Engine.from_paths(
        segmenter=family,
        checkpoint=segmenter_checkpoint(family, work),
        clip_model=DEFAULT_CLIP,
        clip_weights=clip_weights(work),
        vocabulary="coco",
        device="cpu",
        cache_dir=cache,
    )
    result["engine_load_s"] = round(time.perf_counter() - start, 2)
    result["rss_mb_after_engine"] = round(_rss_mb(), 1)

    clicks = []
    with Pyramid.open(pyramidal, cache) as image:
        side = input_side(engine)
        windows = []
        for x, y in CLICKS:
            point = [(float(x), float(y), True)]
            window = default_window(point, None, side, image.width, image.height)
            windows.append(window)
            start = time.perf_counter()
            answer = segment_in_window(engine, image, window, point, top_k=5)
            rle = answer.rle()
            clicks.append(
                {
                    "point": [x, y],
                    "window": list(window.box),
                    "seconds": round(time.perf_counter() - start, 3),
                    "area": answer.area(),
                    "rle_chars": len(rle["counts"]),
                    "labels": len(answer.proposal.labels),
                }
            )
        result["clicks"] = clicks
        result["rss_mb_after_clicks"] = round(_rss_mb(), 1)
        loads = []
        for _ in range(20):
            start = time.perf_counter()
            embedding = window_embedding(engine, image, windows[0])
            loads.append(time.perf_counter() - start)
        assert embedding.complete
        result["return_embedding_ms_p50"] = round(1000 * float(np.median(loads)), 2)
        result["return_embedding_ms_max"] = round(1000 * float(np.max(loads)), 2)
        disk = []  # the same return once the window has left memory: read from the disk cache
        for _ in range(20):
            engine.recent_regions.clear()
            start = time.perf_counter()
            embedding = window_embedding(engine, image, windows[0])
            disk.append(time.perf_counter() - start)
        assert embedding.complete
        result["return_embedding_disk_ms_p50"] = round(1000 * float(np.median(disk)), 2)
        start = time.perf_counter()
        point = [(float(CLICKS[0][0]), float(CLICKS[0][1]), True)]
        segment_in_window(engine, image, windows[0], point, top_k=5)
        result["return_click_s"] = round(time.perf_counter() - start, 3)
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    out.write_text(json.dumps(result))


def flat_child(work: Path, out: Path) -> None:
    """A tiled TIFF without overviews: the first open builds its levels, the second reads them."""
    import shutil

    _, flat = make_images(work)
    cache = work / "cache-flat"
    shutil.rmtree(cache, ignore_errors=True)
    first, _ = show(flat, cache)
    again, view = show(flat, cache)
    out.write_text(
        json.dumps(
            {
                "first_open_s": round(first, 3),
                "cached_open_s": round(again, 4),
                "level": view["level"],
                "peak_rss_mb": round(_rss_mb(), 1),
            }
        )
    )


def naive(work: Path, out: Path) -> None:
    import tifffile

    pyramidal, _ = make_images(work)
    start = time.perf_counter()
    try:
        pixels = tifffile.imread(pyramidal)
        shape = list(pixels.shape)
    except MemoryError:
        shape = None
    out.write_text(
        json.dumps(
            {
                "imread_whole_s": round(time.perf_counter() - start, 2),
                "shape": shape,
                "peak_rss_mb": round(_rss_mb(), 1),
            }
        )
    )


def _start(mode: str, work: Path, *extra: str, tag: str = "", **env: str):
    out = work / f"{mode}{tag}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    command = [sys.executable, __file__, "--work", str(work), f"--{mode}-child", str(out), *extra]
    return subprocess.Popen(command, env=env), out


def _finish(started) -> dict:
    process, out = started
    if process.wait() != 0:
        raise SystemExit(f"{out.stem} child failed ({process.returncode})")
    return json.loads(out.read_text())


def _run(mode: str, work: Path, *extra: str) -> dict:
    return _finish(_start(mode, work, *extra))


def _scenarios(work: Path, families: list[str], baseline: bool) -> list[dict]:
    results = []
    for family in families:
        shipped = _start("scenario", work, "--family", family)
        if not baseline:
            results.append(_finish(shipped))
            continue
        plain = _start(
            "scenario", work, "--family", family, tag="-plain", ANNOTATOR_MALLOC="default"
        )
        result, other = _finish(shipped), _finish(plain)
        seconds = sum(c["seconds"] for c in result["clicks"])
        plain_seconds = sum(c["seconds"] for c in other["clicks"])
        same = [c["area"] for c in result["clicks"]] == [c["area"] for c in other["clicks"]]
        result["allocator_baseline"] = {
            "peak_rss_mb": other["peak_rss_mb"],
            "rss_mb_after_engine": other["rss_mb_after_engine"],
            "clicks_s": round(plain_seconds, 2),
            "clicks_s_ratio_shipped_vs_default": round(seconds / plain_seconds, 3),
            "return_click_s": other["return_click_s"],
            "engine_load_s": other["engine_load_s"],
            "same_areas": same,
        }
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/large-bench"))
    parser.add_argument("--naive", action="store_true", help="also decode level 0 whole")
    parser.add_argument(
        "--segmenters",
        default="sam2",
        help="families to run the scenario with, comma-separated (default: sam2, SAM 2.1 "
        "Hiera-T, the CPU default of ADR 6; sam: SAM 1 ViT-B)",
    )
    parser.add_argument(
        "--allocator-baseline",
        action="store_true",
        help="also run the scenario with glibc left alone (ANNOTATOR_MALLOC=default)",
    )
    parser.add_argument("--scenario-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flat-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--naive-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--family", default="sam2", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.scenario_child:
        return child(args.work, args.scenario_child, args.family)
    if args.flat_child:
        return flat_child(args.work, args.flat_child)
    if args.naive_child:
        return naive(args.work, args.naive_child)
    make_images(args.work)  # outside the measured children
    families = [f for f in args.segmenters.split(",") if f]
    result = {
        "benchmark": "large_image",
        "image": f"{SIDE}x{SIDE} RGB, 512-px zlib tiles, 5 overviews (and a flat copy)",
        "models": "segmenter + CLIP convnext_base_w, full size, random weights; COCO vocabulary",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "scenarios": _scenarios(args.work, families, args.allocator_baseline),
        "flat_tiff": _run("flat", args.work),
    }
    if args.naive:
        result["naive_whole_decode"] = _run("naive", args.work)
    result["bounds"] = {
        s["segmenter"]: {
            "peak_rss_le_2GB": s["peak_rss_mb"] <= 2048,
            "show_le_2s": s["show_pyramidal_s"] <= 2.0,
            "return_embedding_le_10ms": s["return_embedding_ms_p50"] <= 10.0,
        }
        for s in result["scenarios"]
    }
    path = save_result(result, "large-image-cpu", indent=1)
    print(json.dumps(result, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
