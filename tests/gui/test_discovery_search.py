"""Text search and tags in the window: proposals on the canvas, accept / reject, undo, the tag line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from annotator.discovery.proposals import ProposalSettings
from annotator.discovery.tags import seed_labels, tag_image

# Every grid point's candidates survive the filters and NMS: tiny random SAM scores are low.
LOOSE = ProposalSettings(
    points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, nms_thresh=1.0
)


def _search(qtbot, window, text: str) -> int:
    window.search.settings = LOOSE
    with qtbot.waitSignal(window.search.searched, timeout=60_000) as blocker:
        window.search.search(text)
    return blocker.args[0]


def test_search_shows_proposals_accept_undo_reject(qtbot, window, engine):
    from annotator.discovery.find import Finder

    panel, canvas = window.search, window.canvas
    n = _search(qtbot, window, "dog")
    assert n >= 2 and len(panel.hits) == n == panel.list.count()
    # The same matches as the headless finder on the same image with the same models.
    path = Path(window.image_path())
    expected = Finder(engine, LOOSE).find(engine.embed(path), "dog", top_k=10)
    assert [round(h.score, 4) for h in panel.hits] == [round(m.score, 4) for m in expected]
    assert all(np.array_equal(h.mask, m.mask) for h, m in zip(panel.hits, expected, strict=True))
    # Drawn on the canvas: one overlay per match, in the canvas's scene.
    assert all(h.item.fill.scene() is canvas.scene() for h in panel.hits)
    assert all(not h.item.fill.pixmap().isNull() for h in panel.hits)

    first = panel.hits[0]
    panel.list.setCurrentRow(0)
    panel.accept_current()
    records = window.project.annotations(window.image_id)
    assert len(records) == 1 and records[0].category == "dog"
    assert np.array_equal(records[0].mask(), first.mask)
    assert records[0].prompts["search"] == "dog"
    assert len(panel.hits) == n - 1 and first.item.fill.scene() is None
    assert records[0].id in window.controller.records  # shown on the canvas too
    window.undo_stack.undo()
    assert window.project.annotations(window.image_id) == []
    window.undo_stack.redo()
    assert [r.id for r in window.project.annotations(window.image_id)] == [records[0].id]

    kept = list(panel.hits)
    panel.reject_all()
    assert panel.hits == [] and panel.list.count() == 0
    assert all(h.item.fill.scene() is None for h in kept)
    assert len(window.project.annotations(window.image_id)) == 1  # rejecting stores nothing


def test_accept_all_is_one_undo_step_and_new_image_clears(qtbot, window):
    panel = window.search
    n = _search(qtbot, window, "car")
    assert n >= 2
    panel.list.setCurrentRow(1)
    panel.reject_current()
    assert len(panel.hits) == n - 1
    first_image = window.image_id
    panel.accept_all()
    assert len(window.project.annotations(window.image_id)) == n - 1
    assert {r.category for r in window.project.annotations(window.image_id)} == {"car"}
    window.undo_stack.undo()  # the whole batch
    assert window.project.annotations(window.image_id) == []

    # Typed into the field (letters are not shortcuts there), Enter searches.
    window.search.start()
    qtbot.keyClicks(panel.edit, "dog")
    with qtbot.waitSignal(panel.searched, timeout=60_000):
        qtbot.keyClick(panel.edit, Qt.Key.Key_Return)
    assert panel.query == "dog" and panel.hits and window.image_id == first_image

    # A result for an image no longer shown is dropped.
    panel.settings = LOOSE
    with qtbot.waitSignal(
        window.worker.discovered, timeout=60_000, check_params_cb=lambda kind, *_: kind == "find"
    ) as blocker:
        panel.search("car")
        window.next_image()
    assert blocker.args[1] == first_image != window.image_id and len(blocker.args[3]) >= 2
    assert panel.hits == [] and panel.list.count() == 0


def test_tag_line_shows_vocabulary_names_and_seeds_labels(qtbot, window, engine):
    bar = window.tags
    qtbot.waitUntil(lambda: len(bar.tags) == 5, timeout=60_000)
    path = Path(window.image_path())
    expected = tag_image(engine, engine.embed(path), 5)
    assert [name for name, _ in bar.tags] == [name for name, _ in expected]
    assert np.allclose([s for _, s in bar.tags], [s for _, s in expected], atol=1e-5)
    assert set(bar.names()) <= set(window.vocabulary.names())
    assert [b.text().split()[0] for b in bar._buttons] == [n.split()[0] for n in bar.names()]

    # Clicking a tag searches for it.
    window.search.settings = LOOSE
    with qtbot.waitSignal(window.search.searched, timeout=60_000):
        bar._buttons[0].click()
    assert window.search.query == bar.names()[0]

    paths = [Path(r.path) for r in window.images.model_.rows]
    want = seed_labels([tag_image(engine, engine.embed(p), 5) for p in paths], 3)
    with qtbot.waitSignal(bar.seeded, timeout=60_000) as blocker:
        bar.seed(3)
    assert blocker.args[0] == want
    seeded = window.project.categories()[-3:]
    assert [c.name for c in seeded] == want
    # One undo step removes the seeded labels; redo brings them back with the same ids.
    window.undo_stack.undo()
    assert not {c.name for c in window.project.categories()} & set(want)
    window.undo_stack.redo()
    assert window.project.categories()[-3:] == seeded
