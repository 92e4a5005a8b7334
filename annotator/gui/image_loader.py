"""Decodes images for display off the GUI thread (a big JPEG takes longer than a frame)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from annotator.app.model_host import describe_error
from annotator.app.pixels import display_pixels


class ImageLoader(QObject):
    """One request at a time, the newest wins; answers by signal, tagged with the request id."""

    loaded = Signal(int, int, QImage)  # image id, request id, image
    load_failed = Signal(int, int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: tuple[int, int, str] | None = None
        self._event = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="image-loader", daemon=True)
        self._closing = False
        self._thread.start()

    def request(self, image_id: int, request_id: int, path: str) -> None:
        with self._lock:
            self._pending = (image_id, request_id, path)
        self._event.set()

    def close(self) -> None:
        self._closing = True
        self._event.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            self._event.wait()
            self._event.clear()
            if self._closing:
                return
            with self._lock:
                job, self._pending = self._pending, None
            if job is None:
                continue
            image_id, request_id, path = job
            try:
                rgb = display_pixels(path)
                h, w = rgb.shape[:2]
                image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            except Exception as error:  # noqa: BLE001 - shown to the user, the app goes on
                if not self._closing:
                    self.load_failed.emit(image_id, request_id, describe_error(error))
                continue
            if not self._closing:
                self.loaded.emit(image_id, request_id, image)


__all__ = ["ImageLoader"]
