"""The façade used by GUI and CLI: one `embed` per image, then cheap `segment` calls.

No Qt and no threads here: callers decide where it runs (the GUI's worker thread, the CLI's main thread).
A click reads only the `ImageEmbedding`: SAM's prompt encoder + mask decoder give the candidates, all of
them are upscaled to full resolution in one call (as `SamPredictor.predict` does, so masks are bit-identical;
above 4096x4096 pixels only the chosen one), the region head turns the chosen mask into a CLIP embedding, and
the text index scores it against the whole vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from annotator.cache import ArrayCache, check_cache_root, default_cache_dir
from annotator.device import resolve_device
from annotator.errors import AnnotatorError, PromptError
from annotator.hashing import hash_ahead, sha256_file
from annotator.index_build import (
    IndexBuild,
    Progress,
    build_index,
    build_text_index,
    stage,
    start_text_index_build,
    text_index,
)
from annotator.io.images import sha256_pixels
from annotator.models.precision import (
    Plan,
    alternatives,
    apply_plan,
    image_identity,
    plan_for,
)
from annotator.models.segmenter import Segmenter
from annotator.spec import ModelSpec
from annotator.vocab.exemplars import TEXT_CANDIDATES, Exemplars, Suggestion, combine

if TYPE_CHECKING:
    from annotator.vocab.index import TextIndex

Point = tuple[float, float, bool]  # x, y in image pixels, True = positive
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class ImageEmbedding:
    """Everything a click needs, computed once per image and cached on disk."""

    sam: object  # the segmenter half: SamEmbedding (family sam) or FeatureEmbedding (the others)
    clip: dict[str, np.ndarray] | None  # what the region head prepared; None: not yet (mask only)
    image_hash: str  # sha256 of the file bytes (or of the pixels for an in-memory image)
    model_id: str  # segmenter identity | CLIP identity | region head

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.sam.original_size

    @property
    def complete(self) -> bool:
        """Both halves exist: masks and labels (False for `Engine.embed(..., clip=False)`)."""
        return self.clip is not None


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
    suggestions: tuple[Suggestion, ...] = ()  # the labels with why each is made (text/exemplars)
    # Labels were asked for but the embedding had only its segmenter half: `Engine.label` adds them.
    labels_pending: bool = False


class Engine:
    """Segmenter + CLIP region head + text index, with the embedding cache in front of the encoders.

    `sam` is any `models.segmenter.Segmenter` (the attribute keeps its historical name); the
    cache key of its half is its `identity`, which names the family.
    """

    def __init__(
        self,
        sam: Segmenter,
        clip,
        head,
        index,
        cache: ArrayCache | None = None,
        device: str = "cpu",
    ):
        self.sam = sam
        self.clip = clip
        self.head = head
        self.index = index
        self.cache = cache
        self.device = device
        # The project's accepted objects as visual exemplars (vocab/exemplars.py); None: text only.
        self.exemplars: Exemplars | None = None
        # What each part computes in (models/precision.py); None: built by hand, all fp32.
        self.precision: Plan | None = None
        # A cached half computed in another precision may answer (--allow-mixed-precision).
        self.mix_precision = False

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        progress: Progress | None = None,
        use_cache: bool = True,
        build_index: bool = True,
        on_index: Callable[[TextIndex], None] | None = None,
    ) -> Engine:
        """Load the models a `ModelSpec` names (or the defaults from the weights cache) and the
        vocabulary. `build_engine` and `from_paths` both end here.

        The segmenter: `spec.segmenter` (sam|sam2|edgetam|sam_hq) and `spec.checkpoint` (a file or
        a transformers folder); with neither, SAM 1 ViT-B from the weights cache.
        With `build_index=False` the text index is left unbuilt: masks work at once, labels come
        once `build_index` / `start_index_build` has encoded (part of) the vocabulary — a first
        start never makes a click wait for the minutes the text encoding of ~40k names takes.

        With `on_index`, CLIP and the text index come before the segmenter and `on_index(index)`
        is called in between: the window starts the index build there (`start_text_index_build`),
        so the COCO names are encoded on the second core while the segmenter's imports and
        weights load on the first (transformers' import alone is 2.5 s, under the GIL, on one
        core). Without it the segmenter comes first, so that a bad checkpoint fails in a second.
        """

        hash_ahead(*_weight_files(spec))  # on a second core while the imports hold the first
        device = resolve_device(spec.device)
        root = check_cache_root(
            Path(spec.cache_dir) if spec.cache_dir is not None else default_cache_dir()
        )
        plan = plan_for(spec.precision, device)
        sam = None if on_index else _load_segmenter(spec.segmenter, spec.checkpoint, device, plan)
        clip, head = load_region_model(spec, device, plan)
        index = text_index(spec.vocabulary, clip, root / "text")
        if on_index is not None:
            on_index(index)
            sam = _load_segmenter(spec.segmenter, spec.checkpoint, device, plan)
        if build_index:
            index.build(progress=stage(progress, "text"))
        cache = ArrayCache(root / "embeddings") if use_cache else None
        engine = cls(sam, clip, head, index, cache=cache, device=device)
        engine.precision, engine.mix_precision = plan, spec.mix_precision
        return engine

    @classmethod
    def from_paths(
        cls,
        progress: Progress | None = None,
        use_cache: bool = True,
        build_index: bool = True,
        sam_checkpoint: Path | None = None,
        on_index: Callable[[TextIndex], None] | None = None,
        **spec_fields,
    ) -> Engine:
        """`from_spec` with the spec's fields as keywords (`sam_checkpoint` = `checkpoint`)."""
        if sam_checkpoint is not None:
            if spec_fields.get("checkpoint") is not None:
                raise AnnotatorError("pass --checkpoint or --sam-checkpoint, not both")
            spec_fields["checkpoint"] = sam_checkpoint
            spec_fields.setdefault("segmenter", "sam")
        spec = ModelSpec().replace(**{k: v for k, v in spec_fields.items() if v is not None})
        return cls.from_spec(
            spec, progress=progress, use_cache=use_cache, build_index=build_index, on_index=on_index
        )

    # ------------------------------------------------------------------------------------ text index
    def build_index(
        self, progress: Progress | None = None, priority: Sequence[str] = (), vocabulary=None
    ) -> None:
        """Encode the vocabulary's texts the cache lacks, `priority` names first; labels are
        answered from the part built so far meanwhile (`index_status`). With `vocabulary`, switch
        to it first (an edit: only new texts are encoded)."""
        build_text_index(self.index, progress, priority, vocabulary)

    def start_index_build(
        self,
        priority: Sequence[str] = (),
        progress: Progress | None = None,
        vocabulary=None,
        on_done: Callable[[BaseException | None], None] | None = None,
    ) -> IndexBuild:
        """`build_index` on a background thread (clicks keep working and get labels from the
        growing index); the returned handle can be cancelled and waited for; `on_done(error)` is
        called on that thread when it ends (error None: complete or cancelled)."""
        return start_text_index_build(self.index, priority, progress, vocabulary, on_done)

    @property
    def index_status(self) -> tuple[int, int]:
        """(entries scored now, entries in the vocabulary)."""
        return self.index.ready, self.index.total

    def with_head(self, name: str) -> Engine:
        """The same models with another region head ('pool' or 'crop'), e.g. to compare them."""
        from annotator.models.region import make_head

        engine = Engine(
            self.sam, self.clip, make_head(name, self.clip), self.index, self.cache, self.device
        )
        engine.precision, engine.mix_precision = self.precision, self.mix_precision
        return engine

    def text_index_for(self, vocabulary, progress: Progress | None = None):
        """A text index over another vocabulary with this engine's CLIP model (shares the disk cache)."""
        root = self.cache.root.parent / "text" if self.cache is not None else None
        return build_index(vocabulary, self.clip, root, progress)

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
        return region_id(self.clip, self.head)

    def is_cached(self, image: Path) -> bool:
        """True when both halves of this image's embedding are on disk."""
        if self.cache is None:
            return False
        try:
            digest = sha256_file(Path(image))
        except OSError:
            return False  # gone or unreadable: `embed` raises the user-facing ImageLoadError
        return any(
            self.cache.contains("sam", i, digest) for i in self._ids(self.sam.identity)
        ) and any(self.cache.contains("clip", i, digest) for i in self._ids(self._clip_id()))

    def _ids(self, identity: str) -> list[str]:
        """The cache identities that may answer for `identity`: itself, and with mixing allowed
        the same model's output in the other precisions."""
        return [identity, *alternatives(identity)] if self.mix_precision else [identity]

    def _load(self, cache: ArrayCache, kind: str, identity: str, digest: str):
        for candidate in self._ids(identity):
            arrays = cache.load(kind, candidate, digest)
            if arrays is not None:
                return arrays
        return None

    def embed(
        self,
        image: np.ndarray | Path | str | Callable[[], np.ndarray],
        clip: bool = True,
        known: ImageEmbedding | None = None,
        key: str | None = None,
    ) -> ImageEmbedding:
        """The image's embedding, from the cache when possible; a path is decoded only when needed.

        `clip=False` stops after the segmenter half (from the cache, else the encoder): enough for
        a mask, so the first click on a new image does not also wait for the CLIP encoder; the
        labels come once a later `embed(..., known=that)` has added the CLIP half (masks before
        labels). `known` is an embedding of the same image whose halves are reused as they are.
        `key` names an image given as a function returning its pixels (a region of a large image,
        `io/tiles.region_key`): the cache is looked up by it and the function called only on a miss.
        """
        pixels: np.ndarray | None = None
        pixels_from_file = isinstance(image, (str, Path))
        if callable(image):
            if key is None:
                raise ValueError("an image given as a function needs its cache key")
            digest, pixels_from_file = (known.image_hash if known is not None else key), True
        elif known is not None:
            digest: str | None = known.image_hash or None
        elif isinstance(image, (str, Path)):
            try:
                digest = sha256_file(Path(image))
            except OSError:  # gone, a folder, unreadable: load_image below says which
                digest = None
        else:
            digest = None
        if not pixels_from_file:
            pixels = np.ascontiguousarray(image)
            digest = digest or sha256_pixels(pixels)

        def rgb() -> np.ndarray:
            nonlocal pixels
            if pixels is None and callable(image):
                pixels = np.ascontiguousarray(image())
            elif pixels is None:
                from annotator.io.images import load_image

                pixels = load_image(Path(image))
            self._check_encodable(pixels, Path(image) if isinstance(image, (str, Path)) else None)
            return pixels

        cache = self.cache if digest is not None else None
        sam_embedding = known.sam if known is not None else self._sam_half(cache, digest, rgb)
        clip_arrays = known.clip if known is not None else None
        if clip and clip_arrays is None:
            clip_arrays = self._load(cache, "clip", self._clip_id(), digest) if cache else None
            if clip_arrays is None:
                clip_arrays = self.head.prepare(rgb())
                if cache is not None:
                    cache.save("clip", self._clip_id(), digest, clip_arrays)
        return ImageEmbedding(
            sam=sam_embedding, clip=clip_arrays, image_hash=digest or "", model_id=self.model_id
        )

    def _sam_half(self, cache: ArrayCache | None, digest: str | None, rgb) -> object:
        arrays = self._load(cache, "sam", self.sam.identity, digest) if cache is not None else None
        if arrays is not None:
            try:
                return self.sam.from_arrays(arrays)
            except (KeyError, ValueError):  # a stale or foreign file: recompute, as unreadable
                pass
        embedding = self.sam.encode(rgb())
        if cache is not None:
            cache.save("sam", self.sam.identity, digest, self.sam.to_arrays(embedding))
        return embedding

    def _check_encodable(self, pixels: np.ndarray, path: Path | None) -> None:
        """SAM resizes the long side to its input size; a short side that rounds to 0 pixels cannot
        be encoded (upstream raises a ValueError deep inside the resize): one clear line instead."""
        from annotator.errors import ImageLoadError
        from annotator.io.images import show_path

        h, w = int(pixels.shape[0]), int(pixels.shape[1])
        target = int(getattr(getattr(self.sam, "transform", None), "target_length", 0) or 0)
        if target and max(h, w) > 2 * target * min(h, w):
            where = f"{show_path(path)}: " if path is not None else ""
            raise ImageLoadError(
                f"{where}a {w}x{h} image is too thin to segment: the long side may be at most "
                f"{2 * target} times the short side"
            )

    # ----------------------------------------------------------------------------------------- clicking
    def segment(
        self,
        embedding: ImageEmbedding,
        points: Sequence[Point] = (),
        box: Box | None = None,
        top_k: int = 5,
        multimask: bool | None = None,
        mask_input: np.ndarray | None = None,
        restrict: Sequence[str] | None = None,
    ) -> Proposal:
        """Mask + labels for a prompt set.

        By default SAM returns three candidates for a single point (the ambiguous case) and one otherwise,
        as the SAM authors recommend; the candidate with the best predicted IoU is chosen.
        `mask_input`: the previous answer's low-res logits (`Candidate.low_res_logits`) as a mask
        prompt, as SAM's interactive evaluation feeds refinement clicks.
        `restrict`: score only these names (the project's labels), once.
        """
        coords, labels = _points_arrays(points)
        box_array = _box_array(box)
        if coords is None and box_array is None:
            raise PromptError("a mask needs at least one point or a box")
        _check_reach(coords, box_array)
        if multimask is None:
            multimask = box_array is None and coords is not None and len(coords) == 1
        masks = self.sam.decode(
            embedding.sam, coords, labels, box_array, multimask, mask_input=mask_input
        )
        if not np.isfinite(np.asarray(masks.scores, dtype=np.float64)).all():
            raise PromptError("SAM gave no finite score for these prompts; click inside the image")
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
        return self._finish(embedding, candidates, chosen, top_k, restrict)

    def select(
        self,
        embedding: ImageEmbedding,
        proposal: Proposal,
        index: int,
        top_k: int = 5,
        restrict: Sequence[str] | None = None,
    ) -> Proposal:
        """Another of SAM's candidates (Tab), upscaled and labelled."""
        index %= len(proposal.candidates)
        return self._finish(embedding, proposal.candidates, index, top_k, restrict)

    def _finish(self, embedding, candidates, chosen: int, top_k: int, restrict=None) -> Proposal:
        mask = candidates[chosen].mask
        if mask is None:
            mask = self.sam.upscale(embedding.sam, candidates[chosen].low_res_logits)
        pending = embedding.clip is None and top_k > 0
        region, suggestions = (
            (None, []) if pending else self._label(embedding, mask, top_k, restrict)
        )
        return Proposal(
            mask=mask,
            score=candidates[chosen].score,
            candidates=candidates,
            chosen=chosen,
            labels=[(s.name, s.score) for s in suggestions],
            region=region,
            suggestions=tuple(suggestions),
            labels_pending=pending and bool(mask.any()),
        )

    def label(
        self,
        embedding: ImageEmbedding,
        proposal: Proposal,
        top_k: int = 5,
        restrict: Sequence[str] | None = None,
    ) -> Proposal:
        """`proposal` (made while `embedding` had only its segmenter half) with its labels, now
        that `embedding` is complete."""
        region, suggestions = self._label(embedding, proposal.mask, top_k, restrict)
        return dataclasses.replace(
            proposal,
            labels=[(s.name, s.score) for s in suggestions],
            region=region,
            suggestions=tuple(suggestions),
            labels_pending=False,
        )

    def _label(self, embedding, mask: np.ndarray, top_k: int, restrict=None):
        if top_k <= 0 or not mask.any():
            return None, []
        if embedding.clip is None:
            raise ValueError("this embedding has no CLIP half yet: embed(..., known=it) first")
        region = self.head.embed(embedding.clip, mask)
        return region, self.suggest(region, top_k, restrict)

    def topk(self, region: np.ndarray, k: int = 5, restrict: Sequence[str] | None = None):
        """Best k labels for a region embedding as (name, score), optionally only among `restrict`."""
        return [(s.name, s.score) for s in self.suggest(region, k, restrict)]

    def suggest(
        self, region: np.ndarray, k: int = 5, restrict: Sequence[str] | None = None
    ) -> list[Suggestion]:
        """Best k labels with their evidence: the vocabulary's text scores, combined with the
        project's exemplars when `self.exemplars` holds any (see vocab/exemplars.py)."""
        exemplars = self.exemplars
        if exemplars is not None and exemplars.model_id != self.region_model_id:
            exemplars = None  # another model's vectors never score this one's regions
        with_exemplars = exemplars is not None and len(exemplars) > 0
        n = max(k, TEXT_CANDIDATES) if with_exemplars else k
        if restrict is None:
            text = self.index.topk(region, n)
        else:
            allowed = set(restrict)
            names, scores = self.index.named_scores(region)
            order = [i for i in np.argsort(-scores) if names[i] in allowed][:n]
            text = [(names[i], float(scores[i])) for i in order]
        if not with_exemplars:
            return [Suggestion(name, p, p, 0.0, 0) for name, p in text]
        evidence = exemplars.evidence(region)
        if restrict is not None:
            evidence = {name: e for name, e in evidence.items() if name in set(restrict)}
        return combine(text, evidence, k)

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
        return [(s.name, s.score) for s in self._label(embedding, mask, top_k, restrict)[1]]


