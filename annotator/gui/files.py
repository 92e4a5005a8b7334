"""The window's file actions: dataset import / export (every format), vocabulary import / export /
save, settings.

A mixin so that `main_window.py` stays about layout and navigation; every method runs on the window.
Import and export are long jobs (`annotator.app.transfer`) that run off the GUI thread, with a
progress dialog; the dialogs that choose them are in `gui/transfer_dialogs.py`.
"""

from __future__ import annotations

import time
from pathlib import Path

import platformdirs
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from annotator.app.progress import cancelled_export_text, import_summary
from annotator.app.sequences import has_sequences
from annotator.app.transfer import (
    TITLES,
    ExportOptions,
    check_import_paths,
    detect_format,
    export_job,
    export_problem,
    images_folder_needed,
    import_job,
    project_location,
)
from annotator.app.vocabulary import Vocabulary, is_shipped, load_vocabulary
from annotator.errors import AnnotatorError
from annotator.gui.settings import SettingsDialog
from annotator.gui.transfer_dialogs import ExportDialog, ImportDialog, JobProgress


class FileActions:
    """Mixed into `MainWindow`."""

    transfer_dialog: ExportDialog | ImportDialog | None = None  # open export/import dialog
    transfer_progress: JobProgress | None = None  # the running export/import's progress dialog
    summary_box: QMessageBox | None = None  # the last export/import's warnings
    transfer_text = ""  # the last export/import's one-line result
    cancel_text = None  # () -> the status line if the running job is cancelled
    transfer_warnings: list[str] = []  # noqa: RUF012 - replaced, never mutated

    def _initial_vocabulary(self) -> Vocabulary:
        try:
            return load_vocabulary(self.config.vocabulary)
        except AnnotatorError as error:
            self.errors.append(str(error))
            return Vocabulary.loads("")

    def vocabulary_file(self) -> Path:
        """Where edits are saved: the configured file, or a user copy of a shipped vocabulary."""
        spec = self.config.vocabulary
        if spec and not is_shipped(spec):
            return Path(spec)
        return Path(platformdirs.user_data_dir("annotator")) / "vocabulary.txt"

    def save_vocabulary(self) -> None:
        """Write the edited vocabulary at once (atomic), and remember it as the active one."""
        path = self.vocabulary_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.vocabulary.save(path)
        except (OSError, AnnotatorError) as error:
            self.show_error(f"Could not save the vocabulary to {path}: {error}")
            return
        if self.config.vocabulary != str(path):
            self.config.vocabulary = str(path)
            self.settings.set_model_config(self.config)

    def import_vocabulary(self, path: Path | None = None, replace: bool | None = None) -> None:
        """Replace the vocabulary with a file, or merge its new entries in (undoable, one step)."""
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self, "Import vocabulary", "", "Text (*.txt)")
            if not name:
                return
            path = Path(name)
        try:
            incoming = Vocabulary.load(path)
        except AnnotatorError as error:
            self.show_error(str(error))
            return
        if replace is None:
            box = QMessageBox(
                QMessageBox.Icon.Question, "Import vocabulary", f"{path.name}:", parent=self
            )
            replace_button = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Merge new names", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            if box.exec() == QMessageBox.StandardButton.Cancel:
                return
            replace = box.clickedButton() is replace_button
        self.undo_stack.beginMacro(f"import vocabulary {path.name}")
        try:
            if replace:
                for entry in list(self.vocabulary):
                    if incoming.get(entry.name) is None:
                        self.controller.edit_vocabulary(entry, None)
            for entry in incoming:
                old = self.vocabulary.get(entry.name)
                if old is None:
                    self.controller.edit_vocabulary(None, entry)
                elif replace and tuple(old.synonyms) != tuple(entry.synonyms):
                    self.controller.edit_vocabulary(old, entry)
        finally:
            self.undo_stack.endMacro()

    def export_vocabulary(self, path: Path | None = None) -> None:
        if path is None:
            name, _ = QFileDialog.getSaveFileName(self, "Export vocabulary", "", "Text (*.txt)")
            if not name:
                return
            path = Path(name)
        try:
            self.vocabulary.save(path)
        except (OSError, AnnotatorError) as error:
            self.show_error(f"Could not write {path}: {error}")
            return
        self.show_status(f"Saved {len(self.vocabulary)} entries to {path}")

    # ------------------------------------------------------------------ dataset export / import
    def export_dialog(self) -> bool:
        """File → Export…: format, options and target in a dialog, then `export_dataset`."""
        if self.project is None:
            self.show_status("Open a folder first")
            return False
        tracks = has_sequences(self.project)  # issue 25: then the track formats are offered
        dialog = self.transfer_dialog = ExportDialog(self.folder, self, tracks)
        try:
            if not dialog.exec():
                return False
            name, out, options = dialog.values()
        finally:
            self.transfer_dialog = None
            dialog.deleteLater()
        return self.export_dataset(name, out, options)

    def export_dataset(
        self, name: str, out: Path | str, options: ExportOptions | None = None
    ) -> bool:
        """Write the project in format `name` at `out` in the background, with a progress dialog;
        True when the job started. A target that would replace project files is refused at once
        (one line); what the format cannot hold is summarised when it ends."""
        if self.project is None:
            self.show_status("Open a folder first")
            return False
        out = Path(out)
        problem = export_problem(name, out)
        if problem is not None:
            self.show_error(problem)
            return False
        job = export_job(project_location(self.project), name, out, options)
        since = time.time() - 1  # file times may be rounded down to the second
        started = self._start_transfer(job, lambda summary: self._exported(name, out, summary))
        if started:  # a cancel says what it really left (nothing, or the files already written)
            self.cancel_text = lambda: cancelled_export_text(job.name, out, since)
        return started

    def export_coco(self, polygons: bool = False, path: Path | None = None) -> bool:
        """Write the project as COCO JSON (RLE masks, or polygons) in the background; True when the
        job started. The file appears whole when it ends; Cancel leaves an older file as it was."""
        if self.project is None:
            self.show_status("Open a folder first")
            return False
        if path is None:
            start = str(self.folder / "annotations.json") if self.folder else ""
            name, _ = QFileDialog.getSaveFileName(self, "Export COCO", start, "JSON (*.json)")
            if not name:
                return False
            path = Path(name)
        return self.export_dataset("coco", path, ExportOptions(polygons=polygons))

    def _exported(self, name: str, path: Path, summary: dict) -> None:
        summary = summary if isinstance(summary, dict) else {}
        # the track formats count masks (MOTS) or boxes (MOT) of their sequences (issue 25)
        count = next((summary[k] for k in ("annotations", "masks", "boxes") if k in summary), None)
        if count is None and "sequences" in summary:  # DAVIS: a PNG per frame
            text = f"Exported {summary['sequences']} sequence(s) as {TITLES[name]} to {path}"
        else:
            text = f"Exported {count or 0} annotation(s) as {TITLES[name]} to {path}"
        self.show_status(text, 6000)
        self._transfer_summary(text, summary)

    def import_dialog(self) -> bool:
        """File → Import…: a dataset file or folder, its format (detected or chosen) and, when
        the format needs it, the images folder; then `import_dataset`."""
        if self.project is None or self.folder is None:
            self.show_status("Open a folder first")
            return False
        dialog = self.transfer_dialog = ImportDialog(self.folder, self)
        try:
            if not dialog.exec():
                return False
            path, name, images = dialog.values()
        finally:
            self.transfer_dialog = None
            dialog.deleteLater()
        return self.import_dataset(path, name, images)

    def import_dataset(
        self, path: Path | str, name: str | None = None, images: Path | str | None = None
    ) -> bool:
        """Add a dataset's annotations to the project (format detected when `name` is None), in
        the background and all or nothing; edits wait meanwhile, and the list and the canvas
        follow when it ends. True when the job started."""
        if self.project is None or self.folder is None:
            self.show_status("Open a folder first")
            return False
        path = Path(path)
        images = None if images is None else Path(images)
        try:
            check_import_paths(path, images)
            name = name or detect_format(path)
        except AnnotatorError as error:
            self.show_error(str(error))
            return False
        if images is None and name == "coco":
            images = self.folder  # COCO file names are relative to the project folder
        elif images is None and images_folder_needed(name, path, self.folder):
            self.show_error(f"{path}: {TITLES[name]}: choose the folder its images are in")
            return False
        job = import_job(project_location(self.project), path, images, name)
        started = self._start_transfer(
            job, lambda result: self._imported(path, result), self._import_ended
        )
        if started:
            self.session.set_busy(job.name)
        return started

    def import_coco(self, path: Path | None = None) -> bool:
        """Add a COCO file's annotations to the project (images matched by file name)."""
        if self.project is None or self.folder is None:
            self.show_status("Open a folder first")
            return False
        if path is None:
            name, _ = QFileDialog.getOpenFileName(
                self, "Import COCO", str(self.folder), "JSON (*.json)"
            )
            if not name:
                return False
            path = Path(name)
        return self.import_dataset(path, "coco", self.folder)

    def _import_ended(self) -> None:
        self.session.set_busy(None)

    def _imported(self, path: Path, result: dict) -> None:
        self.undo_stack.clear()  # commands refer to the store as it was
        text = import_summary(path.name, result)
        # the reload's own status lines would hide the result: it is said again when it ends
        self.after_open_status = text
        self.open_folder(self.folder, show_row=self._row)  # list counts and the canvas follow
        self.show_status(text, 10000)
        self._transfer_summary(text, result, always=True)

    def _start_transfer(self, job, on_done, on_end=None) -> bool:
        """Start an export or import job with a progress dialog (non-modal: the window stays
        usable; its Cancel asks the job to stop)."""
        progress = JobProgress(job.name, self, self.cancel_job)
        self.jobs.progress.connect(progress.on_job_progress)

        def ended() -> None:
            self.transfer_progress = None
            progress.finish()
            if on_end is not None:
                on_end()

        if not self.start_job(job, on_done, ended):
            progress.finish()
            return False
        self.transfer_progress = progress
        return True

    def _transfer_summary(self, text: str, summary: dict, always: bool = False) -> None:
        """The end of an export or import: its warnings (what the format could not hold and what
        was done instead) in one non-modal box; an import's counts are always shown there."""
        lines = list(summary.get("warnings", [])) if isinstance(summary, dict) else []
        self.transfer_text, self.transfer_warnings = text, lines
        if not lines and not always:
            return
        if self.summary_box is None:
            self.summary_box = QMessageBox(
                QMessageBox.Icon.Information, "annotator", "", parent=self
            )
            self.summary_box.setWindowModality(Qt.WindowModality.NonModal)
        self.summary_box.setText(text)
        self.summary_box.setInformativeText("\n".join(f"• {line}" for line in lines))
        self.summary_box.show()

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.config, self.settings.prefetch_mb, self)
        if dialog.exec():
            config, budget = dialog.values()
            self.settings.set_model_config(config)
            self.settings.prefetch_mb = budget
            self.worker.set_budget(budget)
            vocabulary_changed = config.vocabulary != self.config.vocabulary
            if vocabulary_changed:
                self.vocabulary = load_vocabulary(config.vocabulary)
                self.vocab_editor.set_vocabulary(self.vocabulary)
                self.undo_stack.clear()
                self.update_completer()
            self.load_models(config)
