"""The window's file actions: COCO import / export, vocabulary import / export / save, settings.

A mixin so that `main_window.py` stays about layout and navigation; every method runs on the window.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from PySide6.QtWidgets import QFileDialog, QMessageBox

from annotator.errors import AnnotatorError
from annotator.gui.settings import SettingsDialog
from annotator.vocab.vocabulary import Vocabulary

SHIPPED = ("default", "coco", "lvis", "imagenet21k")


def load_vocabulary(spec: str) -> Vocabulary:
    """The vocabulary named in the settings: a shipped name, a file, or the default when empty."""
    if not spec or (spec in SHIPPED and not Path(spec).exists()):
        return Vocabulary.shipped(spec or "default")
    return Vocabulary.load(Path(spec))


class FileActions:
    """Mixed into `MainWindow`."""

    def _initial_vocabulary(self) -> Vocabulary:
        try:
            return load_vocabulary(self.config.vocabulary)
        except AnnotatorError as error:
            self.errors.append(str(error))
            return Vocabulary.loads("")

    def vocabulary_file(self) -> Path:
        """Where edits are saved: the configured file, or a user copy of a shipped vocabulary."""
        spec = self.config.vocabulary
        if spec and not (spec in SHIPPED and not Path(spec).exists()):
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

    def export_coco(self, polygons: bool = False, path: Path | None = None) -> bool:
        """Write the project as COCO JSON (RLE masks, or polygons)."""
        from annotator.io.coco import export_coco

        if self.project is None:
            self.show_status("Open a folder first")
            return False
        if path is None:
            start = str(self.folder / "annotations.json") if self.folder else ""
            name, _ = QFileDialog.getSaveFileName(self, "Export COCO", start, "JSON (*.json)")
            if not name:
                return False
            path = Path(name)
        try:
            export_coco(self.project, path, polygons=polygons)
        except (OSError, AnnotatorError) as error:
            self.show_error(f"Export failed: {error}")
            return False
        self.show_status(f"Exported {path}", 6000)
        return True

    def import_coco(self, path: Path | None = None) -> bool:
        """Add a COCO file's annotations to the project (images matched by file name)."""
        from annotator.io.coco import import_coco

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
        try:
            result = import_coco(path, self.folder, self.project)
        except (OSError, AnnotatorError) as error:
            self.show_error(f"Import failed: {error}")
            return False
        self.undo_stack.clear()  # commands refer to the store as it was
        folder, row = self.folder, self._row
        self.open_folder(folder)
        if row is not None:
            self.go_to(row)
        self.show_status(f"Imported {path.name}: {result}", 6000)
        return True

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
