"""The project's accepted objects as visual exemplars (vocab/exemplars.py), kept in step with the
store: loaded once when a project and a region model meet, then re-read per image whenever the
window says an image's annotations changed (an accept, relabel, delete, undo — or another
annotator's change on a team project), so the next suggestion sees it at once.
"""

from __future__ import annotations

from typing import Any

from annotator.store.embeddings import ANNOTATION, EmbeddingTable
from annotator.vocab.exemplars import Exemplars


def exemplars_from_project(project: Any, model_id: str) -> Exemplars:
    """Every annotation of `project` that has a vector of `model_id`, as an exemplar of its category."""
    exemplars = Exemplars(model_id)
    ids, vectors = EmbeddingTable(project).matrix(ANNOTATION, model_id)
    categories = {a.id: a.category for a in project.annotations()}
    exemplars.reset(
        (int(i), categories[int(i)], v)
        for i, v in zip(ids, vectors, strict=True)
        if int(i) in categories
    )
    return exemplars


class ProjectExemplars:
    """`Exemplars` of one project and model, with the per-image bookkeeping to refresh an image."""

    def __init__(self, project: Any, model_id: str) -> None:
        self.project, self.model_id = project, model_id
        self.exemplars = exemplars_from_project(project, model_id)
        self._by_image: dict[int, set[int]] = {}
        for a in project.annotations():
            self._by_image.setdefault(a.image_id, set()).add(a.id)

    def refresh_image(self, image_id: int) -> None:
        """Re-read one image's annotations and vectors (what an edit of that image changed)."""
        table = EmbeddingTable(self.project)
        records = {a.id: a for a in self.project.annotations(image_id)}
        for gone in self._by_image.get(image_id, set()) - set(records):
            self.exemplars.remove(gone)
        for ann_id, record in records.items():
            vector = table.get(ANNOTATION, ann_id, self.model_id)
            if vector is None:
                self.exemplars.remove(ann_id)
            else:
                self.exemplars.add(ann_id, record.category, vector)
        self._by_image[image_id] = set(records)
