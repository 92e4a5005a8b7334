"""Binds the window's menu actions and shortcuts from the Qt-free action registry (`app.keys`).

The registry is the only place a key is written down: this module turns each registered action into
a `QAction` (menu text, shortcut, status tip) connected to the slot the window gives for its name.
Actions a widget handles itself (the label field, the review queue, Tab on the canvas) get no window
shortcut; those widgets ask `ACTIONS.route` what a key means (`key_of` spells the event).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from annotator.app.keys import ACTIONS, Action


def key_of(event: QKeyEvent) -> str:
    """The key press as portable text with its modifiers ("Ctrl+Z", "Shift+D", "Return")."""
    combination = event.keyCombination()
    modifiers = combination.keyboardModifiers() & ~Qt.KeyboardModifier.KeypadModifier
    sequence = QKeySequence(combination.key().value | modifiers.value)
    return sequence.toString(QKeySequence.SequenceFormat.PortableText)


def make_action(owner: QWidget, action: Action, slot: Callable | QAction) -> QAction:
    """A QAction for a registered action; `slot` may be a ready QAction (undo / redo)."""
    if isinstance(slot, QAction):
        qaction = slot
    else:
        qaction = QAction(action.title, owner)
        qaction.triggered.connect(lambda _checked=False: slot())
    qaction.setObjectName(action.name)
    if action.keys and not action.widget:
        qaction.setShortcuts([QKeySequence(k) for k in action.keys])
    qaction.setStatusTip(action.description)
    shown = f" ({', '.join(action.keys)})" if action.keys else ""
    qaction.setToolTip(f"{action.title}{shown}  {action.description}")
    owner.addAction(qaction)  # shortcuts work whichever panel has focus
    return qaction


def bind(
    owner: QWidget, slots: dict[str, Callable | QAction], menus: dict[str, QMenu]
) -> dict[str, QAction]:
    """Every registered action that has a slot becomes a QAction, in its menu in registry order.
    An action with a window key but no slot is a programming error (its key would be dead)."""
    made: dict[str, QAction] = {}
    for action in ACTIONS:
        if action.widget:
            continue
        if action.name not in slots:
            raise KeyError(f"no slot for the registered action {action.name!r}")
        qaction = make_action(owner, action, slots[action.name])
        if action.menu and action.menu in menus:
            menus[action.menu].addAction(qaction)
        made[action.name] = qaction
    return made
