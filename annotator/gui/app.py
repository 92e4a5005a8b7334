"""Entry point of the desktop app: `annotator [FOLDER]` ends up in `run_gui`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtWidgets import QApplication

from annotator.app.sequences import is_video
from annotator.gui.first_run import missing_weights
from annotator.gui.main_window import MainWindow
from annotator.gui.settings import AppSettings, merge_args


def create_window(
    folder: Path | None, args: object | None = None, settings: AppSettings | None = None
) -> MainWindow:
    """Build the window (a QApplication must exist); command-line model flags win over settings."""
    settings = settings or AppSettings()
    config = merge_args(settings.model_config(), args)
    cache_dir = getattr(args, "cache_dir", None)
    window = MainWindow(settings, config, str(cache_dir) if cache_dir else None)
    if folder is None and settings.last_folder and Path(settings.last_folder).is_dir():
        folder = Path(settings.last_folder)
    if folder is not None:
        from annotator.app.folder import is_project_url

        if is_project_url(folder) or Path(folder).is_dir():
            window.open_folder(Path(folder))
        elif is_video(folder) and Path(folder).is_file():  # `annotator VIDEO.mp4` (issue 25)
            window.timeline.open_video_after(Path(folder))
            window.open_folder(Path(folder).resolve().parent)
        else:
            window.show_error(f"{folder}: not a folder or a video file")
    if missing_weights(window.config):  # first start: offer to download them, once shown
        QTimer.singleShot(0, window.offer_downloads)
    return window


def run_gui(folder: Path | None, args: object | None = None) -> int:
    """Open the window on `folder` (or the last folder) and run the event loop; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("annotator")
    app.setOrganizationName("annotator")
    window = create_window(folder, args)
    window.show()
    code = app.exec()
    # The window (and the worker thread it owns) is deleted here, while the application object
    # exists; left to the interpreter's exit, Qt objects go in no fixed order and can crash it.
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del window
    return code
