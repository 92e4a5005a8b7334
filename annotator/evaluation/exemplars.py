"""Do the project's own objects make the next label better? Leave-one-out over a labelled dataset.

Every object's region vector is computed once (ground-truth mask). For each exemplar count n, each
object is labelled as if the user had already accepted n *other* objects of every category (drawn at
random, the same draw for text-only and combined): text alone vs text combined with those exemplars
(`vocab/exemplars.py`). n = 0 is the text-only baseline by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from annotator.evaluation.datasets import Dataset, load_rgb
from annotator.evaluation.labels import LabelSet, RegionEmbedder
from annotator.vocab.exemplars import TEXT_CANDIDATES, Exemplars, combine


@dataclass
class ExemplarRow:
    exemplars: int  # per category
    objects: int
    text_top1: float
    text_topk: float
    combined_top1: float
    combined_topk: float


@dataclass
class ExemplarReport:
    dataset: str
    label_set: str
    top_k: int
    rows: list[ExemplarRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        k = self.top_k
        head = (
            f"exemplars per class | objects | text top-1 | text top-{k} | "
            f"text+exemplars top-1 | text+exemplars top-{k}"
        )
        lines = [f"label suggestions with exemplars ({self.dataset}, {self.label_set})", head]
        for r in self.rows:
            lines.append(
                f"{r.exemplars:>19} | {r.objects:>7} | {r.text_top1:>10.3f} | {r.text_topk:>10.3f} | "
                f"{r.combined_top1:>20.3f} | {r.combined_topk:>20.3f}"
            )
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "label_set": self.label_set,
            "top_k": self.top_k,
            "rows": [r.__dict__ for r in self.rows],
            "notes": self.notes,
        }


def _rank(names: Sequence[str], accepted: frozenset[str]) -> int | None:
    return next((i + 1 for i, n in enumerate(names) if n.casefold() in accepted), None)


def region_vectors(
    dataset: Dataset, embedder: RegionEmbedder, progress: Callable[[int], None] | None = None
) -> tuple[list[str], list[np.ndarray], list[str]]:
    """(categories, region vectors of the ground-truth masks, notes on skipped objects)."""
    from annotator.errors import AnnotatorError

    categories: list[str] = []
    vectors: list[np.ndarray] = []
    notes: list[str] = []
    for image_path, samples in dataset.by_image():
        region = None
        for sample in samples:
            try:
                if not sample.category:
                    raise AnnotatorError("no category")
                truth = sample.load()
                if not truth.mask.any():
                    raise AnnotatorError("empty mask")
                if region is None:
                    image = load_rgb(image_path, truth.mask.shape)
                    if image.shape[:2] != truth.mask.shape:
                        raise AnnotatorError("mask and image differ in size")
                    region = embedder.start(image)
                vectors.append(np.asarray(region(truth.mask), dtype=np.float32))
                categories.append(sample.category)
            except AnnotatorError as error:
                notes.append(f"{sample.name}: skipped ({error})")
            if progress is not None:
                progress(1)
    return categories, vectors, notes


def evaluate_exemplars(
    dataset: Dataset,
    embedder: RegionEmbedder,
    label_set: LabelSet,
    counts: Sequence[int],
    top_k: int = 5,
    progress: Callable[[int], None] | None = None,
    seed: int = 0,
) -> ExemplarReport:
    """Leave-one-out top-1 / top-k with n exemplars per category for each n in `counts`."""
    categories, vectors, notes = region_vectors(dataset, embedder, progress)
    report = ExemplarReport(dataset.name, label_set.name, top_k, notes=list(dataset.notes) + notes)
    if not vectors:
        return report
    text = [label_set.scorer.topk(v, max(top_k, TEXT_CANDIDATES)) for v in vectors]
    by_category: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_category.setdefault(c, []).append(i)
    accepted = [label_set.accepted(c) for c in categories]
    text_ranks = [_rank([n for n, _ in t[:top_k]], a) for t, a in zip(text, accepted, strict=True)]
    for n in sorted(set(int(c) for c in counts)):
        short = sum(1 for members in by_category.values() if len(members) <= n)
        if n > 0 and short:
            report.notes.append(
                f"{n} exemplars: {short} of {len(by_category)} categories have fewer than {n + 1} "
                "objects, so they get all their other objects (none when alone)"
            )
        rng = np.random.default_rng(seed + n)
        combined_ranks = []
        for i, v in enumerate(vectors):
            exemplars = Exemplars("eval")
            if n > 0:
                for category, members in by_category.items():
                    others = [j for j in members if j != i]
                    chosen = rng.permutation(len(others))[:n] if others else []
                    for j in chosen:
                        exemplars.add(others[j], category, vectors[others[j]])
            suggestions = combine(text[i], exemplars.evidence(v), top_k)
            combined_ranks.append(_rank([s.name for s in suggestions], accepted[i]))

        def share(ranks: list[int | None], k: int) -> float:
            return sum(r is not None and r <= k for r in ranks) / len(ranks)

        report.rows.append(
            ExemplarRow(
                exemplars=n,
                objects=len(vectors),
                text_top1=share(text_ranks, 1),
                text_topk=share(text_ranks, top_k),
                combined_top1=share(combined_ranks, 1),
                combined_topk=share(combined_ranks, top_k),
            )
        )
    return report
