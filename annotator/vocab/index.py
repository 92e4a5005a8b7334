"""TextIndex: the normalised text-embedding matrix of one (vocabulary, model, templates) triple.

CONTRACT (filled in by the vocabulary work package; keep the public names and signatures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from annotator.vocab.vocabulary import Vocabulary

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)  # short default; configurable

TextEncoder = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) float32 normalised


class TextIndex:
    def __init__(
        self,
        vocabulary: Vocabulary,
        encode: TextEncoder,
        model_id: str,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        cache_dir: Path | None = None,
        logit_scale: float = 100.0,
    ) -> None: ...

    def build(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Encode what the disk cache lacks (only changed entries after an edit)."""
        ...

    def update(self, vocabulary: Vocabulary, progress=None) -> None: ...

    def scores(self, region: np.ndarray) -> np.ndarray:
        """(num_entries,) cosine similarity per entry (max over its synonyms)."""
        ...

    def topk(self, region: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """Best k entries, best first, as (display name, probability)."""
        ...
