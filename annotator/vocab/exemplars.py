"""Visual exemplars: the project's own accepted objects, as evidence for the next label.

Text alone is weakest exactly where a dataset is specific ("forklift type B", a product SKU, a cell
type): the name is not in any vocabulary, or CLIP's text tower reads it differently. Every accepted
object already has the CLIP region vector that labelled it. `Exemplars` keeps, per category, the sum
and count of those vectors — a class prototype (the mean direction), updated in O(D) per accept,
relabel, delete or undo, so nothing is ever retrained and a suggestion costs one small matrix product
over the categories (not over the objects).

Scoring (a prototype form of Tip-Adapter's cache, Zhang et al. 2022): the affinity of a region to a
category is `exp(-beta * (1 - cos(region, prototype)))` — 1 for the prototype itself, ~0.06 at
cosine 0.5 with beta = 5.5 (Tip-Adapter's default sharpness) — and the evidence is weighted by how
many exemplars stand behind it, `n / (n + n0)`. The exemplar evidence `e` and the text probability
`t` are combined as independent evidence (noisy-OR): `1 - (1 - t) * (1 - e)`. So a category with no
exemplars keeps its text score exactly, one that exists only in the project is suggested as soon as
it has an exemplar that resembles the region, and the weight of the pictures grows with their number.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from annotator.vectors import unit_vector

BETA = 5.5  # affinity sharpness (Tip-Adapter's default for CLIP features)
N0 = 1.0  # exemplars at which the evidence weight is one half
TEXT_CANDIDATES = 50  # text entries considered besides the exemplar categories

TEXT, EXEMPLARS, BOTH = "text", "exemplars", "both"


@dataclass(frozen=True)
class Suggestion:
    """One label suggestion and why it is made."""

    name: str
    score: float  # combined, in [0, 1]
    text: float  # the text probability (0 when the name is not in the vocabulary)
    exemplar: float  # the exemplar evidence in [0, 1] (0 without exemplars)
    count: int  # exemplars of this category in the project

    @property
    def source(self) -> str:
        """'text', 'exemplars' or 'both': which evidence carries the suggestion."""
        if self.count == 0 or self.exemplar < 0.01:
            return TEXT
        if self.text < 0.01 or self.exemplar > 4 * self.text:
            return EXEMPLARS
        return BOTH


class Exemplars:
    """Per-category prototypes of accepted region vectors (one model id), thread-safe.

    The window's accept / relabel / delete / undo and the store's loading call `add` / `remove` /
    `relabel`; the worker thread reads `evidence` while it labels a click.
    """

    def __init__(self, model_id: str, dim: int | None = None) -> None:
        self.model_id = model_id
        self._lock = threading.Lock()
        self._members: dict[
            int, tuple[str, np.ndarray]
        ] = {}  # annotation id -> (category, unit vec)
        self._sums: dict[str, np.ndarray] = {}
        self._counts: dict[str, int] = {}
        self._dim = dim
        self._matrix: tuple[list[str], np.ndarray, np.ndarray] | None = None  # cached prototypes

    # ------------------------------------------------------------------------------------- editing
    def add(self, annotation_id: int, category: str, vector: np.ndarray) -> None:
        """Count an accepted object (replacing what was known of the same annotation id)."""
        v = _unit(vector)
        if v is None:
            return
        with self._lock:
            if self._dim is None:
                self._dim = v.shape[0]
            if v.shape[0] != self._dim:
                return  # another model's vector: never mixed in
            self._remove_locked(int(annotation_id))
            self._members[int(annotation_id)] = (category, v)
            self._sums[category] = self._sums.get(category, np.zeros_like(v)) + v
            self._counts[category] = self._counts.get(category, 0) + 1
            self._matrix = None

    def remove(self, annotation_id: int) -> None:
        """Forget an object (deleted, or an accept undone)."""
        with self._lock:
            self._remove_locked(int(annotation_id))

    def relabel(self, annotation_id: int, category: str) -> None:
        """Move an object to another category (the vector stays the same)."""
        with self._lock:
            member = self._members.get(int(annotation_id))
        if member is not None:
            self.add(annotation_id, category, member[1])

    def rename_category(self, old: str, new: str) -> None:
        """A category renamed in the project: its exemplars follow it."""
        with self._lock:
            ids = [i for i, (c, _) in self._members.items() if c == old]
        for annotation_id in ids:
            self.relabel(annotation_id, new)

    def reset(self, items: Iterable[tuple[int, str, np.ndarray]]) -> None:
        """Replace everything with (annotation id, category, vector) triples (a project opened)."""
        with self._lock:
            self._members.clear()
            self._sums.clear()
            self._counts.clear()
            self._matrix = None
        for annotation_id, category, vector in items:
            self.add(annotation_id, category, vector)

    def _remove_locked(self, annotation_id: int) -> None:
        member = self._members.pop(annotation_id, None)
        if member is None:
            return
        category, v = member
        self._counts[category] -= 1
        if self._counts[category] <= 0:
            del self._counts[category]
            del self._sums[category]
        else:
            self._sums[category] = self._sums[category] - v
        self._matrix = None

    # ------------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._members)

    def counts(self) -> dict[str, int]:
        """Exemplars per category."""
        with self._lock:
            return dict(self._counts)

    def evidence(self, region: np.ndarray) -> dict[str, tuple[float, int]]:
        """{category: (exemplar evidence in [0, 1], exemplar count)} for a region vector."""
        v = _unit(region)
        with self._lock:
            if v is None or not self._counts or v.shape[0] != self._dim:
                return {}
            if self._matrix is None:
                names = list(self._sums)
                sums = np.stack([self._sums[n] for n in names]).astype(np.float32)
                norms = np.linalg.norm(sums, axis=1, keepdims=True)
                protos = sums / np.maximum(norms, 1e-12)
                counts = np.array([self._counts[n] for n in names], dtype=np.float32)
                self._matrix = (names, protos, counts)
            names, protos, counts = self._matrix
        cos = np.clip(protos @ v, -1.0, 1.0)
        affinity = np.exp(-BETA * (1.0 - cos))
        weight = counts / (counts + N0)
        evidence = affinity * weight
        return {n: (float(e), int(c)) for n, e, c in zip(names, evidence, counts, strict=True)}


def combine(
    text: Sequence[tuple[str, float]], evidence: dict[str, tuple[float, int]], k: int
) -> list[Suggestion]:
    """The best k suggestions from text probabilities (best first, ideally ~50 of them) and the
    exemplar evidence of every category that has exemplars.

    A name without evidence keeps its text score, so only the first k of those can make the top k:
    the combination is computed for the evidence categories (vectorised) and merged with them.
    """
    k = max(0, int(k))
    text_scores = dict(text)
    candidates: list[tuple[float, int, str]] = []  # (score, order, name): stable ties
    if evidence:
        names = list(evidence)
        e = np.fromiter((evidence[n][0] for n in names), dtype=np.float64, count=len(names))
        t = np.fromiter(
            (text_scores.get(n, 0.0) for n in names), dtype=np.float64, count=len(names)
        )
        scores = np.where(e == 0.0, t, 1.0 - (1.0 - t) * (1.0 - e))  # no evidence: the text
        best = np.argsort(-scores, kind="stable")[:k]
        candidates += [(float(scores[i]), len(text) + int(i), names[i]) for i in best]
    plain = [(float(p), i, n) for i, (n, p) in enumerate(text) if n not in evidence][:k]
    candidates += plain
    candidates.sort(key=lambda c: (-c[0], c[1]))
    out = []
    for score, _, name in candidates[:k]:
        e_score, count = evidence.get(name, (0.0, 0))
        out.append(Suggestion(name, score, float(text_scores.get(name, 0.0)), e_score, count))
    return out


def _unit(vector: np.ndarray) -> np.ndarray | None:
    """The unit vector, or None for an empty, zero or non-finite one (never an exemplar)."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all() or not v.any():
        return None
    return unit_vector(v)


__all__ = ["BOTH", "EXEMPLARS", "TEXT", "Exemplars", "Suggestion", "combine"]
