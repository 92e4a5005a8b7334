"""A review command (`app.review.ReviewCommand`, Qt-free) on the window's Qt undo stack."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand

from annotator.app.review import ReviewCommand
from annotator.app.undo_view import Shown


class Undoable(QUndoCommand):
    """A review command on the Qt undo stack; the panel refreshes after each do / undo."""

    def __init__(self, command: ReviewCommand, panel: Any, image_ids: set[int]) -> None:
        super().__init__(command.text)
        self.command, self.panel, self.image_ids = command, panel, image_ids

    def shown(self, undone: bool) -> Shown | None:
        """One image's proposal: the window shows that image (accept-above spans many: none)."""
        return Shown(next(iter(self.image_ids))) if len(self.image_ids) == 1 else None

    def redo(self) -> None:
        self.command.do()
        self.panel.edited(self.image_ids)

    def undo(self) -> None:
        self.command.undo()
        self.panel.edited(self.image_ids)
