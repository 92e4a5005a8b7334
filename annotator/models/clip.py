"""open_clip models: loading by name/tag, local weights or config JSON; fast text encoding.

`ClipModel` wraps one open_clip model with its tokenizer and preprocessing constants. Its text encoder
cuts the padded 77-token context after the longest end-of-text token of each batch: CLIP's text tower is
causal and pools at the EOT position, so the tokens after it never influence the result and the cut is
exact, while short prompts ("a photo of a dog.") cost ~8 tokens instead of 77.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.factory import load_checkpoint
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from annotator.errors import CheckpointError, WeightsError
from annotator.hashing import sha256_file

DEFAULT_CLIP_MODEL = "convnext_base_w"
DEFAULT_CLIP_PRETRAINED = "laion2b_s13b_b82k_augreg"

_MODEL_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
_CPU_BATCH = 64  # rows per text-tower call on a CPU (measured: 256 rows is 1.5x slower per prompt)


def _tower_kind(visual: torch.nn.Module) -> str:
    """'convnext' | 'resnet' | 'vit' | 'other' from the vision tower's classes."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, TimmModel):
        return "convnext" if "convnext" in type(visual.trunk).__name__.lower() else "other"
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if isinstance(visual, VisionTransformer):
        return "vit"
    return "other"


# A config is data from a file: every size in it is bounded BEFORE open_clip builds anything (a
# `text_cfg.layers` of 10**6 would otherwise allocate gigabytes first). The bounds are far above
# every published CLIP (ViT-bigG: 48 layers, width 1664, context 77, vocab 49408, image 224-448).
_MAX_CONFIG_BYTES = 1 << 20
_MAX_INT = 1_000_000  # any integer anywhere in a config
_MAX_DEPTH, _MAX_ITEMS = 8, 256
_SIZE_BOUNDS: dict[str, tuple[int, int]] = {
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
    low, high = _SIZE_BOUNDS[key]
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
            if key in _SIZE_BOUNDS and value is not None:
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


def _check_parameter_count(config: Path, name: str, weights: Path) -> None:
    """Build the model on the meta device (no memory), count its parameters and refuse it when the
    weights file is too small to hold them: a config claiming a huge model next to a small file is
    refused before open_clip allocates it."""
    try:
        size = weights.stat().st_size
    except OSError as e:
        raise CheckpointError(
            f"{weights}: cannot read the CLIP weights file ({e.strerror})"
        ) from None
    try:
        # the context puts every tensor made while building on the meta device; device="meta"
        # keeps open_clip's final `.to(device)` there too
        with _quiet_open_clip(), torch.device("meta"):
            meta = open_clip.create_model(name, pretrained=None, device="meta")
    except Exception as e:  # the config is invalid in a way the bounds do not catch
        raise CheckpointError(f"{config}: invalid CLIP model config ({_one_line(e)})") from None
    count = sum(p.numel() for p in meta.parameters())
    del meta
    needed = count * _BYTES_PER_PARAM
    if needed > size:
        raise CheckpointError(
            f"{config}: the config describes a model of {count:,} parameters (at least "
            f"{needed / 1e6:.1f} MB) but {weights.name} holds only {size / 1e6:.1f} MB"
        )


class _quiet_open_clip:
    """Silence open_clip's 'No pretrained weights loaded' warning for the meta-device count."""

    def __enter__(self) -> None:
        import logging

        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


def _read_config(config: Path) -> tuple[dict, dict]:
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
            f"{config}: not a readable JSON model config ({_one_line(e)})"
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


def _register_config(model_cfg: dict) -> str:
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


class _TextTower:
    """The parts of an open_clip causal text tower that the fast encoder runs itself."""

    def __init__(self, model: torch.nn.Module) -> None:
        from open_clip.transformer import TextTransformer

        src = model.text if isinstance(getattr(model, "text", None), TextTransformer) else model
        self.token_embedding = getattr(src, "token_embedding", None)
        self.positional_embedding = getattr(src, "positional_embedding", None)
        self.transformer = getattr(src, "transformer", None)
        self.ln_final = getattr(src, "ln_final", None)
        self.text_projection = getattr(src, "text_projection", None)
        self.attn_mask = getattr(src, "attn_mask", None)
        self.pool_type = getattr(src, "pool_type", getattr(model, "text_pool_type", "argmax"))
        self.eos_id = getattr(src, "eos_id", getattr(model, "text_eos_id", None))
        # anything else (HF text towers, CoCa's appended class token, bidirectional towers)
        # goes through open_clip's own encode_text
        self.supported = (
            self.token_embedding is not None
            and hasattr(self.transformer, "resblocks")
            and self.attn_mask is not None  # causal: later tokens cannot reach the pooled one
            and getattr(src, "cls_emb", None) is None
            and not getattr(src, "use_pad_mask", False)
            and self.pool_type in ("argmax", "eos", "first")
        )

    def pool_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) position each row is pooled at, as open_clip's `text_global_pool` picks it."""
        if self.pool_type == "argmax":
            return tokens.argmax(dim=-1)
        if self.pool_type == "eos":
            return (tokens == self.eos_id).int().argmax(dim=-1)
        return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)

    def forward(self, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) already cut after the last pooled position -> (B, D) unnormalised."""
        length = tokens.shape[1]
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast) + self.positional_embedding[:length].to(cast)
        mask = self.attn_mask[:length, :length]
        batch_first = getattr(self.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in self.transformer.resblocks:
            x = block(x, attn_mask=mask)
        if not batch_first:
            x = x.transpose(0, 1)
        pooled = self.ln_final(x[torch.arange(x.shape[0], device=x.device), index])
        proj = self.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj


class ClipModel:
    """An open_clip model plus its tokenizer and preprocessing constants."""

    identity: str  # stable id: model name/config hash + weights hash/tag
    embed_dim: int
    tower: str  # "convnext" | "resnet" | "vit" | "other"
    image_size: int  # native input resolution
    logit_scale: float

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Callable[..., torch.Tensor],
        identity: str,
        device: str = "cpu",
    ) -> None:
        """Wrap an already built open_clip model (`load` is the usual entry point)."""
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.identity = identity
        self.device = torch.device(device)
        visual = model.visual
        self.tower = _tower_kind(visual)
        cfg = merge_preprocess_dict(PreprocessCfg(), open_clip.get_model_preprocess_cfg(model))
        self.preprocess_cfg = PreprocessCfg(**cfg)
        size = cfg.get("size", getattr(visual, "image_size", 224))
        self.image_size = int(max(size) if isinstance(size, (tuple, list)) else size)
        self.mean = np.asarray(self.preprocess_cfg.mean, dtype=np.float32)
        self.std = np.asarray(self.preprocess_cfg.std, dtype=np.float32)
        self.transform = image_transform_v2(self.preprocess_cfg, is_train=False)
        with torch.inference_mode():
            self.logit_scale = float(model.logit_scale.detach().float().exp().reshape(-1)[0])
            probe = self._tokenize(["a"])
            self.embed_dim = int(model.encode_text(probe).shape[-1])
        self._text = _TextTower(model)

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        name: str | None = DEFAULT_CLIP_MODEL,
        pretrained: str | None = None,
        weights: Path | None = None,
        config: Path | None = None,
        device: str = "cpu",
    ) -> ClipModel:
        """Build a model from (config JSON + weights file), (name + weights file) or (name + open_clip
        pretrained tag, downloaded by open_clip itself). `pretrained=None` with no weights means the
        default tag of the default model, or the first tag open_clip lists for another name."""
        if config is not None:
            if weights is None:
                raise CheckpointError(f"{config}: a CLIP config needs a weights file next to it")
            return cls._load_config(Path(config), Path(weights), device)
        if not name:
            raise CheckpointError("no CLIP model named: give a model name or a config JSON")
        if weights is None and pretrained is not None and Path(pretrained).is_file():
            # open_clip's habit: a file path given as `pretrained`
            weights, pretrained = Path(pretrained), None
        if name not in open_clip.list_models():
            raise CheckpointError(f"unknown CLIP model {name!r} (see open_clip.list_models())")
        if weights is not None:
            weights = Path(weights)
            _check_file(weights)
            model = _create(name, str(weights), weights, None, device)
            return cls(
                model, open_clip.get_tokenizer(name), f"{name}:{sha256_file(weights)[:16]}", device
            )
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained is None:
            pretrained = (
                DEFAULT_CLIP_PRETRAINED
                if name == DEFAULT_CLIP_MODEL
                else (tags[0] if tags else None)
            )
        if pretrained is None or pretrained not in tags:
            raise CheckpointError(
                f"CLIP model {name!r} has no pretrained tag {pretrained!r}; known tags: "
                f"{', '.join(tags) or 'none'} (or pass a local weights file)"
            )
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device=device)
        except RuntimeError as e:
            raise WeightsError(
                f"cannot get CLIP weights {name}/{pretrained} ({_one_line(e)}); "
                "when offline, download them elsewhere and pass the weights file"
            ) from None
        return cls(model, open_clip.get_tokenizer(name), f"{name}:{pretrained}", device)

    @classmethod
    def _load_config(cls, config: Path, weights: Path, device: str) -> ClipModel:
        model_cfg, preprocess = _read_config(config)
        _check_file(weights)
        try:
            name = _register_config(model_cfg)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{config}: invalid CLIP model config ({e})") from None
        _check_parameter_count(config, name, weights)
        model = _create(name, str(weights), weights, config, device, preprocess)
        both = json.dumps([model_cfg, preprocess], sort_keys=True).encode()
        identity = f"cfg-{hashlib.sha256(both).hexdigest()[:12]}:{sha256_file(weights)[:16]}"
        return cls(model, open_clip.get_tokenizer(name), identity, device)

    @classmethod
    def random(
        cls, name: str = DEFAULT_CLIP_MODEL, seed: int = 0, device: str = "cpu"
    ) -> ClipModel:
        """A randomly initialised (seeded, so reproducible) built-in architecture: for benchmarks
        and tests that need full-size towers without weights."""
        if name not in open_clip.list_models():
            raise CheckpointError(f"unknown CLIP model {name!r} (see open_clip.list_models())")
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
            torch.manual_seed(seed)
            model = open_clip.create_model(name, pretrained=None, device=device)
        return cls(model, open_clip.get_tokenizer(name), f"{name}:random-{seed}", device)

    # -------------------------------------------------------------------------------------- text
    def _tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def encode_text(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(N, D) float32, L2-normalised; context cut after the longest EOT of each batch.

        Texts are sorted by token length (and put back in order), so each batch is cut short;
        `progress` is called after each batch (at most 64 rows on a CPU)."""
        total = len(texts)
        out = np.zeros((total, self.embed_dim), dtype=np.float32)
        if total == 0:
            return out
        if not self._text.supported:
            return self._encode_text_plain(texts, batch_size, progress)
        with torch.inference_mode():
            tokens = self._tokenize(texts)
            index = self._text.pool_index(tokens)
            order = torch.argsort(index, stable=True)
            # on a CPU, matrices of ~64 short rows already run at full speed; smaller batches
            # follow the sorted lengths more closely, so fewer padding tokens are computed
            step = min(batch_size, _CPU_BATCH) if self.device.type == "cpu" else batch_size
            done = 0
            for start in range(0, total, step):
                rows = order[start : start + step]
                idx = index[rows]
                length = int(idx.max()) + 1
                feats = self._text.forward(tokens[rows, :length], idx)
                out[rows.cpu().numpy()] = F.normalize(feats.float(), dim=-1).cpu().numpy()
                done += len(rows)
                if progress is not None:
                    progress(done, total)
        return out

    def _encode_text_plain(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenize(texts[start : start + batch_size])
                feats = self.model.encode_text(tokens, normalize=True)
                chunks.append(feats.float().cpu().numpy())
                if progress is not None:
                    progress(min(start + batch_size, len(texts)), len(texts))
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def encode_text_reference(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's own `encode_text` (normalised), for parity tests and the benchmark."""
        if len(texts) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return self._encode_text_plain(texts)

    # ------------------------------------------------------------------------------------- image
    def encode_image(self, image: np.ndarray) -> np.ndarray:
        """(D,) normalised global embedding of a whole RGB uint8 image (native preprocessing)."""
        tensor = self.transform(Image.fromarray(_as_rgb(image)))[None]
        return self.encode_tensor(tensor)

    def encode_tensor(self, tensor: torch.Tensor) -> np.ndarray:
        """(D,) normalised embedding of an already preprocessed (1, 3, h, w) input."""
        with torch.inference_mode():
            feats = self.model.encode_image(tensor.to(self.device, self._dtype()))
            return F.normalize(feats.float(), dim=-1)[0].cpu().numpy()

    def normalize_pixels(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 (h, w, 3), already at the wanted size -> (1, 3, h, w) model input."""
        arr = (_as_rgb(image).astype(np.float32) / 255.0 - self.mean) / self.std
        tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        return tensor.to(self.device, self._dtype())

    def _dtype(self) -> torch.dtype:
        return next(self.model.visual.parameters()).dtype


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: CLIP weights file not found")


def _create(
    name: str,
    checkpoint: str,
    weights: Path,
    config: Path | None,
    device: str,
    preprocess: dict | None = None,
) -> torch.nn.Module:
    """Build `name` and load a local weights file, with load failures turned into one-line
    CheckpointErrors. The model is built without initialising it (`_uninitialised`), then the
    file is loaded by open_clip's own `load_checkpoint` (strict, with its format conversions);
    where that cannot be done exactly, `open_clip.create_model` does both as usual."""
    try:
        model = _uninitialised(name, preprocess)
        if model is None:
            return open_clip.create_model(
                name,
                pretrained=checkpoint,
                device=device,
                force_preprocess_cfg=preprocess or None,
                pretrained_text=False,  # never fetch HF text weights for a config-built model
            )
        load_checkpoint(model, checkpoint, strict=True, weights_only=True, device="cpu")
        return model.to(device)
    except Exception as e:  # torch/pickle/safetensors/timm raise many types
        what = f"model config {config}" if config is not None else f"CLIP model {name!r}"
        raise CheckpointError(f"{weights}: cannot load it as {what} ({_one_line(e)})") from None


def _uninitialised(name: str, preprocess: dict | None) -> torch.nn.Module | None:
    """`name` built on the meta device and given uninitialised CPU memory, or None when the model
    holds state that the checkpoint does not (anything but open_clip's causal `attn_mask`).

    Why: the usual build draws random weights for every parameter, which the checkpoint then
    overwrites: convnext_base_w from a local file takes 1.95 s that way and 0.76 s this way
    (benchmarks/bench_clip_load.py, 2 cores). Every parameter and persistent buffer is then
    written by the strict load (a key it lacks is an error, so nothing uninitialised survives);
    the causal masks, which are not saved, are rebuilt exactly as open_clip builds them."""
    with _quiet_open_clip(), torch.device("meta"):
        model = open_clip.create_model(
            name,
            pretrained=None,
            device="meta",
            force_preprocess_cfg=preprocess or None,
            pretrained_text=False,
        )
    saved = set(model.state_dict())
    unsaved = [n for n, _ in model.named_buffers() if n not in saved]
    if any(n.rsplit(".", 1)[-1] != "attn_mask" for n in unsaved):
        return None
    model.to_empty(device="cpu")
    for buffer_name in unsaved:
        owner, _, attr = buffer_name.rpartition(".")
        mask = getattr(model.get_submodule(owner), attr)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or not mask.is_floating_point():
            return None
        mask.fill_(float("-inf"))  # open_clip's build_causal_mask: -inf above the diagonal
        mask.triu_(1)
    return model


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line; torch's state-dict errors (one line per problem, each
    listing many keys) are summarised as counts plus the first key."""
    message = str(error)
    if "Error(s) in loading state_dict" in message:
        counts, first = [], ""
        for label, pattern in (
            ("missing", r"Missing key\(s\) in state_dict: (.*)"),
            ("unexpected", r"Unexpected key\(s\) in state_dict: (.*)"),
        ):
            found = re.search(pattern, message)
            if found:
                keys = re.findall(r'"([^"]+)"', found.group(1))
                counts.append(f"{len(keys)} {label} tensors")
                first = first or keys[0]
        sizes = re.findall(r"size mismatch for ([^:]+):", message)
        if sizes:
            counts.append(f"{len(sizes)} tensors of another shape")
            first = first or sizes[0]
        if counts:
            return f"{', '.join(counts)}, e.g. {first}"
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    text = text or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
