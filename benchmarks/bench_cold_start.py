"""Cold start: an empty cache, full-size random models, the default vocabulary. When do the first
mask and the first labels come?

    PYTHONPATH=$PWD python benchmarks/bench_cold_start.py [--work DIR] [--segmenter sam2]
        [--until lvis|all]

1. CLI: `annotator segment IMG --point X,Y --top-k 0 --segmenter sam2 ...` on an empty cache, against
   a process that only loads the same engine and runs one segmenter encode (the least any first
   mask costs), run alternately (p50 of 3 each).
2. The window: the real `MainWindow` and its `EngineWorker` (offscreen Qt) open a folder of photos
   with an empty cache; the benchmark clicks the centre of the first image as soon as the window
   says the models are loaded, and records when the mask arrives, when the growing text index
   covers the COCO names and then the LVIS names (the worker's "labels" progress), when a click
   is answered with labels, and when the whole vocabulary is encoded (`--until all`). Its bounds:
   first mask <= load + one encode + 1 s, COCO labels <= 10 s and LVIS <= 60 s after opening.

The text index it builds is moved to the work folder's cache afterwards, where
`bench_segmenters.py` finds it. Raw JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import save_result  # noqa: E402
from benchmarks.models import DEFAULT_CLIP, clip_weights, photos, segmenter_checkpoint  # noqa: E402

LOAD_AND_ENCODE = """
import sys, time
from pathlib import Path
from annotator.engine import build_engine
from annotator.io.images import load_image
from annotator.spec import ModelSpec
spec = ModelSpec(segmenter=sys.argv[1], checkpoint=Path(sys.argv[2]), clip_model=sys.argv[3],
                 clip_weights=Path(sys.argv[4]), cache_dir=Path(sys.argv[5]), device="cpu")
