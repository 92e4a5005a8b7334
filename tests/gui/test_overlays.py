"""Overlays belong to their image (issue 24): the review panel's proposal overlay is drawn only on
the proposal's own image, across a reopened project, navigation and reject; no item is left behind
under later images."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from annotator.store.proposals import NewProposal, ProposalStore
from tests.gui.test_keyboard import manual_window, press


def _proposals(window, rows=(1, 2)) -> list[int]:
    store = ProposalStore(window.project)
    ids = [window.images.model_.rows[r].image_id for r in rows]
    for n, image_id in enumerate(ids):
        mask = np.zeros((240, 320), bool)
        mask[30:90, 40 + 30 * n : 140 + 30 * n] = True
        store.finish_image(image_id, "test", "proposals", [NewProposal(mask, "dog", 0.9 - n / 10)])
    return ids


def _review_items(window) -> list:
    """Visible items of the review overlay (z 14) on the canvas's scene."""
    scene = window.canvas.scene()
    return [i for i in scene.items() if i.zValue() in (14, 14.5) and i.isVisible()]


def _show(qtbot, window, image_id):
    window.go_to_image_id(image_id)
    qtbot.waitUntil(lambda: window.canvas.image_size() is not None)
    qtbot.waitUntil(lambda: window.review._shown == image_id)


def test_reopened_project_draws_a_proposal_only_on_its_image(qtbot, tmp_path, image_folder):
    first = manual_window(qtbot, tmp_path / "a", image_folder)
    on = _proposals(first)
    first.close()
    window = manual_window(qtbot, tmp_path / "b", image_folder)
    qtbot.waitUntil(lambda: window.review.queue is not None and window.review.list.count() == 2)
    current = window.review.queue.current.image_id
    for row in range(3):  # every image, whichever the window showed first
        image_id = window.images.model_.rows[row].image_id
        _show(qtbot, window, image_id)
        drawn = window.review.overlay_image()
        assert drawn == (image_id if image_id == current else None), (row, drawn, current)
        assert len(_review_items(window)) == (2 if image_id == current else 0)
    assert current in on


def test_navigation_and_reject_move_the_overlay_with_the_proposal(qtbot, tmp_path, image_folder):
    window = manual_window(qtbot, tmp_path, image_folder)
    _proposals(window)
    window.review.refresh()
    first = window.review.queue.current
    _show(qtbot, window, first.image_id)
    assert window.review.overlay_image() == first.image_id
    window.canvas.setFocus()
    press(qtbot, Qt.Key.Key_PageDown)  # another image: the overlay stays with its own
    qtbot.waitUntil(lambda: window.canvas.image_size() is not None)
    qtbot.waitUntil(lambda: window.review._shown == window.image_id)
    assert window.image_id != first.image_id
    assert window.review.overlay_image() is None and _review_items(window) == []
    _show(qtbot, window, first.image_id)
    assert window.review.reject()
    second = window.review.queue.current
    assert second.image_id != first.image_id
    qtbot.waitUntil(lambda: window.review._shown == second.image_id)  # the panel shows it
    assert window.review.overlay_image() == second.image_id
    assert len(_review_items(window)) == 2  # fill and outline of one mask, nothing left over
    assert window.review.reject()
    assert window.review.queue.current is None
    assert window.review.overlay_image() is None and _review_items(window) == []
