"""Text query -> masks and boxes: score the image's automatic mask proposals against the query.

Each proposal's mask goes through the engine's region head (the same CLIP embedding a click gets),
the query through the text index's prompt templates (the same text embedding a vocabulary entry
gets), and the score is their cosine similarity. Proposals and their region embeddings are computed
once per image (`Finder` caches both), so a second query on the same image is one matrix product.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from annotator.discovery.proposals import MaskProposal, ProposalSettings, Proposer
from annotator.engine import Box, Engine, ImageEmbedding
from annotator.errors import PromptError
from annotator.preempt import yield_point


@dataclass(frozen=True)
class Match:
    """One region found for a query. `box` is XYXY in image pixels (exclusive ends)."""

    mask: np.ndarray  # bool (H, W)
    box: Box
    score: float  # cosine similarity between the region's and the query's CLIP embeddings
    proposal_score: float  # SAM's predicted IoU of the mask
    index: int  # position among the image's proposals


def query_embedding(engine: Engine, text: str) -> np.ndarray:
    """(D,) unit text embedding of a free-text query, with the text index's prompt templates."""
    text = " ".join(str(text).split())
    if not text:
        raise PromptError("the search text is empty")
    return np.asarray(engine.index.embed_texts([text])[0], dtype=np.float32)


class Finder:
    """Text search over one engine's proposals; caches proposals and region embeddings per image."""

    def __init__(
        self,
        engine: Engine,
        settings: ProposalSettings | None = None,
        proposer: Proposer | None = None,
        memory_items: int = 8,
    ) -> None:
        self.engine = engine
        self.proposer = proposer or Proposer(engine.sam, settings, disk=engine.cache)
        self.memory_items = memory_items
        self._regions: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def proposals(self, embedding: ImageEmbedding) -> list[MaskProposal]:
        """The image's automatic masks (cached)."""
        return self.proposer(embedding)

    def region_matrix(self, embedding: ImageEmbedding) -> np.ndarray:
        """(K, D) unit region embeddings of the image's proposals, in proposal order (cached)."""
        key = f"{embedding.image_hash}|{self.engine.region_model_id}"
        with self._lock:
            if embedding.image_hash and key in self._regions:
                self._regions.move_to_end(key)
                return self._regions[key]
        proposals = self.proposals(embedding)
        if proposals:
            matrix = np.stack([self._region(embedding, p.mask) for p in proposals]).astype(
                np.float32
            )
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        if embedding.image_hash:
            with self._lock:
                self._regions[key] = matrix
                while len(self._regions) > self.memory_items:
                    self._regions.popitem(last=False)
        return matrix

    def _region(self, embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
        yield_point()  # a click in the window goes first (annotator.preempt)
        return self.engine.region_embedding(embedding, mask)

    def text_vector(self, text: str) -> np.ndarray:
        with self._lock:
            found = self._queries.get(text)
        if found is None:
            found = query_embedding(self.engine, text)
            with self._lock:
                self._queries[text] = found
        return found

    def find(
        self,
        embedding: ImageEmbedding,
        query: str | np.ndarray,
        threshold: float | None = None,
        top_k: int | None = 10,
    ) -> list[Match]:
        """Regions matching `query` (text, or a (D,) embedding), best first.

        `threshold`: keep only cosine scores >= it; `top_k`: at most this many (None: all).
        """
        vector = self.text_vector(query) if isinstance(query, str) else np.asarray(query)
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if norm == 0 or not np.isfinite(norm):
            raise PromptError("the query embedding is zero or not finite")
        proposals = self.proposals(embedding)
        if not proposals:
            return []
        regions = self.region_matrix(embedding)
        if regions.shape[1] != vector.shape[0]:
            raise ValueError(
                f"query has {vector.shape[0]} dims, the region embeddings {regions.shape[1]}"
            )
        scores = regions @ (vector / norm)
        order = np.argsort(-scores, kind="stable")
        if threshold is not None:
            order = order[scores[order] >= threshold]
        if top_k is not None:
            order = order[: max(0, int(top_k))]
        return [
            Match(
                mask=proposals[i].mask,
                box=proposals[i].box,
                score=float(scores[i]),
                proposal_score=proposals[i].score,
                index=int(i),
            )
            for i in order
        ]


def find(
    engine: Engine,
    embedding: ImageEmbedding,
    query: str | np.ndarray,
    threshold: float | None = None,
    top_k: int | None = 10,
    settings: ProposalSettings | None = None,
) -> list[Match]:
    """One-shot `Finder(engine, settings).find(...)` (proposals still cached on disk via the
    engine's cache); keep a `Finder` to search the same image again for free."""
    return Finder(engine, settings).find(embedding, query, threshold, top_k)


__all__ = ["Finder", "Match", "find", "query_embedding"]
