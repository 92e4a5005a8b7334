"""A large image's view, once it stops moving, has its working window and the neighbours encoded
ahead of a click (issue 26, app/window_prefetch): the window sends them to the worker, the worker
encodes them while nothing else waits, and the click there gets that same window."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt

from annotator.app.window_prefetch import neighbour_windows
from tests.gui.conftest import open_window, view_pos
from tests.gui.test_large_window import DISC, SIDE, _folder


def test_the_settled_view_has_its_window_and_neighbours_encoded_before_the_click(
    qtbot, tmp_path, model_config
):
    window = open_window(qtbot, tmp_path, model_config, _folder(tmp_path))
    canvas, session = window.canvas, window.session
    sent: list = []
    worker = window.worker
    forward = worker.prefetch_windows
    worker.prefetch_windows = lambda path, windows: (
        sent.append((path, windows)),
        forward(path, windows),
    )
    display = window._large_display
    qtbot.waitUntil(
        lambda: display.item is not None and len(display.item.drawn) > 0, timeout=60_000
    )

    for _ in range(12):  # zoom to the disc, as a user aiming at it
        canvas.zoom_by(1.25)
    canvas.centerOn(QPointF(DISC[0], DISC[1]))
    canvas.viewport().update()
    qtbot.waitUntil(
        lambda: bool(sent) and sent[-1][1][0].level == 0 and sent[-1][1][0].width <= 1024,
        timeout=60_000,
    )
    path, windows = sent[-1]
    assert path.endswith("big.tif")
    own = windows[0]
    assert own.x0 <= DISC[0] < own.x1 and own.y0 <= DISC[1] < own.y1
    assert windows[1:] == neighbour_windows(own, SIDE, SIDE)[:4]
    host = worker.host
    qtbot.waitUntil(lambda: len(host.windows) == 0, timeout=120_000)  # all encoded

    engine = host.engine
    encodes: list = []
    sam_encode = engine.sam.encode
    engine.sam.encode = lambda image: (encodes.append(image.shape), sam_encode(image))[1]
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(window, *DISC[:2]))
    qtbot.waitUntil(
        lambda: session.pending is not None and bool(session.pending.labels), timeout=60_000
    )
    assert session.pending.proposal.window == own  # the window encoded ahead of the click
    assert session.pending.mask.any()
    assert encodes == []  # answered from the cache: the click encoded nothing
    engine.sam.encode = sam_encode
