"""The Engine's labelling half: a mask's region embedding scored against the vocabulary and exemplars.

Why a module of its own: what a label is (the text index's scores, restricted once to the project's
names, combined with the project's exemplars) is one job apart from masks (`engine.py`).
`Labelling` is a mixin of `Engine`; it reads the engine's `clip`, `head`, `index` and `exemplars`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from annotator.engine_loading import region_id
from annotator.engine_types import ImageEmbedding, Proposal
from annotator.errors import PromptError
from annotator.vocab.exemplars import TEXT_CANDIDATES, Suggestion, combine


class Labelling:
    """`label`, `suggest`, `relabel` and the region/image embeddings for `Engine`."""

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
        return region_id(self.clip, self.head)

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
