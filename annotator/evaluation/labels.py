"""Recognition benchmark: is the label the tool gives a region the object's category?

For each ground-truth object, a region embedding is made from (a) the ground-truth mask and (b) the mask of
one simulated centre click (the first click of the click benchmark), with each region head to compare; it
is scored against each label set (the dataset's own category names, the full vocabulary). A prediction
counts when it is the category or one of its synonyms in that label set. Top-1 / top-5 accuracy result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from annotator.evaluation.clicks import Segmenter, iou, next_click
from annotator.evaluation.datasets import Dataset, load_rgb

RegionFn = Callable[[np.ndarray], np.ndarray]  # bool (H, W) mask -> (D,) normalised embedding
SOURCES = ("ground truth", "1 click")


class RegionEmbedder(Protocol):
    """A region head: `start` does the per-image work once, the result embeds any mask of it."""

    def start(self, image: np.ndarray) -> RegionFn: ...


class LabelScorer(Protocol):
    """`TextIndex.topk`-like: best k (name, probability), best first."""

    def topk(self, region: np.ndarray, k: int = 5) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class LabelSet:
    """A set of names to score against and the names each category is accepted as."""

    name: str
    scorer: LabelScorer
    accepted: Callable[[str], frozenset[str]]  # category -> accepted predictions (casefolded)

    @classmethod
    def exact(cls, name: str, scorer: LabelScorer) -> LabelSet:
        """Only the category's own name counts (the dataset's closed label set)."""
        return cls(name, scorer, lambda category: frozenset({category.casefold()}))

    @classmethod
    def with_synonyms(cls, name: str, scorer: LabelScorer, entries: Iterable) -> LabelSet:
        """An entry counts when its name or one of its synonyms is the category (`Entry.texts`)."""
        by_text: dict[str, set[str]] = {}
        for entry in entries:
            for text in entry.texts:
                by_text.setdefault(text.casefold(), set()).add(entry.name.casefold())

        def accepted(category: str) -> frozenset[str]:
            return frozenset(by_text.get(category.casefold(), set()) | {category.casefold()})

        return cls(name, scorer, accepted)


@dataclass
class ObjectLabels:
    """What the tool said about one object: top-k names per (head, mask source, label set)."""

    name: str
    category: str
    click_iou: float | None
    predictions: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    hits: dict[tuple[str, str, str], int | None] = field(default_factory=dict)  # rank (1-based)


@dataclass
class LabelsReport:
    dataset: str
    heads: list[str]
    label_sets: list[str]
    sources: list[str]
    objects: list[ObjectLabels]
    top_k: int = 5
    notes: list[str] = field(default_factory=list)

    def accuracy(self, head: str, source: str, label_set: str, k: int) -> float | None:
        """Share of objects whose category is among the first k predictions."""
        if not self.objects:
            return None
        ranks = [o.hits.get((head, source, label_set)) for o in self.objects]
        return sum(r is not None and r <= k for r in ranks) / len(ranks)

    def click_miou(self) -> float | None:
        values = [o.click_iou for o in self.objects if o.click_iou is not None]
        return float(np.mean(values)) if values else None

    def rows(self) -> list[dict[str, object]]:
        """One row per (head, mask source) with top-1/top-k per label set."""
        out = []
        for head in self.heads:
            for source in self.sources:
                row: dict[str, object] = {"head": head, "mask": source}
                for label_set in self.label_sets:
                    row[f"{label_set} top-1"] = self.accuracy(head, source, label_set, 1)
                    row[f"{label_set} top-{self.top_k}"] = self.accuracy(
                        head, source, label_set, self.top_k
                    )
                out.append(row)
        return out


def _rank(predictions: list[str], accepted: frozenset[str]) -> int | None:
    return next((i + 1 for i, name in enumerate(predictions) if name.casefold() in accepted), None)


def evaluate_labels(
    dataset: Dataset,
    heads: dict[str, RegionEmbedder],
    label_sets: list[LabelSet],
    segmenter: Segmenter | None = None,
    top_k: int = 5,
    progress: Callable[[int], None] | None = None,
) -> LabelsReport:
    """Label every object with every head and label set, from its ground-truth mask and (when a
    segmenter is given) from the mask of one centre click. `progress(1)` after each object."""
    from annotator.errors import AnnotatorError

    sources = list(SOURCES if segmenter is not None else SOURCES[:1])
    report = LabelsReport(
        dataset.name,
        list(heads),
        [s.name for s in label_sets],
        sources,
        [],
        top_k,
        list(dataset.notes),
    )
    for image_path, samples in dataset.by_image():
        image: np.ndarray | None = None
        regions: dict[str, RegionFn] = {}
        for sample in samples:
            try:
                if not sample.category:
                    raise AnnotatorError("no category")
                truth = sample.load()
                if image is None:
                    image = load_rgb(image_path, truth.mask.shape)
                if image.shape[:2] != truth.mask.shape:
                    raise AnnotatorError(
                        f"mask {truth.mask.shape[::-1]} but image {image.shape[1::-1]}"
                    )
                if not truth.mask.any():
                    raise AnnotatorError("empty mask")
            except AnnotatorError as error:
                report.notes.append(f"{sample.name}: skipped ({error})")
                if progress is not None:
                    progress(1)
                continue
            masks = {"ground truth": truth.mask}
            record = ObjectLabels(sample.name, sample.category, None)
            if segmenter is not None:
                click = next_click(truth, None)
                if click is not None:
                    masks["1 click"] = np.asarray(segmenter.start(image)([click]), dtype=bool)
                    record.click_iou = iou(masks["1 click"], truth)
            for head, embedder in heads.items():
                if head not in regions:
                    regions[head] = embedder.start(image)
                for source in sources:
                    mask = masks.get(source)
                    embedding = regions[head](mask) if mask is not None and mask.any() else None
                    for label_set in label_sets:
                        key = (head, source, label_set.name)
                        names = (
                            [n for n, _ in label_set.scorer.topk(embedding, top_k)]
                            if embedding is not None
                            else []
                        )
                        record.predictions[key] = names
                        record.hits[key] = _rank(names, label_set.accepted(sample.category))
            report.objects.append(record)
            if progress is not None:
                progress(1)
    return report
