"""Tools ▸ Refine boxes into masks: the worker turns box-only annotations into pending proposals in
the review panel; Enter gives the box its mask, undo brings the box back."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from annotator.store import extras as store_extras
from annotator.store.proposals import ProposalStore, refined_box


def add_boxes(window) -> dict[int, store_extras.Box]:
    """A box-only annotation around each image's bright square (as a detection import makes)."""
    project = window.project
    dog = project.category_id("dog")
    for row in window.images.model_.rows[:2]:
        store_extras.add_box(project, row.image_id, dog, (80, 60, 120, 100), score=0.9)
    return {b.id: b for b in store_extras.boxes(project)}


def refine_action(window) -> QAction:
    return next(a for a in window.findChildren(QAction) if a.text() == "Refine boxes into masks")


def test_refine_boxes_from_the_menu_then_review(qtbot, window):
    boxes = add_boxes(window)
    panel = window.review
    refine_action(window).trigger()
    assert panel.running
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert "refine boxes finished: 2 images" in panel.run_status.text()
    store = ProposalStore(window.project)
    pending = store.proposals()
    assert {refined_box(p) for p in pending} == set(boxes)
    assert all(p.category == "dog" and p.area > 0 for p in pending)
    assert panel.list.count() == 2 and "pending 2" in panel.counts.text()
    # nothing replaced until reviewed
    assert window.project.annotations() == [] and len(store_extras.boxes(window.project)) == 2
    panel.list.setFocus()
    first = panel.queue.current
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)
    [ann] = window.project.annotations()
    assert ann.id == refined_box(first) and ann.counts == first.counts and ann.score == 0.9
    assert [b.id for b in store_extras.boxes(window.project)] == [i for i in boxes if i != ann.id]
    window.undo_stack.undo()
    assert window.project.annotations() == []
    assert {b.id: b for b in store_extras.boxes(window.project)} == boxes
    # a second run finds nothing left to refine, and adds nothing
    assert not window.refine_boxes()
    assert "no box-only annotations to refine" in panel.run_status.text()
    assert len(store.proposals(None)) == 2


def test_refine_cancel_keeps_what_is_done(qtbot, window):
    add_boxes(window)
    panel = window.review
    assert window.refine_boxes()
    panel.cancel_autolabel()  # stops after the image in progress
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert len(ProposalStore(window.project).proposals()) == 1
    assert window.refine_boxes()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    assert len(ProposalStore(window.project).proposals()) == 2
