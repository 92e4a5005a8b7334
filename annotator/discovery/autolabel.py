"""Auto-label a project: every image gets pending proposals for each class, resumably.

Two labelers, one interface (`label(path) -> list[NewProposal]`):
- `ProposalLabeler` (the CPU choice): the segmenter's grid proposals scored against each class name
  by the CLIP region head, exactly as `find` does (`Finder.find` per class with its threshold and
  top-k); a mask claimed by several classes goes to the one that scores it highest.
- `Sam3Labeler` (the GPU choice): SAM 3's text prompts, one per class, on shared vision features.

The loop over a project's images (skip those the run, same `run_id`, has finished; store each
image's proposals with its done mark in one transaction; resumable) is `app.autolabel`, shared by
`annotator autolabel` and the window's review panel. Headless: no argparse, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from annotator.errors import AnnotatorError
from annotator.store.project import Project
from annotator.store.proposals import NewProposal, parse_classes, run_key

Progress = Callable[[int, int, str], None]  # done, total, file name


class Labeler(Protocol):
    source: str

    @property
    def identity(self) -> str: ...

    def settings(self) -> dict: ...

    def label(self, path: Path, classes: Sequence[str]) -> list[NewProposal]: ...


class ProposalLabeler:
    """Grid proposals + CLIP scores per class (the `find` recipe)."""

    source = "proposals"

    def __init__(
        self, engine, settings=None, threshold: float | None = 0.2, top_k: int | None = 10
    ) -> None:
        from annotator.discovery.find import Finder

        self.engine = engine
        self.finder = Finder(engine, settings)
        self.threshold = threshold
        self.top_k = top_k

    @property
    def identity(self) -> str:
        return f"{self.engine.region_model_id}|{self.finder.proposer.model_id}"

    def settings(self) -> dict:
        return {
            "threshold": self.threshold,
            "top_k": self.top_k,
            **asdict(self.finder.proposer.settings),
        }

    def label(self, path: Path, classes: Sequence[str]) -> list[NewProposal]:
        from annotator.io.pyramid import is_large

        if is_large(path):  # a tile grid at full resolution (discovery/tiled.py)
            from annotator.discovery.tiled import FinderSource, label_large

            source = FinderSource(self.engine, self.finder, self.threshold, self.top_k)
            return label_large(path, source, classes, self.engine)
        return self.label_image(path, classes)

    def label_image(self, image: Path | np.ndarray, classes: Sequence[str]) -> list[NewProposal]:
        """`label` of one image given as a path or as RGB pixels (a decoded video frame)."""
        embedding = self.engine.embed(image)
        best: dict[int, tuple[float, str, np.ndarray]] = {}  # proposal index -> best class
        for name in classes:
            for m in self.finder.find(embedding, name, self.threshold, self.top_k):
                if m.index not in best or m.score > best[m.index][0]:
                    best[m.index] = (m.score, name, m.mask)
        return [
            NewProposal(mask=mask, category=name, score=score)
            for _, (score, name, mask) in sorted(best.items(), key=lambda kv: -kv[1][0])
        ]


class Sam3Labeler:
    """SAM 3 text prompts, one per class."""

    source = "sam3"

    def __init__(
        self,
        segmenter,
        threshold: float = 0.3,
        mask_threshold: float = 0.5,
        top_k: int | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.threshold = threshold
        self.mask_threshold = mask_threshold
        self.top_k = top_k

    @property
    def identity(self) -> str:
        return self.segmenter.identity

    def settings(self) -> dict:
        return {
            "threshold": self.threshold,
            "mask_threshold": self.mask_threshold,
            "top_k": self.top_k,
        }

    def label(self, path: Path, classes: Sequence[str]) -> list[NewProposal]:
        from annotator.io.images import load_image

        return self.label_image(load_image(path), classes)

    def label_image(self, rgb: np.ndarray, classes: Sequence[str]) -> list[NewProposal]:
        """`label` of RGB pixels (a decoded video frame)."""
        image = self.segmenter.embed(rgb)
        out: list[NewProposal] = []
        for name in classes:
            found = self.segmenter.segment(image, name, self.threshold, self.mask_threshold)
            if self.top_k is not None:
                found = found[: self.top_k]
            out.extend(NewProposal(mask=m.mask, category=name, score=m.score) for m in found)
        return out


@dataclass
class AutolabelReport:
    """What a run did: images labelled now, skipped as already done, failed; proposals stored."""

    run: str
    total: int = 0
    labelled: int = 0
    skipped: int = 0
    proposals: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def add_folder_images(project: Project, folder: Path) -> list[str]:
    """Add every image under `folder` to the project (idempotent); returns the unreadable ones."""
    from annotator.io.images import list_images
    from annotator.io.pyramid import image_size_any

    unreadable = []
    known = {r.file_name for r in project.images()}
    for path in list_images(folder):
        name = path.relative_to(folder).as_posix()
        if name in known:
            continue
        try:
            width, height = image_size_any(path)  # a large TIFF: its header (issue 26)
        except AnnotatorError as error:
            unreadable.append(str(error))
            continue
        project.add_image(name, width, height)
    return unreadable


def run_id(labeler: Labeler, classes: Sequence[str]) -> str:
    """The key of a run: same labeler identity, classes and settings -> same key -> resumable."""
    return run_key(
        {
            "source": labeler.source,
            "identity": labeler.identity,
            "classes": list(classes),
            "settings": labeler.settings(),
        }
    )


__all__ = [
    "AutolabelReport",
    "Labeler",
    "ProposalLabeler",
    "Sam3Labeler",
    "add_folder_images",
    "parse_classes",
    "run_id",
]
