"""Auto-label speed, one short run: grid proposals vs upstream, images/minute, SAM 3 seconds/image.

    python benchmarks/bench_autolabel.py [--image PATH] [--images 1] [--loose] [--skip-sam3] [--json F]

Full-size random-initialised models (speed does not depend on the weights): SAM ViT-B and CLIP
`convnext_base_w` built with the upstream constructors and loaded through the project's code (see
bench_engine.py), and SAM 3 from transformers' default `Sam3Config` (840 M parameters).

- proposals: `sam.encode` + `propose_masks` vs upstream `SamAutomaticMaskGenerator.generate` (one
  crop, the same points per side and thresholds) on the same image; the ratio ours / upstream must be
  <= 1.0. Once with SAM ViT-B on both sides, once with the CPU default segmenter (SAM 2.1 Hiera-T,
  ADR 0006) against the same upstream run; `--loose` adds a run that keeps every candidate (the
  post-processing at full load; slow).
- `autolabel --by proposals`: images per minute over a few distinct images, three classes, no cache.
- `autolabel --by sam3`: seconds per image (vision features once, one text prompt per class).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CLASSES = ["person", "car", "dog"]


def photos(count: int) -> list[Path]:
    folder = ROOT.parent / "shared" / "data" / "coco_mval80" / "img"
    found = sorted(folder.glob("*.jpg"))[:count]
    if not found:
        raise SystemExit(f"no images in {folder}: pass --image")
    return found


def bench_proposals(sam, image: np.ndarray, settings, label: str) -> dict:
    """Ours (encode + propose_masks) vs upstream generate(), same image, same knobs, one run each."""
    from segment_anything import SamAutomaticMaskGenerator

    from annotator.discovery.proposals import propose_masks
    from annotator.engine import ImageEmbedding

    upstream = SamAutomaticMaskGenerator(
        sam.model,
        points_per_side=settings.points_per_side,
        points_per_batch=settings.points_per_batch,
        pred_iou_thresh=settings.pred_iou_thresh,
        stability_score_thresh=settings.stability_score_thresh,
        stability_score_offset=settings.stability_score_offset,
        box_nms_thresh=settings.nms_thresh,
        crop_n_layers=0,
        min_mask_region_area=0,
        output_mode="binary_mask",
    )
    log(f"proposals, {label}: ours")
    t = time.perf_counter()
    encoded = sam.encode(image)
    t_encode = time.perf_counter() - t
    embedding = ImageEmbedding(sam=encoded, clip={}, image_hash="", model_id="bench")
    t = time.perf_counter()
    ours = propose_masks(sam, embedding, settings)
    t_propose = time.perf_counter() - t
    log(f"proposals, {label}: upstream")
    t = time.perf_counter()
    theirs = upstream.generate(image)
    t_upstream = time.perf_counter() - t
    t_set_image = (
        t_encode  # the same image encoder on the same input (not run twice: saves minutes)
    )
    ours_total = t_encode + t_propose
    upstream_decode = max(t_upstream - t_set_image, 1e-9)
    out = {
        "settings": label,
        "points_per_side": settings.points_per_side,
        "pred_iou_thresh": settings.pred_iou_thresh,
        "stability_thresh": settings.stability_score_thresh,
        "ours_masks": len(ours),
        "upstream_masks": len(theirs),
        "ours_encode_s": round(t_encode, 3),
        "ours_proposals_s": round(t_propose, 3),
        "ours_total_s": round(ours_total, 3),
        "upstream_generate_s": round(t_upstream, 3),
        "upstream_set_image_s": "taken as ours_encode_s (same encoder, same input)",
        "ratio_total": round(ours_total / t_upstream, 3),
        "ratio_after_encode": round(t_propose / upstream_decode, 3),
    }
    print(json.dumps(out), file=sys.stderr)
    return out


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def bench_ours(segmenter, image: np.ndarray, settings, upstream: dict) -> dict:
    """Our proposals with another segmenter (encode + propose) against an upstream row."""
    from annotator.discovery.proposals import propose_masks
    from annotator.engine import ImageEmbedding

    log(f"proposals with {segmenter.identity[:40]}")
    t = time.perf_counter()
    encoded = segmenter.encode(image)
    t_encode = time.perf_counter() - t
    embedding = ImageEmbedding(sam=encoded, clip={}, image_hash="", model_id="bench")
    t = time.perf_counter()
    ours = propose_masks(segmenter, embedding, settings)
    t_propose = time.perf_counter() - t
    total = t_encode + t_propose
    out = {
        "segmenter": "SAM 2.1 Hiera-T (CPU default, random weights)",
        "versus": "upstream SamAutomaticMaskGenerator, SAM ViT-B, same settings and image",
        "ours_masks": len(ours),
        "ours_encode_s": round(t_encode, 3),
        "ours_proposals_s": round(t_propose, 3),
        "ours_total_s": round(total, 3),
        "upstream_generate_s": upstream["upstream_generate_s"],
        "ratio_total": round(total / upstream["upstream_generate_s"], 3),
    }
    print(json.dumps(out), file=sys.stderr)
    return out


def bench_autolabel(labeler, images: list[Path], work: Path) -> dict:
    from annotator.app.autolabel import autolabel
    from annotator.discovery.autolabel import add_folder_images
    from annotator.store import Project

    folder = work / f"images-{labeler.source}"
    folder.mkdir(parents=True, exist_ok=True)
    for path in images:
        (folder / path.name).write_bytes(path.read_bytes())
    with Project.open_folder(folder) as project:
        add_folder_images(project, folder)
        report = autolabel(project, labeler, CLASSES)
    per_image = report.seconds / max(report.labelled, 1)
    out = {
        "by": labeler.source,
        "images": report.labelled,
        "classes": len(CLASSES),
        "proposals": report.proposals,
        "seconds": round(report.seconds, 2),
        "seconds_per_image": round(per_image, 2),
        "images_per_minute": round(60.0 / per_image, 2),
    }
    print(json.dumps(out), file=sys.stderr)
    return out


def full_sam3():
    """transformers' default SAM 3 (the facebook/sam3 architecture), random weights, with the
    CLIP tokenizer and the default 1008-pixel processor."""
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    from annotator.models.sam3 import Sam3TextSegmenter
    from tests.tiny_sam3 import clip_tokenizer

    torch.manual_seed(0)
    model = Sam3Model(Sam3Config()).eval()
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=clip_tokenizer())
    params = sum(p.numel() for p in model.parameters())
    return Sam3TextSegmenter(model, processor, "cpu", "sam3-random"), params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path)
    parser.add_argument("--images", type=int, default=1, help="images for autolabel --by proposals")
    parser.add_argument("--skip-sam3", action="store_true")
    parser.add_argument(
        "--loose", action="store_true", help="also compare with every candidate kept (slow)"
    )
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    from bench_engine import build_checkpoints

    from annotator.discovery.autolabel import ProposalLabeler, Sam3Labeler
    from annotator.discovery.proposals import ProposalSettings
    from annotator.engine import Engine
    from annotator.io.images import load_image

    work = args.work or Path(tempfile.mkdtemp(prefix="annotator-bench-autolabel-"))
    work.mkdir(parents=True, exist_ok=True)
    image_path = args.image or photos(1)[0]
    image = load_image(image_path)
    results: dict[str, object] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "image": f"{image_path.name} ({image.shape[1]}x{image.shape[0]})",
    }
    sam_path, clip_path = build_checkpoints(work, "convnext_base_w")
    from annotator.models.sam import SamModel
    from annotator.models.segmenter import load_segmenter

    log("loading SAM ViT-B")
    sam = SamModel.load(sam_path, "cpu")
    defaults = ProposalSettings()
    loose = ProposalSettings(pred_iou_thresh=-10.0, stability_score_thresh=-10.0)
    vit_b = bench_proposals(sam, image, defaults, "defaults")
    results["proposals"] = [vit_b]
    # the CPU default segmenter (ADR 0006: SAM 2.1 Hiera-T) against the same upstream run
    sam2_folder = work / "sam2_hiera_t_random"
    if not (sam2_folder / "config.json").is_file():
        from transformers import Sam2Config, Sam2Model

        torch.manual_seed(0)
        Sam2Model(Sam2Config()).eval().save_pretrained(sam2_folder)
    default = load_segmenter(sam2_folder, "sam2", "cpu")
    results["proposals_cpu_default"] = bench_ours(default, image, defaults, vit_b)
    save(results, args.json)
    if args.loose:
        results["proposals"].append(bench_proposals(sam, image, loose, "every candidate kept"))
    vocab = work / "classes.txt"
    vocab.write_text("\n".join(CLASSES) + "\n")
    log("loading the engine (SAM ViT-B + CLIP convnext_base_w)")
    engine = Engine.from_paths(
        sam_checkpoint=sam_path,
        clip_model="convnext_base_w",
        clip_weights=clip_path,
        vocabulary=vocab,
        device="cpu",
        cache_dir=work / "cache",
    )
    labeler = ProposalLabeler(engine, defaults, threshold=0.2, top_k=10)
    log("autolabel --by proposals")
    results["autolabel_proposals"] = bench_autolabel(labeler, photos(args.images), work)
    save(results, args.json)
    if args.skip_sam3:
        results["autolabel_sam3"] = "skipped (--skip-sam3)"
    else:
        log("building SAM 3 (default config, random)")
        t = time.perf_counter()
        segmenter, params = full_sam3()
        build_s = time.perf_counter() - t
        out = bench_autolabel(Sam3Labeler(segmenter), photos(1), work)
        out.update(parameters=params, build_s=round(build_s, 1))
        results["autolabel_sam3"] = out
    save(results, args.json)
    print(json.dumps(results, indent=2))
    return 0


def save(results: dict, path: Path | None) -> None:
    """Write what is measured so far (a slow shared machine may stop the run part-way)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
