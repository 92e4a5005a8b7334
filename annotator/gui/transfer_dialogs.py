"""The export and import dialogs (every dataset format) and the progress dialog of a long job.

The dialogs only collect choices; `FileActions.export_dataset` / `import_dataset` (gui/files.py) act
on them, so tests call those with a path and a format and never meet a native file dialog. What a
choice means (the options, file or folder, whether the images folder is needed) comes from
`annotator.app.transfer`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QWidget,
)

from annotator.app.transfer import (
    EXPORT_FORMATS,
    FORMATS,
    OPTIONS,
    SINGLE_FILE,
    TITLES,
    TRACK_FORMATS,
    YOLO_TASKS,
    ExportOptions,
    detect_format,
    images_folder_needed,
)
from annotator.errors import AnnotatorError


def default_target(name: str, folder: Path | None) -> Path | None:
    """Where an export goes unless the user says otherwise: COCO/CVAT a file in the image folder
    (as the COCO export always did), a folder format a sibling folder (inside the image folder its
    copied images would be listed as new images the next time the folder opens)."""
    if folder is None:
        return None
    if name in SINGLE_FILE:
        return folder / f"annotations{SINGLE_FILE[name]}"
    return folder.parent / f"{folder.name}_{name}"


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return box


class ExportDialog(QDialog):
    """Format, its options, and the target (a file for COCO and CVAT, a folder otherwise)."""

    def __init__(
        self, folder: Path | None, parent: QWidget | None = None, tracks: bool = False
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export dataset")
        self.folder = folder
        self.format = QComboBox()
        # the track formats (MOTS, MOT, DAVIS) when the project holds sequences (issue 25)
        for name in EXPORT_FORMATS + (TRACK_FORMATS if tracks else ()):
            self.format.addItem(TITLES[name], name)
        self.polygons = QCheckBox("Polygons instead of RLE / masks (masks with holes stay masks)")
        self.yolo_task = QComboBox()
        for task in YOLO_TASKS:
            self.yolo_task.addItem(
                "segment (polygons)" if task == "segment" else "detect (boxes)", task
            )
        self.copy_images = QCheckBox("Also copy the images to images/")
        self.target = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self.choose_target)
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow("", self.polygons)
        self.task_label = QLabel("YOLO task")
        form.addRow(self.task_label, self.yolo_task)
        form.addRow("", self.copy_images)
        self.target_label = QLabel()
        form.addRow(self.target_label, _row(self.target, self.browse))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.target.textChanged.connect(lambda text: self.ok.setEnabled(bool(text.strip())))
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    def name(self) -> str:
        return str(self.format.currentData())

    def set_format(self, name: str) -> None:
        self.format.setCurrentIndex(self.format.findData(name))

    def _format_changed(self) -> None:
        name = self.name()
        self.polygons.setVisible("polygons" in OPTIONS[name])
        self.task_label.setVisible("yolo_task" in OPTIONS[name])
        self.yolo_task.setVisible("yolo_task" in OPTIONS[name])
        self.copy_images.setVisible("copy_images" in OPTIONS[name])
        self.target_label.setText("File" if name in SINGLE_FILE else "Folder")
        target = default_target(name, self.folder)
        self.target.setText("" if target is None else str(target))
        self.ok.setEnabled(bool(self.target.text().strip()))

    def choose_target(self) -> None:
        name, start = self.name(), self.target.text()
        if name in SINGLE_FILE:
            suffix = SINGLE_FILE[name]
            chosen, _ = QFileDialog.getSaveFileName(
                self, f"Export {TITLES[name]}", start, f"{suffix[1:].upper()} (*{suffix})"
            )
        else:
            chosen = QFileDialog.getExistingDirectory(self, f"Export {TITLES[name]} to", start)
        if chosen:
            self.target.setText(chosen)

    def values(self) -> tuple[str, Path, ExportOptions]:
        """(format, target, options) as chosen."""
        options = ExportOptions(
            polygons=self.polygons.isChecked() and "polygons" in OPTIONS[self.name()],
            yolo_task=str(self.yolo_task.currentData()),
            copy_images=self.copy_images.isChecked() and "copy_images" in OPTIONS[self.name()],
        )
        return self.name(), Path(self.target.text().strip()), options


class ImportDialog(QDialog):
    """A dataset file or folder, its format (detected, or chosen), and the images folder when the
    format needs one (`app.transfer.images_folder_needed`)."""

    def __init__(self, folder: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import dataset")
        self.folder = folder
        self.path = QLineEdit()
        self.choose_file = QPushButton("File…")
        self.choose_file.clicked.connect(self._pick_file)
        self.choose_folder = QPushButton("Folder…")
        self.choose_folder.clicked.connect(self._pick_folder)
        self.format = QComboBox()
        self.format.addItem("Detect from the files", None)
        for name in FORMATS:
            self.format.addItem(TITLES[name], name)
        self.detected = QLabel()
        self.images = QLineEdit()
        self.images_browse = QPushButton("Browse…")
        self.images_browse.clicked.connect(self._pick_images)
        form = QFormLayout(self)
        form.addRow("Dataset", _row(self.path, self.choose_file, self.choose_folder))
        form.addRow("Format", self.format)
        form.addRow("", self.detected)
        self.images_label = QLabel("Images folder")
        form.addRow(self.images_label, _row(self.images, self.images_browse))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.path.textChanged.connect(self._update)
        self.format.currentIndexChanged.connect(self._update)
        self.images.textChanged.connect(self._update)
        self._update()

    def _pick_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Import dataset file", self.path.text(), "Datasets (*.json *.xml);;All (*)"
        )
        if chosen:
            self.path.setText(chosen)

    def _pick_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Import dataset folder", self.path.text())
        if chosen:
            self.path.setText(chosen)

    def _pick_images(self) -> None:
        start = self.images.text() or ("" if self.folder is None else str(self.folder))
        chosen = QFileDialog.getExistingDirectory(self, "The dataset's images are in", start)
        if chosen:
            self.images.setText(chosen)

    def format_name(self) -> str | None:
        """The chosen format, else the detected one (None when it cannot be told)."""
        chosen = self.format.currentData()
        if chosen:
            return str(chosen)
        text = self.path.text().strip()
        if not text:
            return None
        try:
            return detect_format(text)
        except AnnotatorError:
            return None

    def images_needed(self) -> bool:
        name, text = self.format_name(), self.path.text().strip()
        return bool(name and text) and images_folder_needed(name, text, self.folder)

    def _update(self) -> None:
        text = self.path.text().strip()
        name = self.format_name()
        if not text:
            self.detected.setText("")
        elif name is None:
            self.detected.setText("Cannot tell the format: choose it")
        elif not self.format.currentData():
            self.detected.setText(f"Detected: {TITLES[name]}")
        else:
            self.detected.setText("")
        needed = self.images_needed()
        self.images_label.setText("Images folder (needed)" if needed else "Images folder")
        ok = bool(text) and name is not None and (not needed or bool(self.images.text().strip()))
        self.ok.setEnabled(ok)

    def values(self) -> tuple[Path, str | None, Path | None]:
        """(dataset path, format or None to detect, images folder or None)."""
        images = self.images.text().strip()
        return (
            Path(self.path.text().strip()),
            self.format.currentData() or None,
            Path(images) if images else None,
        )


class JobProgress(QProgressDialog):
    """A non-modal progress dialog for one long job: the window stays usable behind it; Cancel
    asks the job to stop. `finish()` closes it without cancelling."""

    def __init__(self, title: str, parent: QWidget, on_cancel) -> None:
        super().__init__(title, "Cancel", 0, 0, parent)
        self.cancel_button = QPushButton("Cancel")
        self.setCancelButton(self.cancel_button)
        self.setWindowTitle("annotator")
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.setMinimumDuration(300)
        self._on_cancel = on_cancel
        self.canceled.connect(self._cancelled)
        self._done = False

    def _cancelled(self) -> None:
        if not self._done:
            self._on_cancel()

    @Slot(str, int, int, str)
    def on_job_progress(self, name: str, done: int, total: int, text: str) -> None:
        """`LongJobRunner.progress`, delivered on the GUI thread (a slot of this dialog)."""
        self.update_progress(done, total, text)

    def update_progress(self, done: int, total: int, text: str) -> None:
        if self._done:
            return
        if text:
            self.setLabelText(text)
        self.setMaximum(max(total, 0))
        if total:
            self.setValue(min(done, total))

    def finish(self) -> None:
        self._done = True
        self.hide()
        self.deleteLater()
