"""Which model files the window needs and where they are: the device's default segmenter, the
files already downloaded (by the window or `annotator weights download`), what is missing, a
download with progress and cancel, and the family a chosen checkpoint belongs to. Qt-free: the
first-run and settings dialogs (`gui/first_run.py`, `gui/settings.py`) ask here, so the window
reaches the weights registry and the device probe only through this module.

A configuration is the window's `ModelConfig` (a dataclass; only its fields are read here).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from annotator.device import likely_device
from annotator.errors import AnnotatorError
from annotator.models import weights
from annotator.models.registry import FAMILIES, check_family, detect_family
from annotator.models.weights import DownloadCancelled, KnownWeights

ModelConfig = Any  # gui.settings.ModelConfig (the app layer does not import the window)

DEFAULT_CLIP_MODEL = "convnext_base_w"  # the architecture of `weights.DEFAULT_CLIP`


def family_titles() -> dict[str, str]:
    """Each segmenter family's readable name (`annotator/families.py` records), by family name."""
    from annotator import families

    return {name: f.title for name, f in families.FAMILIES.items()}


def family_choices() -> dict[str, str]:
    """What the settings dialog lists for each family, in the records' order."""
    from annotator import families

    return {name: f.choice for name, f in families.FAMILIES.items()}


def _clip_unconfigured(config: ModelConfig) -> bool:
    """Nothing but (at most) the default model name: the default CLIP weights are needed."""
    return not (config.clip_weights or config.clip_config or config.clip_pretrained) and (
        config.clip_model in ("", DEFAULT_CLIP_MODEL)
    )


def _in_hub_cache(known: KnownWeights) -> bool:
    """True when open_clip's own Hugging Face cache already holds this file (it then loads offline)."""
    parts = urllib.parse.urlparse(known.url).path.strip("/").split("/")
    if "huggingface.co" not in known.url or "resolve" not in parts:
        return False
    cut = parts.index("resolve")
    repo = "/".join(parts[:cut])
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return False
    for filename in (parts[-1], "open_clip_model.safetensors"):
        try:
            if isinstance(try_to_load_from_cache(repo, filename), str):
                return True
        except Exception:  # noqa: BLE001 - a cache we cannot read is a cache without the file
            pass
    return False


def segmenter_default(config: ModelConfig) -> str | None:
    """Registry name of the weights the engine loads for this configuration when it names no
    checkpoint: the device's default (`weights.default_choice`: SAM 2.1 tiny on a CPU, or SAM 1
    ViT-B where only that is downloaded), or the chosen family's default size. None for a family
    the registry has no download of."""
    device = likely_device(config.device)
    if not config.segmenter:
        return weights.default_choice(device)
    if config.segmenter not in weights.DEFAULT_BY_FAMILY:
        return None
    return weights.default_segmenter(device, config.segmenter)


def segmenter_choices(config: ModelConfig) -> list[KnownWeights]:
    """What the first-run dialog offers for an unset checkpoint: the default first, then (when no
    family is chosen) each other family's default size — any one of them is enough."""
    first = segmenter_default(config)
    names = [first] if first else []
    if not config.segmenter:
        names += list(weights.DEFAULT_BY_FAMILY.values())  # each family (annotator/families.py)
    return [weights.known(n) for n in dict.fromkeys(names)]


def with_cached_weights(config: ModelConfig) -> ModelConfig:
    """`config` with unset model files filled in from the weights cache where they were downloaded
    (the segmenter the engine would load by default, so the window names and checks it)."""
    out = replace(config)
    name = segmenter_default(out)
    if not out.checkpoint and name is not None and weights.is_cached(name):
        out.checkpoint = str(weights.cached_path(name))
    clip = weights.cached_path(weights.DEFAULT_CLIP)
    if _clip_unconfigured(out) and clip.is_file():
        out.clip_model, out.clip_weights = DEFAULT_CLIP_MODEL, str(clip)
    return out


def missing_weights(config: ModelConfig) -> list[KnownWeights]:
    """Registry entries of the default files this configuration needs and nobody has yet (for the
    segmenter, the one the engine would load; the dialog offers the alternatives next to it)."""
    config = with_cached_weights(config)
    missing = []
    name = segmenter_default(config)
    if not config.checkpoint and name is not None:
        missing.append(weights.known(name))
    if _clip_unconfigured(config):
        clip = weights.known(weights.DEFAULT_CLIP)
        if not _in_hub_cache(clip):
            missing.append(clip)
    return missing


def use_file(
    config: ModelConfig, known: KnownWeights, path: str | Path, family: str | None = None
) -> ModelConfig:
    """`config` with `path` as the local copy of `known` (what "Choose file…" and downloads do).
    A segmenter's family is `family` (read from a chosen file) or the registry entry's kind."""
    out = replace(config)
    if known.kind == "clip":
        out.clip_model, out.clip_weights, out.clip_config = DEFAULT_CLIP_MODEL, str(path), ""
        out.clip_pretrained = ""
    else:
        out.checkpoint, out.segmenter = str(path), family or known.kind
    return out


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f}"


def part_status(known: KnownWeights) -> str:
    """What the dialog says of a file: downloaded, missing, or how much a resumed download has."""
    if weights.is_cached(known.name):
        return "already downloaded"
    target = weights.cached_path(known.name)
    if known.is_folder:
        parts = [target / (f + ".part") for f in known.files]
    else:
        parts = [target.with_name(known.filename + ".part")]
    kept = sum(p.stat().st_size for p in parts if p.is_file())
    if kept:
        return f"missing; {megabytes(kept)} MB already downloaded (resumes)"
    return "missing"


def download(
    name: str,
    progress: bool = False,
    progress_cb: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """`models.weights.download_known`: resumable, checked; `DownloadCancelled` on a cancel."""
    return weights.download_known(name, progress=progress, progress_cb=progress_cb, cancel=cancel)


def checkpoint_family(path: Path) -> str:
    """The segmenter family a chosen checkpoint file or folder is (one line when none)."""
    return detect_family(path)


def checkpoint_problem(checkpoint: str, segmenter: str) -> str | None:
    """One line when the checkpoint is not what the chosen family loads, else None (reads only
    the file's name or the folder's config.json: cheap enough for the GUI thread)."""
    if segmenter and segmenter not in FAMILIES:
        return f"unknown segmenter {segmenter!r}; known: {', '.join(FAMILIES)}"
    try:
        if segmenter:
            check_family(Path(checkpoint), segmenter)
        else:
            detect_family(Path(checkpoint))
    except AnnotatorError as error:
        return " ".join(str(error).split())
    return None


__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DownloadCancelled",
    "KnownWeights",
    "checkpoint_family",
    "checkpoint_problem",
    "download",
    "megabytes",
    "missing_weights",
    "part_status",
    "segmenter_choices",
    "segmenter_default",
    "use_file",
    "with_cached_weights",
]
