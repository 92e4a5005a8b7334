"""open_clip models: loading by name/tag, local weights or config JSON; fast text encoding.

`ClipModel` wraps one open_clip model with its tokenizer and preprocessing constants. Its text encoder
cuts the padded 77-token context after the longest end-of-text token of each batch (`clip_text.py`:
exact, and short prompts cost ~8 tokens instead of 77). Configs are read and bounded by
`clip_config.py`; a local weights file becomes a model in `clip_load.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from annotator.errors import CheckpointError, WeightsError
from annotator.hashing import sha256_file
from annotator.models import mapped_pages
from annotator.models.clip_config import read_config, register_config
from annotator.models.clip_load import (
    check_parameter_count,
    create_from_file,
    create_from_tag,
    one_line,
)
from annotator.models.clip_text import TextTower
from annotator.models.lowmem import add_yield_points, slice_per_token_layers

DEFAULT_CLIP_MODEL = "convnext_base_w"
DEFAULT_CLIP_PRETRAINED = "laion2b_s13b_b82k_augreg"

_CPU_BATCH = 64  # rows per text-tower call on a CPU (measured: 256 rows is 1.5x slower per prompt)


def _text_output_width(model: torch.nn.Module) -> int | None:
    """The width of the text tower's output read from its projection's shape, or None where there
    is no such projection. Why not a probe `encode_text`: running the text tower at load brings
    all its weights into memory (they are mapped from the file, `clip_load.mapped_state_dict`),
    ~225 MB of the default model that is otherwise needed only to encode new names."""
    text = getattr(model, "text", None)
    for src in (model, text):
        proj = getattr(src, "text_projection", None)
        if isinstance(proj, torch.nn.Linear):
            return proj.out_features
        if isinstance(proj, torch.Tensor) and proj.ndim == 2:
            return int(proj.shape[1])
    width = getattr(text, "output_dim", None)
    return width if isinstance(width, int) else None


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
        slice_per_token_layers(visual)  # dense features' peak memory (models/lowmem.py)
        add_yield_points(visual)  # a click stops a prefetch encode (annotator.preempt)
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
            self.embed_dim = _text_output_width(model) or int(
                model.encode_text(self._tokenize(["a"])).shape[-1]
            )
        self._text = TextTower(model)

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
            model = create_from_file(name, str(weights), weights, None, device)
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
            model = create_from_tag(name, pretrained, device)
        # open_clip's, the hub's and urllib's download errors
        except (RuntimeError, OSError, ValueError) as e:
            raise WeightsError(
                f"cannot get CLIP weights {name}/{pretrained} ({one_line(e)}); "
                "when offline, download them elsewhere and pass the weights file"
            ) from None
        return cls(model, open_clip.get_tokenizer(name), f"{name}:{pretrained}", device)

    @classmethod
    def _load_config(cls, config: Path, weights: Path, device: str) -> ClipModel:
        model_cfg, preprocess = read_config(config)
        _check_file(weights)
        try:
            name = register_config(model_cfg)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{config}: invalid CLIP model config ({e})") from None
        check_parameter_count(config, name, weights)
        model = create_from_file(name, str(weights), weights, config, device, preprocess)
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

    def release_text_pages(self) -> int:
        """Give back the resident pages of the text tower's weights mapped from their file
        (`models/mapped_pages`): a text-index build ends here, and the tower is then idle until a
        vocabulary edit or a text query maps them again from the page cache. Bytes released (0
        for weights read into memory)."""
        visual = {id(p) for p in self.model.visual.parameters()}
        return mapped_pages.release(p for p in self.model.parameters() if id(p) not in visual)

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
