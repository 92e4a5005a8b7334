"""A large tiled TIFF in the window (issue 26): shown through its pyramid a tile at a time, a click
segmented in its working window, the accepted mask stored as a full-image RLE and drawn from its
box. 6,000 x 6,000 px (above the 16 MP "large" threshold, small enough for CI)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt

from tests.gui.conftest import open_window, view_pos
from tests.large_data import draw_objects, write_tiled

SIDE = 6000
DISC = (2400, 2500, 300)


def _folder(tmp_path):
    folder = tmp_path / "large"
    folder.mkdir()
    objects = [("disc", *DISC, (230, 40, 40)), ("square", 4200, 1800, 200, (30, 30, 220))]
    write_tiled(folder / "big.tif", SIDE, SIDE, draw_objects(objects))  # flat: levels get built
    return folder


def test_a_large_tiff_is_shown_by_tiles_clicked_in_a_window_and_stored_as_rle(
    qtbot, tmp_path, model_config
):
    window = open_window(qtbot, tmp_path, model_config, _folder(tmp_path))
    canvas, session = window.canvas, window.session
    assert canvas.image_size() == (SIDE, SIDE)
    assert session.large is not None and session.display_image is None  # no whole-image QImage
    display = window._large_display
    item = display.item
    qtbot.waitUntil(lambda: len(item.drawn) > 0, timeout=60_000)
    assert len(session.large.levels) >= 3  # 6,000 -> 3,000 -> 1,500 -> 750: built and cached
    drawn_levels = {key[0] for key in item.drawn}
    assert drawn_levels <= set(range(len(session.large.levels)))
    assert display.cache.nbytes <= display.cache.max_bytes
    assert display.loader._thread.is_alive()  # tiles are decoded on the loader's thread
    from annotator.gui.canvas import Tool

    assert not window.tool_actions[Tool.BRUSH].isEnabled()  # no full-image mask tools here
    assert window.tool_actions[Tool.BOX].isEnabled()

    # a click on the whole image (fitted): a downsampled window from a pyramid level
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(window, *DISC[:2]))
    qtbot.waitUntil(lambda: session.pending is not None, timeout=60_000)
    coarse = session.pending.proposal
    assert coarse.window.level > 0 and coarse.window.width > 1024
    assert max(coarse.mask.shape) <= 1024  # the model saw the level's pixels, not 6,000 px
    assert canvas.preview_item().fill.transform().m11() > 1  # drawn scaled up to its place
    window.controller.clear()
    qtbot.waitUntil(lambda: session.pending is None and not session.points, timeout=60_000)

    # zoom to the disc: finer tiles are drawn, the view is what the click's window is taken from
    for _ in range(12):
        canvas.zoom_by(1.25)
    canvas.centerOn(QPointF(DISC[0], DISC[1]))
    qtbot.waitUntil(lambda: any(key[0] < 2 for key in item.drawn), timeout=60_000)
    x0, y0, x1, y1 = session.large.view_box
    assert x0 <= DISC[0] <= x1 and y0 <= DISC[1] <= y1

    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(window, *DISC[:2]))
    qtbot.waitUntil(lambda: session.pending is not None, timeout=60_000)
    pending = session.pending
    proposal = pending.proposal
    w = proposal.window
    assert w.x0 <= DISC[0] < w.x1 and w.y0 <= DISC[1] < w.y1
    assert pending.mask.shape[0] <= 1024 and pending.mask.shape[1] <= 1024  # window-sized only
    assert pending.mask.any() and pending.labels
    # the preview is drawn where the window lies
    preview = canvas.preview_item()
    sx = preview.fill.transform().m11()
    assert preview.fill.transform().dx() == w.x0 and sx > 0

    window.controller.accept(pending.labels[0][0])
    qtbot.waitUntil(lambda: len(session.records) == 1, timeout=60_000)
    record = next(iter(session.records.values()))
    rle = record.rle
    assert rle["size"] == [SIDE, SIDE]
    expected = proposal.rle()
    assert rle["counts"] == expected["counts"]  # the full-image RLE of the working window's mask
    bx, by, bw, bh = record.bbox
    assert w.x0 <= bx and bx + bw <= w.x1 and w.y0 <= by and by + bh <= w.y1
    # the overlay is drawn from the RLE's box, placed there
    overlay = display.overlay(record.id)
    assert overlay is not None
    ox, oy, step, crop = overlay.crop
    assert (ox, oy) == (bx, by) and crop.shape == (-(-int(bh) // step), -(-int(bw) // step))
    assert overlay.fill.transform().dx() == bx and overlay.fill.isVisible()
    assert not canvas.masks  # no full-image mask array in the canvas
    assert isinstance(crop, np.ndarray) and crop.any()
