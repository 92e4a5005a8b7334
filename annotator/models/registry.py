"""The segmenter registry: a family name -> its loader, as segment-anything's `sam_model_registry`
maps a size to its builder. `load_segmenter` picks the family from `--segmenter`, or from the
checkpoint itself, or the per-device default (docs/adr/0006-segmenter-defaults.md). A new family is
one class implementing `segmenter.Segmenter` and one record in `annotator/families.py` (ADR 0028).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from annotator import families
from annotator.errors import CheckpointError
from annotator.models.hf_checkpoint import read_config
from annotator.models.segmenter import Segmenter

FAMILIES = families.NAMES  # the records: annotator/families.py


Loader = Callable[[Path, str], Segmenter]

REGISTRY: dict[str, Loader] = {name: f.load for name, f in families.FAMILIES.items()}

# Family of a transformers folder, by config.json's model_type.
MODEL_TYPES = {f.model_type: name for name, f in families.FAMILIES.items() if f.model_type}
# A video folder (Sam2VideoModel / EdgeTamVideoModel) serves single images too (models/tracking.py).
MODEL_TYPES.update(
    {f.video_model_type: name for name, f in families.FAMILIES.items() if f.video_model_type}
)


def detect_family(path: Path) -> str:
    """The family a checkpoint belongs to, read from the file or folder itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    folder = path if path.is_dir() else path.parent
    if path.is_dir() or path.suffix == ".safetensors" or path.name == "config.json":
        config = read_config(folder)
        model_type = config.get("model_type")
        family = MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None
        if family is None:
            arch = config.get("architectures") or model_type
            raise CheckpointError(
                f"checkpoint {folder / 'config.json'}: unknown architecture {arch!r}; "
                f"supported model_type: {', '.join(sorted(MODEL_TYPES))}"
            )
        return family
    return "sam"  # a .pth / .pt state dict: segment-anything


def check_family(path: Path, family: str) -> None:
    """One-line error when a checkpoint of one family is passed as another."""
    found = detect_family(path)
    if found != family:
        hint = "--sam-checkpoint or --segmenter sam" if found == "sam" else f"--segmenter {found}"
        raise CheckpointError(
            f"checkpoint {path}: is a {found} checkpoint, not {family}; pass it with {hint}"
        )


def load_segmenter(
    checkpoint: Path | str | None,
    family: str | None = None,
    device: str = "cpu",
) -> Segmenter:
    """Build a segmenter: `family` (or the one the checkpoint declares) from `checkpoint`
    (or the family's / device's default weights from the weights cache)."""
    if family is not None and family not in REGISTRY:
        raise CheckpointError(f"unknown segmenter {family!r}; known: {', '.join(FAMILIES)}")
    if checkpoint is None:
        from annotator.models import weights

        name = weights.default_segmenter(device, family)
        checkpoint = weights.resolve(name)
        family = family or weights.known(name).kind
    checkpoint = Path(checkpoint)
    if family is None:
        family = detect_family(checkpoint)
    else:
        check_family(checkpoint, family)
    return REGISTRY[family](checkpoint, device)


__all__ = ["FAMILIES", "REGISTRY", "check_family", "detect_family", "load_segmenter"]
