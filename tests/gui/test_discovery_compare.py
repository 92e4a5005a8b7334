"""The side-by-side view: one image, the same clicks through two model choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.gui.compare_view import ModelChoiceDialog
from tests.gui.conftest import click, wait_proposal


def test_compare_view_two_masks_two_label_lists(qtbot, window, engine):
    click(qtbot, window, 140, 110)
    wait_proposal(qtbot, window)
    view = window.open_compare()
    assert view.config_b.region_head == "crop"  # default B: the other region head
    with qtbot.waitSignal(view.compared, timeout=60_000) as blocker:
        pass  # the canvas's click is replayed as soon as the view opens
    result = blocker.args[0]
    path = Path(window.image_path())
    points = list(window.canvas.points)
    a = engine.segment(engine.embed(path), points)
    b = engine.with_head("crop").segment(engine.with_head("crop").embed(path), points)
    assert np.array_equal(result.a.mask, a.mask) and np.array_equal(result.b.mask, b.mask)
    assert [n for n, _ in result.a.labels] == [n for n, _ in a.labels]
    assert [n for n, _ in result.b.labels] == [n for n, _ in b.labels]
    # Both masks drawn, both top-5 lists side by side, one timing per click each.
    for side, labels in (("a", a.labels), ("b", b.labels)):
        assert not view.masks[side].fill.pixmap().isNull() and view.masks[side].fill.isVisible()
        shown = [view.lists[side].item(i).text() for i in range(view.lists[side].count())]
        assert len(shown) == 5 and all(n in s for (n, _), s in zip(labels, shown, strict=True))
        assert "per click" in view.times[side].text() and "ms" in view.times[side].text()
    assert len(result.a.click_seconds) == len(result.b.click_seconds) == 1

    # A second click in the view replays both clicks through both models.
    with qtbot.waitSignal(view.compared, timeout=60_000) as blocker:
        view.add_point(60, 200, False)
    assert len(blocker.args[0].a.click_seconds) == 2 == len(blocker.args[0].b.click_seconds)

    # Model B from the dialog: the same head as A gives the same labels on both sides.
    dialog = ModelChoiceDialog(view.config_b, view)
    dialog.head.setCurrentText("pool")
    config = dialog.config()
    assert config.region_head == "pool" and config.checkpoint == window.config.checkpoint
    with qtbot.waitSignal(view.compared, timeout=60_000) as blocker:
        view.set_config_b(config)
    same = blocker.args[0]
    assert same.a.labels == same.b.labels and same.iou == 1.0
    assert "pool" in view.title_b.text()
