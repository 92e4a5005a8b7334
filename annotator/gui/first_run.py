"""First start without weights: say which model files are missing, download them or pick local ones.

The window opens whatever happens (the manual tools need no model). This dialog lists the missing files
from the weights registry (`annotator.models.weights`); "Download" streams one in a `QThread` (never the
GUI thread) behind a `QProgressDialog` showing MB done / total. Cancel keeps the `.part` file, so the
next attempt resumes with a Range request; a failed sha256 check deletes it, so a retry starts clean.
Errors stay in the dialog next to a "Retry" button. "Choose file…" takes a local copy instead. Either
way the path is stored in the settings and, once nothing is missing, `models_ready` carries the new
configuration to the window, which loads the models.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.gui.settings import AppSettings, ModelConfig
from annotator.models import weights
from annotator.models.weights import DownloadCancelled, KnownWeights

DEFAULT_CLIP_MODEL = "convnext_base_w"  # the architecture of `weights.DEFAULT_CLIP`
_PATTERNS = {
    "sam": "Checkpoints (*.pth *.pt);;All files (*)",
    "clip": "Weights (*.bin *.pt *.pth *.safetensors);;All files (*)",
}


# ------------------------------------------------------------------------------ which files are missing
def _clip_unconfigured(config: ModelConfig) -> bool:
    """Nothing but (at most) the default model name: the default CLIP weights are needed."""
    return not (config.clip_weights or config.clip_config or config.clip_pretrained) and (
        config.clip_model in ("", DEFAULT_CLIP_MODEL)
    )


def _in_hub_cache(known: KnownWeights) -> bool:
    """True when open_clip's own Hugging Face cache already holds this file (it then loads offline)."""
    parts = urllib.parse.urlparse(known.url).path.strip("/").split("/")
    if "huggingface.co" not in known.url or "resolve" not in parts:
        return False
    cut = parts.index("resolve")
    repo = "/".join(parts[:cut])
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return False
    for filename in (parts[-1], "open_clip_model.safetensors"):
        try:
            if isinstance(try_to_load_from_cache(repo, filename), str):
                return True
        except Exception:  # noqa: BLE001 - a cache we cannot read is a cache without the file
            pass
    return False


def with_cached_weights(config: ModelConfig) -> ModelConfig:
    """`config` with unset model files filled in from the weights cache where they were downloaded."""
    out = replace(config)
    sam = weights.cached_path(weights.DEFAULT_SAM)
    if not out.sam_checkpoint and sam.is_file():
        out.sam_checkpoint = str(sam)
    clip = weights.cached_path(weights.DEFAULT_CLIP)
    if _clip_unconfigured(out) and clip.is_file():
        out.clip_model, out.clip_weights = DEFAULT_CLIP_MODEL, str(clip)
    return out


def missing_weights(config: ModelConfig) -> list[KnownWeights]:
    """Registry entries of the default files this configuration needs and nobody has yet."""
    config = with_cached_weights(config)
    missing = []
    if not config.sam_checkpoint:
        missing.append(weights.known(weights.DEFAULT_SAM))
    if _clip_unconfigured(config):
        clip = weights.known(weights.DEFAULT_CLIP)
        if not _in_hub_cache(clip):
            missing.append(clip)
    return missing


def use_file(config: ModelConfig, known: KnownWeights, path: str | Path) -> ModelConfig:
    """`config` with `path` as the local copy of `known` (what "Choose file…" and downloads do)."""
    out = replace(config)
    if known.kind == "sam":
        out.sam_checkpoint = str(path)
    else:
        out.clip_model, out.clip_weights, out.clip_config = DEFAULT_CLIP_MODEL, str(path), ""
        out.clip_pretrained = ""
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


# ------------------------------------------------------------------------------------------ download
class DownloadThread(QThread):
    """Runs `weights.download_known` off the GUI thread; reports by signal (plain data only), each
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
            path = weights.download_known(
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
    """One row per missing file: what it is, its size, a status line, "Download" and "Choose file…"."""

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
        self.missing = {k.name: k for k in missing}
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
            "already have. Until then the "
            "rectangle, polygon and brush tools work without a model."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        layout.addLayout(grid)
        for row, known in enumerate(missing):
            size = f"{known.size / 1e6:.0f} MB" if known.size else "size unknown"
            name = QLabel(f"<b>{known.name}</b> ({size})<br>{known.description}")
            name.setTextFormat(Qt.TextFormat.RichText)
            status = QLabel(self._part_status(known))
            status.setWordWrap(True)
            download = QPushButton("Download")
            download.clicked.connect(lambda _=False, k=known: self.download(k.name))
            choose = QPushButton("Choose file…")
            choose.clicked.connect(lambda _=False, k=known: self.choose_file(k.name))
            grid.addWidget(name, row, 0)
            grid.addWidget(status, row, 1)
            grid.addWidget(download, row, 2)
            grid.addWidget(choose, row, 3)
            self.status[known.name] = status
            self.download_buttons[known.name] = download
            self.choose_buttons[known.name] = choose
        grid.setColumnStretch(1, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setText("Manual tools only")
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _part_status(known: KnownWeights) -> str:
        part = weights.cached_path(known.name).with_name(known.filename + ".part")
        if part.is_file():
            return f"missing; {_mb(part.stat().st_size)} MB already downloaded (resumes)"
        return "missing"

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
            dialog.setLabelText(f"Downloading {known.name}: {_mb(done)} / {_mb(total)} MB")
        else:
            dialog.setMaximum(0)  # busy indicator: the server sent no length
            dialog.setLabelText(f"Downloading {known.name}: {_mb(done)} MB")

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
        self.status[name].setText(f"download failed: {message}")
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
            button.setEnabled(name not in self.done_names)
            self.choose_buttons[name].setEnabled(name not in self.done_names)

    # ------------------------------------------------------------------ local files
    def choose_file(self, name: str, path: str | None = None) -> None:
        """Use a local copy of `name` (asks with a file dialog unless `path` is given)."""
        known = self.missing[name]
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, f"Choose {name}", str(Path.home()), _PATTERNS[known.kind]
            )
        if path:
            self._provided(known, path, f"using {path}")

    def _provided(self, known: KnownWeights, path: str, text: str) -> None:
        self.config = use_file(self.config, known, path)
        stored = self.settings.model_config()
        self.settings.set_model_config(use_file(stored, known, path))
        self.done_names.add(known.name)
        self.status[known.name].setText(text)
        self.download_buttons[known.name].setEnabled(False)
        self.choose_buttons[known.name].setEnabled(False)
        if self.done_names >= set(self.missing):
            self.models_ready.emit(replace(self.config))
            self.accept()

    def reject(self) -> None:
        """Closing cancels a running download (its `.part` file is kept for next time)."""
        if self.thread is not None:
            self.thread.cancel()
            self.thread.wait(10_000)
        super().reject()
