"""The project's accepted objects as visual exemplars (vocab/exemplars.py), kept in step with the
store: loaded once when a project and a region model meet, then re-read per image whenever the
window says an image's annotations changed (an accept, relabel, delete, undo — or another
annotator's change on a team project), so the next suggestion sees it at once.
"""

from __future__ import annotations

from typing import Any

from annotator.errors import AnnotatorError
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


class ExemplarKeeper:
    """The model's exemplars in step with the session: loaded when a project and a region model
    meet (`folder_opened`, `set_model_id`), one image re-read on every `annotations` event of the
    session (an accept, relabel, delete or undo changes the next suggestion), and handed to the
    model thread (`model.set_exemplars`). Connect it to the session before the views, so the
    exemplars are current when they react."""

    def __init__(self, session: Any, model: Any) -> None:
        self.session, self.model = session, model
        self.model_id = ""
        self.current: ProjectExemplars | None = None
        session.events.folder.connect(self.load)
        session.events.annotations.connect(self.refresh_image)

    def set_model_id(self, model_id: str) -> None:
        """The engine (re)loaded: its region model decides which vectors count."""
        self.model_id = model_id
        self.load()

    def load(self) -> None:
        """The open project's accepted objects as exemplars for the engine's region model."""

        self.current = None
        project = self.session.project
        if project is not None and self.model_id:
            try:
                self.current = ProjectExemplars(project, self.model_id)
            except AnnotatorError as error:
                self.session.status(f"exemplars not loaded: {error}", 4000)
        self.model.set_exemplars(None if self.current is None else self.current.exemplars)

    def refresh_image(self, image_id: int) -> None:

        if self.current is None:
            return
        try:
            self.current.refresh_image(image_id)
        except AnnotatorError as error:
            self.session.status(str(error), 4000)
