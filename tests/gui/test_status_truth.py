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


def test_importing_our_own_export_back_says_nothing_was_added(qtbot, tmp_path, image_folder):
    from PySide6.QtCore import Qt

    from tests.gui.conftest import export
    from tests.gui.test_keyboard import drag, manual_window, press, typed

    window = manual_window(qtbot, tmp_path, image_folder)
    press(qtbot, Qt.Key.Key_R)
    drag(qtbot, window, (50, 40), (120, 100))
    typed(qtbot, "dog")
    press(qtbot, Qt.Key.Key_Return)
    out = tmp_path / "ours.json"
    export(qtbot, window, False, out)
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000):
        assert window.import_dataset(out, "coco")
    qtbot.waitUntil(lambda: not window.jobs.busy() and window.canvas.image_size() is not None)
    assert window.transfer_text.startswith("Nothing imported from ours.json: all 1 annotation")
    assert window.summary_box is not None and window.summary_box.isVisible()
    qtbot.waitUntil(lambda: "Nothing imported" in window.statusBar().currentMessage())
    assert len(window.project.annotations()) == 1
