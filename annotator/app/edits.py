"""Undoable store edits without a window: `StoreEdits` is the session's `EditPort` over the same
`operations` the window's `QUndoCommand`s call, with a plain undo / redo history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.app import operations as ops
from annotator.app.session import Pending, Session


@dataclass
class StoreEdits:
    """`EditPort` without a window: the same `operations` the window's undo commands call, with a
    plain undo history (the CLI-free, Qt-free front end and its tests)."""

    session: Session
    done: list[tuple[Callable[[], None], Callable[[], None], int]] = field(default_factory=list)
    undone: list[tuple[Callable[[], None], Callable[[], None], int]] = field(default_factory=list)

    def _run(self, do: Callable[[], None], undo: Callable[[], None], image_id: int) -> None:
        do()
        self.done.append((do, undo, image_id))
        self.undone.clear()
        self.session.annotations_changed(image_id)

    def accept(self, p: Pending, category: str, vector: tuple[str, np.ndarray] | None) -> int:
        project = self.session.project
        ann_id = ops.accept(project, p.image_id, p.mask, category, p.score, p.prompts, vector)
        record = ops.find_record(project, p.image_id, ann_id)

        def undo() -> None:
            ops.delete(project, ann_id)

        def redo() -> None:
            ops.restore(project, record, vector)

        self.done.append((redo, undo, p.image_id))
        self.undone.clear()
        self.session.annotations_changed(p.image_id)
        return ann_id

    def relabel(self, image_id: int, ann_id: int, old: str, new: str) -> None:
        project = self.session.project
        self._run(
            lambda: ops.relabel(project, ann_id, new),
            lambda: ops.relabel(project, ann_id, old),
            image_id,
        )

    def delete(self, image_id: int, record: Any) -> None:
        project = self.session.project
        self._run(
            lambda: ops.delete(project, record.id), lambda: ops.restore(project, record), image_id
        )

    def edit_mask(
        self, image_id: int, ann_id: int, old: np.ndarray, new: np.ndarray, tool: str
    ) -> None:
        project = self.session.project
        self._run(
            lambda: ops.edit_mask(project, ann_id, new),
            lambda: ops.edit_mask(project, ann_id, old),
            image_id,
        )

    def undo(self) -> bool:
        if not self.done:
            return False
        step = self.done.pop()
        step[1]()
        self.undone.append(step)
        self.session.annotations_changed(step[2])
        return True

    def redo(self) -> bool:
        if not self.undone:
            return False
        step = self.undone.pop()
        step[0]()
        self.done.append(step)
        self.session.annotations_changed(step[2])
        return True
