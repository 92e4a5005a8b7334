"""The keyboard loop in the real window under Xvfb, driven by xdotool (issue 24; not a test).

    xvfb-run -s "-screen 0 1400x900x24" python -m tests.gui.keyboard_xvfb OUT_DIR

Tiny random test models (as tests/gui/screenshot.py). Real X key and mouse events from xdotool, twice
in a row: R, drag a rectangle, type "dog", Enter -> an annotation "dog" on the shown image; F2,
"irp", Esc -> no text left, no traceback; then in the review queue Enter, Enter, Backspace, Enter on
four proposals. Screenshots of each step land in OUT_DIR; the checks print one line each and the
exit status is 1 when one fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from annotator.gui.main_window import MainWindow
from annotator.gui.settings import AppSettings, ModelConfig
from annotator.store.proposals import NewProposal, ProposalStore
from tests.gui.conftest import make_images
from tests.gui.screenshot import wait

failures: list[str] = []
tracebacks: list[str] = []


def check(what: str, ok: bool) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def xdo(app: QApplication, *args: str) -> None:
    """One xdotool command; the window keeps handling events meanwhile."""
    proc = subprocess.Popen(["xdotool", *args])
    while proc.poll() is None:
        app.processEvents()
        time.sleep(0.005)
    pump(app, 0.3)


def shot(app: QApplication, out: Path, name: str) -> None:
    pump(app, 0.3)
    subprocess.run(["import", "-window", "root", str(out / f"{name}.png")], check=True)


def screen_xy(window: MainWindow, x: float, y: float) -> tuple[str, str]:
    p = window.canvas.viewport().mapToGlobal(window.canvas.mapFromScene(QPointF(x, y)))
    return str(p.x()), str(p.y())


def rectangle_dog(app, window, out: Path, n: int) -> None:
    shown = window.image_id
    before = len(window.project.annotations(shown))
    window.activateWindow()
    window.canvas.setFocus()
    xdo(app, "key", "r")
    check(f"[{n}] R picks the rectangle tool", window.canvas.tool.value == "rect")
    x0, y0 = screen_xy(window, 60, 50)
    x1, y1 = screen_xy(window, 200, 150)
    xdo(app, "mousemove", x0, y0, "mousedown", "1", "mousemove", x1, y1, "mouseup", "1")
    check(f"[{n}] the drawn rectangle waits for its label", window.controller.pending is not None)
    xdo(app, "type", "--delay", "60", "dog")
    shot(app, out, f"{n}-1-typed-dog")
    check(f"[{n}] 'dog' is in the label field", window.suggestions.edit.text() == "dog")
    check(f"[{n}] still the same image and tool", window.image_id == shown)
    xdo(app, "key", "Return")
    labels = [a.category for a in window.project.annotations(shown)]
    check(
        f"[{n}] Enter: an annotation 'dog' on the shown image ({labels})",
        (len(labels) == before + 1 and labels[-1] == "dog"),
    )
    shot(app, out, f"{n}-2-accepted")
    # F2 + typing + Esc: no text stays, no traceback
    xdo(app, "key", "r")
    x0, y0 = screen_xy(window, 210, 40)
    x1, y1 = screen_xy(window, 300, 120)
    xdo(app, "mousemove", x0, y0, "mousedown", "1", "mousemove", x1, y1, "mouseup", "1")
    xdo(app, "key", "F2")
    xdo(app, "type", "--delay", "60", "irp")
    shot(app, out, f"{n}-3-f2-irp")
    xdo(app, "key", "Escape")
    check(f"[{n}] F2, 'irp', Esc: the field is empty", window.suggestions.edit.text() == "")
    xdo(app, "key", "Escape")
    check(f"[{n}] a second Esc drops the shape", window.controller.pending is None)
    shot(app, out, f"{n}-4-esc")


def review(app, window, out: Path, n: int) -> None:
    store = ProposalStore(window.project)
    rows = window.images.model_.rows
    for k, row in enumerate(rows[:2]):
        masks = []
        for j in range(2):
            mask = np.zeros((240, 320), bool)
            mask[20 + 60 * j : 70 + 60 * j, 40 + 40 * k : 160 + 40 * k] = True
            masks.append(NewProposal(mask, "cat", 0.9 - k / 10 - j / 100))
        store.finish_image(row.image_id, f"run{n}", "proposals", masks)
    window.review.refresh()
    window.review_dock.show()
    window.review_dock.raise_()
    window.review.list.setFocus()
    pump(app, 0.5)
    queue = window.review.queue
    order = []
    for key in ("Return", "Return", "BackSpace", "Return"):
        order.append(queue.current.id)
        xdo(app, "key", key)
        pump(app, 0.4)
    statuses = [ProposalStore(window.project).get(i).status for i in order]
    check(
        f"[{n}] review Enter Enter Backspace Enter: {statuses}",
        (statuses == ["accepted", "accepted", "rejected", "accepted"] and len(set(order)) == 4),
    )
    check(f"[{n}] the queue kept the focus", QApplication.focusWidget() is window.review.list)
    shot(app, out, f"{n}-5-review")


def main(out: Path) -> int:
    from tests.tiny_clip import make_tiny_clip
    from tests.tiny_sam import make_tiny_sam

    out.mkdir(parents=True, exist_ok=True)
    sys.excepthook = lambda *exc: tracebacks.append("".join(traceback.format_exception(*exc)))
    os.environ["QT_QPA_PLATFORM"] = "xcb"  # importing tests.gui.conftest set "offscreen"
    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    make_images(tmp / "images", 3)
    config_json, weights = make_tiny_clip(tmp / "clip", tower="convnext")
    config = ModelConfig(
        checkpoint=str(make_tiny_sam(tmp / "tiny_sam.pth")),
        clip_config=str(config_json),
        clip_weights=str(weights),
        vocabulary="coco",
        device="cpu",
    )
    window = MainWindow(AppSettings(tmp / "settings.ini"), config, cache_dir=str(tmp / "cache"))
    window.resize(1400, 900)
    window.show()
    window.open_folder(tmp / "images")
    wait(app, lambda: window.engine_ready and window.canvas.image_size() is not None, 120, window)
    pump(app, 1.0)
    for n in (1, 2):  # the whole flow twice in a row
        rectangle_dog(app, window, out, n)
        review(app, window, out, n)
        window.activateWindow()
        window.canvas.setFocus()
        xdo(app, "key", "Next")  # PgDown: the next image for the second round
        wait(app, lambda: window.canvas.image_size() is not None, 30, window)
    check("no traceback", not tracebacks)
    for text in tracebacks:
        print(text)
    window.close()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
