"""Issue 4 in the window: a vanished or broken file shows a message and the window keeps working; two
windows on one project both save safely; odd colour modes and EXIF rotation show upright."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from annotator.gui.canvas import Tool
from annotator.gui.settings import ModelConfig
from tests.gui.conftest import click, make_images, open_window, view_pos, wait_proposal


def _draw_rectangle(qtbot, window, x0, y0, x1, y1, label: str) -> int:
    """The manual rectangle tool, then a typed label: returns the stored annotation's id."""
    before = {a.id for a in window.project.annotations(window.image_id)}
    window.set_tool(Tool.RECT)  # not the R shortcut: with two windows only the active one gets it
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, x0, y0))
    qtbot.mouseMove(viewport, view_pos(window, x1, y1))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, x1, y1))
    assert window.controller.pending is not None
    window.controller.choose_label(label)  # what picking or typing a label emits
    (new,) = {a.id for a in window.project.annotations(window.image_id)} - before
    return new


def test_file_deleted_while_the_folder_is_open(qtbot, tmp_path, image_folder):
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), image_folder, False)
    (image_folder / "img_01.png").unlink()
    window.go_to(1)
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible())
    message = window.error_box.text()
    assert "img_01.png" in message and "file not found" in message and "\n" not in message
    assert window.images.model_.rows[1].failed  # the list marks it
    assert window.canvas.image_size() is None  # nothing stale is shown for it
    # The window keeps working: the next image loads and can be annotated.
    window.error_box.close()
    window.go_to(2)
    qtbot.waitUntil(lambda: window.canvas.image_size() == (240, 320))  # (H, W)
    ann_id = _draw_rectangle(qtbot, window, 40, 30, 100, 90, "box")
    x, y, w, h = window.project.annotation(ann_id).bbox
    assert max(abs(x - 40), abs(y - 30), abs(w - 60), abs(h - 60)) <= 2


def test_file_deleted_with_models_loaded(qtbot, tmp_path, model_config, image_folder):
    """With the worker running: the vanished file's encode fails with a message, clicks elsewhere
    still give masks."""
    for name in ("img_01.png", "img_02.png"):
        Image.open(image_folder / name).save(image_folder / f"copy_{name}")  # more to prefetch
    window = open_window(qtbot, tmp_path, model_config, image_folder)
    (image_folder / "img_02.png").unlink()
    window.go_to(window.images.model_.row_of(window.project.image_by_name("img_02.png").id))
    qtbot.waitUntil(lambda: any("img_02.png" in e for e in window.errors), timeout=60_000)
    assert any("file not found" in e for e in window.errors if "img_02.png" in e)
    window.go_to(0)
    qtbot.waitUntil(lambda: window.canvas.image_size() is not None)
    click(qtbot, window, 140, 110)
    assert wait_proposal(qtbot, window).mask.any()


def test_broken_files_in_the_folder_are_named_and_skipped(qtbot, tmp_path):
    folder = tmp_path / "images"
    make_images(folder, n=2)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), folder, False)
    names = [row.name for row in window.images.model_.rows]
    assert names == ["img_00.png", "img_01.png"]
    assert window.error_box is not None and window.error_box.isVisible()
    message = window.error_box.text()
    assert "2 files" in message and "empty.png" in message and "\n" not in message
    assert any("notes.jpg" in e and "not an image" in e for e in window.errors)


def test_odd_images_show_upright_with_their_real_size(qtbot, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:, :20] = (250, 10, 10)  # red left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 30 wide, 40 high, red on top
    Image.fromarray(pixels).save(folder / "a_exif.jpg", quality=95, exif=exif)
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).save(
        folder / "b_grey16.png"
    )
    Image.new("CMYK", (24, 12), (0, 255, 255, 0)).save(folder / "c_cmyk.jpg")
    rgba = np.zeros((10, 16, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "d_rgba.png")
    Image.fromarray(np.full((1, 1, 3), 9, np.uint8)).save(folder / "e_one.png")
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), folder, False)
    expected = [(30, 40), (30, 20), (24, 12), (16, 10), (1, 1)]
    for row, (width, height) in enumerate(expected):
        window.go_to(row)
        qtbot.waitUntil(lambda h=height, w=width: window.canvas.image_size() == (h, w))
        record = window.project.image(window.image_id)
        assert (record.width, record.height) == (width, height)
    window.go_to(0)
    qtbot.waitUntil(lambda: window.canvas.image_size() == (40, 30))
    shown = window.canvas._image_item.pixmap().toImage()
    top, bottom = shown.pixelColor(15, 5), shown.pixelColor(15, 35)
    assert top.red() > 200 and top.green() < 60  # the red half is on top, as the user sees it
    assert bottom.red() < 60
    window.go_to(3)  # transparent RGBA: composited on white
    qtbot.waitUntil(lambda: window.canvas.image_size() == (10, 16))
    pixel = window.canvas._image_item.pixmap().toImage().pixelColor(3, 3)
    assert (pixel.red(), pixel.green(), pixel.blue()) == (255, 255, 255)


def test_two_windows_on_one_project(qtbot, tmp_path, image_folder):
    """Both windows save into the same SQLite project (WAL, one transaction per action): nothing is
    lost or mixed up, and each window's undo touches only its own edits."""
    config = ModelConfig(vocabulary="coco")
    first = open_window(qtbot, tmp_path / "one", config, image_folder, False)
    second = open_window(qtbot, tmp_path / "two", config, image_folder, False)
    assert first.project.path == second.project.path
    a = _draw_rectangle(qtbot, first, 20, 20, 60, 60, "cat")
    b = _draw_rectangle(qtbot, second, 100, 100, 150, 140, "dog")
    c = _draw_rectangle(qtbot, first, 200, 30, 230, 90, "dog")
    assert len({a, b, c}) == 3
    # The drag lands on whole viewport pixels: where the view shows the image smaller than 1:1, one
    # viewport pixel spans more than one image pixel, so the stored corner is within that step.
    expected = {a: ("cat", 20), b: ("dog", 100), c: ("dog", 200)}
    for window in (first, second):
        stored = {x.id: (x.category, x.bbox[0]) for x in window.project.annotations()}
        assert {k: v[0] for k, v in stored.items()} == {k: v[0] for k, v in expected.items()}
        for key, (_, left) in expected.items():
            owner = second if key == b else first
            step = 1.0 / min(1.0, owner.canvas.transform().m11())
            assert abs(stored[key][1] - left) <= step, (key, stored[key], step)
    # Undo in the first window removes its last edit only.
    first.undo_stack.undo()
    assert {x.id for x in second.project.annotations()} == {a, b}
    # The second window shows the first window's edits once it reloads the image.
    second.go_to(1)
    second.go_to(0)
    qtbot.waitUntil(lambda: set(second.canvas.masks) == {a, b})
    assert second.images.model_.rows[0].annotations == 2
    assert first.project.integrity_ok()
    first.close()
    second.close()
