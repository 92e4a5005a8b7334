"""Undo shows what it undoes (issue 24): Ctrl+Z on another image goes to the step's image and
selects its object; redo likewise."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.gui.test_keyboard import drag, focused, manual_window, press, typed


def _wait_shown(qtbot, window, image_id):
    qtbot.waitUntil(lambda: window.image_id == image_id and window.canvas.image_size() is not None)


def test_undo_and_redo_go_to_the_image_and_select_the_object(qtbot, tmp_path, image_folder):
    window = manual_window(qtbot, tmp_path, image_folder)
    first = window.image_id
    press(qtbot, Qt.Key.Key_R)
    drag(qtbot, window, (50, 40), (120, 100))
    typed(qtbot, "dog")
    press(qtbot, Qt.Key.Key_Return)
    (record,) = window.project.annotations(first)
    window.canvas.setFocus()
    press(qtbot, Qt.Key.Key_PageDown)
    _wait_shown(qtbot, window, window.images.model_.rows[1].image_id)
    qtbot.keyClick(focused(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _wait_shown(qtbot, window, first)  # the undo is seen where it happened
    assert window.project.annotations(first) == []
    assert window.session.selected is None
    assert "Undone: accept dog" in window.statusBar().currentMessage()
    window.canvas.setFocus()
    press(qtbot, Qt.Key.Key_PageDown)
    _wait_shown(qtbot, window, window.images.model_.rows[1].image_id)
    qtbot.keyClick(
        focused(),
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    _wait_shown(qtbot, window, first)
    (again,) = window.project.annotations(first)
    qtbot.waitUntil(lambda: window.session.selected == again.id)
    # delete it, move away, undo: back on its image with the restored object selected
    window.canvas.setFocus()
    press(qtbot, Qt.Key.Key_Delete)
    assert window.project.annotations(first) == []
    press(qtbot, Qt.Key.Key_PageDown)
    _wait_shown(qtbot, window, window.images.model_.rows[1].image_id)
    qtbot.keyClick(focused(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _wait_shown(qtbot, window, first)
    (restored,) = window.project.annotations(first)
    qtbot.waitUntil(lambda: window.session.selected == restored.id)
    assert restored.category == "dog" and record.category == "dog"
