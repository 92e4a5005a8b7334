"""The review panel in the window: auto-label run through the worker, Enter / Backspace / 1-9 /
typing, accept all above, undo, counts always shown."""

from __future__ import annotations

from PySide6.QtCore import Qt

from annotator.discovery.proposals import ProposalSettings
from annotator.store.proposals import ProposalStore

LOOSE = ProposalSettings(
    points_per_side=3, pred_iou_thresh=-1.0, stability_score_thresh=0.0, nms_thresh=0.9
)


def run_autolabel(qtbot, window, classes="dog,car,person"):
    panel = window.review
    assert panel.start_autolabel(classes, settings=LOOSE, threshold=-1.0, top_k=2)
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    return panel


def status_counts(window) -> dict:
    return ProposalStore(window.project).summary()


def test_autolabel_in_the_window_then_review_by_keyboard(qtbot, window):
    panel = run_autolabel(qtbot, window)
    counts = status_counts(window)
    assert counts["images_done"] == 3 and counts["pending"] >= 3
    assert f"pending {counts['pending']}" in panel.counts.text()
    assert panel.list.count() == counts["pending"]
    panel.list.setFocus()
    first = panel.queue.current
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)
    assert ProposalStore(window.project).get(first.id).status == "accepted"
    [ann] = window.project.annotations()
    assert ann.category == first.category and ann.counts == first.counts
    assert (
        window.images.model_.rows[0].annotations
        + window.images.model_.rows[1].annotations
        + (window.images.model_.rows[2].annotations)
        == 1
    )
    assert "accepted 1" in panel.counts.text()
    second = panel.queue.current
    qtbot.keyClick(panel.list, Qt.Key.Key_Backspace)
    assert ProposalStore(window.project).get(second.id).status == "rejected"
    assert "rejected 1" in panel.counts.text()
    third = panel.queue.current
    names = panel.class_names()
    assert names[:3] == ["dog", "car", "person"]
    target = next(n for n in names if n != third.category)
    qtbot.keyClick(panel.list, str(names.index(target) + 1))
    assert ProposalStore(window.project).get(third.id).category == target
    # typing a name opens the class field; Enter applies it
    qtbot.keyClick(panel.list, "h")
    assert panel.class_edit.hasFocus() or panel.class_edit.text() == "h"
    qtbot.keyClicks(panel.class_edit, "orse")
    assert panel.class_edit.text() == "horse"
    qtbot.keyClick(panel.class_edit, Qt.Key.Key_Return)
    assert ProposalStore(window.project).get(third.id).category == "horse"
    # undo all four, newest first
    texts = [window.undo_stack.text(i) for i in range(window.undo_stack.count())]
    assert texts == ["accept proposal", "reject proposal", "change class", "change class"]
    for _ in range(4):
        window.undo_stack.undo()
    store = ProposalStore(window.project)
    assert store.get(third.id).category == third.category
    assert store.get(second.id).status == "pending"
    assert store.get(first.id).status == "pending"
    assert window.project.annotations() == []
    assert f"pending {counts['pending']} · accepted 0 · rejected 0" in panel.counts.text()
    window.undo_stack.redo()
    assert store.get(first.id).status == "accepted"


def test_accept_all_above_is_one_undo_step(qtbot, window):
    panel = run_autolabel(qtbot, window, "dog,car")
    store = ProposalStore(window.project)
    scores = sorted(p.score for p in store.proposals())
    cut = scores[len(scores) // 2]
    want = sum(s >= cut for s in scores)
    assert panel.accept_above(cut)
    assert len(window.project.annotations()) == want
    assert status_counts(window)["accepted"] == want
    window.undo_stack.undo()
    assert window.project.annotations() == [] and status_counts(window)["accepted"] == 0


def test_autolabel_resumes_after_cancel(qtbot, window):
    panel = window.review
    assert panel.start_autolabel("dog", settings=LOOSE, threshold=-1.0, top_k=2)
    panel.cancel_autolabel()  # stops after the image in progress
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    done = status_counts(window)["images_done"]
    assert 1 <= done < 3
    before = status_counts(window)["pending"]
    run_autolabel(qtbot, window, "dog")
    after = status_counts(window)
    assert after["images_done"] == 3 and after["pending"] >= before
    # a third run of the same classes adds nothing
    run_autolabel(qtbot, window, "dog")
    assert status_counts(window) == after
