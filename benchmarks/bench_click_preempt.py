"""A click during the window's auto-label vs an idle click (issue 24), through the real model worker.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD python benchmarks/bench_click_preempt.py \
        [--models tiny|full] [--clicks 5] [--json F]

The worker (`gui.worker.EngineWorker`, the window's model thread) is started with the models; the
clicked image is encoded first. Then:
- idle: a click (one positive point) -> its mask (`proposal_ready`), `--clicks` times;
- during auto-label, preempting (today's worker: find / auto-label / refine yield at the next model
  call, `annotator.preempt`): an auto-label request for a fresh image (nothing cached) is sent, the
  click follows once the job is inside its model calls, and the click's latency is timed;
- during auto-label, not preempting (the worker as it was: the job runs to its end first), the same.
Reported: median latencies and the ratios to idle (target: preempting <= 1.5x idle). `--models full`
uses SAM ViT-B + CLIP convnext_base_w with random weights (speed does not depend on weights, see
benchmarks/models.py; slow to build); `tiny` the test suite's tiny models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def config_for(models: str, work: Path):
    from annotator.gui.settings import ModelConfig

    if models == "tiny":
        from tests.tiny_clip import make_tiny_clip
        from tests.tiny_sam import make_tiny_sam

        config_json, weights = make_tiny_clip(work / "clip", tower="convnext")
        return ModelConfig(
            checkpoint=str(make_tiny_sam(work / "tiny_sam.pth")),
            clip_config=str(config_json),
            clip_weights=str(weights),
            vocabulary="coco",
            device="cpu",
        )
    from models import DEFAULT_CLIP, clip_weights, segmenter_checkpoint

    return ModelConfig(
        segmenter="sam",
        checkpoint=str(segmenter_checkpoint("sam", work)),
        clip_model=DEFAULT_CLIP,
        clip_weights=str(clip_weights(work)),
        vocabulary="coco",
        device="cpu",
    )


def image(folder: Path, seed: int) -> Path:
    """A distinct photo-sized image (its hash differs: nothing of it is cached)."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((480, 640, 3)) * 80 + 60).astype(np.uint8)
    pixels[120:360, 160:480] = (220, 60 + seed % 100, 40)
    path = folder / f"img_{seed:03d}.png"
    Image.fromarray(pixels).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--points-per-side", type=int, default=16)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "annotator-bench"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    import annotator.app.model_host as worker_module  # the host reads YIELDING
    from annotator.app.jobs import AUTOLABEL, YIELDED, YIELDING, AutolabelParams, DiscoveryRequest
    from annotator.discovery.proposals import ProposalSettings
    from annotator.gui.worker import DecodeRequest, EngineWorker

    app = QApplication(sys.argv[:1])
    args.work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="click-preempt-", dir=args.work))
    config = config_for(args.models, args.work)
    worker = EngineWorker(4096)
    got: dict[int, float] = {}
    found: dict[int, object] = {}
    ready: list[dict] = []
    worker.engine_ready.connect(ready.append)
    worker.proposal_ready.connect(lambda _i, req, _p: got.setdefault(req, time.perf_counter()))
    worker.discovered.connect(lambda _k, _i, req, result: found.__setitem__(req, result))
    worker.start()
    worker.load(config.to_spec(str(tmp / "cache")))

    def wait(condition, seconds: float = 3600) -> None:
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError("the worker did not answer in time")
            app.processEvents()
            time.sleep(0.002)

    wait(lambda: bool(ready))
    clicked = image(tmp, 0)
    worker.set_order([(0, str(clicked))])
    wait(lambda: worker.is_encoded(0))
    req = [100]

    def click() -> float:
        req[0] += 1
        n = req[0]
        start = time.perf_counter()
        worker.decode(DecodeRequest(n, 0, str(clicked), ((320.0, 240.0, True),)))
        wait(lambda: n in got)
        return got[n] - start

    click()  # warm-up
    idle = [click() for _ in range(args.clicks)]

    class _Store:  # auto-label's params want a store only to skip images already done
        def is_done(self, image_id: int, run: str) -> bool:
            return False

    # the grid's size changes how long an image takes, not how long one model call takes (what a
    # preempted click waits for at most): a small grid keeps the full-size run within minutes
    settings = ProposalSettings(points_per_side=args.points_per_side)
    params = AutolabelParams(("person", "car", "dog"), _Store(), settings, 0.2, 10)
    seed = [1000]

    def during(preempt: bool) -> tuple[float, float]:
        """(click latency, seconds the auto-label image ran before the click)."""
        worker_module.YIELDING = YIELDING if preempt else frozenset()
        seed[0] += 1
        path = image(tmp, seed[0])
        req[0] += 1
        job = req[0]
        started = time.perf_counter()
        worker.discover(DiscoveryRequest(job, seed[0], str(path), AUTOLABEL, params))
        # the click comes once the job is past its encode and inside the proposal / region calls
        time.sleep(0.3 * (idle_median / 0.05 if args.models == "tiny" else 1))
        lead = time.perf_counter() - started
        latency = click()
        wait(lambda: job in found)
        if isinstance(found[job], str) and found[job] == YIELDED:
            req[0] += 1
            again = req[0]
            worker.discover(DiscoveryRequest(again, seed[0], str(path), AUTOLABEL, params))
            wait(lambda: again in found)
        return latency, lead

    idle_median = statistics.median(idle)
    with_preempt = [during(True) for _ in range(args.clicks)]
    without = [during(False) for _ in range(args.clicks)]
    worker_module.YIELDING = YIELDING
    worker.stop()
    preempt_median = statistics.median(x for x, _ in with_preempt)
    without_median = statistics.median(x for x, _ in without)
    result = {
        "benchmark": "click during auto-label vs idle (worker thread)",
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "models": args.models,
        "clicks": args.clicks,
        "points_per_side": settings.points_per_side,
        "idle_click_s": idle,
        "during_autolabel_preempting_s": [x for x, _ in with_preempt],
        "during_autolabel_not_preempting_s": [x for x, _ in without],
        "click_after_job_start_s": [lead for _, lead in with_preempt + without],
        "median_idle_s": idle_median,
        "median_preempting_s": preempt_median,
        "median_not_preempting_s": without_median,
        "ratio_preempting_to_idle": preempt_median / idle_median,
        "ratio_not_preempting_to_idle": without_median / idle_median,
        "target_ratio": 1.5,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
