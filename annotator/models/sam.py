"""Segment-Anything: load any checkpoint, encode an image once, decode prompts cheaply.

The architecture is read from the checkpoint's tensor shapes (`infer_arch`), so the official
ViT-B/L/H files and the small checkpoints built in tests go through the same code. The model is
then assembled from the upstream `segment_anything.modeling` classes and loaded strictly.

`encode` reproduces `SamPredictor.set_image`; `decode` reproduces `SamPredictor.predict` up to
the low-resolution logits; `upscale` turns ONE chosen candidate into a full-size mask exactly as
`SamPredictor.predict` would (it upscales all candidates; the engine only needs one).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from segment_anything.utils.transforms import ResizeLongestSide

from annotator.device import resolve_device
from annotator.errors import CheckpointError, PromptError
from annotator.hashing import sha256_file
from annotator.models import sam_decoder
from annotator.models.segmenter import Masks, logits_array

# Not stored in checkpoints (non-persistent buffers / constructor constants): upstream values.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
ENCODER_NORM_EPS = 1e-6
# The decoder's attention head count changes no tensor shape, so it cannot be read from a
# checkpoint: every published SAM uses 8 (segment_anything/build_sam.py).
DECODER_NUM_HEADS = 8
# Head width assumed when an encoder has no relative-position tables to read it from.
DEFAULT_HEAD_DIM = 64
# Bounds on what a state dict may declare, checked before anything is allocated: every published
# SAM has a 64x64 grid at 1024 px; a stride-0 tensor can declare any shape in a few bytes.
MAX_GRID = 256
MAX_IMAGE_SIZE = 4096

_REQUIRED_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.neck.0.weight",
    "prompt_encoder.point_embeddings.0.weight",
    "prompt_encoder.mask_downscaling.3.weight",
    "mask_decoder.iou_token.weight",
    "mask_decoder.mask_tokens.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
    "mask_decoder.iou_prediction_head.layers.0.weight",
)


@dataclass(frozen=True)
class SamEmbedding:
    """What SAM needs to answer prompts for one image without re-running the encoder.

    features: (C, h, w) float32, C=256, h=w=image_size/patch (64 for official checkpoints).
    original_size: (H, W) of the RGB image the user sees.
    input_size: (h, w) of the image after ResizeLongestSide, before padding.
    """

    features: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the GUI's prefetch budget counts this)."""
        return int(self.features.nbytes)


@dataclass(frozen=True)
class SamArch:
    """Every hyper-parameter of a `Sam`, as read from a state dict's shapes."""

    img_size: int
    patch_size: int
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    mlp_ratio: float
    qkv_bias: bool
    use_abs_pos: bool
    use_rel_pos: bool
    window_size: int
    global_attn_indexes: tuple[int, ...]
    out_chans: int
    prompt_embed_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    decoder_attention_downsample_rate: int
    num_multimask_outputs: int
    iou_head_depth: int
    iou_head_hidden_dim: int

    @property
    def grid(self) -> int:
        """Side of the image embedding (64 for official checkpoints)."""
        return self.img_size // self.patch_size

    @property
    def name(self) -> str:
        """The official name (vit_b, vit_l, vit_h) when it matches, else a compact description."""
        for name, arch in OFFICIAL_ARCHS.items():
            if arch == self:
                return name
        return (
            f"vit-i{self.img_size}p{self.patch_size}-e{self.encoder_embed_dim}"
            f"d{self.encoder_depth}h{self.encoder_num_heads}-o{self.out_chans}"
        )


def _official(embed_dim: int, depth: int, heads: int, global_idx: tuple[int, ...]) -> SamArch:
    return SamArch(
        img_size=1024,
        patch_size=16,
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=14,
        global_attn_indexes=global_idx,
        out_chans=256,
        prompt_embed_dim=256,
        mask_in_chans=16,
        decoder_depth=2,
        decoder_mlp_dim=2048,
        decoder_attention_downsample_rate=2,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )


