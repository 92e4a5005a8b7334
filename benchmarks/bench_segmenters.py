"""Segmenter families side by side: full-size random-weight models, one run, ratios.

    PYTHONPATH=$PWD python benchmarks/bench_segmenters.py [--work DIR]
        [--families sam,sam2,edgetam,sam_hq] [--repeats 20]

Per family (the same photos, the default CLIP `convnext_base_w`, one process per `annotator` call):

- encode: per-image cost of the segmenter half counted end to end through `annotator embed`
  (decode, hash, encode, cache write): the wall time of `annotator embed` on N photos minus the
  wall time on one photo, divided by N-1 (N = 13 for SAM 2.1 tiny and EdgeTAM, best of two runs,
  so that the seconds of model loading do not drown their sub-second encodes; N = 4 for the ViT-B
  models), with the CLIP half already in the cache so that only the segmenter half is computed. The ratio is against SAM 1 ViT-B measured the same way.
- MB per image: the size of the cached segmenter half on disk.
- click: `Engine.segment` (mask + top-5 labels over the whole default vocabulary, its text index
  from the cache) against the family's reference pipeline alone on the same cached image
  embedding, measured alternately (SAM 1: `SamPredictor.predict`; SAM 2.1 / EdgeTAM / HQ-SAM: the
  transformers processor for the prompt -> the model's forward with the image embeddings ->
  `post_process_masks`), p50 of each.
- cached re-open: `Engine.embed(path)` when both halves are on disk (p50, ms).

Raw JSON into benchmarks/results/. The text index of the default vocabulary is built on the first
run (minutes on a CPU) and cached in the work folder; `bench_cold_start.py` leaves one there too.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_engine import interleaved  # noqa: E402
from benchmarks.models import DEFAULT_CLIP, clip_weights, photos, segmenter_checkpoint  # noqa: E402

NAMES = {
    "sam": "SAM 1 ViT-B",
    "sam2": "SAM 2.1 Hiera-T",
    "edgetam": "EdgeTAM",
    "sam_hq": "HQ-SAM ViT-B",
}


def _flags(family: str, checkpoint: Path, clip: Path, cache: Path) -> list[str]:
    return [
        "--segmenter", family, "--checkpoint", str(checkpoint), "--clip-model", DEFAULT_CLIP,
        "--clip-weights", str(clip), "--cache-dir", str(cache), "--device", "cpu",
    ]  # fmt: skip


def _annotator(*args: str) -> float:
    """Wall seconds of one `annotator` command (a fresh process, as a user runs it)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "annotator", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - start


