"""The model thread's image embeddings: kept in memory within a budget, evicted furthest-first.

The engine's disk cache keeps every embedding; this keeps the ones the next clicks need in memory
(the current image always, then the prefetch order as far as the budget reaches). Qt-free and
thread-agnostic: `app.model_host.ModelHost` calls it from its one thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any


def embedding_nbytes(embedding: Any) -> int:
    """Memory an `ImageEmbedding` holds (SAM features plus the region head's arrays)."""
    total = int(embedding.sam.features.nbytes)
    for value in (embedding.clip or {}).values():
        total += int(getattr(value, "nbytes", 0))
    return total


class EmbeddingCache:
    """Image id -> embedding in memory, plus which images are encoded (in memory or on disk) and
    which failed to encode (not tried again until the models change)."""

    def __init__(self, budget_mb: float) -> None:
        self.items: OrderedDict[int, Any] = OrderedDict()  # image id -> ImageEmbedding
        self.done: set[int] = set()  # image ids encoded (in memory or on disk)
        self.failed: set[int] = set()
        self.set_budget(budget_mb)

    def set_budget(self, budget_mb: float) -> None:
        self.budget = int(max(budget_mb, 0.001) * 1024 * 1024)

    def clear(self) -> None:
        self.items.clear()
        self.done.clear()
        self.failed.clear()

    def prefetch_count(self) -> int:
        """How many images of the order (current first) fit the budget; 1 until a size is known."""
        if not self.items:
            return 1
        each = max(1, max(embedding_nbytes(e) for e in self.items.values()))
        return max(1, self.budget // each)

    def get(self, image_id: int, clip: bool) -> Any:
        """The held embedding when it has what is asked (`clip=False`: the segmenter half is
        enough), else None; a hit moves to the most recently used end."""
        embedding = self.items.get(image_id)
        if embedding is not None and (not clip or getattr(embedding, "complete", True)):
            self.items.move_to_end(image_id)
            return embedding
        return None

    def remember(
        self,
        image_id: int,
        embedding: Any,
        order: Sequence[int],
        on_first: Callable[[int, int], None],
    ) -> None:
        """Keep `embedding`; evict the embeddings whose images are furthest down `order` (the
        prefetch order, current first) until the budget holds. `on_first(image_id, encoded)` when
        this image's complete embedding is new."""
        complete = getattr(embedding, "complete", True)
        first = complete and image_id not in self.done
        self.items[image_id] = embedding
        if complete:  # a segmenter-only embedding is completed by the next encode job
            self.done.add(image_id)
        rank = {i: r for r, i in enumerate(order)}
        keep = order[0] if order else image_id
        used = sum(embedding_nbytes(e) for e in self.items.values())
        while used > self.budget and len(self.items) > 1:
            victim = max(
                (i for i in self.items if i != keep), key=lambda i: rank.get(i, len(order))
            )
            used -= embedding_nbytes(self.items.pop(victim))
        if first:
            on_first(image_id, len(self.done))


__all__ = ["EmbeddingCache", "embedding_nbytes"]
