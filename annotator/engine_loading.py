"""Loading the models a `ModelSpec` names: the segmenter, and CLIP with its region head.

Why a module of its own: what a spec means on disk (defaults from the weights cache, the precision
plan, the identities cached vectors depend on) is one job; `Engine.from_spec` puts the parts together
and a query over stored vectors (`discovery/similar.py`) needs only the region model.
"""

from __future__ import annotations

from pathlib import Path

from annotator.errors import AnnotatorError
from annotator.models.precision import Plan, apply_plan, image_identity, plan_for
from annotator.models.segmenter import Segmenter
from annotator.spec import ModelSpec


def region_id(clip, head) -> str:
    """Identity of what region vectors depend on: the CLIP model and the head (whose identity
    includes the settings its cached arrays depend on, e.g. pool@1024)."""
    return f"{image_identity(clip)}|{getattr(head, 'identity', head.name)}"


def load_region_model(spec: ModelSpec, device: str = "cpu", plan: Plan | None = None):
    """(CLIP model, region head) a spec names: what region and image vectors depend on. The
    engine loads them with its segmenter; a query over stored vectors needs only these. The
    image trunk and text encoder run in the precision `plan` (default: the spec's) gives them."""
    from annotator.models.clip import ClipModel
    from annotator.models.region import default_head_name, make_head

    clip_name, clip_pretrained = spec.clip_choice()
    clip = ClipModel.load(
        name=clip_name,
        pretrained=clip_pretrained,
        weights=spec.clip_weights,
        config=spec.clip_config,
        device=device,
    )
    plan = plan or plan_for(spec.precision, device)
    apply_plan(plan, clip=clip)
    return clip, make_head(spec.region_head or default_head_name(clip), clip)


def weight_files(spec: ModelSpec) -> list[Path]:
    """The weight files whose sha256 the models' identities need (a transformers folder's is its
    model.safetensors)."""
    files = []
    for path in (spec.checkpoint, spec.clip_weights):
        if path is not None:
            path = Path(path)
            files.append(path / "model.safetensors" if path.is_dir() else path)
    return files


def load_segmenter_for(
    family: str | None, checkpoint: Path | None, device: str, plan: Plan | None = None
) -> Segmenter:
    """`--segmenter`/`--checkpoint` (or `--sam-checkpoint`, SAM 1); with neither, the device's
    default of ADR 6 (`weights.default_choice`). Its encoder runs in `plan`'s precision."""
    from annotator.models import weights
    from annotator.models.registry import load_segmenter

    if checkpoint is None and family is None:
        name = weights.default_choice(device)
        segmenter = load_segmenter(weights.resolve(name), weights.known(name).kind, device)
    elif checkpoint is None and family == "sam":
        segmenter = load_segmenter(default_sam_checkpoint(), "sam", device)
    else:
        segmenter = load_segmenter(None if checkpoint is None else Path(checkpoint), family, device)
    if plan is not None:
        apply_plan(plan, segmenter=segmenter)
    return segmenter


def default_sam_checkpoint() -> Path:
    """The default SAM checkpoint from the weights cache, or a clear message on how to get one."""
    from annotator.models import weights

    try:
        return weights.resolve("sam_vit_b")
    except AnnotatorError:
        raise
    except Exception as error:  # pragma: no cover - depends on the weights module's registry
        raise AnnotatorError(f"no SAM checkpoint: pass --sam-checkpoint PATH ({error})") from error