engine = build_engine(spec, build_index=False)
engine.sam.encode(load_image(Path(sys.argv[6])))
"""


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    return time.perf_counter() - start


def cli(family: str, checkpoint: Path, clip: Path, photo: Path, work: Path, repeats: int) -> dict:
    from PIL import Image

    w, h = Image.open(photo).size
    samples: dict[str, list[float]] = {"segment": [], "load_and_encode": []}
    for _ in range(repeats):
        for name in samples:
            cache = Path(tempfile.mkdtemp(prefix="cold-", dir=work))
            if name == "segment":
                command = [sys.executable, "-m", "annotator", "segment", str(photo), "--point",
                           f"{w / 2},{h / 2}", "--top-k", "0", "--segmenter", family,
                           "--checkpoint", str(checkpoint), "--clip-model", DEFAULT_CLIP,
                           "--clip-weights", str(clip), "--cache-dir", str(cache), "--device", "cpu"]  # fmt: skip
            else:
                command = [sys.executable, "-c", LOAD_AND_ENCODE, family, str(checkpoint),
                           DEFAULT_CLIP, str(clip), str(cache), str(photo)]  # fmt: skip
            samples[name].append(_run(command))
            shutil.rmtree(cache)
    segment = statistics.median(samples["segment"])
    floor = statistics.median(samples["load_and_encode"])
    return {
        "segment_top_k_0_s": round(segment, 2),
        "load_and_one_encode_s": round(floor, 2),
        "segment_vs_load_and_encode": round(segment / floor, 3),
        "samples": {k: [round(v, 2) for v in vs] for k, vs in samples.items()},
    }


def window(
    family: str, checkpoint: Path, clip: Path, images: list[Path], work: Path, until: str
) -> dict:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from annotator.gui.main_window import MainWindow
    from annotator.gui.settings import AppSettings, ModelConfig
    from annotator.io.images import load_image
    from annotator.vocab.index import TextIndex
    from annotator.vocab.vocabulary import load_vocabulary

    app = QApplication.instance() or QApplication([])
    # Where COCO and LVIS end in the default vocabulary's build order: the index's own milestones
    # (a category counts from the first entry naming it, as display name or synonym; tested in
    # tests/models/test_index_priority.py). No text is encoded to plan them.
    plan = TextIndex(load_vocabulary(None), lambda texts: None, "plan")
    coco_end, lvis_end = plan.plan_milestones()
    folder = work / "cold-folder"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in images:
        shutil.copy(path, folder / path.name)
    cache = work / "cold-cache"
    shutil.rmtree(cache, ignore_errors=True)
    settings = AppSettings(work / "cold-settings.ini")
    config = ModelConfig(segmenter=family, checkpoint=str(checkpoint), clip_model=DEFAULT_CLIP,
                         clip_weights=str(clip), device="cpu")  # fmt: skip
    events: dict[str, float] = {}
    t0 = time.perf_counter()
    win = MainWindow(settings, config, cache_dir=str(cache))
    win.resize(1200, 800)
    win.show()

    def stamp(name: str) -> None:
        events.setdefault(name, round(time.perf_counter() - t0, 2))

    def on_progress(stage: str, ready: int, total: int) -> None:
        if stage != "labels":
            return
        if ready >= coco_end:
            stamp("index_covers_coco")
        if ready >= lvis_end:
            stamp("index_covers_lvis")
        events["labels_ready"], events["labels_total"] = ready, total

    win.worker.progress.connect(on_progress)
    win.worker.vocabulary_ready.connect(lambda n: stamp("index_complete"))
    win.worker.engine_ready.connect(lambda info: stamp("engine_ready"))
    assert win.open_folder(folder)

    def wait(condition, timeout: float) -> bool:
        end = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > end:
                return False
            app.processEvents()
            time.sleep(0.002)
        return True

    def click() -> None:
        h, w = win.canvas.image_size()
        pos = win.canvas.mapFromScene(QPointF(w / 2, h / 2))
        QTest.mouseClick(
            win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos
        )

    assert wait(lambda: win.engine_ready and win.canvas.image_size() is not None, 600), "no engine"
    c = win.controller
    clicked = time.perf_counter()
    click()
    assert wait(lambda: c.pending is not None, 600), "no mask"
    stamp("first_mask")
    first = c.pending
    events["first_mask_after_click_s"] = round(time.perf_counter() - clicked, 2)
    events["first_mask_labels_pending"] = bool(getattr(first.proposal, "labels_pending", False))
    assert wait(lambda: "index_covers_coco" in events, 600), "COCO never covered"
    assert wait(lambda: bool(c.pending is not None and c.pending.labels), 600), "no labels"
    stamp("first_labels_shown")
    events["first_labels"] = [n for n, _ in c.pending.labels]
    assert wait(lambda: "index_covers_lvis" in events, 900), "LVIS never covered"
    c.clear()
    click()
    assert wait(lambda: c.pending is not None and bool(c.pending.labels), 120)
    stamp("labels_of_a_click_with_lvis")
    if until == "all":
        assert wait(lambda: "index_complete" in events, 3600), "the index never completed"
    win.close()
    win.deleteLater()  # deleted while the application exists (not at interpreter exit)
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    # One encode of this image by the same segmenter, in this process: the bound's "one encode".
    from annotator.models.registry import load_segmenter

    segmenter = load_segmenter(checkpoint, family)
    pixels = load_image(folder / images[0].name)
    encodes = []
    for _ in range(2):
        start = time.perf_counter()
        segmenter.encode(pixels)
        encodes.append(time.perf_counter() - start)
    encode = min(encodes)
    load = events["engine_ready"]
    bound = load + encode + 1.0
    return {
        "events_s_after_opening": events,
        "coco_entries_end": coco_end,
        "lvis_entries_end": lvis_end,
        "one_encode_s": round(encode, 2),
        "first_mask_bound_s": round(bound, 2),
        "first_mask_within_bound": events["first_mask"] <= bound,
        "coco_within_10_s": events["index_covers_coco"] <= 10.0,
        "lvis_within_60_s": events["index_covers_lvis"] <= 60.0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "annotator-bench"
    )
    parser.add_argument("--segmenter", default="sam2")
    parser.add_argument("--until", choices=("lvis", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    images = photos(4)
    checkpoint = segmenter_checkpoint(args.segmenter, work)
    clip = clip_weights(work)
    result = {
        "benchmark": "bench_cold_start",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{os.cpu_count()} cpus",
        "command": "python benchmarks/bench_cold_start.py " + " ".join(argv or sys.argv[1:]),
        "segmenter": args.segmenter,
        "clip": DEFAULT_CLIP,
        "vocabulary": "default",
    }
    if not args.skip_cli:
        result["cli"] = cli(args.segmenter, checkpoint, clip, images[0], work, args.repeats)
        print(json.dumps(result["cli"]), flush=True)
    result["window"] = window(args.segmenter, checkpoint, clip, images, work, args.until)
    print(json.dumps(result["window"]), flush=True)
    text = work / "cold-cache" / "text"
    if args.until == "all" and text.is_dir() and not (work / "cache" / "text").is_dir():
        (work / "cache").mkdir(exist_ok=True)
        shutil.move(str(text), work / "cache" / "text")  # for bench_segmenters' click timing
    out = save_result(result, f"cold-start-{args.segmenter}-cpu-{os.cpu_count()}cores")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
