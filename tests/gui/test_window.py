"""The window driven like a user: clicks on the canvas viewport, keys, the real worker thread."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from tests.gui.conftest import click, key, view_pos, wait_proposal


def test_click_gives_mask_and_labels(qtbot, window):
    vocab = set(window.vocabulary.names())
    click(qtbot, window, 140, 110)
    pending = wait_proposal(qtbot, window)
    assert pending.mask.shape == (240, 320)
    assert pending.mask.dtype == bool and pending.mask.any()
    assert window.canvas.preview_mask is pending.mask
    assert len(pending.labels) == 5 and all(name in vocab for name, _ in pending.labels)
    shown = [window.suggestions.list.item(i).text() for i in range(window.suggestions.list.count())]
    assert shown[0].startswith("1") and pending.labels[0][0] in shown[0]


def test_negative_click_changes_mask(qtbot, window):
    click(qtbot, window, 140, 110)
    first = wait_proposal(qtbot, window)
    ys, xs = np.nonzero(first.mask)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    click(qtbot, window, x + 0.5, y + 0.5, Qt.MouseButton.RightButton)
    second = wait_proposal(qtbot, window, first)
    assert [p[2] for p in window.canvas.points] == [True, False]
    assert second.prompts["points"][1][2] is False
    assert not np.array_equal(first.mask, second.mask)
    # Shift + left click is negative too.
    click(qtbot, window, 60, 200, modifier=Qt.KeyboardModifier.ShiftModifier)
    wait_proposal(qtbot, window, second)
    assert [p[2] for p in window.canvas.points] == [True, False, False]


def test_box_prompt_then_refining_point(qtbot, window):
    key(qtbot, window, Qt.Key.Key_B)
    assert window.canvas.tool.value == "box"
    viewport = window.canvas.viewport()
    start, end = view_pos(window, 80, 60), view_pos(window, 200, 160)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    first = wait_proposal(qtbot, window)
    box = window.canvas.box
    assert box is not None and np.allclose(box, (80, 60, 200, 160), atol=2)
    assert first.prompts["box"] == box and first.prompts["points"] == []
    assert len(first.proposal.candidates) == 1  # a box alone is not ambiguous: one candidate
    click(qtbot, window, 150, 100)  # a click inside a box adds a point, the box stays
    second = wait_proposal(qtbot, window, first)
    assert window.canvas.box == box and len(second.prompts["points"]) == 1


def test_tab_cycles_candidates(qtbot, window):
    click(qtbot, window, 140, 110)
    first = wait_proposal(qtbot, window)
    n = len(first.proposal.candidates)
    assert n >= 2  # one click is ambiguous: several candidates
    seen = [first.proposal.chosen]
    for _ in range(n):
        key(qtbot, window, Qt.Key.Key_Tab)
        seen.append(wait_proposal(qtbot, window, window.controller.pending).proposal.chosen)
    assert seen[1:] == [(seen[0] + i) % n for i in range(1, n + 1)]


def test_accept_relabel_undo_redo(qtbot, window):
    project = window.project
    click(qtbot, window, 140, 110)
    pending = wait_proposal(qtbot, window)
    key(qtbot, window, Qt.Key.Key_Return)
    records = project.annotations(window.image_id)
    assert len(records) == 1
    record = records[0]
    assert record.category == pending.labels[0][0]
    assert np.array_equal(record.mask(), pending.mask)
    assert window.controller.selected == record.id
    assert window.annotations.count() == 1 and np.array_equal(
        window.canvas.masks[record.id], pending.mask
    )
    assert window.images.model_.rows[0].annotations == 1
    # Number key 2 relabels the selected annotation with the second suggestion.
    key(qtbot, window, Qt.Key.Key_2)
    assert project.annotation(record.id).category == pending.labels[1][0]
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.annotation(record.id).category == pending.labels[0][0]
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.annotations(window.image_id) == [] and window.canvas.masks == {}
    assert window.images.model_.rows[0].annotations == 0
    redo = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    key(qtbot, window, Qt.Key.Key_Z, redo)
    key(qtbot, window, Qt.Key.Key_Z, redo)
    again = project.annotations(window.image_id)
    assert [a.id for a in again] == [record.id]  # the same id comes back
    assert again[0].category == pending.labels[1][0]
    assert np.array_equal(again[0].mask(), pending.mask)
    # Delete removes the selected annotation; undo brings it back.
    window.controller.select(record.id)
    key(qtbot, window, Qt.Key.Key_Delete)
    assert project.annotations(window.image_id) == []
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [a.id for a in project.annotations(window.image_id)] == [record.id]
