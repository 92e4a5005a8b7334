"""The canvas alone: bbox-only overlays, outlines, zoom and pan, Space tap vs Space drag, typing."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage

from annotator.app.masks import mask_box
from annotator.gui.canvas import Canvas
from annotator.gui.overlays import outline_path
from tests.timing import record


def _canvas(qtbot, w=640, h=480) -> Canvas:
    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.resize(800, 600)
    canvas.show()
    image = QImage(w, h, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkGray)
    canvas.set_image(image)
    return canvas


def test_overlay_covers_only_the_mask_bbox(qtbot):
    canvas = _canvas(qtbot)
    mask = np.zeros((480, 640), bool)
    mask[100:150, 200:260] = True
    mask[120:130, 220:230] = False  # a hole: outer and inner contour
    canvas.set_annotation(1, mask, (255, 0, 0))
    item = canvas._overlays[1]
    assert item.fill.pixmap().size().toTuple() == (60, 50)
    assert item.fill.offset().toTuple() == (200.0, 100.0)
    image = item.fill.pixmap().toImage()
    assert image.pixelColor(5, 5).red() > 0 and image.pixelColor(25, 25).alpha() == 0  # the hole
    assert mask_box(mask) == (200, 100, 260, 150)
    rect = outline_path(mask[100:150, 200:260], 200, 100).boundingRect()
    assert (rect.left(), rect.top(), rect.right(), rect.bottom()) == (200.5, 100.5, 259.5, 149.5)
    assert canvas.annotation_at(205, 105) == 1 and canvas.annotation_at(225, 125) is None
    canvas.remove_annotation(1)
    assert canvas.masks == {} and item.fill.scene() is None


def test_the_overlay_has_the_fill_and_outline_colours_and_costs_under_a_few_ms(qtbot):
    """The fill is an indexed image (0 outside, 1 inside, 2 outline) that Qt expands: the same
    premultiplied pixels an ARGB fill built in numpy would have, at a fraction of the GUI thread's
    time (17 ms for a 1024x768 mask that way, enough to stall the window while a model encodes)."""
    from annotator.gui.overlays import boundary_pixels, overlay_image

    _ = qtbot
    rng = np.random.default_rng(1)
    for rgb, alpha in [
        ((255, 0, 0), 110),
        ((12, 200, 77), 255),
        ((90, 90, 250), 1),
        ((7, 8, 9), 0),
    ]:
        mask = rng.random((37, 53)) < 0.5
        if alpha != 110:  # masks from OpenCV or a transpose come in Fortran order (a strided view)
            mask = np.asfortranarray(mask)
        outline = boundary_pixels(mask) & (rng.random(mask.shape) < 0.5)
        image = overlay_image(mask, rgb, alpha, outline).convertToFormat(
            QImage.Format.Format_ARGB32_Premultiplied
        )
        got = np.frombuffer(image.constBits(), np.uint8).reshape(37, image.bytesPerLine())
        got = got[:, : 53 * 4].reshape(37, 53, 4)[..., [2, 1, 0, 3]]  # B, G, R, A in memory
        a = alpha / 255
        want = np.zeros((37, 53, 4), np.int16)
        want[mask] = (rgb[0] * a, rgb[1] * a, rgb[2] * a, alpha)
        want[outline] = (*rgb, 255)
        assert np.abs(got.astype(np.int16) - want).max() <= 1, (rgb, alpha)
    big = np.zeros((768, 1024), bool)
    big[50:700, 100:900] = True
    overlay_image(big, (255, 0, 0), 110)  # warm-up
    started = time.perf_counter()
    for _ in range(10):
        overlay_image(big, (255, 0, 0), 110)
    each = (time.perf_counter() - started) / 10
    record("overlay_image 800x650 fill", seconds=each, bound_was=0.005)


def test_a_speckled_mask_shows_at_once_with_a_raster_outline(qtbot):
    """A ragged mask (a stray click, a random model: ~20,000 specks) would need a path of
    ~100,000 points built in Python (0.3 s of frozen window, measured); its outline is drawn into
    the fill image instead."""
    from annotator.gui.overlays import MAX_PATH_POINTS, contours_of

    canvas = _canvas(qtbot, 1024, 768)
    mask = np.random.default_rng(0).random((768, 1024)) < 0.2
    assert sum(len(c) for c in contours_of(mask)) > 10 * MAX_PATH_POINTS
    canvas.set_preview(mask)  # warm-up: first-use costs of Qt's image and path code
    started = time.perf_counter()
    canvas.set_preview(mask)
    seconds = time.perf_counter() - started
    item = canvas._preview
    assert item.outline.path().isEmpty()
    image = item.fill.pixmap().toImage()
    y, x = map(int, np.argwhere(mask)[0])
    assert image.pixelColor(x, y).alpha() == 255  # an isolated speck: all boundary, opaque
    record("speckled mask preview", seconds=seconds, bound_was=0.1)
    smooth = np.zeros((768, 1024), bool)
    smooth[100:600, 200:800] = True
    canvas.set_preview(smooth)
    assert not item.outline.path().isEmpty()  # an ordinary mask keeps its vector outline


def test_big_image_overlays_are_quick(qtbot):
    canvas = _canvas(qtbot, 8000, 8000)
    mask = np.zeros((8000, 8000), bool)
    mask[1000:4000, 2000:5000] = True
    started = time.perf_counter()
    canvas.set_annotation(1, mask, (0, 255, 0))
    canvas.set_selected(1)
    elapsed = time.perf_counter() - started
    assert canvas._overlays[1].fill.pixmap().size().toTuple() == (3000, 3000)
    record("3000x3000 mask overlay", seconds=elapsed, bound_was=2.0)


def test_zoom_fit_and_middle_drag_pan(qtbot):
    canvas = _canvas(qtbot, 2000, 1500)
    fit = canvas.zoom()
    assert 0.3 < fit < 0.45  # the whole image fits in 800x600
    canvas.zoom_by(4)
    assert np.isclose(canvas.zoom(), 4 * fit)
    before = canvas.mapToScene(QPoint(400, 300))
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.MiddleButton, pos=QPoint(400, 300))
    qtbot.mouseMove(viewport, QPoint(300, 250))
    qtbot.mouseRelease(viewport, Qt.MouseButton.MiddleButton, pos=QPoint(300, 250))
    after = canvas.mapToScene(QPoint(400, 300))
    assert after.x() > before.x() + 50 and after.y() > before.y() + 20  # dragged left/up
    assert canvas.points == []  # panning adds no prompt
    canvas.fit()
    assert np.isclose(canvas.zoom(), fit)


def test_space_tap_accepts_space_drag_pans(qtbot):
    canvas = _canvas(qtbot, 2000, 1500)
    canvas.zoom_by(4)
    accepted = []
    canvas.accept_requested.connect(lambda: accepted.append(1))
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Space)
    assert accepted == [1]
    viewport = canvas.viewport()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    before = canvas.mapToScene(QPoint(400, 300))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseMove(viewport, QPoint(350, 300))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=QPoint(350, 300))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert accepted == [1] and canvas.points == []
    assert canvas.mapToScene(QPoint(400, 300)).x() > before.x() + 20


def test_points_sit_where_clicked(qtbot):
    canvas = _canvas(qtbot)
    canvas.zoom_by(2.5)
    target = QPointF(321.5, 123.25)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(target))
    ((x, y, positive),) = canvas.points
    assert positive and abs(x - target.x()) <= 0.5 and abs(y - target.y()) <= 0.5
