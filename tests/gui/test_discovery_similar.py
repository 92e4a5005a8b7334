"""Similar images and objects in the window: the query itself first, jumping, label propagation."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from annotator.discovery.similar import SimilarityIndex, backfill
from annotator.gui.similar_panel import ANNOTATION, IMAGE
from annotator.store.embeddings import EmbeddingTable
from tests.gui.conftest import click, key, wait_proposal


def _rect(window, x0, y0, x1, y1) -> np.ndarray:
    h, w = window.canvas.image_size()
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _annotate(qtbot, window, row: int, boxes, label: str) -> list[int]:
    """Draw rectangles on image `row` (the real rectangle path) and accept each with `label`."""
    window.go_to(row)
    qtbot.waitUntil(
        lambda: window.canvas.image_size() is not None and window.current_image is not None,
        timeout=60_000,
    )
    ids = []
    for box in boxes:
        window.controller.shape_drawn(_rect(window, *box))
        window.controller.accept(label)
        ids.append(window.controller.selected)
    return ids


def _find(qtbot, window, target: str) -> list:
    with qtbot.waitSignal(window.similar.results_shown, timeout=60_000):
        window.similar.find(target)
    return window.similar.rows


def test_similar_objects_jump_and_propagate_label(qtbot, window, engine):
    first = _annotate(qtbot, window, 0, [(80, 60, 200, 160), (10, 10, 60, 50)], "dog")
    other = _annotate(qtbot, window, 1, [(80, 70, 210, 160)], "horse")
    _annotate(qtbot, window, 0, [], "")
    qtbot.waitUntil(lambda: first[0] in window.controller.records, timeout=60_000)
    window.controller.select(first[0])

    rows = _find(qtbot, window, ANNOTATION)
    assert [r.kind for r in rows] == [ANNOTATION] * 3
    assert rows[0].ref_id == first[0] and abs(rows[0].score - 1.0) < 1e-4  # itself first
    assert {r.ref_id for r in rows} == set(first + other)
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    # The same ranking as the headless index over the same project with the same models.
    backfill(window.project, engine)
    expected = SimilarityIndex(window.project, engine.region_model_id).like_annotation(first[0])
    assert [r.ref_id for r in rows] == [n.ref_id for n in expected]
    assert np.allclose([r.score for r in rows], [n.score for n in expected], atol=1e-4)

    # Clicking the object on the other image goes there and selects it.
    index = next(i for i, r in enumerate(rows) if r.ref_id == other[0])
    window.similar_dock.raise_()
    qtbot.waitUntil(window.similar.list.isVisible, timeout=60_000)
    item = window.similar.list.item(index)
    rect = window.similar.list.visualItemRect(item)
    qtbot.mouseClick(window.similar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: window.controller.selected == other[0], timeout=60_000)
    assert window.image_id == rows[index].image_id
    assert window.canvas.selected == other[0]

    # Propagate "dog" to the checked similar objects: one undo step across images.
    window.similar.set_checked([i for i, r in enumerate(rows) if r.ref_id != first[0]])
    assert window.similar.apply_label("dog") == 1  # first[1] is a dog already
    assert {window.project.annotation(i).category for i in first + other} == {"dog"}
    assert window.controller.records[other[0]].category == "dog"  # the canvas follows
    window.undo_stack.undo()
    assert window.project.annotation(other[0]).category == "horse"
    assert window.project.annotation(first[1]).category == "dog"


def test_similar_images_lists_the_image_first(qtbot, window):
    window.controller.select(None)
    rows = _find(qtbot, window, IMAGE)
    ids = [r.image_id for r in window.images.model_.rows]
    assert rows[0].kind == IMAGE and rows[0].ref_id == window.image_id
    assert abs(rows[0].score - 1.0) < 1e-4 and sorted(r.ref_id for r in rows) == sorted(ids)
    # Jumping to an image result shows it.
    window.similar.jump(1)
    qtbot.waitUntil(lambda: window.image_id == rows[1].ref_id, timeout=60_000)


def test_an_accepted_click_stores_its_vector_at_once(qtbot, window, engine):
    """The click already computed the mask's CLIP vector: it is stored with the annotation (same
    transaction), so "similar" needs no backfill for it; undo and redo keep the two in step."""
    from pathlib import Path

    click(qtbot, window, 140, 110)
    pending = wait_proposal(qtbot, window)
    key(qtbot, window, Qt.Key.Key_Return)
    ann_id = window.controller.selected
    table = EmbeddingTable(window.project)
    stored = table.get(ANNOTATION, ann_id, engine.region_model_id)
    assert stored is not None
    expected = engine.region_embedding(engine.embed(Path(window.image_path())), pending.mask)
    assert np.allclose(stored, expected / np.linalg.norm(expected), atol=1e-5)
    assert ann_id not in table.missing(ANNOTATION, engine.region_model_id)
    window.undo_stack.undo()
    assert table.get(ANNOTATION, ann_id, engine.region_model_id) is None
    window.undo_stack.redo()
    assert np.array_equal(table.get(ANNOTATION, ann_id, engine.region_model_id), stored)
