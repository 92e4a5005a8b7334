"""The window's navigation: opening a folder or project URL (a long job), showing an image (its
pixels from the loader thread, its annotations from the session), next / previous, claims, and
other processes' changes (`app.change_feed`, polled).

A mixin of `MainWindow`; every method runs on the window.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit

from annotator.app.folder import OpenedFolder, is_project_url, open_folder_job, open_location
from annotator.app.longjob import paused_gc
from annotator.app.review import review_queue
from annotator.errors import AnnotatorError
from annotator.gui.commands import on_refused_undo


class WindowImages:
    """Folder, image and change-feed navigation (a mixin of `MainWindow`)."""

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self.settings.last_folder)
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path | str, show_row: int | None = None) -> bool:
        """Open (or create) the folder's project in the background; its list and first image (or
        `show_row`) appear when the job ends. False when another long job is running. `folder`
        may be a project URL (postgresql://…?project=NAME): its images are in the folder the
        project records."""
        self._after_open = show_row
        location = str(folder) if is_project_url(str(folder)) else Path(folder)
        return self.start_job(open_folder_job(location), self._folder_opened)

    def _folder_opened(self, opened: OpenedFolder) -> None:
        """The folder job's result: open its project here and show its images (the old project is
        closed)."""
        rows = opened.image_rows if opened.image_rows is not None else []
        folder, unreadable = opened.folder, opened.unreadable
        try:
            project, folder = open_location(opened.location or folder)
        except AnnotatorError as error:
            self.show_error(str(error))
            return
        self.session.set_folder(project, folder, rows)
        self.undo_stack.clear()
        self.review.set_queue(review_queue(project), folder)
        self.change_feed.start(project, self.review.queue.store)
        self.worker.set_label_priority([c.name for c in project.categories()])
        on_refused_undo(project, self.show_error)
        location = opened.location or str(folder)
        if not is_project_url(location):
            # Writing the settings file syncs it to disk: in its own event, not in this long one.
            QTimer.singleShot(0, partial(setattr, self.settings, "last_folder", str(folder)))
        self.setWindowTitle(f"annotator — {location}")
        with paused_gc():
            self.images.model_.set_rows(rows, opened.row_of)
        self.encode_label.setText(f"encoded 0 / {len(rows)}")
        self.categories_changed()
        row, self._after_open = self._after_open, None
        if rows:
            self.go_to(row if row is not None and 0 <= row < len(rows) else 0)
        else:
            self.show_status(f"No images in {folder}", 0)
        message, self.after_open_status = self.after_open_status, ""
        if message:  # an import's result, said again once its reload has shown the image
            self.show_status(message, 10000)
        if unreadable:  # say why files are missing from the list (each one is in self.errors)
            self.errors.extend(unreadable)
            count = "1 file" if len(unreadable) == 1 else f"{len(unreadable)} files"
            self.show_error(f"{count} could not be read and are not listed; {unreadable[0]}")

    def image_path(self) -> str:
        return self.session.image_path()

    def go_to(self, row: int) -> None:
        rows = self.session.rows
        previous = self.image_id
        if not self.session.set_row(row):
            return
        if self.project is not None and previous is not None and previous != self.image_id:
            self.project.release(previous)  # a team project: others may take it now
        self._claim(self.image_id)
        self.images.select_row(row)
        self.image_selected.emit(self.image_id)
        self.canvas.clear_image()
        self.annotations.set_annotations([])
        self._image_req += 1
        from annotator.gui import large_display  # issue 26: a large TIFF, shown by its pyramid

        if not large_display.for_window(self).show(self.image_id, self._image_req, rows[row].path):
            self.loader.request(self.image_id, self._image_req, rows[row].path)
        self._send_order()
        self.show_status(f"{rows[row].name} ({row + 1} / {len(rows)})", 3000)

    def go_to_image_id(self, image_id: int) -> None:
        rows = self.images.model_.rows
        row = next((i for i, r in enumerate(rows) if r.image_id == image_id), None)
        if row is None and self.timeline.show_image(image_id):  # issue 25: a sequence's frame
            return
        if row is not None:
            self.go_to(row)

    def _claim(self, image_id: int) -> None:
        """Take the image for editing; when someone else has it, say so (the store refuses their
        edits, so nothing can be saved here until they move on)."""
        try:
            self.project.claim(image_id)
        except (AnnotatorError, KeyError) as error:
            self.show_error(f"{error} (read-only here)")

    def _send_order(self) -> None:
        rows = self.images.model_.rows
        if self._row is None or not self.engine_ready:
            return
        ordered = rows[self._row :] + rows[: self._row]
        self.worker.set_order([(r.image_id, r.path) for r in ordered])

    def next_image(self) -> None:
        if self._row is not None:
            self.go_to(min(self._row + 1, len(self.images.model_.rows) - 1))

    def previous_image(self) -> None:
        if self._row is not None:
            self.go_to(max(self._row - 1, 0))

    def _image_loaded(self, image_id: int, request_id: int, image: QImage) -> None:
        if image_id != self.image_id or request_id != self._image_req:
            return
        self.canvas.set_image(image)
        self.session.display_image = image
        self.controller.refresh(image_id)
        select, self._select_after = self._select_after, None
        if select is not None and select in self.session.records:
            self.controller.select(select)  # the object an undo / redo on this image acted on
        focus = QApplication.focusWidget()
        if focus is None or not (self.review.isAncestorOf(focus) or isinstance(focus, QLineEdit)):
            self.canvas.setFocus()  # but the review queue and a text field keep their keys
        self.image_shown.emit(image_id)

    def _image_failed(self, image_id: int, request_id: int, message: str) -> None:
        if request_id == self._image_req:
            self.images.model_.update(image_id, failed=message)
            self.show_error(message)

    def refresh_image(self, image_id: int) -> None:
        """The store changed for `image_id`: the session tells every view (list, canvas) and the
        exemplars (`app.exemplars.ExemplarKeeper` subscribes)."""
        self.session.annotations_changed(image_id)

    def _annotations_changed(self, image_id: int) -> None:
        if self.project is not None:
            count = len(self.project.annotations(image_id))
            self.images.model_.update(image_id, annotations=count)

    def poll_changes(self) -> None:
        """Show other processes' work (`app.change_feed`): refresh the images their accepted
        annotations touched, and the review queue when another process wrote proposals."""
        changed = self.change_feed.poll()
        if changed.proposals and not self.review.running:
            self.review.refresh(show=False)  # another process's proposals (annotator autolabel)
        for image_id in changed.images:
            self.refresh_image(image_id)


__all__ = ["WindowImages"]
