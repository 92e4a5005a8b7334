"""The façade used by GUI and CLI: one `embed` per image, then cheap `segment` calls.

No Qt and no threads here: callers decide where it runs (the GUI's worker thread, the CLI's main thread).
A click reads only the `ImageEmbedding`: SAM's prompt encoder + mask decoder give the candidates, only the
best one is upscaled to full resolution, the region head turns it into a CLIP embedding, and the text index
scores it against the whole vocabulary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.cache import ArrayCache, default_cache_dir
from annotator.errors import AnnotatorError, PromptError
from annotator.models.sam import SamEmbedding, SamModel

Point = tuple[float, float, bool]  # x, y in image pixels, True = positive
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ImageEmbedding:
    """Everything a click needs, computed once per image and cached on disk."""

    sam: SamEmbedding
    clip: dict[str, np.ndarray]  # what the region head prepared
    image_hash: str  # sha256 of the file bytes (or of the pixels for an in-memory image)
    model_id: str  # SAM identity | CLIP identity | region head

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.sam.original_size


EXACT_UPSCALE_MAX_PIXELS = 4096 * 4096  # see Engine.segment


@dataclass(frozen=True)
class Candidate:
    score: float  # SAM's predicted IoU
    low_res_logits: np.ndarray  # (256, 256) float32
    mask: np.ndarray | None = None  # bool (H, W), when upscaled with its siblings (see segment)


@dataclass(frozen=True)
class Proposal:
    mask: np.ndarray  # bool (H, W), the chosen candidate
    score: float
    candidates: tuple[Candidate, ...]
    chosen: int
    labels: list[tuple[str, float]] = field(default_factory=list)  # best first
    region: np.ndarray | None = None  # (D,) CLIP region embedding


def resolve_device(device: str) -> str:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes: cheap enough to key the cache without decoding the image."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pixels_hash(image: np.ndarray) -> str:
    digest = hashlib.sha256(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def _sam_arrays(embedding: SamEmbedding) -> dict[str, np.ndarray]:
    return {
        "features": embedding.features,
        "original_size": np.asarray(embedding.original_size, dtype=np.int64),
        "input_size": np.asarray(embedding.input_size, dtype=np.int64),
    }


def _sam_from_arrays(arrays: dict[str, np.ndarray]) -> SamEmbedding:
    h, w = (int(v) for v in arrays["original_size"])
    ih, iw = (int(v) for v in arrays["input_size"])
    return SamEmbedding(features=arrays["features"], original_size=(h, w), input_size=(ih, iw))


class Engine:
    """SAM + CLIP region head + text index, with the embedding cache in front of the encoders."""

    def __init__(
        self, sam, clip, head, index, cache: ArrayCache | None = None, device: str = "cpu"
    ):
        self.sam = sam
        self.clip = clip
        self.head = head
        self.index = index
        self.cache = cache
        self.device = device

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def from_paths(
        cls,
        sam_checkpoint: Path | None = None,
        clip_model: str | None = None,
        clip_weights: Path | None = None,
        clip_pretrained: str | None = None,
        clip_config: Path | None = None,
        vocabulary: Path | str | None = None,
        region_head: str | None = None,
        device: str = "auto",
        cache_dir: Path | None = None,
        progress: Progress | None = None,
        use_cache: bool = True,
    ) -> Engine:
        """Load the models named by the user (or the defaults from the weights cache) and the vocabulary."""
        from annotator.models.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, ClipModel
        from annotator.models.region import default_head_name, make_head

        device = resolve_device(device)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if sam_checkpoint is None:
            sam_checkpoint = _default_sam_checkpoint()
        sam = SamModel.load(Path(sam_checkpoint), device=device)
        if clip_config is None and clip_weights is None and clip_pretrained is None:
            clip_model = clip_model or DEFAULT_CLIP_MODEL
            clip_pretrained = DEFAULT_CLIP_PRETRAINED if clip_model == DEFAULT_CLIP_MODEL else None
        clip = ClipModel.load(
            name=clip_model if clip_config is None else None,
            pretrained=clip_pretrained,
            weights=Path(clip_weights) if clip_weights is not None else None,
            config=Path(clip_config) if clip_config is not None else None,
            device=device,
        )
        head = make_head(region_head or default_head_name(clip), clip)
        index = _build_index(_load_vocabulary(vocabulary), clip, root / "text", progress)
        cache = ArrayCache(root / "embeddings") if use_cache else None
        return cls(sam, clip, head, index, cache=cache, device=device)

    def with_head(self, name: str) -> Engine:
        """The same models with another region head ('pool' or 'crop'), e.g. to compare them."""
        from annotator.models.region import make_head

        return Engine(
            self.sam, self.clip, make_head(name, self.clip), self.index, self.cache, self.device
        )

    def text_index_for(self, vocabulary, progress: Progress | None = None):
        """A text index over another vocabulary with this engine's CLIP model (shares the disk cache)."""
        root = self.cache.root.parent / "text" if self.cache is not None else None
        return _build_index(vocabulary, self.clip, root, progress)

    def set_vocabulary(
        self, vocabulary, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Switch to an edited vocabulary; only new or renamed entries are encoded."""
        self.index.update(vocabulary, progress=progress)

    @property
    def vocabulary(self):
        return self.index.vocabulary

    @property
    def model_id(self) -> str:
        return f"{self.sam.identity}|{self.clip.identity}|{self.head.name}"

    # ----------------------------------------------------------------------------------------- encoding
    def _clip_id(self) -> str:
        # The head's identity includes the settings its cached arrays depend on (e.g. pool@1024).
        return f"{self.clip.identity}|{getattr(self.head, 'identity', self.head.name)}"

    def is_cached(self, image: Path) -> bool:
        """True when both halves of this image's embedding are on disk."""
        if self.cache is None:
            return False
        try:
            digest = file_hash(Path(image))
        except OSError:
            return False  # gone or unreadable: `embed` raises the user-facing ImageLoadError
        return self.cache.contains("sam", self.sam.identity, digest) and self.cache.contains(
            "clip", self._clip_id(), digest
        )

    def embed(self, image: np.ndarray | Path | str) -> ImageEmbedding:
        """The image's embedding, from the cache when possible; a path is decoded only when needed."""
        pixels: np.ndarray | None = None
        if isinstance(image, (str, Path)):
            path = Path(image)
            try:
                digest = file_hash(path)
            except OSError:  # gone, a folder, unreadable: load_image below says which
                digest = None
        else:
            pixels = np.ascontiguousarray(image)
            digest = pixels_hash(pixels)

        def rgb() -> np.ndarray:
            nonlocal pixels
            if pixels is None:
                from annotator.io.images import load_image

                pixels = load_image(path)
            return pixels

        sam_arrays = clip_arrays = None
        if self.cache is not None and digest is not None:
            sam_arrays = self.cache.load("sam", self.sam.identity, digest)
            clip_arrays = self.cache.load("clip", self._clip_id(), digest)
        if sam_arrays is None:
            sam_embedding = self.sam.encode(rgb())
            if self.cache is not None and digest is not None:
                self.cache.save("sam", self.sam.identity, digest, _sam_arrays(sam_embedding))
        else:
            sam_embedding = _sam_from_arrays(sam_arrays)
        if clip_arrays is None:
            clip_arrays = self.head.prepare(rgb())
            if self.cache is not None and digest is not None:
                self.cache.save("clip", self._clip_id(), digest, clip_arrays)
        return ImageEmbedding(
            sam=sam_embedding, clip=clip_arrays, image_hash=digest or "", model_id=self.model_id
        )

    # ----------------------------------------------------------------------------------------- clicking
    def segment(
        self,
        embedding: ImageEmbedding,
        points: Sequence[Point] = (),
        box: Box | None = None,
        top_k: int = 5,
        multimask: bool | None = None,
    ) -> Proposal:
        """Mask + labels for a prompt set.

        By default SAM returns three candidates for a single point (the ambiguous case) and one otherwise,
        as the SAM authors recommend; the candidate with the best predicted IoU is chosen.
        """
        coords, labels = _points_arrays(points)
        box_array = _box_array(box)
        if coords is None and box_array is None:
            raise PromptError("a mask needs at least one point or a box")
        if multimask is None:
            multimask = box_array is None and coords is not None and len(coords) == 1
        masks = self.sam.decode(embedding.sam, coords, labels, box_array, multimask)
        # All candidates upscaled in one call, as SamPredictor.predict does: identical masks, and Tab
        # costs nothing. Past EXACT_UPSCALE_MAX_PIXELS only the chosen one is (3x less time and
        # memory on huge images; the others on Tab, equal to predict's up to one float32 rounding).
        h, w = embedding.sam.original_size
        full = (
            self.sam.upscale(embedding.sam, masks.low_res_logits)
            if h * w <= EXACT_UPSCALE_MAX_PIXELS or len(masks.scores) == 1
            else [None] * len(masks.scores)
        )
        candidates = tuple(
            Candidate(score=float(s), low_res_logits=logits, mask=mask)
            for s, logits, mask in zip(masks.scores, masks.low_res_logits, full, strict=True)
        )
        chosen = int(np.argmax(masks.scores))
        return self._finish(embedding, candidates, chosen, top_k)

    def select(
        self, embedding: ImageEmbedding, proposal: Proposal, index: int, top_k: int = 5
    ) -> Proposal:
        """Another of SAM's candidates (Tab), upscaled and labelled."""
        index %= len(proposal.candidates)
        return self._finish(embedding, proposal.candidates, index, top_k)

    def _finish(self, embedding, candidates, chosen: int, top_k: int) -> Proposal:
        mask = candidates[chosen].mask
        if mask is None:
            mask = self.sam.upscale(embedding.sam, candidates[chosen].low_res_logits)
        region, labels = self._label(embedding, mask, top_k)
        return Proposal(
            mask=mask,
            score=candidates[chosen].score,
            candidates=candidates,
            chosen=chosen,
            labels=labels,
            region=region,
        )

    def _label(self, embedding, mask: np.ndarray, top_k: int, restrict=None):
        if top_k <= 0 or not mask.any():
            return None, []
        region = self.head.embed(embedding.clip, mask)
        return region, self.topk(region, top_k, restrict)

    def topk(self, region: np.ndarray, k: int = 5, restrict: Sequence[str] | None = None):
        """Best k vocabulary entries for a region embedding, optionally only among `restrict` names."""
        if restrict is None:
            return self.index.topk(region, k)
        allowed = set(restrict)
        names = self.index.vocabulary.names()
        scores = self.index.scores(region)
        order = [i for i in np.argsort(-scores) if names[i] in allowed][:k]
        return [(names[i], float(scores[i])) for i in order]

    def region_embedding(self, embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
        """(D,) normalised CLIP embedding of a region (for evaluation, search and similarity)."""
        return self.head.embed(embedding.clip, np.asarray(mask, dtype=bool))

    def image_embedding(self, embedding: ImageEmbedding) -> np.ndarray:
        """(D,) normalised CLIP embedding of the whole image (tags, image similarity): the head's
        full-image mask, which for the ConvNeXt pool head is the model's own image embedding."""
        return self.region_embedding(embedding, np.ones(embedding.size, dtype=bool))

    @property
    def region_model_id(self) -> str:
        """Identity of what region/image embeddings depend on (CLIP model + region head)."""
        return self._clip_id()

    def relabel(
        self,
        embedding: ImageEmbedding,
        mask: np.ndarray,
        top_k: int = 5,
        restrict: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Labels for an arbitrary mask (after brush/eraser edits or a manual polygon)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != embedding.size:
            raise PromptError(
                f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {embedding.size[1]}x{embedding.size[0]}"
            )
        return self._label(embedding, mask, top_k, restrict)[1]


# --------------------------------------------------------------------------------------------- helpers
def _points_arrays(points: Sequence[Point]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not points:
        return None, None
    array = np.asarray([(p[0], p[1]) for p in points], dtype=np.float64)
    if not np.isfinite(array).all():
        raise PromptError("point coordinates must be finite numbers")
    labels = np.asarray([1 if (len(p) < 3 or p[2]) else 0 for p in points], dtype=np.int64)
    return array, labels


def _box_array(box: Box | None) -> np.ndarray | None:
    if box is None:
        return None
    array = np.asarray(box, dtype=np.float64).reshape(-1)
    if array.shape != (4,) or not np.isfinite(array).all():
        raise PromptError("a box is four finite numbers x0,y0,x1,y1")
    x0, y0, x1, y1 = array
    array = np.array([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
    if array[2] - array[0] < 1 or array[3] - array[1] < 1:
        raise PromptError(f"the box {tuple(float(v) for v in box)} has no area")
    return array


def _load_vocabulary(vocabulary):
    from annotator.vocab.vocabulary import Vocabulary

    if vocabulary is None:
        return Vocabulary.default()
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if (
        isinstance(vocabulary, str)
        and not Path(vocabulary).exists()
        and vocabulary
        in (
            "default",
            "coco",
            "lvis",
            "imagenet21k",
        )
    ):
        return Vocabulary.shipped(vocabulary)
    return Vocabulary.load(Path(vocabulary))


def _build_index(vocabulary, clip, cache_dir: Path | None, progress: Progress | None):
    from annotator.vocab.index import TextIndex
    from annotator.vocab.vocabulary import Vocabulary

    if not isinstance(vocabulary, Vocabulary):
        vocabulary = _load_vocabulary(vocabulary)
    index = TextIndex(
        vocabulary,
        clip.encode_text,
        clip.identity,
        cache_dir=cache_dir,
        logit_scale=clip.logit_scale,
    )
    index.build(progress=(lambda done, total: progress("text", done, total)) if progress else None)
    return index


def _default_sam_checkpoint() -> Path:
    """The default SAM checkpoint from the weights cache, or a clear message on how to get one."""
    from annotator.models import weights

    try:
        return weights.resolve("sam_vit_b")
    except AnnotatorError:
        raise
    except Exception as error:  # pragma: no cover - depends on the weights module's registry
        raise AnnotatorError(f"no SAM checkpoint: pass --sam-checkpoint PATH ({error})") from error


__all__ = ["Box", "Candidate", "Engine", "ImageEmbedding", "Point", "Proposal"]
