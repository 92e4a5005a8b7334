"""Undo/redo: every edit is a `QUndoCommand` that calls the store (committed at once) or the vocabulary.

Commands hold plain data (ids, masks, names); after each redo/undo they call `notify(image_id)` so the
window can refresh what it shows. Undo is unlimited within a session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtGui import QUndoCommand

from annotator.errors import ProjectError
from annotator.store.embeddings import ANNOTATION, EmbeddingTable
from annotator.vocab.vocabulary import Entry, Vocabulary

Notify = Callable[[int], None]  # image id that changed


def find_record(project: Any, image_id: int, ann_id: int) -> Any:
    """The store's record of one annotation (what `restore_annotation` takes back)."""
    for record in project.annotations(image_id):
        if record.id == ann_id:
            return record
    raise KeyError(f"annotation {ann_id} is not in image {image_id}")


class AcceptCommand(QUndoCommand):
    """A new annotation: the first redo adds it, later redos restore the same record (same id)."""

    def __init__(
        self,
        project: Any,
        notify: Notify,
        image_id: int,
        mask: np.ndarray,
        category: str,
        score: float,
        prompts: dict,
        vector: tuple[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__(f"accept {category}")
        self.project, self.notify, self.image_id = project, notify, image_id
        self._args = (mask, category, score, prompts)
        self.vector = vector  # (model id, unit CLIP vector of the mask): kept for "similar"
        self.ann_id: int | None = None
        self._record: Any = None

    def redo(self) -> None:
        with self.project.transaction():
            if self._record is None:
                mask, category, score, prompts = self._args
                self.ann_id = self.project.add_annotation(
                    self.image_id, mask, category, score, prompts
                )
            else:
                self.project.restore_annotation(self._record)
            if self.vector is not None:
                model_id, vector = self.vector
                EmbeddingTable(self.project).put(ANNOTATION, self.ann_id, model_id, vector)
        self.notify(self.image_id)

    def undo(self) -> None:
        self._record = find_record(self.project, self.image_id, self.ann_id)
        self.project.delete_annotation(self.ann_id)
        self.notify(self.image_id)


class DeleteCommand(QUndoCommand):
    def __init__(self, project: Any, notify: Notify, image_id: int, record: Any) -> None:
        super().__init__(f"delete {record.category}")
        self.project, self.notify, self.image_id, self.record = project, notify, image_id, record

    def redo(self) -> None:
        self.project.delete_annotation(self.record.id)
        self.notify(self.image_id)

    def undo(self) -> None:
        self.project.restore_annotation(self.record)
        self.notify(self.image_id)


class RelabelCommand(QUndoCommand):
    def __init__(
        self, project: Any, notify: Notify, image_id: int, ann_id: int, old: str, new: str
    ) -> None:
        super().__init__(f"relabel {old} → {new}")
        self.project, self.notify, self.image_id, self.ann_id = project, notify, image_id, ann_id
        self.old, self.new = old, new

    def redo(self) -> None:
        self.project.update_annotation(self.ann_id, category=self.new)
        self.notify(self.image_id)

    def undo(self) -> None:
        self.project.update_annotation(self.ann_id, category=self.old)
        self.notify(self.image_id)


class MaskEditCommand(QUndoCommand):
    """A brush or eraser stroke on an accepted annotation."""

    def __init__(
        self,
        project: Any,
        notify: Notify,
        image_id: int,
        ann_id: int,
        old: np.ndarray,
        new: np.ndarray,
        text: str = "brush",
    ) -> None:
        super().__init__(text)
        self.project, self.notify, self.image_id, self.ann_id = project, notify, image_id, ann_id
        self.old, self.new = old, new

    def redo(self) -> None:
        self.project.update_annotation(self.ann_id, mask=self.new)
        self.notify(self.image_id)

    def undo(self) -> None:
        self.project.update_annotation(self.ann_id, mask=self.old)
        self.notify(self.image_id)


def apply_entry_change(vocabulary: Vocabulary, old: Entry | None, new: Entry | None) -> None:
    """Turn entry `old` into `new` (None on one side = add or remove)."""
    if old is not None and new is None:
        vocabulary.remove(old.name)
    elif old is None and new is not None:
        vocabulary.add(new.name, tuple(new.synonyms))
    elif old is not None and new is not None:
        if old.name != new.name:
            vocabulary.rename(old.name, new.name)
        if tuple(old.synonyms) != tuple(new.synonyms):
            vocabulary.set_synonyms(new.name, tuple(new.synonyms))


class AddCategoriesCommand(QUndoCommand):
    """New project categories (e.g. seeded from tags); undo removes those still unused, redo puts
    them back with the same ids (COCO category ids stay stable)."""

    def __init__(self, project: Any, changed: Callable[[], None], names: list[str]) -> None:
        super().__init__(f"add {len(names)} label(s)")
        self.project, self.changed, self.names = project, changed, list(names)
        self.ids: dict[str, int] = {}

    def redo(self) -> None:
        known = {c.name for c in self.project.categories()}
        with self.project.transaction():
            for name in self.names:
                if name not in known:
                    self.ids[name] = self.project.add_category(name, category_id=self.ids.get(name))
        self.changed()

    def undo(self) -> None:
        existing = {c.id for c in self.project.categories()}
        with self.project.transaction():
            for category_id in self.ids.values():
                if category_id in existing:
                    try:
                        self.project.delete_category(category_id)
                    except ProjectError:
                        pass  # used meanwhile (another window): the label stays
        self.changed()


class VocabularyCommand(QUndoCommand):
    """Add, remove, rename or edit synonyms of one entry; `changed()` runs after each step."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        changed: Callable[[], None],
        old: Entry | None,
        new: Entry | None,
    ) -> None:
        if old is None and new is not None:
            text = f"add {new.name!r} to the vocabulary"
        elif new is None and old is not None:
            text = f"remove {old.name!r} from the vocabulary"
        elif old is not None and new is not None and old.name != new.name:
            text = f"rename {old.name!r} to {new.name!r}"
        else:
            text = f"edit synonyms of {old.name if old else '?'!r}"
        super().__init__(text)
        self.vocabulary, self.changed, self.old, self.new = vocabulary, changed, old, new

    def redo(self) -> None:
        apply_entry_change(self.vocabulary, self.old, self.new)
        self.changed()

    def undo(self) -> None:
        apply_entry_change(self.vocabulary, self.new, self.old)
        self.changed()