# --------------------------------------------------------------------------------------------- helpers
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


def build_engine(
    spec: ModelSpec,
    progress: Progress | None = None,
    use_cache: bool = True,
    build_index: bool = True,
    on_index: Callable[[TextIndex], None] | None = None,
) -> Engine:
    """The one way from a `ModelSpec` to an `Engine` (the CLI, the window's worker, `compare`)."""
    return Engine.from_spec(
        spec, progress=progress, use_cache=use_cache, build_index=build_index, on_index=on_index
    )


def _points_arrays(points: Sequence[Point]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not points:
        return None, None
    array = np.asarray([(p[0], p[1]) for p in points], dtype=np.float64)
    if not np.isfinite(array).all():
        raise PromptError("point coordinates must be finite numbers")
    labels = np.asarray([1 if (len(p) < 3 or p[2]) else 0 for p in points], dtype=np.int64)
    return array, labels


MAX_COORDINATE = 1e9
"""Largest prompt coordinate (pixels, either sign). SAM takes points and boxes outside the picture
(and the CLI allows negative coordinates), but coordinates near 1e300 overflow its float32 positional
encoding into NaN scores; a billion pixels is far beyond any image and still finite in float32."""


def _check_reach(coords: np.ndarray | None, box: np.ndarray | None) -> None:
    for array in (coords, box):
        if array is not None and (np.abs(array) > MAX_COORDINATE).any():
            raise PromptError(
                f"prompt coordinates must lie within +-{MAX_COORDINATE:.0e} pixels, got "
                f"{float(np.abs(array).max()):.3g}"
            )


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


def _weight_files(spec: ModelSpec) -> list[Path]:
    """The weight files whose sha256 the models' identities need (a transformers folder's is its
    model.safetensors)."""
    files = []
    for path in (spec.checkpoint, spec.clip_weights):
        if path is not None:
            path = Path(path)
            files.append(path / "model.safetensors" if path.is_dir() else path)
    return files


def _load_segmenter(
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
        segmenter = load_segmenter(_default_sam_checkpoint(), "sam", device)
    else:
        segmenter = load_segmenter(None if checkpoint is None else Path(checkpoint), family, device)
    if plan is not None:
        apply_plan(plan, segmenter=segmenter)
    return segmenter


def _default_sam_checkpoint() -> Path:
    """The default SAM checkpoint from the weights cache, or a clear message on how to get one."""
    from annotator.models import weights

    try:
        return weights.resolve("sam_vit_b")
    except AnnotatorError:
        raise
    except Exception as error:  # pragma: no cover - depends on the weights module's registry
        raise AnnotatorError(f"no SAM checkpoint: pass --sam-checkpoint PATH ({error})") from error


__all__ = [
    "Box",
    "Candidate",
    "Engine",
    "ImageEmbedding",
    "IndexBuild",
    "Point",
    "Progress",
    "Proposal",
    "start_text_index_build",
]
