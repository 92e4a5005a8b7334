"""Status is the truth (issue 24): a cancelled auto-label says what it did, in the panel and after
the result that was on its way when Cancel was pressed."""

from __future__ import annotations

from tests.gui.test_review import LOOSE, status_counts


def test_a_cancelled_autolabel_never_says_finished(qtbot, window):
    panel = window.review
    assert panel.start_autolabel("dog", settings=LOOSE, threshold=-1.0, top_k=2)
    assert "0 / 3 (0%)" in panel.run_status.text()  # a percentage from the start
    panel.cancel_autolabel()  # the image in progress still finishes and is stored
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    done = status_counts(window)["images_done"]
    text = panel.run_status.text()
    assert "finished" not in text
    assert f"cancelled after {done} of 3 image" in text, text
    assert panel.status.done == done >= 1