def _folder(root: Path, images: list[Path]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for path in images:
        target = root / path.name
        if not target.exists():
            shutil.copy(path, target)
    return root


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.npz"))


FAST = {"sam2", "edgetam"}  # encodes of ~0.5-3 s: more photos, so load-time noise averages out


def encode_through_embed(family: str, checkpoint: Path, clip: Path, work: Path, images) -> dict:
    """Per-image segmenter-half cost through `annotator embed` (see the module docstring): 12
    photos (fast families) or 3 in the many-photo run, the best of two runs for the fast ones."""
    n_many, tries = (12, 2) if family in FAST else (3, 1)
    one = _folder(work / "embed" / "one", images[:1])
    many = _folder(work / "embed" / f"many-{n_many}", images[1 : 1 + n_many])
    every = _folder(work / "embed" / "every", images[1:13])
    clip_cache = work / "embed" / "clip-cache"
    for folder in (one, every):  # the CLIP half of every photo, once (cached photos are skipped)
        edgetam = segmenter_checkpoint("edgetam", work)
        _annotator("embed", str(folder), *_flags("edgetam", edgetam, clip, clip_cache))
    runs: dict[str, list[float]] = {"one": [], "many": []}
    mb = 0.0
    for _ in range(tries):
        for name, folder in (("one", one), ("many", many)):
            cache = Path(tempfile.mkdtemp(prefix=f"bench-{family}-", dir=work))
            shutil.copytree(clip_cache / "embeddings" / "clip", cache / "embeddings" / "clip")
            runs[name].append(
                _annotator("embed", str(folder), *_flags(family, checkpoint, clip, cache))
            )
            if name == "many":
                mb = _bytes_under(cache / "embeddings" / "sam") / 1e6 / n_many
            shutil.rmtree(cache)
    one_s, many_s = min(runs["one"]), min(runs["many"])
    return {
        "embed_one_s": [round(v, 2) for v in runs["one"]],
        "embed_many_s": [round(v, 2) for v in runs["many"]],
        "embed_many_images": n_many,
        "encode_per_image_s": round((many_s - one_s) / (n_many - 1), 3),
        "mb_per_image": round(mb, 2),
    }


def _reference(family: str, engine, image: np.ndarray, point: np.ndarray):
    """The family's own pipeline for one click on an already encoded image."""
    label = np.array([1])
    if family == "sam":
        from segment_anything import SamPredictor

        predictor = SamPredictor(engine.sam.model)
        predictor.set_image(image)
        return lambda: predictor.predict(
            point_coords=point, point_labels=label, multimask_output=True
        )
    from transformers import Sam2Processor, SamHQProcessor
    from transformers.models.sam.image_processing_sam import SamImageProcessor
    from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor

    model = engine.sam.model
    h, w = image.shape[:2]
    if family == "sam_hq":
        processor = SamHQProcessor(image_processor=SamImageProcessor())
        inputs = processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            cached = model.get_image_embeddings(inputs["pixel_values"])

        def click():  # SamProcessor scales prompts from the image it is given
            prompt = processor(images=image, input_points=[[point.tolist()]],
                               input_labels=[[label.tolist()]], return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                out = model(image_embeddings=cached[0], intermediate_embeddings=cached[1],
                            input_points=prompt["input_points"], input_labels=prompt["input_labels"])  # fmt: skip
            processor.post_process_masks(
                out.pred_masks, prompt["original_sizes"], prompt["reshaped_input_sizes"]
            )

        # SamHQProcessor has no prompt-only path: each click also preprocesses the image. That
        # part is timed on its own so the report can give the ratio without it as well.
        click.preprocess = lambda: processor.image_processor(image, return_tensors="pt")
        return click
    processor = Sam2Processor(image_processor=Sam2ImageProcessor())
    inputs = processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        cached = model.get_image_embeddings(inputs["pixel_values"])

    def click():  # the prompt alone: Sam2Processor takes original_sizes instead of the image
        prompt = processor(input_points=[[point.tolist()]], input_labels=[[label.tolist()]],
                           original_sizes=[[h, w]], return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            out = model(image_embeddings=cached, input_points=prompt["input_points"],
                        input_labels=prompt["input_labels"], multimask_output=True)  # fmt: skip
        processor.post_process_masks(out.pred_masks, prompt["original_sizes"])

    return click


def click_and_reopen(
    family: str, checkpoint: Path, clip: Path, work: Path, photo: Path, repeats: int
) -> dict:
    from annotator.engine import build_engine
    from annotator.io.images import load_image
    from annotator.spec import ModelSpec

    spec = ModelSpec(segmenter=family, checkpoint=checkpoint, clip_model=DEFAULT_CLIP,
                     clip_weights=clip, cache_dir=work / "cache", device="cpu")  # fmt: skip
    start = time.perf_counter()
    engine = build_engine(spec)  # the default vocabulary's text index: from the work cache
    load_s = time.perf_counter() - start
    image = load_image(photo)
    h, w = image.shape[:2]
    point = np.array([[w * 0.5, h * 0.5]])
    embedding = engine.embed(photo)
    reference = _reference(family, engine, image, point)
    times = interleaved(
        {
            "ours": lambda: engine.segment(embedding, [(point[0, 0], point[0, 1], True)], top_k=5),
            "reference": reference,
        },
        repeats,
    )
    extra = {}
    preprocess = getattr(reference, "preprocess", None)
    if preprocess is not None:
        pre = interleaved({"pre": preprocess}, repeats)["pre"]
        extra["reference_image_preprocess_ms"] = round(pre * 1e3, 2)
        extra["click_vs_reference_without_preprocess"] = round(
            times["ours"] / (times["reference"] - pre), 3
        )
    engine.embed(photo)
    reopen = statistics.median(_timed(lambda: engine.embed(photo)) for _ in range(repeats))
    labels = engine.segment(embedding, [(point[0, 0], point[0, 1], True)], top_k=5).labels
    return {
        "engine_load_s": round(load_s, 2),
        "vocabulary_entries": len(engine.vocabulary),
        "click_p50_ms": round(times["ours"] * 1e3, 2),
        "reference_click_p50_ms": round(times["reference"] * 1e3, 2),
        "click_vs_reference": round(times["ours"] / times["reference"], 3),
        "top5_labels": len(labels),
        "reopen_p50_ms": round(reopen * 1e3, 2),
        **extra,
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "annotator-bench"
    )
    parser.add_argument("--families", default="sam,sam2,edgetam,sam_hq")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    images = photos(13)
    clip = clip_weights(work)
    rows = []
    for family in args.families.split(","):
        checkpoint = segmenter_checkpoint(family, work)
        row = {"family": family, "model": NAMES.get(family, family)}
        row.update(encode_through_embed(family, checkpoint, clip, work, images))
        row.update(click_and_reopen(family, checkpoint, clip, work, images[0], args.repeats))
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r["encode_per_image_s"] for r in rows if r["family"] == "sam"), None)
    for r in rows:
        if base:
            r["encode_vs_sam_vit_b"] = round(r["encode_per_image_s"] / base, 3)
    document = {
        "benchmark": "bench_segmenters",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "command": "python benchmarks/bench_segmenters.py " + " ".join(argv or sys.argv[1:]),
        "photos": [p.name for p in images],
        "clip": DEFAULT_CLIP,
        "rows": rows,
    }
    name = f"{time.strftime('%Y-%m-%d-%H%M')}-segmenters-cpu-{os.cpu_count()}cores.json"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")
    for r in rows:
        print(
            f"{r['model']:15s} encode {r['encode_per_image_s']:.2f} s/image "
            f"({r.get('encode_vs_sam_vit_b', float('nan')):.3f}x SAM ViT-B), {r['mb_per_image']:.1f} MB/image, "
            f"click {r['click_p50_ms']:.1f} ms ({r['click_vs_reference']:.2f}x reference), "
            f"re-open {r['reopen_p50_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
