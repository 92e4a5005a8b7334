"""The labelling loop by keyboard (issue 24): every key goes to the widget that has the focus, as a
user's would, and means what `annotator.app.keys` says for that context.

The window runs without models (the manual tools need none), so these tests start in a second.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from annotator.gui.canvas import Tool
from annotator.gui.settings import ModelConfig
from annotator.store.proposals import NewProposal, ProposalStore
from tests.gui.conftest import open_window, view_pos


def focused():
    return QApplication.focusWidget()


def press(qtbot, k) -> None:
    """One key to whatever has the focus (QTest: the shortcut map sees it first)."""
    qtbot.keyClick(focused(), k)


def typed(qtbot, text: str) -> None:
    """`QTest.keyClicks`, one character at a time to the focus widget of that moment."""
    for ch in text:
        qtbot.keyClicks(focused(), ch)


def drag(qtbot, window, a, b) -> None:
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, *a))
    qtbot.mouseMove(viewport, view_pos(window, *b))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, *b))


def manual_window(qtbot, tmp_path, image_folder):
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), image_folder, False)
    window.activateWindow()
    window.canvas.setFocus()
    return window


def test_rectangle_then_dog_enter_labels_it_on_the_shown_image(qtbot, tmp_path, image_folder):
    window = manual_window(qtbot, tmp_path, image_folder)
    shown = window.image_id
    press(qtbot, Qt.Key.Key_R)  # nothing waits: R is the rectangle tool
    assert window.canvas.tool is Tool.RECT
    drag(qtbot, window, (50, 40), (120, 100))
    assert window.controller.pending is not None
    typed(qtbot, "dog")  # d is not "next image", o is not "polygon": they type the label
    assert window.image_id == shown and window.canvas.tool is Tool.RECT
    assert window.suggestions.edit.text() == "dog"
    press(qtbot, Qt.Key.Key_Return)
    (record,) = window.project.annotations(shown)
    assert record.category == "dog"
    assert window.controller.pending is None and window.suggestions.edit.text() == ""
    # nothing waits again: the letters are tools and views once more
    window.canvas.setFocus()
    press(qtbot, Qt.Key.Key_O)
    assert window.canvas.tool is Tool.POLYGON
    press(qtbot, Qt.Key.Key_D)
    assert window.image_id != shown


def test_f2_typing_esc_leaves_no_text_and_no_traceback(qtbot, tmp_path, image_folder, caplog):
    window = manual_window(qtbot, tmp_path, image_folder)
    press(qtbot, Qt.Key.Key_R)
    drag(qtbot, window, (50, 40), (120, 100))
    window.suggestions.set_suggestions([("airplane", 0.9), ("bird", 0.1)])
    with caplog.at_level(logging.ERROR):
        press(qtbot, Qt.Key.Key_F2)  # the field opens with the best label selected
        edit = window.suggestions.edit
        assert focused() is edit
        assert edit.text() == "airplane" and edit.selectedText() == "airplane"
        typed(qtbot, "irp")  # replaces the selection
        assert edit.text() == "irp"
        press(qtbot, Qt.Key.Key_Escape)  # cancels the typing, not the shape
        assert edit.text() == "" and focused() is window.canvas
        assert window.controller.pending is not None
        press(qtbot, Qt.Key.Key_F2)  # no old text comes back ("irp" + "airplane")
        assert edit.text() == "airplane"
        press(qtbot, Qt.Key.Key_Escape)
        press(qtbot, Qt.Key.Key_Escape)  # the second Esc, on the canvas: the shape goes
    assert window.controller.pending is None and edit.text() == ""
    assert window.project.annotations(window.image_id) == []
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_review_enter_enter_backspace_enter_acts_on_four_proposals(qtbot, tmp_path, image_folder):
    window = manual_window(qtbot, tmp_path, image_folder)
    store = ProposalStore(window.project)
    ids = [r.image_id for r in window.images.model_.rows]
    for n, image_id in enumerate(ids):
        masks = []
        for k in range(2):
            mask = np.zeros((240, 320), bool)
            mask[20 + 40 * k : 50 + 40 * k, 30 + 20 * n : 90 + 20 * n] = True
            masks.append(NewProposal(mask, "dog", 0.9 - 0.1 * n - 0.01 * k))
        store.finish_image(image_id, "test", "proposals", masks)
    window.review.refresh()
    window.review_dock.show()
    window.review_dock.raise_()
    window.review.list.setFocus()
    queue = window.review.queue
    order = []
    for k in (Qt.Key.Key_Return, Qt.Key.Key_Return, Qt.Key.Key_Backspace, Qt.Key.Key_Return):
        order.append(queue.current.id)
        press(qtbot, k)
        qtbot.wait(30)  # the proposal's image loads (the window shows it)
        assert focused() is window.review.list  # the queue keeps the keys
    statuses = [ProposalStore(window.project).get(i).status for i in order]
    assert statuses == ["accepted", "accepted", "rejected", "accepted"]
    assert len(set(order)) == 4
    assert sum(len(window.project.annotations(i)) for i in ids) == 3  # no annotation deleted


def test_every_window_shortcut_comes_from_the_registry(qtbot, tmp_path, image_folder):
    from PySide6.QtGui import QAction, QKeySequence

    from annotator.app.keys import ACTIONS

    window = manual_window(qtbot, tmp_path, image_folder)
    bound = {}
    for action in window.findChildren(QAction):
        if not action.shortcuts():
            continue
        registered = ACTIONS[action.objectName()]  # KeyError: a key outside the registry
        assert [s.toString() for s in action.shortcuts()] == [
            QKeySequence(k).toString() for k in registered.keys
        ]
        bound[registered.name] = action
    for registered in ACTIONS:
        if registered.keys and not registered.widget:
            assert registered.name in bound, registered.name
