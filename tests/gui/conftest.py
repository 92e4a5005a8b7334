"""pytest-qt fixtures for the window: offscreen Qt, tiny real models, a folder of synthetic images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from pytestqt.qtbot import QtBot  # noqa: E402

from annotator.gui.settings import AppSettings, ModelConfig  # noqa: E402

# pytest-qt waits 5 s by default; a model call on a busy 2-core CI machine can take longer, and a
# test must not fail because the machine is slow (issue 24). Every wait here is for something that
# does happen, so a wide default costs nothing when things work.
WAIT_MS = 60_000
for _name in (
    "waitUntil",
    "waitSignal",
    "waitSignals",
    "waitCallback",
    "waitExposed",
    "waitActive",
):
    getattr(QtBot, _name).__kwdefaults__["timeout"] = WAIT_MS


def make_images(folder: Path, n: int = 3, size: tuple[int, int] = (320, 240)) -> list[Path]:
    """Images with a bright square on a textured background (content differs per image)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    w, h = size
    for i in range(n):
        pixels = (rng.random((h, w, 3)) * 60 + 40).astype(np.uint8)
        pixels[60 + 10 * i : 160, 80 : 200 + 10 * i] = (230, 40 + 50 * i, 40)
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    make_images(folder)
    return folder


@pytest.fixture
def model_config(engine_args, tmp_path) -> ModelConfig:
    """The tiny SAM + tiny CLIP, with a private copy of the small vocabulary (edits are saved to it)."""
    vocab = tmp_path / "vocabulary.txt"
    shutil.copy(engine_args["vocabulary"], vocab)
    return ModelConfig(
        checkpoint=str(engine_args["sam_checkpoint"]),
        clip_config=str(engine_args["clip_config"]),
        clip_weights=str(engine_args["clip_weights"]),
        vocabulary=str(vocab),
        device="cpu",
    )


def open_window(qtbot, tmp_path, config: ModelConfig, folder: Path | None, wait_engine=True):
    from annotator.gui.main_window import MainWindow

    settings = AppSettings(tmp_path / "settings.ini")
    window = MainWindow(settings, config, cache_dir=str(tmp_path / "cache"))
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    if folder is not None:
        assert window.open_folder(folder)
        qtbot.waitUntil(lambda: window.canvas.image_size() is not None, timeout=60_000)
    if wait_engine:  # the models, and the labels' text index (it builds after them: ADR 0010/13)
        qtbot.waitUntil(lambda: window.engine_ready, timeout=60_000)
        qtbot.waitUntil(window.worker.labels_complete, timeout=60_000)
        qtbot.wait(50)  # its vocabulary_ready signal is delivered before the test goes on
    return window


@pytest.fixture
def window(qtbot, tmp_path, model_config, image_folder):
    return open_window(qtbot, tmp_path, model_config, image_folder)


def view_pos(window, x: float, y: float) -> QPoint:
    """Viewport position of image pixel (x, y)."""
    return window.canvas.mapFromScene(QPointF(x, y))


def click(qtbot, window, x: float, y: float, button=Qt.MouseButton.LeftButton, modifier=None):
    modifier = modifier or Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(window.canvas.viewport(), button, modifier, view_pos(window, x, y))


def wait_proposal(qtbot, window, previous=None, labelled=True):
    """The click's proposal, once its mask is there and (`labelled`) its labels too: on a loaded
    machine the mask can come before the image's CLIP half, and Enter then defers the accept
    (tests/gui/test_masks_before_labels.py passes `labelled=False` to see exactly that)."""
    c = window.controller

    def ready() -> bool:
        p = c.pending
        if p is None or p is previous or c._decode_done != c._decode_req:
            return False
        return not labelled or not getattr(p.proposal, "labels_pending", False)

    qtbot.waitUntil(ready, timeout=WAIT_MS)
    return c.pending


def key(qtbot, window, k, modifier=Qt.KeyboardModifier.NoModifier):
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, k, modifier)


def export(qtbot, window, polygons: bool, out: Path) -> None:
    """Export COCO and wait for the background job to write the file."""
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000):
        assert window.export_coco(polygons, out)


def pytest_sessionfinish(session, exitstatus):
    """Delete what the tests' windows left (closed widgets, their threads) while the application
    object still exists: left to the interpreter's exit, Qt objects are destroyed in no particular
    order after it, which can crash the process after every test has passed."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return
    for widget in app.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
