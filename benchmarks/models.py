"""Full-size random-weight models for the benchmarks, built with the upstream classes and saved once.

Speed does not depend on the weights, so a random model of the real architecture times like the
published one; quality is measured elsewhere (docs/adr/0006-segmenter-defaults.md). The files land in
a work folder and are reused by later runs (a ViT-B state dict and a CLIP take a while to build).
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = "convnext_base_w"


def segmenter_checkpoint(family: str, work: Path) -> Path:
    """The checkpoint `annotator --segmenter FAMILY --checkpoint` takes: a SAM 1 `.pth`, or a
    transformers folder (config.json + model.safetensors) for the others."""
    torch.manual_seed(0)
    if family == "sam":
        path = work / "sam_vit_b_random.pth"
        if not path.is_file():
            from segment_anything import build_sam_vit_b

            torch.save(build_sam_vit_b(None).state_dict(), path)
        return path
    folder = work / f"{family}_random"
    if (folder / "model.safetensors").is_file():
        return folder
    if family == "sam2":
        from transformers import Sam2Config, Sam2Model

        model = Sam2Model(Sam2Config())  # the default configuration is SAM 2.1 Hiera-T
    elif family == "edgetam":
        from transformers import EdgeTamConfig, EdgeTamModel

        from annotator.models.sam2 import _fix_edgetam_config

        model = EdgeTamModel(
            EdgeTamConfig.from_dict(_fix_edgetam_config(EdgeTamConfig().to_dict()))
        )
    elif family == "sam_hq":
        from transformers import SamHQConfig, SamHQModel

        model = SamHQModel(SamHQConfig())  # ViT-B
    else:
        raise SystemExit(f"unknown family {family!r}")
    model.eval().save_pretrained(folder)
    return folder


def clip_weights(work: Path, name: str = DEFAULT_CLIP) -> Path:
    """A random open_clip state dict of `name` (the default CLIP unless told)."""
    path = work / f"{name}_random.pt"
    if not path.is_file():
        import open_clip

        torch.manual_seed(0)
        torch.save(open_clip.create_model(name, pretrained=None).state_dict(), path)
    return path


def photos(n: int) -> list[Path]:
    """`n` real photos from ../shared/data (COCO images, about 640x480)."""
    for folder in ("coco_mval80/img", "berkeley/images", "grabcut/images"):
        path = ROOT.parent / "shared" / "data" / folder
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".png"))
            if len(found) >= n:
                return found[:n]
    raise SystemExit(f"need {n} photos in ../shared/data (see its README)")
