"""Take `docs/screenshot.png` of the real window (run under Xvfb; not a test).

    xvfb-run -s "-screen 0 1600x1000x24" python -m tests.gui.screenshot docs/screenshot.png PHOTOS_DIR

PHOTOS_DIR holds freely licensed photos (the published screenshot uses scikit-image's CC0 sample photos
`coffee.png` (CC0) and `rocket.jpg` (public domain); research data sets must not end up in the repository). No model weights can
be downloaded here, so the window runs with the tiny random test models (SAM and CLIP) and the COCO
vocabulary: the accepted mask is a polygon traced with real canvas clicks along an outline that OpenCV's
GrabCut finds inside a rectangle, labelled by typing, as a user of the manual tools would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from annotator.gui.main_window import MainWindow
from annotator.gui.settings import AppSettings, ModelConfig

# file name -> (label, GrabCut rectangle x, y, w, h) for the photo that gets the annotation
SUBJECT = ("coffee.png", "cup", (40, 10, 520, 370))


def wait(app: QApplication, condition, seconds: float = 60, window=None) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            errors = (
                (
                    window.errors,
                    window.engine_ready,
                    window.canvas.image_size(),
                    window.model_label.text(),
                )
                if window is not None
                else []
            )
            raise TimeoutError(f"the window did not get there in time: {errors}")
        app.processEvents()
        time.sleep(0.01)


def outline(image: Path, rect: tuple[int, int, int, int]) -> np.ndarray:
    pixels = cv2.imread(str(image))
    labels = np.zeros(pixels.shape[:2], np.uint8)
    cv2.grabCut(pixels, labels, rect, None, None, 8, cv2.GC_INIT_WITH_RECT)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    biggest = max(contours, key=cv2.contourArea)
    return cv2.approxPolyDP(biggest, 1.5, True).reshape(-1, 2).astype(float) + 0.5


def main(out: Path, photos: Path) -> None:
    from tests.tiny_clip import make_tiny_clip
    from tests.tiny_sam import make_tiny_sam

    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "photos"
    folder.mkdir()
    for path in sorted(photos.iterdir()):
        shutil.copy(path, folder)
    config_json, weights = make_tiny_clip(tmp / "clip", tower="convnext")
    config = ModelConfig(
        checkpoint=str(make_tiny_sam(tmp / "tiny_sam.pth")),
        clip_config=str(config_json),
        clip_weights=str(weights),
        vocabulary="coco",
        device="cpu",
    )
    window = MainWindow(AppSettings(tmp / "settings.ini"), config, cache_dir=str(tmp / "cache"))
    window.resize(1600, 1000)
    window.show()
    window.open_folder(folder)
    wait(app, lambda: window.engine_ready and window.canvas.image_size() is not None, 60, window)
    window.set_tool(window.canvas.tool.POLYGON)
    viewport = window.canvas.viewport()
    points = [
        window.canvas.mapFromScene(QPointF(x, y))
        for x, y in outline(folder / SUBJECT[0], SUBJECT[2])
    ]
    # A click near the first vertex closes the polygon: keep the others away from it.
    points = points[:1] + [p for p in points[1:] if (p - points[0]).manhattanLength() > 14]
    for pos in points:
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    window.canvas.close_polygon()
    window.suggestions.start_typing(SUBJECT[1])
    window.suggestions.enter()
    wait(app, lambda: len(window.canvas.masks) == 1, 20, window)
    window.set_tool(window.canvas.tool.POINT)
    wait(app, lambda: window.suggestions.list.count() > 0, 20, window)
    window.images.model_.update(window.image_id)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["import", "-window", "root", str(out)], check=True)
    window.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
