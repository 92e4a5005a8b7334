"""Undo/redo: every edit is a thin `QUndoCommand` over an `annotator.app.operations` function (one
store transaction each) or a vocabulary change.

Commands hold plain data (ids, masks, names); after each redo/undo they call `notify(image_id)` (the
session's `annotations_changed`) so the views refresh what they show. Undo is unlimited within a
session.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtGui import QUndoCommand

from annotator.app import operations as ops
from annotator.app.operations import find_record
from annotator.app.undo_view import CHANGES, CREATES, REMOVES, Shown, first_shown, shown_after
from annotator.app.vocabulary import Entry, Vocabulary, apply_entry_change
from annotator.errors import ProjectError

Notify = Callable[[int], None]  # image id that changed
# where a refused undo on a project is reported (its window's error line)
_refusals: weakref.WeakKeyDictionary[Any, Callable[[str], None]] = weakref.WeakKeyDictionary()


def on_refused_undo(project: Any, report: Callable[[str], None]) -> None:
    """Show refused undos of commands on `project` with `report`."""
    _refusals[project] = report


def _undo_allowed(command: QUndoCommand, project: Any, ann_id: int | None) -> bool:
    """False (reported, and the command dropped from the stack) when the annotation is no longer
    as this command left it: someone else changed it, and undo never undoes their change."""
    if ann_id is None or not hasattr(project, "check_undo"):
        return True
    try:
        project.check_undo(ann_id)
    except ProjectError as error:
        command.setObsolete(True)  # QUndoStack deletes it after this undo(): nothing changed
        report = _refusals.get(project)
        if report is not None:
            report(str(error))
        return False
    return True


def shown_by(command: QUndoCommand, undone: bool) -> Shown | None:
    """What the window shows after undoing or redoing `command` (a macro: its first image step)."""
    if command.childCount():
        return first_shown(
            [shown_by(command.child(i), undone) for i in range(command.childCount())]
        )
    shown = getattr(command, "shown", None)
    return shown(undone) if shown is not None else None


__all__ = [
    "shown_by",
    "AcceptCommand",
    "AddCategoriesCommand",
    "DeleteCommand",
    "MaskEditCommand",
    "RelabelCommand",
    "VocabularyCommand",
    "find_record",
]


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
        vector: ops.Vector | None = None,
    ) -> None:
        super().__init__(f"accept {category}")
        self.project, self.notify, self.image_id = project, notify, image_id
        self._args = (mask, category, score, prompts)
        self.vector = vector  # (model id, unit CLIP vector of the mask): kept for "similar"
        self.ann_id: int | None = None
        self._record: Any = None

    def shown(self, undone: bool) -> Shown | None:
        return shown_after(CREATES, self.image_id, self.ann_id, undone)

    def redo(self) -> None:
        if self._record is None:
            mask, category, score, prompts = self._args
            self.ann_id = ops.accept(
                self.project, self.image_id, mask, category, score, prompts, self.vector
            )
        else:
            ops.restore(self.project, self._record, self.vector)
        self.notify(self.image_id)

    def undo(self) -> None:
        if not _undo_allowed(self, self.project, self.ann_id):
            return
        self._record = find_record(self.project, self.image_id, self.ann_id)
        ops.delete(self.project, self.ann_id)
        self.notify(self.image_id)


class DeleteCommand(QUndoCommand):
    def __init__(self, project: Any, notify: Notify, image_id: int, record: Any) -> None:
        super().__init__(f"delete {record.category}")
        self.project, self.notify, self.image_id, self.record = project, notify, image_id, record

    def shown(self, undone: bool) -> Shown | None:
        return shown_after(REMOVES, self.image_id, self.record.id, undone)

    def redo(self) -> None:
        ops.delete(self.project, self.record.id)
        self.notify(self.image_id)

    def undo(self) -> None:
        if not _undo_allowed(self, self.project, self.record.id):
            return
        ops.restore(self.project, self.record)
        self.notify(self.image_id)


class RelabelCommand(QUndoCommand):
    def __init__(
        self, project: Any, notify: Notify, image_id: int, ann_id: int, old: str, new: str
    ) -> None:
        super().__init__(f"relabel {old} → {new}")
        self.project, self.notify, self.image_id, self.ann_id = project, notify, image_id, ann_id
        self.old, self.new = old, new

    def shown(self, undone: bool) -> Shown | None:
        return shown_after(CHANGES, self.image_id, self.ann_id, undone)

    def redo(self) -> None:
        ops.relabel(self.project, self.ann_id, self.new)
        self.notify(self.image_id)

    def undo(self) -> None:
        if not _undo_allowed(self, self.project, self.ann_id):
            return
        ops.relabel(self.project, self.ann_id, self.old)
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

    def shown(self, undone: bool) -> Shown | None:
        return shown_after(CHANGES, self.image_id, self.ann_id, undone)

    def redo(self) -> None:
        ops.edit_mask(self.project, self.ann_id, self.new)
        self.notify(self.image_id)

    def undo(self) -> None:
        if not _undo_allowed(self, self.project, self.ann_id):
            return
        ops.edit_mask(self.project, self.ann_id, self.old)
        self.notify(self.image_id)


class AddCategoriesCommand(QUndoCommand):
    """New project categories (e.g. seeded from tags); undo removes those still unused, redo puts
    them back with the same ids (COCO category ids stay stable)."""

    def __init__(self, project: Any, changed: Callable[[], None], names: list[str]) -> None:
        super().__init__(f"add {len(names)} label(s)")
        self.project, self.changed, self.names = project, changed, list(names)
        self.ids: dict[str, int] = {}

    def redo(self) -> None:
        self.ids.update(ops.add_categories(self.project, self.names, self.ids))
        self.changed()

    def undo(self) -> None:
        ops.remove_unused_categories(self.project, list(self.ids.values()))
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
