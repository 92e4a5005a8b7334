"""Region heads: turn (image features prepared once, mask) into a CLIP embedding of the region.

Two strategies behind one interface (`prepare` once per image in the background, `embed` per click):

- `MaskPoolingHead` ("pool"): dense CLIP features of the whole image, computed once at a higher
  resolution than the tower's native one (as FC-CLIP / Open-Vocabulary SAM do for ConvNeXt), are
  averaged inside the mask with per-cell area weights, then passed through the tower's own pooling head.
  For a mask covering the whole image this *is* the model's image embedding of that input, so the head
  stays in the distribution the text embeddings were trained against. A click costs one small matrix
  product over the mask's bounding box plus a (C -> D) head: about a millisecond.
- `CropHead` ("crop"): a square crop around the mask's box, with context and the background dimmed
  towards the model's mean colour, encoded by the full image tower. Used for towers whose dense
  features are not a faithful image embedding (ViT pooled at the class token).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from annotator.errors import AnnotatorError
from annotator.io.masks import mask_box
from annotator.models.clip import ClipModel
from annotator.vectors import unit_vector


class RegionHead(Protocol):
    name: str  # "pool" | "crop"
    identity: str  # name + the settings `prepare`'s arrays depend on, for cache keys

    def prepare(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image work done once inside `Engine.embed` (RGB uint8 HxWx3 in); arrays only,
        so the result can be cached on disk next to the SAM embedding."""
        ...

    def embed(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """bool (H, W) mask in original image pixels -> (D,) float32 L2-normalised."""
        ...


# ------------------------------------------------------------------------------------- geometry
@functools.lru_cache(maxsize=32)
def _area_matrix(pixels: int, cells: int) -> np.ndarray:
    """(cells, pixels) float32: the fraction of cell i's extent covered by pixel p, when `pixels`
    unit pixels are tiled exactly by `cells` equal cells. Each row sums to 1."""
    edges = np.arange(cells + 1, dtype=np.float64) * (pixels / cells)
    p = np.arange(pixels, dtype=np.float64)
    overlap = np.minimum(p[None, :] + 1, edges[1:, None]) - np.maximum(p[None, :], edges[:-1, None])
    out = (np.clip(overlap, 0.0, None) * (cells / pixels)).astype(np.float32)
    out.setflags(write=False)  # shared through the cache
    return out


def cell_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(gh, gw) float32: the fraction of each feature cell covered by the mask, the cells tiling
    the whole image (exact area weights, as cv2's INTER_AREA; only the mask's box is read)."""
    gh, gw = grid
    box = mask_box(mask)
    if box is None:
        return np.zeros(grid, dtype=np.float32)
    x0, y0, x1, y1 = box
    height, width = mask.shape
    sub = mask[y0:y1, x0:x1].view(np.uint8).astype(np.float32)
    rows = _area_matrix(height, gh)[:, y0:y1]
    cols = _area_matrix(width, gw)[:, x0:x1]
    return rows @ (sub @ cols.T)


def _snap(length: float, multiple: int) -> int:
    return max(multiple, int(round(length / multiple)) * multiple)


def _check_mask(prepared: dict[str, np.ndarray], mask: np.ndarray) -> None:
    size = tuple(int(v) for v in prepared["image_size"])
    if mask.shape != size or mask.dtype != np.bool_:
        raise ValueError(f"expected a bool mask of shape {size}, got {mask.dtype} {mask.shape}")


# -------------------------------------------------------------------------------- pooling head
class MaskPoolingHead:
    """Mask pooling of dense CLIP features computed once per image.

    `long_side`: resolution (pixels) of the image's longest side for the dense features. Defaults:
    ConvNeXt 4x native (1024 for convnext_base_w: ConvNeXt features stay meaningful at higher
    resolution, and a 32-px cell is then small enough for small objects); ResNet 2x native, with the
    attention pool's position embedding resized as open_clip does for checkpoints; ViT its native
    square input (its position grid is fixed). Each side is rounded to a multiple of the tower's
    stride instead of padded (aspect change under half a cell), so the cells tile the image exactly.
    """

    name = "pool"

    def __init__(self, clip: ClipModel, long_side: int | None = None) -> None:
        if clip.tower not in _POOLERS:
            raise AnnotatorError(
                f"the 'pool' region head does not support a {clip.tower!r} CLIP tower; use 'crop'"
            )
        self.clip = clip
        self._pooler = _POOLERS[clip.tower](clip)
        self.long_side = long_side or self._pooler.default_long_side()
        self.identity = f"pool@{self.long_side}"  # what the prepared arrays depend on

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) the image is resized to before the dense forward pass."""
        return self._pooler.input_size(image_size, self.long_side)

    def input_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(1, 3, h, w) normalised model input for the dense pass (exposed for parity tests)."""
        h, w = self.input_size(image.shape[:2])
        if (h, w) == image.shape[:2]:
            resized = image
        else:
            shrink = h * w < image.shape[0] * image.shape[1]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
            resized = cv2.resize(image, (w, h), interpolation=interp)
        return self.clip.normalize_pixels(resized)

    def prepare(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Dense features of the whole image: {"features": (C, gh, gw) float32, ...}."""
        with torch.inference_mode():
            prepared = self._pooler.prepare(self.input_tensor(image))
        prepared["image_size"] = np.asarray(image.shape[:2], dtype=np.int64)
        return prepared

    def weights(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """(gh, gw) cell weights: covered fraction per cell; an empty mask weighs every cell
        equally (the whole image), so a label is still defined."""
        _check_mask(prepared, mask)
        grid = self._pooler.grid(prepared)
        weights = cell_coverage(mask, grid)
        if not weights.any():
            weights = np.ones(grid, dtype=np.float32)
        return weights

    def embed(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """bool (H, W) mask -> (D,) float32 L2-normalised region embedding. A mask smaller than a
        cell still weighs the cell(s) it touches, so tiny masks reduce to their box's cells."""
        return unit_vector(self._pooler.head(prepared, self.weights(prepared, mask)))


class _ConvNextPooler:
    """timm ConvNeXt trunk (open_clip TimmModel): mean of the final feature map, then the trunk's
    head (norm, pre-logits) and open_clip's projection. The mean is taken over mask cells instead."""

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip
        self.visual = clip.model.visual
        self.stride = int(self.visual.trunk.feature_info[-1]["reduction"])

    def default_long_side(self) -> int:
        return 4 * self.clip.image_size

    def input_size(self, size: tuple[int, int], long_side: int) -> tuple[int, int]:
        scale = long_side / max(size)
        return _snap(size[0] * scale, self.stride), _snap(size[1] * scale, self.stride)

    def prepare(self, tensor: torch.Tensor) -> dict[str, np.ndarray]:
        feats = self.visual.trunk.forward_features(tensor)[0]
        return {"features": feats.float().cpu().numpy()}

    def grid(self, prepared: dict[str, np.ndarray]) -> tuple[int, int]:
        return prepared["features"].shape[1:]

    def head(self, prepared: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        feats = np.asarray(prepared["features"], dtype=np.float32)  # a cache may hold float16
        flat = feats.reshape(feats.shape[0], -1)
        pooled = (flat @ weights.reshape(-1)) / float(weights.sum())
        with torch.inference_mode():
            x = torch.from_numpy(pooled).reshape(1, -1, 1, 1)  # a 1x1 map: global pool is a no-op
            x = x.to(self.clip.device, self.clip._dtype())
            out = self.visual.head(self.visual.trunk.forward_head(x))
        return out[0].float().cpu().numpy()


class _ResNetPooler:
    """OpenAI ModifiedResNet: its attention pool asks one query (the mean token + position) over all
    cells. Here the mean and the attention are restricted to the mask's cells, each cell's attention
    logit shifted by log(coverage): exact for a whole-image mask. Per-cell key/value/query
    projections are computed once in `prepare`, so a click is weighted sums and one (C -> D) matrix."""

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip
        self.pool = clip.model.visual.attnpool
        self.stride = 32
        self.native_grid = int(round(math.sqrt(self.pool.positional_embedding.shape[0] - 1)))
        self._constants: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def default_long_side(self) -> int:
        return 2 * self.clip.image_size

    def input_size(self, size: tuple[int, int], long_side: int) -> tuple[int, int]:
        scale = long_side / max(size)
        return _snap(size[0] * scale, self.stride), _snap(size[1] * scale, self.stride)

    def _positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """(gh*gw, C) spatial position embedding resized to the grid (open_clip's resize math)."""
        pos = self.pool.positional_embedding[1:].float()
        if grid == (self.native_grid, self.native_grid):
            return pos
        n = self.native_grid
        pos = pos.reshape(1, n, n, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=grid, mode="bicubic", antialias=True, align_corners=False)
        return pos[0].permute(1, 2, 0).reshape(grid[0] * grid[1], -1)

    def constants(self, grid: tuple[int, int]) -> dict[str, np.ndarray]:
        """Image-independent terms for one grid: position parts of keys/values, token-0 terms."""
        if grid not in self._constants:
            p = self.pool
            with torch.inference_mode():
                pos = self._positions(grid).to(p.k_proj.weight)
                pos0 = p.positional_embedding[0].to(p.k_proj.weight)
                self._constants[grid] = {
                    "pos_k": (pos @ p.k_proj.weight.T).float().cpu().numpy(),
                    "pos_v": (pos @ p.v_proj.weight.T).float().cpu().numpy(),
                    "q0": p.q_proj(pos0).float().cpu().numpy(),
                    # key/value biases come with the weighted mean of per-cell keys/values
                    "k0": (pos0 @ p.k_proj.weight.T).float().cpu().numpy(),
                    "v0": (pos0 @ p.v_proj.weight.T).float().cpu().numpy(),
                    "c_w": p.c_proj.weight.float().cpu().numpy(),
                    "c_b": p.c_proj.bias.float().cpu().numpy(),
                }
        return self._constants[grid]

    def prepare(self, tensor: torch.Tensor) -> dict[str, np.ndarray]:
        visual = self.clip.model.visual
        x = visual.stem(tensor)
        for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
            x = layer(x)
        channels, gh, gw = x.shape[1:]
        tokens = x[0].reshape(channels, gh * gw).T  # (HW, C)
        pos = self._positions((gh, gw)).to(tokens)
        p = self.pool
        with_pos = tokens + pos

        def grid_of(t: torch.Tensor) -> np.ndarray:
            return t.T.reshape(-1, gh, gw).float().cpu().numpy()

        return {
            "query": grid_of(tokens @ p.q_proj.weight.T),  # feature part of the mean token's query
            "key": grid_of(p.k_proj(with_pos)),
            "value": grid_of(p.v_proj(with_pos)),
        }

    def grid(self, prepared: dict[str, np.ndarray]) -> tuple[int, int]:
        return prepared["key"].shape[1:]

    def head(self, prepared: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        grid = self.grid(prepared)
        const = self.constants(grid)
        w = weights.reshape(-1)
        a = w / w.sum()
        key, value, query = (
            np.asarray(prepared[k], dtype=np.float32).reshape(len(prepared[k]), -1)  # (C, cells)
            for k in ("key", "value", "query")
        )
        channels = key.shape[0]
        # token 0 is the (weighted) mean feature plus position 0, projected
        q0 = query @ a + const["q0"]
        k0 = key @ a - a @ const["pos_k"] + const["k0"]
        v0 = value @ a - a @ const["pos_v"] + const["v0"]
        heads = self.pool.num_heads
        dim = channels // heads
        keys = np.concatenate([k0[:, None], key], axis=1).reshape(heads, dim, -1)
        values = np.concatenate([v0[:, None], value], axis=1).reshape(heads, dim, -1)
        logits = np.einsum("hd,hdn->hn", q0.reshape(heads, dim), keys) / math.sqrt(dim)
        with np.errstate(divide="ignore"):
            logits[:, 1:] += np.log(w)[None, :]  # -inf outside the mask: no attention there
        logits -= logits.max(axis=1, keepdims=True)
        attn = np.exp(logits)
        attn /= attn.sum(axis=1, keepdims=True)
        out = np.einsum("hn,hdn->hd", attn, values).reshape(-1)
        return const["c_w"] @ out + const["c_b"]


class _VitPooler:
    """open_clip VisionTransformer at its native square input: patch tokens after ln_post and the
    projection, averaged inside the mask. Exact for average-pooled ViTs; for class-token ViTs
    (OpenAI's) the patch tokens are only an approximation, hence 'crop' is their default head."""

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip
        self.visual = clip.model.visual
        if getattr(self.visual, "attn_pool", None) is not None:
            raise AnnotatorError("the 'pool' region head does not support attention-pooled ViTs")

    def default_long_side(self) -> int:
        return self.clip.image_size

    def input_size(self, size: tuple[int, int], long_side: int) -> tuple[int, int]:
        return tuple(int(s) for s in self.visual.image_size)

    def prepare(self, tensor: torch.Tensor) -> dict[str, np.ndarray]:
        out = self.visual.forward_intermediates(
            tensor, indices=1, normalize_intermediates=True, intermediates_only=True
        )
        tokens = out["image_intermediates"][-1][0]  # (width, gh, gw), ln_post applied
        width, gh, gw = tokens.shape
        projected = tokens.reshape(width, -1).T @ self.visual.proj  # (HW, D)
        return {"features": projected.T.reshape(-1, gh, gw).float().cpu().numpy()}

    def grid(self, prepared: dict[str, np.ndarray]) -> tuple[int, int]:
        return prepared["features"].shape[1:]

    def head(self, prepared: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        feats = np.asarray(prepared["features"], dtype=np.float32)
        return (feats.reshape(feats.shape[0], -1) @ weights.reshape(-1)) / float(weights.sum())


_POOLERS: dict[str, Any] = {"convnext": _ConvNextPooler, "resnet": _ResNetPooler, "vit": _VitPooler}


# ----------------------------------------------------------------------------------- crop head
class CropHead:
    """Encode a square crop around the mask's box with the full image tower.

    `max_side`: the image kept per image (uint8) is downscaled to this longest side.
    `context`: margin added on each side of the box, as a fraction of the box's longer side (CLIP
    recognises objects better with some surroundings). `grey`: how far the pixels outside the mask
    are blended towards the model's mean colour, 0 = plain crop, 1 = background removed; the default
    0.5 keeps context visible while making the masked object the salient one.
    """

    name = "crop"

    def __init__(
        self, clip: ClipModel, max_side: int = 1024, context: float = 0.25, grey: float = 0.5
    ) -> None:
        self.clip = clip
        self.max_side = max_side
        self.context = context
        self.grey = grey
        self.fill = tuple(float(v) for v in np.clip(clip.mean * 255.0, 0, 255))
        self.identity = f"crop@{max_side}"  # what the prepared arrays depend on

    def prepare(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """{"image": uint8 copy with longest side <= max_side, "image_size": (H, W)}."""
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            small = image.copy()
        return {"image": small, "image_size": np.asarray((height, width), dtype=np.int64)}

    def crop_box(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> tuple[float, ...]:
        """Square (x0, y0, x1, y1) in original pixels around the mask's box plus context; may
        extend past the image (filled with the mean colour). An empty mask gives the whole image."""
        height, width = (int(v) for v in prepared["image_size"])
        box = mask_box(mask) or (0, 0, width, height)
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * self.context)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2

    def crop(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """The (S, S, 3) uint8 image that `embed` encodes, S the tower's native size."""
        _check_mask(prepared, mask)
        size = self.clip.image_size
        small = prepared["image"]
        height, width = (int(v) for v in prepared["image_size"])
        scale = small.shape[1] / width, small.shape[0] / height
        box = self.crop_box(prepared, mask)
        pixels = _crop_resize(small, box, scale, size, self.fill)
        if self.grey > 0:
            alpha = _crop_resize(mask.view(np.uint8), box, (1.0, 1.0), size, 0.0, soft=True)
            keep = alpha + (1.0 - alpha) * (1.0 - self.grey)
            fill = np.asarray(self.fill, dtype=np.float32)
            blended = pixels.astype(np.float32) * keep[..., None] + fill * (1.0 - keep[..., None])
            pixels = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return pixels

    def embed(self, prepared: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """bool (H, W) mask -> (D,) float32 L2-normalised embedding of `crop(prepared, mask)`."""
        pixels = self.crop(prepared, mask)
        return unit_vector(self.clip.encode_tensor(self.clip.normalize_pixels(pixels)))


def _crop_resize(
    image: np.ndarray,
    box: tuple[float, ...],
    scale: tuple[float, float],
    size: int,
    fill: Any,
    soft: bool = False,
) -> np.ndarray:
    """Crop `box` (original pixels; `scale` maps them to `image`), pad what lies outside the image
    with `fill`, resize to (size, size). `soft`: image is a 0/1 mask, returned as float coverage."""
    h, w = image.shape[:2]
    x0, x1 = (int(round(v * scale[0])) for v in (box[0], box[2]))
    y0, y1 = (int(round(v * scale[1])) for v in (box[1], box[3]))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    inner = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if soft:
        inner = inner.astype(np.float32)
    pads = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))
    if inner.size == 0:
        shape = (y1 - y0, x1 - x0) + image.shape[2:]
        inner = np.zeros(shape, dtype=np.float32 if soft else image.dtype)
        inner[...] = fill
    elif any(pads):
        inner = cv2.copyMakeBorder(inner, *pads, cv2.BORDER_CONSTANT, value=fill)
    interp = cv2.INTER_AREA if inner.shape[0] > size else cv2.INTER_CUBIC
    out = cv2.resize(inner, (size, size), interpolation=interp)
    return np.clip(out, 0.0, 1.0) if soft else out


# -------------------------------------------------------------------------------------- registry
REGION_HEADS: dict[str, type] = {"pool": MaskPoolingHead, "crop": CropHead}


def default_head_name(clip: ClipModel) -> str:
    """'pool' for ConvNeXt/ResNet towers, 'crop' for ViT (documented choice)."""
    return "pool" if clip.tower in ("convnext", "resnet") else "crop"


def make_head(name: str, clip: ClipModel, **options: Any) -> RegionHead:
    """A region head by registry name; `options` go to its constructor (e.g. long_side, grey)."""
    if name not in REGION_HEADS:
        raise AnnotatorError(
            f"unknown region head {name!r}; choose one of: {', '.join(sorted(REGION_HEADS))}"
        )
    return REGION_HEADS[name](clip, **options)
