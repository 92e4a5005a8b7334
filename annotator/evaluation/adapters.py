"""The engine adapted to the evaluation harness's two protocols (a segmenter, a region embedder), and
the warning that random or unknown weights make the numbers meaningless.

The harness (clicks.py, labels.py) knows nothing of the engine; `annotator eval` (cli/evaluate.py) joins them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotator.errors import AnnotatorError
from annotator.evaluation.clicks import MASK_INPUT_DEFAULT, Click, Session
from annotator.spec import ModelSpec

MEANINGLESS = (
    "WARNING: {what} not a known pretrained checkpoint: with random or unknown weights these "
    "numbers are meaningless"
)


# --------------------------------------------------------------------------------- engine adapters
class EngineSegmenter:
    """Clicks -> mask through `Engine.segment`, as in the app (best of SAM's candidates, no labels).

    With `sam_only`, `start` runs only the SAM image encoder (the click benchmark needs no CLIP work);
    otherwise it uses the full, cached `Engine.embed` (shared with `EngineRegionEmbedder`).
    With `mask_input` (default, see clicks.MASK_INPUT_DEFAULT), every click after the first also
    passes the previous answer's low-res logits as the mask prompt, as SAM's interactive
    evaluation does; off, each click set is decoded from the points alone.
    """

    def __init__(
        self,
        engine,
        sam_only: bool = True,
        embedder: EngineRegionEmbedder | None = None,
        mask_input: bool = MASK_INPUT_DEFAULT,
    ):
        self.engine = engine
        self.sam_only = sam_only
        self.embedder = embedder
        self.mask_input = mask_input

    def start(self, image: np.ndarray) -> Session:
        if self.embedder is not None:
            embedding = self.embedder.embedding(image)
        elif self.sam_only:
            from annotator.engine import ImageEmbedding

            embedding = ImageEmbedding(
                sam=self.engine.sam.encode(image),
                clip={},
                image_hash="",
                model_id=self.engine.model_id,
            )
        else:
            embedding = self.engine.embed(image)

        previous: list = [None]  # the last proposal's chosen low-res logits

        def session(clicks: Sequence[Click]) -> np.ndarray:
            points = [c.as_point() for c in clicks]
            prior = previous[0] if self.mask_input and len(points) > 1 else None
            proposal = self.engine.segment(embedding, points, top_k=0, mask_input=prior)
            previous[0] = proposal.candidates[proposal.chosen].low_res_logits
            return proposal.mask

        return session


class EngineRegionEmbedder:
    """A region head of the engine; the last image's embedding is kept so an image is embedded once."""

    def __init__(self, engine):
        self.engine = engine
        self._last: tuple[np.ndarray, object] | None = None

    def embedding(self, image: np.ndarray):
        if self._last is None or self._last[0] is not image:
            self._last = (image, self.engine.embed(image))
        return self._last[1]

    def start(self, image: np.ndarray):
        embedding = self.embedding(image)
        return lambda mask: self.engine.region_embedding(embedding, mask)


# --------------------------------------------------------------------------------------- warnings
def _is_known(path: Path) -> bool:
    try:
        from annotator.models.weights import known_name_for
    except ImportError:
        return False
    try:
        return bool(known_name_for(Path(path)))
    except (OSError, AnnotatorError):
        return False


def weights_warning(spec: ModelSpec) -> str | None:
    """The warning to print when a model file given on the command line is not a known checkpoint.

    Without a file, the engine uses the known default SAM checkpoint and open_clip pretrained tags.
    """
    unknown = []
    sam = spec.checkpoint
    if sam is not None and not _is_known(sam):
        unknown.append(f"SAM {Path(sam).name}")
    clip = spec.clip_weights
    if clip is not None and not _is_known(clip):
        unknown.append(f"CLIP {Path(clip).name}")
    if not unknown:
        return None
    what = " and ".join(unknown) + (" are" if len(unknown) > 1 else " is")
    return MEANINGLESS.format(what=what)
