"""A CLIP model config from a file (open_clip's `model_configs/*.json` or a hub `open_clip_config.json`).

Why a module of its own: a config is data from a file, and every size in it is bounded BEFORE
open_clip builds anything; these checks, the reading and the registration with open_clip under a
content-derived name are one job, apart from running the model (`clip.py`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import open_clip

from annotator.errors import CheckpointError
from annotator.models.clip_load import one_line

_MODEL_KEYS = ("embed_dim", "vision_cfg", "text_cfg")

# A config is data from a file: every size in it is bounded BEFORE open_clip builds anything (a
# `text_cfg.layers` of 10**6 would otherwise allocate gigabytes first). The bounds are far above
# every published CLIP (ViT-bigG: 48 layers, width 1664, context 77, vocab 49408, image 224-448).
_MAX_CONFIG_BYTES = 1 << 20
_MAX_INT = 1_000_000  # any integer anywhere in a config
_MAX_DEPTH, _MAX_ITEMS = 8, 256
SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "embed_dim": (1, 8192),
    "layers": (0, 128),
    "width": (1, 8192),
    "head_width": (1, 1024),
    "heads": (1, 256),
    "patch_size": (1, 1024),
    "image_size": (1, 2048),
    "context_length": (1, 1024),
    "vocab_size": (1, 1_000_000),
    "attn_pooler_queries": (1, 1024),
    "attn_pooler_heads": (1, 256),
    "n_queries": (1, 1024),
    "proj_bias": (0, 1),
}
_MAX_MLP_RATIO = 16.0
_BYTES_PER_PARAM = 2  # weights may be stored in half precision: the smallest a parameter can take


def _check_value(config: Path, where: str, value: object, depth: int = 0) -> None:
    """Every number finite and bounded, every list and object small, nesting shallow."""
    if depth > _MAX_DEPTH:
        raise CheckpointError(f"{config}: CLIP config nested too deeply at {where}")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        if isinstance(value, str) and len(value) > 1000:
            raise CheckpointError(f"{config}: CLIP config string {where} is too long")
        return
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise CheckpointError(f"{config}: CLIP config value {where} = {value} is out of range")
        return
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            raise CheckpointError(f"{config}: CLIP config value {where} is not a finite number")
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)  # type: ignore[union-attr]
    if len(value) > _MAX_ITEMS:  # type: ignore[arg-type]
        raise CheckpointError(f"{config}: CLIP config {where} has too many entries")
    for key, item in items:
        _check_value(config, f"{where}.{key}" if where else str(key), item, depth + 1)


def _check_size(config: Path, where: str, key: str, value: object) -> None:
    low, high = SIZE_BOUNDS[key]
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not (key in ("layers", "image_size") and 1 <= len(value) <= 8):
        raise CheckpointError(f"{config}: CLIP config {where}.{key} must be a number")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise CheckpointError(
                f"{config}: CLIP config {where}.{key} = {v!r} is outside {low}..{high}"
            )


def check_config(config: Path, model_cfg: dict) -> None:
    """Refuse a model config whose sizes could exhaust memory or that would download something,
    before anything is built (CheckpointError, one line)."""
    _check_value(config, "", model_cfg)
    if "embed_dim" in model_cfg:
        _check_size(config, "", "embed_dim", model_cfg["embed_dim"])
    for tower in ("vision_cfg", "text_cfg"):
        cfg = model_cfg.get(tower)
        if not isinstance(cfg, dict):
            raise CheckpointError(f"{config}: CLIP config {tower} must be a JSON object")
        for key, value in cfg.items():
            if key in SIZE_BOUNDS and value is not None:
                _check_size(config, tower, key, value)
        ratio = cfg.get("mlp_ratio", 4.0)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise CheckpointError(f"{config}: CLIP config {tower}.mlp_ratio must be a number")
        if not 0 < ratio <= _MAX_MLP_RATIO:
            raise CheckpointError(
                f"{config}: CLIP config {tower}.mlp_ratio = {ratio} is outside 0..{_MAX_MLP_RATIO}"
            )
        for key in ("timm_model_pretrained", "hf_model_pretrained"):
            if cfg.get(key):
                raise CheckpointError(
                    f"{config}: CLIP config {tower}.{key} would download weights; set it to false"
                )
    text = model_cfg["text_cfg"]
    width, heads = text.get("width", 512), text.get("heads", 8)
    both = all(isinstance(v, int) and not isinstance(v, bool) for v in (width, heads))
    if "hf_model_name" not in text and both and width % heads:
        raise CheckpointError(
            f"{config}: CLIP config text_cfg.width {width} is not a multiple of heads {heads}"
        )
    vision = model_cfg["vision_cfg"]
    if "timm_model_name" not in vision and not isinstance(vision.get("layers"), list):
        v_width, head_width = vision.get("width", 768), vision.get("head_width", 64)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (v_width, head_width))
        if ints and v_width % head_width:
            raise CheckpointError(
                f"{config}: CLIP config vision_cfg.width {v_width} is not a multiple of "
                f"head_width {head_width}"
            )
        patch, image = vision.get("patch_size", 16), vision.get("image_size", 224)
        sizes = image if isinstance(image, list) else [image]
        numbers = [v for v in [patch, *sizes] if isinstance(v, (int, float))]
        if len(numbers) == 1 + len(sizes) and any(patch > size for size in sizes):
            raise CheckpointError(
                f"{config}: CLIP config vision_cfg.patch_size {patch} is larger than the image"
            )


def read_config(config: Path) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) from an open_clip `model_configs/*.json`-style file or an
    `open_clip_config.json` (HF hub style, with `model_cfg` and `preprocess_cfg`)."""
    try:
        if Path(config).stat().st_size > _MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{config}: too large for a CLIP model config (over {_MAX_CONFIG_BYTES >> 20} MB)"
            )
        if not Path(config).is_file():
            raise CheckpointError(f"{config}: a CLIP model config must be a regular file")
        doc = json.loads(Path(config).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{config}: CLIP model config not found") from None
    except RecursionError:
        raise CheckpointError(f"{config}: CLIP model config nested too deeply") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{config}: not a readable JSON model config ({one_line(e)})"
        ) from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{config}: a CLIP model config must be a JSON object")
    model_cfg = doc.get("model_cfg", doc)
    preprocess = doc.get("preprocess_cfg", {})
    if not isinstance(preprocess, dict):
        raise CheckpointError(f"{config}: preprocess_cfg must be a JSON object")
    preprocess = dict(preprocess)
    if not isinstance(model_cfg, dict) or not all(k in model_cfg for k in _MODEL_KEYS):
        raise CheckpointError(
            f"{config}: not an open_clip model config (needs embed_dim, vision_cfg and text_cfg)"
        )
    model_cfg = {k: v for k, v in model_cfg.items() if k != "preprocess_cfg"}
    check_config(config, model_cfg)
    _check_value(config, "preprocess_cfg", preprocess)
    if "size" in preprocess:  # images are resized to this before the tower sees them
        _check_size(config, "preprocess_cfg", "image_size", preprocess["size"])
    return model_cfg, preprocess


def register_config(model_cfg: dict) -> str:
    """Register a config with open_clip under a content-derived name (never shadowing a built-in
    name such as the file's own stem) and return that name."""
    canonical = json.dumps(model_cfg, sort_keys=True, separators=(",", ":"))
    name = "annotator-cfg-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    if open_clip.get_model_config(name) is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.json"
            path.write_text(canonical, encoding="utf-8")
            open_clip.add_model_config(path)  # read at once; the registry keeps the parsed config
    return name
