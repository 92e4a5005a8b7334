"""The façade used by GUI and CLI: one `embed` per image, then cheap `segment` calls.

No Qt and no threads here: callers decide where it runs (the GUI's worker thread, the CLI's main thread).
A click reads only the `ImageEmbedding`: SAM's prompt encoder + mask decoder give the candidates, all of
them are upscaled to full resolution in one call (as `SamPredictor.predict` does, so masks are bit-identical;
above 4096x4096 pixels only the chosen one), the region head turns the chosen mask into a CLIP embedding, and
the text index scores it against the whole vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from annotator.cache import ArrayCache, check_cache_root, default_cache_dir
from annotator.device import resolve_device
from annotator.engine_encoding import Encoding, RecentRegions
from annotator.engine_labels import Labelling
from annotator.engine_loading import (
    load_region_model,
    load_segmenter_for,
    region_id,
    weight_files,
)
from annotator.engine_types import Box, Candidate, ImageEmbedding, Point, Proposal
from annotator.errors import AnnotatorError, PromptError
from annotator.hashing import hash_ahead
from annotator.index_build import (
    IndexBuild,
    Progress,
    build_index,
    build_text_index,
    stage,
    start_text_index_build,
    text_index,
)
from annotator.models.precision import Plan, plan_for
from annotator.models.segmenter import Segmenter
from annotator.prompts import box_coords, check_reach, points_arrays
from annotator.spec import ModelSpec
from annotator.vocab.exemplars import Exemplars

if TYPE_CHECKING:
    from annotator.vocab.index import TextIndex

EXACT_UPSCALE_MAX_PIXELS = 4096 * 4096  # see Engine.segment


class Engine(Encoding, Labelling):
    """Segmenter + CLIP region head + text index, with the embedding cache in front of the encoders.

    Building and clicking are here; `embed` and its cache come from `Encoding`
    (engine_encoding.py), the labels from `Labelling` (engine_labels.py).

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
        # The last windows of a large image, in memory in front of the disk cache.
        self.recent_regions = RecentRegions()

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

        hash_ahead(*weight_files(spec))  # on a second core while the imports hold the first
        device = resolve_device(spec.device)
        root = check_cache_root(
            Path(spec.cache_dir) if spec.cache_dir is not None else default_cache_dir()
        )
        plan = plan_for(spec.precision, device)
        sam = (
            None if on_index else load_segmenter_for(spec.segmenter, spec.checkpoint, device, plan)
        )
        clip, head = load_region_model(spec, device, plan)
        index = text_index(spec.vocabulary, clip, root / "text")
        if on_index is not None:
            on_index(index)
            sam = load_segmenter_for(spec.segmenter, spec.checkpoint, device, plan)
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
        coords, labels = points_arrays(points)
        box_array = box_coords(box)
        if coords is None and box_array is None:
            raise PromptError("a mask needs at least one point or a box")
        check_reach(coords, box_array)
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


__all__ = [
    "Box",
    "Candidate",
    "Engine",
    "ImageEmbedding",
    "IndexBuild",
    "Point",
    "Progress",
    "Proposal",
    "build_engine",
    "load_region_model",
    "region_id",
    "start_text_index_build",
]
