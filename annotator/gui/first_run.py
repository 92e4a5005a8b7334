"""First start without weights: say which model files are missing, download them or pick local ones.

The window opens whatever happens (the manual tools need no model). This dialog lists the missing files
from the weights registry (through `annotator.app.model_files`, which decides what is missing); "Download" streams one in a `QThread` (never the
GUI thread) behind a `QProgressDialog` showing MB done / total. Cancel keeps the `.part` file, so the
next attempt resumes with a Range request; a failed sha256 check deletes it, so a retry starts clean.
Errors stay in the dialog next to a "Retry" button. "Choose file…" ("Choose folder…" for a
transformers model) takes a local copy instead. A missing segmenter is offered as alternatives: the
device's default first (SAM 2.1 tiny, a folder, on a CPU), then SAM 1 ViT-B and the others. Either
way the path is stored in the settings and, once nothing is missing, `models_ready` carries the new
configuration to the window, which loads the models.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.app.model_files import (
    DownloadCancelled,
    KnownWeights,
    checkpoint_family,
    download,
    megabytes,
    missing_weights,
    part_status,
    segmenter_choices,
    use_file,
    with_cached_weights,
)
from annotator.errors import AnnotatorError
from annotator.gui.settings import CHECKPOINT_PATTERN, AppSettings, ModelConfig

_PATTERNS = {
    "sam": CHECKPOINT_PATTERN,
    "clip": "Weights (*.bin *.pt *.pth *.safetensors);;All files (*)",
}


# ------------------------------------------------------------------------------------------ download
class DownloadThread(QThread):
    """Runs `app.model_files.download` off the GUI thread; reports by signal (plain data only), each
    tagged with the registry name so the receiving dialog's slots run in the GUI thread."""

    progress = Signal(str, object, object)  # name, bytes done, total (0 = unknown; may pass 2**31)
    succeeded = Signal(str, str)  # name, path
    failed = Signal(str, str)  # name, one-line message
    cancelled = Signal(str, str)  # name, message

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the download to stop at the next chunk (thread-safe)."""
        self._cancel.set()

    def run(self) -> None:
        name = self.name
        try:
            path = download(
                name,
                progress=False,
                progress_cb=lambda done, total: self.progress.emit(name, done, total),
                cancel=self._cancel.is_set,
            )
        except DownloadCancelled as error:
            self.cancelled.emit(name, str(error))
        except Exception as error:  # noqa: BLE001 - shown in the dialog; the app goes on
            self.failed.emit(name, " ".join(str(error).split()) or type(error).__name__)
        else:
            self.succeeded.emit(name, str(path))


# ------------------------------------------------------------------------------------------- dialog
class FirstRunDialog(QDialog):
    """One row per offered file: what it is, its size, a status line, "Download" and "Choose
    file…" ("Choose folder…" for a transformers model). A missing segmenter is offered as
    alternatives — the device's default first, then the other families — and one of them is
    enough; `needs` holds those groups."""

    models_ready = Signal(object)  # the ModelConfig with every missing file provided

    def __init__(
        self,
        missing: list[KnownWeights],
        config: ModelConfig,
        settings: AppSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model files")
        self.config, self.settings = replace(config), settings
        offered: list[KnownWeights] = []
        self.needs: list[set[str]] = []  # each set: names of which one must be provided
        for known in missing:
            group = [known]
            if known.kind != "clip":
                group += [k for k in segmenter_choices(config) if k.name != known.name]
            offered += [k for k in group if k not in offered]
            self.needs.append({k.name for k in group})
        self.missing = {k.name: k for k in offered}  # every row, in the order shown
        self.done_names: set[str] = set()
        self.thread: DownloadThread | None = None
        self.progress_dialog: QProgressDialog | None = None
        self.last_progress: tuple[int, int] = (0, 0)  # bytes done, total of the running download
        self.status: dict[str, QLabel] = {}
        self.download_buttons: dict[str, QPushButton] = {}
        self.choose_buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        intro = QLabel(
            "These model files are missing. Download them (the download resumes if interrupted and "
            "is checked against the published sha256 where there is one) or choose copies you "
            "already have; one segmenter is enough, the first one suits this device best. Until "
            "then the rectangle, polygon and brush tools work without a model."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        layout.addLayout(grid)
        first_choices = {k.name for k in missing}
        for row, known in enumerate(offered):
            size = known.size_label or "size unknown"
            hint = " — recommended" if known.kind != "clip" and known.name in first_choices else ""
            name = QLabel(f"<b>{known.name}</b> ({size}){hint}<br>{known.description}")
            name.setTextFormat(Qt.TextFormat.RichText)
            status = QLabel(self._part_status(known))
            status.setWordWrap(True)
            status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            download = QPushButton("Download")
            download.clicked.connect(lambda _=False, k=known: self.download(k.name))
            choose = QPushButton("Choose folder…" if known.is_folder else "Choose file…")
            choose.clicked.connect(lambda _=False, k=known: self.choose_file(k.name))
            grid.addWidget(name, row, 0)
            grid.addWidget(status, row, 1)
            grid.addWidget(download, row, 2)
            grid.addWidget(choose, row, 3)
            self.status[known.name] = status
            self.download_buttons[known.name] = download
            self.choose_buttons[known.name] = choose
        grid.setColumnStretch(1, 1)
        # a failed download's whole message, wrapped anywhere (URLs have no spaces) and copyable
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.details.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.details.setMaximumHeight(90)
        self.details.setVisible(False)
        layout.addWidget(self.details)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setText("Manual tools only")
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _part_status(known: KnownWeights) -> str:
        return part_status(known)

    def _settled(self, name: str) -> bool:
        """Whether the need `name` answers is met (by it or by an alternative)."""
        return any(name in need and need & self.done_names for need in self.needs)

    # ------------------------------------------------------------------ download
    def download(self, name: str) -> None:
        """Start downloading `name` in a thread, with a progress dialog that can cancel it."""
        if self.thread is not None:
            return
        for button in (*self.download_buttons.values(), *self.choose_buttons.values()):
            button.setEnabled(False)
        self.status[name].setText("downloading…")
        dialog = QProgressDialog(f"Downloading {name}…", "Cancel", 0, 1000, self)
        dialog.setWindowTitle("Download")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        self.progress_dialog = dialog
        thread = DownloadThread(name, self)
        thread.progress.connect(self._progress)
        thread.succeeded.connect(self._succeeded)
        thread.failed.connect(self._failed)
        thread.cancelled.connect(self._cancelled)
        thread.finished.connect(self._thread_finished)
        dialog.canceled.connect(self.cancel_download)
        self.thread = thread
        thread.start()
        dialog.show()

    def cancel_download(self) -> None:
        """The progress dialog's Cancel: the thread stops at the next chunk, keeping the `.part`."""
        if self.thread is not None:
            self.thread.cancel()

    def _progress(self, name: str, done: int, total: int) -> None:
        dialog, known = self.progress_dialog, self.missing[name]
        self.last_progress = (done, total)
        if dialog is None:
            return
        if total:
            dialog.setMaximum(1000)
            dialog.setValue(min(1000, done * 1000 // total))
            dialog.setLabelText(
                f"Downloading {known.name}: {megabytes(done)} / {megabytes(total)} MB"
            )
        else:
            dialog.setMaximum(0)  # busy indicator: the server sent no length
            dialog.setLabelText(f"Downloading {known.name}: {megabytes(done)} MB")

    def _close_progress(self) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect()
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None

    def _succeeded(self, name: str, path: str) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.setValue(self.progress_dialog.maximum() or 1)
        self._close_progress()
        self._provided(self.missing[name], path, f"downloaded and verified: {path}")

    def _failed(self, name: str, message: str) -> None:
        self._close_progress()
        self.status[name].setText("download failed (the message is below; it can be copied)")
        self.status[name].setToolTip(message)
        self.details.setPlainText(f"{name}: download failed: {message}")
        self.details.setVisible(True)
        self.download_buttons[name].setText("Retry")

    def _cancelled(self, name: str, message: str) -> None:
        self._close_progress()
        self.status[name].setText(f"{self._part_status(self.missing[name])}; cancelled")
        self.download_buttons[name].setText("Resume")

    def _thread_finished(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.deleteLater()
        for name, button in self.download_buttons.items():
            button.setEnabled(not self._settled(name))
            self.choose_buttons[name].setEnabled(not self._settled(name))

    # ------------------------------------------------------------------ local files
    def choose_file(self, name: str, path: str | None = None) -> None:
        """Use a local copy of `name` (asks with a file or folder dialog unless `path` is given).

        A segmenter may be of any family: it is read from the file or folder (a picked
        `model.safetensors` or `config.json` means its folder); one that is no segmenter at all
        is one line in the row's status, and nothing is stored."""
        known = self.missing[name]
        if path is None:
            if known.is_folder:
                path = QFileDialog.getExistingDirectory(
                    self, f"Choose the {name} folder (config.json + model.safetensors)",
                    str(Path.home()),
                )  # fmt: skip
            else:
                path, _ = QFileDialog.getOpenFileName(
                    self, f"Choose {name}", str(Path.home()), _PATTERNS[known.kind]
                )
        if not path:
            return
        family = None
        if known.kind != "clip":
            chosen = Path(path)
            if chosen.suffix in (".safetensors", ".json"):
                path = str(chosen.parent)
            try:
                family = checkpoint_family(Path(path))
            except AnnotatorError as error:
                self.status[name].setText(" ".join(str(error).split()))
                return
        self._provided(known, path, f"using {path}", family)

    def _provided(
        self, known: KnownWeights, path: str, text: str, family: str | None = None
    ) -> None:
        self.config = use_file(self.config, known, path, family)
        stored = self.settings.model_config()
        self.settings.set_model_config(use_file(stored, known, path, family))
        self.done_names.add(known.name)
        self.status[known.name].setText(text)
        for name, button in self.download_buttons.items():
            if self._settled(name):
                button.setEnabled(False)
                self.choose_buttons[name].setEnabled(False)
        if all(need & self.done_names for need in self.needs):
            self.models_ready.emit(replace(self.config))
            self.accept()

    def reject(self) -> None:
        """Closing cancels a running download (its `.part` file is kept for next time)."""
        if self.thread is not None:
            self.thread.cancel()
            self.thread.wait(10_000)
        super().reject()


# the window and the tests ask these through the dialog's module (they live in app/model_files.py)
__all__ = ["DownloadThread", "FirstRunDialog", "missing_weights", "use_file", "with_cached_weights"]
