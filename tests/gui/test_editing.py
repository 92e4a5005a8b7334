"""Switching images, persistence, export, manual tools, brush, errors: the window as a whole."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt

from annotator.gui.canvas import Tool
from tests.gui.conftest import click, export, key, open_window, view_pos, wait_proposal


def _accept_click(qtbot, window, x=140, y=110):
    click(qtbot, window, x, y)
    pending = wait_proposal(qtbot, window)
    key(qtbot, window, Qt.Key.Key_Return)
    return pending


def test_switch_images_and_come_back_then_reopen(
    qtbot, tmp_path, window, model_config, image_folder
):
    first_id = window.image_id
    pending = _accept_click(qtbot, window)
    key(qtbot, window, Qt.Key.Key_D)
    assert window.image_id != first_id
    qtbot.waitUntil(lambda: window.canvas.image_size() is not None)
    assert window.canvas.masks == {} and window.annotations.count() == 0
    key(qtbot, window, Qt.Key.Key_A)
    assert window.image_id == first_id
    qtbot.waitUntil(lambda: len(window.canvas.masks) == 1)
    (mask,) = window.canvas.masks.values()
    assert np.array_equal(mask, pending.mask)
    assert window.images.model_.rows[0].annotations == 1
    # Everything is in the store already: a new window on the same folder shows it.
    window.close()
    again = open_window(qtbot, tmp_path / "second", model_config, image_folder, wait_engine=False)
    qtbot.waitUntil(lambda: len(again.canvas.masks) == 1)
    (mask,) = again.canvas.masks.values()
    assert np.array_equal(mask, pending.mask)
    assert again.images.model_.rows[0].annotations == 1


def test_export_loads_in_pycocotools(qtbot, tmp_path, window):
    from pycocotools.coco import COCO

    first = _accept_click(qtbot, window)
    key(qtbot, window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: window.canvas.image_size() is not None)
    second = _accept_click(qtbot, window, 100, 80)
    for polygons in (False, True):
        out = tmp_path / f"coco-{polygons}.json"
        export(qtbot, window, polygons, out)
        coco = COCO(str(out))
        assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 2
        by_image = {a["image_id"]: a for a in coco.loadAnns(coco.getAnnIds())}
        for pending in (first, second):
            ann = by_image[pending.image_id]
            decoded = coco.annToMask(ann).astype(bool)
            assert ann["area"] == int(pending.mask.sum())
            assert coco.loadCats(ann["category_id"])[0]["name"] == pending.labels[0][0]
            if not polygons:
                assert np.array_equal(decoded, pending.mask)
            else:  # polygons trace pixel edges; masks with holes stay RLE
                assert np.array_equal(decoded, pending.mask)
        assert json.loads(out.read_text())["images"][0]["width"] == 320


def test_manual_tools_work_without_models(qtbot, tmp_path, image_folder):
    from annotator.gui.settings import ModelConfig

    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), image_folder, False)
    assert not window.engine_ready
    assert "segmenter checkpoint (not configured)" in window.model_label.text()
    key(qtbot, window, Qt.Key.Key_R)
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, 50, 40))
    qtbot.mouseMove(viewport, view_pos(window, 120, 100))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, 120, 100))
    assert window.controller.pending is not None
    key(qtbot, window, Qt.Key.Key_Return)  # no model, no label yet: asks for one
    edit = window.suggestions.edit
    assert edit.hasFocus()
    qtbot.keyClicks(edit, "bicycle")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    (record,) = window.project.annotations(window.image_id)
    assert record.category == "bicycle"
    x, y, w, h = record.bbox
    assert abs(x - 50) <= 2 and abs(y - 40) <= 2 and abs(x + w - 120) <= 2 and abs(y + h - 100) <= 2
    assert record.area == int(w * h)
    # Polygon: three clicks and Enter.
    key(qtbot, window, Qt.Key.Key_O)
    for px, py in ((200, 50), (300, 50), (250, 150)):
        click(qtbot, window, px, py)
    key(qtbot, window, Qt.Key.Key_Return)
    mask = window.controller.pending.mask
    assert mask[80, 250] and not mask[140, 205] and 4000 < mask.sum() < 6000  # area 5000
    window.suggestions.start_typing("person")
    qtbot.keyClick(window.suggestions.edit, Qt.Key.Key_Return)
    assert [a.category for a in window.project.annotations(window.image_id)] == [
        "bicycle",
        "person",
    ]


def test_brush_and_eraser_edit_the_selected_mask(qtbot, window):
    pending = _accept_click(qtbot, window)
    (record,) = window.project.annotations(window.image_id)
    key(qtbot, window, Qt.Key.Key_H)
    assert window.canvas.tool is Tool.BRUSH
    window.canvas.brush_radius = 6
    viewport = window.canvas.viewport()
    a, b = view_pos(window, 20, 220), view_pos(window, 60, 220)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(viewport, b)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=b)
    painted = window.project.annotation(record.id).mask()
    assert painted[220, 40] and not pending.mask[220, 40]
    assert np.all(painted[pending.mask])  # the brush only adds
    key(qtbot, window, Qt.Key.Key_E)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=a)
    erased = window.project.annotation(record.id).mask()
    assert not erased[220, 20] and erased[220, 50]
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(window.project.annotation(record.id).mask(), pending.mask)
    assert np.array_equal(window.canvas.masks[record.id], pending.mask)


def test_model_exception_shows_message_and_window_keeps_working(qtbot, window):
    engine = window.worker._engine
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("decoder exploded")

    engine.segment = broken  # fault injection on the real engine instance
    click(qtbot, window, 140, 110)
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible())
    assert "decoder exploded" in window.error_box.text()
    assert window.controller.pending is None
    del engine.segment  # the class's method again
    window.error_box.close()
    key(qtbot, window, Qt.Key.Key_Escape)
    click(qtbot, window, 140, 110)
    assert wait_proposal(qtbot, window).mask.any()
    assert calls == [1]


def test_import_coco_into_another_folder(qtbot, tmp_path, window, model_config, image_folder):
    import shutil

    pending = _accept_click(qtbot, window)
    out = tmp_path / "export.json"
    export(qtbot, window, False, out)
    copy = tmp_path / "copy"
    shutil.copytree(image_folder, copy, ignore=shutil.ignore_patterns(".annotator"))
    other = open_window(qtbot, tmp_path / "other", model_config, copy, wait_engine=False)
    assert other.canvas.masks == {}
    assert other.import_coco(out)
    qtbot.waitUntil(lambda: len(other.canvas.masks) == 1)
    (record,) = other.project.annotations(other.image_id)
    assert record.category == pending.labels[0][0]
    assert np.array_equal(record.mask(), pending.mask)
    assert other.images.model_.rows[0].annotations == 1
