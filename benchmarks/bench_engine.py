"""Speed of a click, an encode and a cached load, as ratios against the upstream baselines in one run.

    python benchmarks/bench_engine.py [--image PATH] [--repeats 30] [--json out.json]

Full-size random-initialised SAM ViT-B and the default CLIP (`convnext_base_w`) are built with the upstream
constructors and saved to a temporary folder, then loaded through the project's real loading code (speed does
not depend on the weights). Ratios, not seconds, are what carry across machines:

- click: `Engine.segment` (mask + top-5 labels over the full default vocabulary) vs `SamPredictor.predict`
  alone on the same embedding and prompt (p50 of each).
- encode: `Engine.embed` (no cache) vs `SamPredictor.set_image` + the raw CLIP trunk on the same input, run one
  after the other.
- cached load: `Engine.embed` of an image whose embedding is on disk (absolute ms).
- text encoding: the truncated encoder vs open_clip's `encode_text`; `top_k` over 22k x 512.
- similar objects: one query over 100k stored annotation vectors (absolute ms; the target is < 50).
- the crop head's click cost with ViT-B-32 as a separate figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import interleaved_samples  # noqa: E402


def p50(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """p50 of several functions measured alternately, so machine noise hits all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = interleaved_samples(fns, repeats)
    return {name: statistics.median(values) for name, values in samples.items()}


def default_image() -> Path:
    for folder in ("coco_mval80/img", "berkeley/images", "grabcut/images"):
        path = ROOT.parent / "shared" / "data" / folder
        if path.is_dir():
            return sorted(path.iterdir())[0]
    raise SystemExit("no image: pass --image PATH")


