"""The window's status bar: the model and encode progress, the zoom, messages and errors, and the
long job's name, progress (count, percentage, ETA) and Cancel (`gui/long_jobs.py` runs the job).

A mixin of `MainWindow`; every method runs on the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QToolButton

from annotator.app.longjob import LongJob
from annotator.app.progress import progress_text

log = logging.getLogger("annotator.gui.main_window")


class WindowStatus:
    """Status bar widgets, messages and the long job's progress (a mixin of `MainWindow`)."""

    def _status_bar(self) -> None:
        bar = self.statusBar()
        self.encode_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        self.model_label = QLabel("no models")
        self.zoom_label = QLabel("")
        self.job_label = QLabel("")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(200)
        self.job_cancel = QToolButton()
        self.job_cancel.setText("Cancel")
        self.job_cancel.setToolTip("Stop this job; nothing it did is kept")
        self.job_cancel.clicked.connect(self.cancel_job)
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(False)
        for widget in (
            self.job_label,
            self.job_progress,
            self.job_cancel,
            self.encode_label,
            self.progress,
            self.zoom_label,
            self.model_label,
        ):
            bar.addPermanentWidget(widget)

    def _connect_jobs(self) -> None:
        self.jobs.started.connect(self._job_started)
        self.jobs.progress.connect(self._job_progress)
        self.jobs.finished.connect(self._job_finished)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.cancelled.connect(self._job_cancelled)

    def start_job(
        self,
        job: LongJob,
        on_done: Callable[[Any], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> bool:
        """Run `job` off the GUI thread (one at a time): `on_end()` runs however it ends, then
        `on_done(result)` if it succeeded. False (and a status message) while another job runs."""
        if self.jobs.busy():
            self.show_status(f"Wait for “{self.jobs.job.name}” to finish, or cancel it", 5000)
            return False
        self._job_done, self._job_end = on_done, on_end
        return self.jobs.start(job)

    def cancel_job(self) -> None:
        if self.jobs.busy():
            self.job_label.setText(f"{self.jobs.job.name}: cancelling…")
            self.jobs.cancel()

    def _job_started(self, name: str) -> None:
        self._job_start = time.monotonic()
        self.job_label.setText(name)
        self.job_progress.setRange(0, 0)  # busy until the first progress report
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(True)

    def _job_progress(self, name: str, done: int, total: int, text: str) -> None:
        """The job's stage with its count, percentage and ETA ("writing YOLO: 40 / 100 (40%, ETA
        12 s)")."""
        count = progress_text(done, total, time.monotonic() - self._job_start)
        line = " ".join(part for part in (text, count) if part)
        self.job_label.setText(f"{name}: {line}" if line else name)
        self.job_progress.setRange(0, max(total, 0))
        if total:
            self.job_progress.setValue(done)

    def _job_finished(self, name: str, result: Any) -> None:
        self.cancel_text = None
        on_done = self._end_job()
        if on_done is not None:
            on_done(result)

    def _job_failed(self, name: str, message: str) -> None:
        self.cancel_text = None
        self._end_job()
        self.show_error(f"{name} failed: {message}")

    def _job_cancelled(self, name: str) -> None:
        text_of, self.cancel_text = self.cancel_text, None
        self._end_job()
        self.show_status(text_of() if text_of else f"{name}: cancelled, nothing was changed", 10000)

    def _end_job(self) -> Any:
        """Hide the job's status widgets, run its `on_end`; returns its `on_done`."""
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(False)
        on_done, on_end = self._job_done, self._job_end
        self._job_done = self._job_end = None
        if on_end is not None:
            on_end()
        return on_done

    def _progress(self, stage: str, done: int, total: int) -> None:
        if stage == "labels":  # masks already work; say how much of the vocabulary labels use
            self.vocab_editor.show_progress(done, total)
            self.progress.setFormat("labels from %v of %m names")
            self.progress.setMaximum(max(total, 1))
            self.progress.setValue(done)
            self.progress.setVisible(done < total)
            return
        if stage == "vocabulary":
            self.vocab_editor.show_progress(done, total)
        self.progress.setFormat(f"{stage} %v / %m")
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setVisible(done < total)

    def _encode_progress(self, done: int, total: int) -> None:
        self.encode_label.setText(f"encoded {self.images.model_.encoded_count()} / {total}")

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def clear_status(self) -> None:
        self.statusBar().clearMessage()

    def show_error(self, text: str) -> None:
        """A non-modal message: the window keeps working behind it."""
        log.warning("%s", text)
        self.errors.append(text)
        self.show_status(text, 10000)
        if self.error_box is None:
            self.error_box = QMessageBox(QMessageBox.Icon.Warning, "annotator", text, parent=self)
            self.error_box.setWindowModality(Qt.WindowModality.NonModal)
            self.error_box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_box.setText(text)
        self.error_box.show()


__all__ = ["WindowStatus"]
