"""Undo and redo that show what they change (issue 24): the step's image, its object selected.

`QUndoStack.createUndoAction` only calls `undo()`; these actions first read what the step acts on
(`app.undo_view`, via each command's `shown`), so the window can go there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QUndoStack
from PySide6.QtWidgets import QWidget

from annotator.gui.commands import shown_by


@dataclass(frozen=True)
class Stepped:
    image_id: int
    ann_id: int | None
    text: str  # the step's own text ("accept dog")


def undo_actions(
    owner: QWidget, stack: QUndoStack, step: Callable[[bool], None]
) -> tuple[QAction, QAction]:
    """Undo and redo actions that follow the stack (enabled, text) and call `step(undone)`."""
    undo, redo = QAction("Undo", owner), QAction("Redo", owner)
    undo.setEnabled(False)
    redo.setEnabled(False)
    stack.canUndoChanged.connect(undo.setEnabled)
    stack.canRedoChanged.connect(redo.setEnabled)
    stack.undoTextChanged.connect(lambda t: undo.setText(f"Undo {t}".strip()))
    stack.redoTextChanged.connect(lambda t: redo.setText(f"Redo {t}".strip()))
    undo.triggered.connect(lambda: step(True))
    redo.triggered.connect(lambda: step(False))
    return undo, redo


def step(stack: QUndoStack, undone: bool) -> Stepped | None:
    """Undo (`undone`) or redo one step of `stack`; what the window should show after it."""
    index = stack.index() - 1 if undone else stack.index()
    if not 0 <= index < stack.count():
        return None
    command = stack.command(index)
    text = command.text()
    shown = shown_by(command, undone)  # before undo(): an obsolete command is deleted by it
    (stack.undo if undone else stack.redo)()
    if shown is None:
        return None
    return Stepped(shown.image_id, shown.ann_id, text)