def build_checkpoints(folder: Path, clip_name: str) -> tuple[Path, Path]:
    import open_clip
    from segment_anything import build_sam_vit_b

    torch.manual_seed(0)
    sam_path = folder / "sam_vit_b_random.pth"
    if not sam_path.exists():
        torch.save(build_sam_vit_b(None).state_dict(), sam_path)
    clip_path = folder / f"{clip_name}_random.pt"
    if not clip_path.exists():
        torch.save(open_clip.create_model(clip_name, pretrained=None).state_dict(), clip_path)
    return sam_path, clip_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--encode-repeats", type=int, default=3)
    parser.add_argument(
        "--work", type=Path, help="folder for checkpoints and caches (default: temp)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-crop", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    from segment_anything import SamPredictor

    from annotator.engine import Engine
    from annotator.io.images import load_image
    from annotator.vocab.index import benchmark_topk

    work = args.work or Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    image_path = args.image or default_image()
    image = load_image(image_path)
    results: dict[str, object] = {
        "image": f"{image_path.name} ({image.shape[1]}x{image.shape[0]})",
        "torch_threads": torch.get_num_threads(),
    }
    print(f"image {results['image']}, {torch.get_num_threads()} threads", file=sys.stderr)

    sam_path, clip_path = build_checkpoints(work, "convnext_base_w")
    t0 = time.perf_counter()
    engine = Engine.from_paths(
        sam_checkpoint=sam_path,
        clip_model="convnext_base_w",
        clip_weights=clip_path,
        device="cpu",
        cache_dir=work / "cache",
        progress=lambda stage, done, total: print(
            f"\r{stage} {done}/{total}", end="", file=sys.stderr
        ),
    )
    print(file=sys.stderr)
    results["engine_load_s"] = round(time.perf_counter() - t0, 1)
    results["vocabulary_entries"] = len(engine.vocabulary)
    results["text_index_rows"] = int(engine.index.matrix.shape[0])
    results["region_head"] = engine.head.name

    # ---- encode: engine.embed (no cache) vs raw SAM encoder + raw CLIP trunk, one after the other
    nocache = Engine(engine.sam, engine.clip, engine.head, engine.index, cache=None)
    predictor = SamPredictor(engine.sam.model)
    # The raw CLIP encoder: the ConvNeXt trunk on an input of the size the pool head uses (speed does not
    # depend on the pixel values), built here without any of the project's code.
    h_in, w_in = engine.head.input_size(image.shape[:2])
    trunk_input = torch.randn(1, 3, h_in, w_in)
    results["clip_input"] = f"{w_in}x{h_in}"

    def raw_encode():
        predictor.set_image(image)
        with torch.inference_mode():
            engine.clip.model.visual.trunk.forward_features(trunk_input)

    times = interleaved(
        {"engine": lambda: nocache.embed(image), "raw": raw_encode}, args.encode_repeats, 1
    )
    results["encode_engine_s"] = round(times["engine"], 3)
    results["encode_raw_s"] = round(times["raw"], 3)
    results["encode_ratio"] = round(times["engine"] / times["raw"], 3)

    # ---- cached load
    engine.embed(image_path)
    results["cached_load_ms"] = round(p50(lambda: engine.embed(image_path), 20) * 1000, 2)

    # ---- click: engine.segment (mask + top-5 over the full vocabulary) vs SamPredictor.predict alone
    embedding = engine.embed(image_path)
    predictor.set_image(image)
    h, w = image.shape[:2]
    point = (w * 0.5, h * 0.5)
    coords, labels = np.array([point]), np.array([1])

    def upstream():
        predictor.predict(point_coords=coords, point_labels=labels, multimask_output=True)

    def ours():
        engine.segment(embedding, [(point[0], point[1], True)], top_k=5)

    times = interleaved({"engine": ours, "predict": upstream}, args.repeats)
    results["click_engine_ms"] = round(times["engine"] * 1000, 2)
    results["click_predict_ms"] = round(times["predict"] * 1000, 2)
    results["click_ratio"] = round(times["engine"] / times["predict"], 3)

    # ---- text encoding and top-k
    prompts = [f"a photo of a {name}." for name in engine.vocabulary.names()[:512]]
    fast = p50(lambda: engine.clip.encode_text(prompts), 3, 1)
    reference = p50(lambda: engine.clip.encode_text_reference(prompts), 3, 1)
    diff = np.abs(
        engine.clip.encode_text(prompts) - engine.clip.encode_text_reference(prompts)
    ).max()
    results["text_speedup"] = round(reference / fast, 2)
    results["text_max_abs_diff"] = float(diff)
    results["topk_22k_x_512"] = benchmark_topk(rows=22000, dim=512)
    region = engine.region_embedding(embedding, np.ones(embedding.size, dtype=bool))
    results["topk_full_vocabulary_ms"] = round(
        p50(lambda: engine.index.topk(region, 5), 200) * 1000, 3
    )

    # ---- similar objects: one query over 100k stored annotation vectors (target < 50 ms)
    from annotator.discovery.similar import benchmark_query
    from annotator.store import Project

    scratch = Project(work / "similar-bench.db")
    try:
        results["similar_100k"] = benchmark_query(scratch, n=100_000, dim=512)
    finally:
        scratch.close()
        for path in work.glob("similar-bench.db*"):
            path.unlink()

    # ---- crop strategy with ViT-B-32
    if not args.skip_crop:
        _, vit_path = build_checkpoints(work, "ViT-B-32")
        crop = Engine.from_paths(
            sam_checkpoint=sam_path,
            clip_model="ViT-B-32",
            clip_weights=vit_path,
            region_head="crop",
            device="cpu",
            cache_dir=work / "cache",
        )
        crop_embedding = crop.embed(image_path)

        def crop_click():
            crop.segment(crop_embedding, [(point[0], point[1], True)], top_k=5)

        times = interleaved({"crop": crop_click, "predict": upstream}, max(5, args.repeats // 2))
        results["crop_click_ms"] = round(times["crop"] * 1000, 2)
        results["crop_click_ratio"] = round(times["crop"] / times["predict"], 3)

    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