# The layouts of segment_anything/build_sam.py, used to name an architecture.
OFFICIAL_ARCHS: dict[str, SamArch] = {
    "vit_b": _official(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": _official(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": _official(1280, 32, 16, (7, 15, 23, 31)),
}


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct integers `i` such that some key matches `pattern` with (\\d+)."""
    rx = re.compile(pattern)
    return len({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def infer_arch(sd: Mapping[str, torch.Tensor]) -> SamArch:
    """Read a `Sam`'s hyper-parameters from its state dict (only `.shape` is used).

    Raises `ValueError` with a short reason when the shapes are inconsistent; `SamModel`
    turns it into a `CheckpointError` naming the file.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in sd]
    if missing:
        raise KeyError(", ".join(missing))

    patch_w = sd["image_encoder.patch_embed.proj.weight"]  # (E, 3, p, p)
    embed_dim, _, patch_size, _ = patch_w.shape
    depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.norm1\.weight")
    if depth == 0:
        raise ValueError("the image encoder has no transformer blocks")

    use_abs_pos = "image_encoder.pos_embed" in sd
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in sd
    rel_rows = []
    if use_rel_pos:
        rel_rows = [sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
    if use_abs_pos:
        grid = sd["image_encoder.pos_embed"].shape[1]
    elif rel_rows:
        grid = (max(rel_rows) + 1) // 2  # the global blocks span the whole grid
    else:
        raise ValueError("neither pos_embed nor relative positions: cannot tell the image size")
    if not 1 <= grid <= MAX_GRID or grid * patch_size > MAX_IMAGE_SIZE:
        raise ValueError(
            f"declares a {grid}x{grid} position grid of {patch_size}-px patches (at most "
            f"{MAX_GRID} and {MAX_IMAGE_SIZE} px): refused"
        )
    img_size = grid * patch_size

    if use_rel_pos:
        head_dim = sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        global_idx = tuple(i for i, r in enumerate(rel_rows) if r == 2 * grid - 1)
        windows = {(r + 1) // 2 for i, r in enumerate(rel_rows) if i not in global_idx}
        if len(windows) > 1:
            raise ValueError(f"window blocks disagree on the window size {sorted(windows)}")
        window_size = windows.pop() if windows else 0
    else:
        head_dim = min(DEFAULT_HEAD_DIM, embed_dim)
        global_idx, window_size = (), 0
    if embed_dim % head_dim:
        raise ValueError(f"encoder width {embed_dim} is not a multiple of head width {head_dim}")

    mlp_hidden = sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    out_chans = sd["image_encoder.neck.0.weight"].shape[0]
    prompt_dim = sd["prompt_encoder.point_embeddings.0.weight"].shape[1]
    decoder_dim = sd["mask_decoder.iou_token.weight"].shape[1]
    if not out_chans == prompt_dim == decoder_dim:
        raise ValueError(
            f"encoder output ({out_chans}), prompt ({prompt_dim}) and decoder ({decoder_dim}) "
            "widths differ"
        )
    cross_dim = sd["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"]
    return SamArch(
        img_size=int(img_size),
        patch_size=int(patch_size),
        encoder_embed_dim=int(embed_dim),
        encoder_depth=depth,
        encoder_num_heads=int(embed_dim // head_dim),
        mlp_ratio=mlp_hidden / embed_dim,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in sd,
        use_abs_pos=use_abs_pos,
        use_rel_pos=use_rel_pos,
        window_size=int(window_size),
        global_attn_indexes=global_idx,
        out_chans=int(out_chans),
        prompt_embed_dim=int(prompt_dim),
        mask_in_chans=int(sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_depth=_count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\.norm1\.weight"),
        decoder_mlp_dim=int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        decoder_attention_downsample_rate=int(decoder_dim // cross_dim.shape[0]),
        num_multimask_outputs=int(sd["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
        iou_head_depth=_count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight"),
        iou_head_hidden_dim=int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )


def build_sam_from_arch(arch: SamArch, device: str | torch.device = "cpu") -> Sam:
    """Assemble an (untrained) upstream `Sam`; `device="meta"` allocates nothing."""
    grid = arch.grid
    with torch.device(device):
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=arch.img_size,
                patch_size=arch.patch_size,
                embed_dim=arch.encoder_embed_dim,
                depth=arch.encoder_depth,
                num_heads=arch.encoder_num_heads,
                mlp_ratio=arch.mlp_ratio,
                out_chans=arch.out_chans,
                qkv_bias=arch.qkv_bias,
                norm_layer=partial(torch.nn.LayerNorm, eps=ENCODER_NORM_EPS),
                use_abs_pos=arch.use_abs_pos,
                use_rel_pos=arch.use_rel_pos,
                window_size=arch.window_size,
                global_attn_indexes=arch.global_attn_indexes,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=arch.prompt_embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(arch.img_size, arch.img_size),
                mask_in_chans=arch.mask_in_chans,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=arch.num_multimask_outputs,
                transformer=TwoWayTransformer(
                    depth=arch.decoder_depth,
                    embedding_dim=arch.prompt_embed_dim,
                    mlp_dim=arch.decoder_mlp_dim,
                    num_heads=DECODER_NUM_HEADS,
                    attention_downsample_rate=arch.decoder_attention_downsample_rate,
                ),
                transformer_dim=arch.prompt_embed_dim,
                iou_head_depth=arch.iou_head_depth,
                iou_head_hidden_dim=arch.iou_head_hidden_dim,
            ),
            pixel_mean=list(PIXEL_MEAN),
            pixel_std=list(PIXEL_STD),
        )
    return sam.eval()


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with every failure turned into a one-line `CheckpointError`."""
    if not path.exists():
        raise CheckpointError(f"SAM checkpoint {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint {path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"SAM checkpoint {path}: the file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here (RuntimeError, IndexError, ...)
        msg = _one_line(exc)
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in msg.lower():
            raise CheckpointError(
                f"SAM checkpoint {path}: holds Python objects besides tensors; only plain "
                "state dicts are loaded (weights_only)"
            ) from exc
        with open(path, "rb") as f:
            head = f.read(4)
        # zip (current torch format) or a legacy torch pickle that torch cannot finish reading
        if head.startswith(b"PK") or head.startswith(b"\x80\x02\x8a"):
            raise CheckpointError(
                f"SAM checkpoint {path}: truncated or corrupt file (an interrupted download?): {msg}"
            ) from exc
        raise CheckpointError(
            f"SAM checkpoint {path}: not a PyTorch checkpoint ({type(exc).__name__}: {msg})"
        ) from exc
    return _unwrap(obj, str(path))


def _unwrap(obj: object, where: str) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or one wrapped under "model"/"state_dict" (or "module." keys)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(
            isinstance(k, str) and k.startswith("image_encoder.") for k in obj
        ):
            inner = next((obj[k] for k in ("model", "state_dict") if k in obj), None)
            if isinstance(inner, Mapping):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"SAM checkpoint {where}: holds a {type(obj).__name__}, not a state dict"
        )
    keys = [k for k in obj if isinstance(k, str)]
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _hash_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes and bytes: an identity for weights that never were a file."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _resolve_device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(resolve_device(device))


def _check_bounds(sd: Mapping[str, torch.Tensor], arch: SamArch, where: str, file_size: int | None):
    """Refuse sizes no real SAM has, and tensors that hold fewer bytes than they declare."""
    if arch.grid > MAX_GRID or arch.img_size > MAX_IMAGE_SIZE or arch.grid < 1:
        raise CheckpointError(
            f"SAM checkpoint {where}: declares a {arch.grid}x{arch.grid} grid at "
            f"{arch.img_size} px (at most {MAX_GRID} and {MAX_IMAGE_SIZE}): refused"
        )
    declared = 0
    for key, t in sd.items():
        declared += t.numel() * t.element_size()
        if t.numel() and any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape, strict=True)):
            raise CheckpointError(
                f"SAM checkpoint {where}: {key} is a broadcast (stride-0) tensor of shape "
                f"{list(t.shape)}, not stored weights: refused"
            )
    if file_size is not None and declared > file_size:
        raise CheckpointError(
            f"SAM checkpoint {where}: declares {declared} bytes of tensors in a {file_size}-byte "
            "file: refused"
        )


class SamModel:
    """Owns a `segment_anything.modeling.Sam` and the per-image pre/post-processing."""

    family = "sam"
    identity: str  # stable id of architecture + weights (e.g. "sam-vit_b-<sha256[:16]>")

    def __init__(self, sam: Sam, arch: SamArch, identity: str) -> None:
        self.model = sam  # the upstream module (e.g. for `SamPredictor(model.model)`)
        self.arch = arch
        self.identity = identity
        self.device = sam.device
        self.transform = ResizeLongestSide(arch.img_size)
        with torch.inference_mode():
            # Depends only on weights: computed once instead of on every click.
            self._dense_pe = sam.prompt_encoder.get_dense_pe()
        # The last image's prompt-independent decoder work (see sam_decoder.py), keyed by its features.
        self._state_key: tuple[weakref.ref, int] | None = None
        self._state: sam_decoder.DecoderState | None = None

    @property
    def sam(self) -> Sam:
        """Alias of `model`."""
        return self.model

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution logits (256 for official checkpoints)."""
        return 4 * self.arch.grid

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SamModel:
        """Load any segment-anything checkpoint file; `CheckpointError` if it is not one."""
        path = Path(path)
        sd = _read_checkpoint(path)
        return cls._from_state_dict(
            sd, device, lambda arch: sha256_file(path), str(path), file_size=path.stat().st_size
        )

    @classmethod
    def from_state_dict(
        cls,
        sd: Mapping[str, torch.Tensor],
        device: str = "cpu",
        identity: str | None = None,
    ) -> SamModel:
        """Build from an in-memory state dict (identity: given, or a hash of the tensors)."""
        sd = _unwrap(sd, "state dict")
        if identity is not None:
            return cls._from_state_dict(sd, device, None, "state dict", identity=identity)
        return cls._from_state_dict(sd, device, lambda arch: _hash_state_dict(sd), "state dict")

    @classmethod
    def _from_state_dict(
        cls,
        sd: dict[str, torch.Tensor],
        device: str,
        digest: Callable[[SamArch], str] | None,
        where: str,
        identity: str | None = None,
        file_size: int | None = None,
    ) -> SamModel:
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"SAM checkpoint {where}: values are not all tensors")
        try:
            arch = infer_arch(sd)
        except KeyError as exc:
            missing = exc.args[0].split(", ")
            more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
            has = ", ".join(list(sd)[:3]) or "no keys at all"
            raise CheckpointError(
                f"SAM checkpoint {where}: not a Segment-Anything state dict: missing "
                f"{', '.join(missing[:3])}{more}; it has {has}..."
            ) from None
        except (ValueError, IndexError, ZeroDivisionError) as exc:
            raise CheckpointError(f"SAM checkpoint {where}: inconsistent shapes: {exc}") from exc
        _check_bounds(sd, arch, where, file_size)

        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        sam = build_sam_from_arch(arch, "meta")  # no random init: the weights come next
        try:
            sam.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"SAM checkpoint {where}: does not match the inferred {arch.name} layout: "
                f"{_one_line(exc, 200)}"
            ) from exc
        sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
        sam = sam.to(_resolve_device(device)).eval()
        if identity is None:
            assert digest is not None
            identity = f"sam-{arch.name}-{digest(arch)[:16]}"
        return cls(sam, arch, identity)

    def to_arrays(self, embedding: SamEmbedding) -> dict[str, np.ndarray]:
        """The cache's view of an embedding."""
        return {
            "features": embedding.features,
            "original_size": np.asarray(embedding.original_size, dtype=np.int64),
            "input_size": np.asarray(embedding.input_size, dtype=np.int64),
        }

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> SamEmbedding:
        h, w = (int(v) for v in arrays["original_size"])
        ih, iw = (int(v) for v in arrays["input_size"])
        return SamEmbedding(arrays["features"], original_size=(h, w), input_size=(ih, iw))

    def encode(self, image: np.ndarray) -> SamEmbedding:
        """RGB uint8 (H, W, 3) -> embedding, exactly as `SamPredictor.set_image` computes it."""
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            raise ValueError(
                f"encode needs an RGB uint8 (H, W, 3) array, got {getattr(image, 'dtype', None)} "
                f"{getattr(image, 'shape', None)}"
            )
        original_size = (int(image.shape[0]), int(image.shape[1]))
        resized = self.transform.apply_image(image)
        with torch.inference_mode():
            x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
            input_size = (int(x.shape[-2]), int(x.shape[-1]))
            features = self.model.image_encoder(self.model.preprocess(x))
            features_np = features[0].cpu().numpy()
        return SamEmbedding(features_np, original_size, input_size)

    def _decoder_state(
        self, embedding: SamEmbedding, dense: torch.Tensor
    ) -> sam_decoder.DecoderState:
        """The image's `DecoderState`, computed on its first click and kept while it is clicked."""
        features = embedding.features
        key = self._state_key
        if key is None or key[0]() is not features or key[1] != id(features):
            self._state = sam_decoder.prepare(
                self.model.mask_decoder, self._features(embedding), self._dense_pe, dense
            )
            self._state_key = (weakref.ref(features), id(features))
        return self._state

    def _features(self, embedding: SamEmbedding) -> torch.Tensor:
        """(1, C, h, w) view of the cached features (no copy on CPU)."""
        f = embedding.features
        if f.dtype != np.float32 or not f.flags.c_contiguous:
            f = np.ascontiguousarray(f, dtype=np.float32)
        with warnings.catch_warnings():
            # A memory-mapped cache is read-only; the decoder never writes to it.
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(f)
        return t.to(self.device)[None]

    def decode(
        self,
        embedding: SamEmbedding,
        points: np.ndarray | None,  # (N, 2) float XY in original image pixels
        labels: np.ndarray | None,  # (N,) int 1 positive / 0 negative
        box: np.ndarray | None,  # (4,) XYXY in original image pixels
        multimask: bool,
        *,
        mask_input: np.ndarray | None = None,  # (1|-, 4h, 4w) logits of a previous answer
    ) -> Masks:
        """Prompts -> low-res logits + scores, as `SamPredictor.predict` before upscaling."""
        n_points = 0 if points is None else len(points)
        if n_points == 0 and box is None:
            raise PromptError("a mask needs at least one point or a box")
        coords_t = labels_t = box_t = mask_t = None
        orig = embedding.original_size
        if n_points:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            lab = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise PromptError(f"{len(pts)} points but {len(lab)} point labels")
            if not np.isfinite(pts).all():
                raise PromptError("a point has a non-finite coordinate")
            if not np.isin(lab, (0, 1)).all():
                raise PromptError("point labels must be 1 (positive) or 0 (negative)")
            pts = self.transform.apply_coords(pts, orig)
            coords_t = torch.as_tensor(pts, dtype=torch.float, device=self.device)[None]
            labels_t = torch.as_tensor(lab, dtype=torch.int, device=self.device)[None]
        if box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(-1)
            if b.shape != (4,) or not np.isfinite(b).all():
                raise PromptError("a box needs 4 finite numbers x0, y0, x1, y1")
            if b[2] <= b[0] or b[3] <= b[1]:
                raise PromptError(f"degenerate box {b.tolist()}: x1 > x0 and y1 > y0 needed")
            b = self.transform.apply_boxes(b, orig)
            box_t = torch.as_tensor(b, dtype=torch.float, device=self.device)[None]
        if mask_input is not None:
            m = np.asarray(mask_input, dtype=np.float32)
            side = self.low_res_size
            mask_t = torch.as_tensor(m.reshape(1, 1, side, side), device=self.device)

        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(
                points=None if coords_t is None else (coords_t, labels_t),
                boxes=box_t,
                masks=mask_t,
            )
            if mask_t is None:
                # The lean path: bit-identical to the upstream decoder, without the per-image work.
                state = self._decoder_state(embedding, dense)
                low_res, iou = sam_decoder.predict_masks(
                    self.model.mask_decoder, state, sparse, multimask
                )
            else:
                low_res, iou = self.model.mask_decoder(
                    image_embeddings=self._features(embedding),
                    image_pe=self._dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            return Masks(low_res[0].cpu().numpy(), iou[0].cpu().numpy())

    def upscale(self, embedding: SamEmbedding, low_res_logits: np.ndarray) -> np.ndarray:
        """(256, 256) logits -> bool (H, W) mask; (N, 256, 256) -> (N, H, W).

        Identical to SamPredictor.predict's masks when given all the candidates it returned at once:
        torch's bilinear kernel rounds differently for different channel counts (torch 2.14: one
        float32 ULP, enough to flip a pixel whose logit is ~0), and predict upsamples them together.
        """
        side = self.low_res_size
        logits, single = logits_array(low_res_logits, side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(logits).reshape(1, -1, side, side)
        with torch.inference_mode():
            masks = self.model.postprocess_masks(
                t.to(self.device), embedding.input_size, embedding.original_size
            )
            masks = (masks[0] > self.model.mask_threshold).cpu().numpy()
        return masks[0] if single else masks
