"""The 20,000 x 20,000 tiled TIFF in the real window (offscreen Qt): first picture, three clicks,
peak RSS (issue 26; the Qt-free half is `bench_large_image.py`).

    PYTHONPATH=$PWD python benchmarks/bench_large_window.py [--work DIR] [--tiny-only]
    xvfb-run -s "-screen 0 1600x1000x24" python benchmarks/bench_large_window.py --screenshot docs/large-image.png

Each scenario is a fresh child process (its ru_maxrss is the window's alone; the folder scan runs
in the window's fork-server child, not counted): `MainWindow` 1,600 x 1,000 opens a folder holding
the pyramidal image of `bench_large_image.py` (five own overviews, 512-px zlib tiles, 30 small
objects), and the benchmark records
- `first_picture_s`: from `open_folder` to the first tile painted on the canvas (the window's path:
  folder scan, the TIFF header, the coarsest level's tiles decoded off the GUI thread, painted);
- three clicks: for each object, the view set to 100 % centred on it, a real mouse click on the
  canvas, the seconds until the mask (and its labels) is pending, then accept (stored as RLE);
- peak RSS of the window process at each step, and after the engine and at the end the resident
  set by kind (anonymous, mapped files, the CUDA build's own libraries) with glibc's heap accounting.
The window works as it ships: a view that stays still 0.4 s has its window and neighbours encoded
ahead of the click (ADR 44), so a click may find its window already encoded.
Scenarios: `full` (`--segmenter`: SAM 2.1 Hiera-T, the CPU default, unless told, e.g. `sam` for SAM 1
ViT-B; + CLIP convnext_base_w, full size, random weights: speed and memory do not depend on the
weights; COCO vocabulary) and `tiny` (the test suite's tiny models: what the
window itself costs, torch and Qt included). Raw JSON into benchmarks/results/.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_large_image import CLICKS, make_images  # noqa: E402


def _rss_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited across exec from the
    parent, which has built the models and imported torch)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _breakdown() -> dict:
    """The resident set now, by kind: anonymous memory, mapped files (weights mapped from their
    files, libraries), and of those the CUDA build's own libraries, which a CPU-only torch wheel
    does not have (nvidia/*, triton, libtorch_cuda: what the README's CPU install leaves out)."""
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            status[key] = round(int(value.split()[0]) / 1024, 1)
    cuda, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            current = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:" and any(
            part in current for part in ("/nvidia/", "/triton/", "libtorch_cuda", "libc10_cuda")
        ):
            cuda += int(fields[1])
    heap = _glibc_heap()
    return {
        **heap,
        "rss_mb": status.get("VmRSS"),
        "rss_anon_mb": status.get("RssAnon"),
        "rss_file_mb": status.get("RssFile"),
        "rss_cuda_only_libraries_mb": round(cuda / 1024, 1),
    }


def _glibc_heap() -> dict:
    """glibc's own accounting (`mallinfo2`, all arenas): the bytes its heaps hold, the free part
    of them (kept by the allocator, not returned), and the chunks mapped on their own."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                      "uordblks", "fordblks", "keepcost")
        ]  # fmt: skip

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    mb = 1 / 2**20
    return {
        "malloc_heaps_mb": round(info.arena * mb, 1),
        "malloc_free_in_heaps_mb": round(info.fordblks * mb, 1),
        "malloc_mapped_chunks_mb": round(info.hblkhd * mb, 1),
    }


def _config(kind: str, work: Path, segmenter: str = "sam2") -> dict:
    """The model files (built here, in the parent: building them is not the window's memory)."""
    if kind == "tiny":
        from tests.tiny_clip import make_tiny_clip
        from tests.tiny_sam import make_tiny_sam

        config_json, weights = make_tiny_clip(work / "tiny-clip", tower="convnext")
        return dict(
            checkpoint=str(make_tiny_sam(work / "tiny_sam.pth")),
            clip_config=str(config_json),
            clip_weights=str(weights),
            vocabulary="coco",
            device="cpu",
        )
    from benchmarks.models import DEFAULT_CLIP, clip_weights, segmenter_checkpoint

    return dict(
        segmenter=segmenter,
        checkpoint=str(segmenter_checkpoint(segmenter, work)),
        clip_model=DEFAULT_CLIP,
        clip_weights=str(clip_weights(work)),
        vocabulary="coco",
        device="cpu",
    )


def child(kind: str, work: Path, out: Path, screenshot: Path | None) -> None:
    result: dict = {"rss_mb_python": _rss_mb()}
    import torch

    result["rss_mb_torch"] = _rss_mb()
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QTransform
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from annotator.gui.main_window import MainWindow
    from annotator.gui.settings import AppSettings, ModelConfig

    torch.set_num_threads(2)
    pyramidal, _ = make_images(work)
    config = ModelConfig(**json.loads((work / f"window-config-{kind}.json").read_text()))
    app = QApplication(sys.argv[:1])
    run = work / f"window-{kind}"
    text_index = run / "cache" / "text"  # the vocabulary's text index, kept with --index-cached
    kept = work / f"kept-text-{kind}"
    if os.environ.get("BENCH_INDEX_CACHED") == "1" and text_index.is_dir():
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(text_index, kept)
    shutil.rmtree(run, ignore_errors=True)
    if kept.is_dir():
        text_index.parent.mkdir(parents=True)
        shutil.move(kept, text_index)
    result["text_index_cached"] = text_index.is_dir()
    (run / "images").mkdir(parents=True)
    os.link(pyramidal, run / "images" / pyramidal.name)
    result.update(models=kind, rss_mb_start=_rss_mb())  # imports (torch, Qt, the window's modules)

    def wait(condition, seconds: float) -> float:
        start = time.perf_counter()
        while not condition():
            if time.perf_counter() - start > seconds:
                raise TimeoutError(f"not within {seconds} s: {result}")
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - start

    from annotator.gui import large_display

    shown_at: list[float] = []
    show = large_display.LargeDisplay.show

    def timed_show(self, *args):  # when the window asks for the image (after the folder scan)
        shown_at.append(time.perf_counter())
        return show(self, *args)

    large_display.LargeDisplay.show = timed_show
    window = MainWindow(AppSettings(run / "settings.ini"), config, cache_dir=str(run / "cache"))
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    start = time.perf_counter()
    window.open_folder(run / "images")
    wait(lambda: getattr(window, "_large_display", None) is not None, 60)
    display = window._large_display
    wait(lambda: display.item is not None and display.item.drawn, 60)
    result["first_picture_s"] = round(time.perf_counter() - start, 3)
    result["image_request_to_picture_s"] = round(time.perf_counter() - shown_at[0], 3)
    result["first_picture_levels"] = sorted({key[0] for key in display.item.drawn})
    result["rss_mb_after_show"] = _rss_mb()
    result["engine_wait_s"] = round(
        wait(lambda: window.engine_ready and window.worker.labels_complete(), 600), 1
    )
    result["rss_mb_after_engine"] = _rss_mb()
    result["resident_after_engine"] = _breakdown()
    canvas, session = window.canvas, window.session
    clicks = []
    for i, (x, y) in enumerate(CLICKS):
        canvas.setTransform(QTransform())  # 100 %: the view shows ~1,600 x 1,000 native pixels
        canvas.centerOn(QPointF(x, y))
        wait(lambda: any(key[0] == 0 for key in display.item.drawn), 30)
        pos = canvas.mapFromScene(QPointF(x, y))
        click_start = time.perf_counter()
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
        wait(lambda: session.pending is not None and session.pending.labels, 900)
        seconds = time.perf_counter() - click_start
        pending = session.pending
        w = pending.proposal.window
        window.controller.accept(pending.labels[0][0])
        wait(lambda n=i + 1: len(session.records) == n, 30)
        clicks.append(
            {
                "point": [x, y],
                "window": [w.x0, w.y0, w.x1, w.y1, w.level],
                "mask_s": round(seconds, 2),
                "area": int(pending.proposal.area()),
                "rss_mb": _rss_mb(),
            }
        )
    result["clicks"] = clicks
    result["tile_cache_mb"] = round(display.cache.nbytes / 2**20, 1)
    result["rss_mb_peak"] = _rss_mb()
    result["resident_at_end"] = _breakdown()
    if screenshot is not None:
        x, y = CLICKS[0]
        canvas.setTransform(QTransform.fromScale(1.6, 1.6))
        canvas.centerOn(QPointF(x, y))
        session.select(next(iter(session.records)))
        end = time.monotonic() + 2
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", "root", str(screenshot)], check=True)
    out.write_text(json.dumps(result))
    window.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/large-bench"))
    parser.add_argument("--tiny-only", action="store_true", help="only the tiny-model scenario")
    parser.add_argument(
        "--segmenter",
        default="sam2",
        help="the full scenario's family (default sam2, the CPU default; sam: SAM 1 ViT-B)",
    )
    parser.add_argument("--screenshot", type=Path, help="tiny models under Xvfb, then this PNG")
    parser.add_argument(
        "--index-cached",
        action="store_true",
        help="each scenario twice: a first session that builds the text index, then a later "
        "one that finds it in the cache",
    )
    parser.add_argument("--full-only", action="store_true", help="only the full-size scenario")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.work, args.out, args.screenshot)
        return
    kinds = ["tiny"] if args.tiny_only or args.screenshot else ["tiny", "full"]
    kinds = ["full"] if args.full_only else kinds
    if args.index_cached:
        # a later session finds the vocabulary's text index in the cache, so the CLIP text tower
        # never runs (ADR 42): each scenario runs twice, the second keeping the first's index
        kinds = [k for k in kinds for _ in (0, 1)]
        os.environ["BENCH_INDEX_CACHED"] = "1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.screenshot is None:
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    scenarios = []
    for kind in kinds:
        config = _config(kind, args.work, args.segmenter)
        (args.work / f"window-config-{kind}.json").write_text(json.dumps(config))
        out = args.work / f"window-{kind}.json"
        command = [sys.executable, __file__, "--child", kind, "--work", str(args.work)]
        command += ["--out", str(out)]
        if args.screenshot is not None:
            command += ["--screenshot", str(args.screenshot.resolve())]
        subprocess.run(command, check=True, env=env)
        scenarios.append(json.loads(out.read_text()))
    if args.screenshot is not None:
        print(json.dumps(scenarios, indent=1))
        return
    result = {
        "benchmark": "large_window",
        "image": "20000x20000 RGB, 512-px zlib tiles, 5 overviews (bench_large_image.make_images)",
        "window": "MainWindow 1600x1000, offscreen Qt; clicks at 100 % zoom",
        "segmenter": args.segmenter,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "scenarios": scenarios,
    }
    stamp = time.strftime("%Y-%m-%d-%H%M")
    path = ROOT / "benchmarks" / "results" / f"{stamp}-large-window-cpu.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
