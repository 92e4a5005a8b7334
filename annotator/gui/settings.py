"""Typed access to `QSettings`: last folder, window geometry, model paths, prefetch budget.

Command-line arguments win over stored values; stored values win over defaults. Tests pass their own
INI file so they never touch the user's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
)


@dataclass
class ModelConfig:
    """Everything the worker needs to build an `Engine` (plain data, crosses threads)."""

    sam_checkpoint: str = ""
    clip_model: str = ""
    clip_pretrained: str = ""
    clip_weights: str = ""
    clip_config: str = ""
    region_head: str = ""
    device: str = "auto"
    vocabulary: str = ""  # a file path or a shipped name ("default", "coco"...); "" = default

    def missing_files(self) -> list[str]:
        """Human-readable list of configured-but-absent or required-but-unset model files."""
        missing = []
        if not self.sam_checkpoint:
            missing.append("SAM checkpoint (not configured)")
        elif not Path(self.sam_checkpoint).is_file():
            missing.append(f"SAM checkpoint {self.sam_checkpoint}")
        for label, value in (
            ("CLIP weights", self.clip_weights),
            ("CLIP config", self.clip_config),
        ):
            if value and not Path(value).is_file():
                missing.append(f"{label} {value}")
        return missing


class AppSettings:
    """A thin typed wrapper; `path` selects an INI file (tests), else the platform's store."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._q = QSettings("annotator", "annotator")
        else:
            self._q = QSettings(str(path), QSettings.Format.IniFormat)

    def _str(self, key: str, default: str = "") -> str:
        value = self._q.value(key, default)
        return "" if value is None else str(value)

    def model_config(self) -> ModelConfig:
        """The stored model configuration."""
        cfg = ModelConfig()
        for f in fields(ModelConfig):
            setattr(cfg, f.name, self._str(f"models/{f.name}", getattr(cfg, f.name)))
        return cfg

    def set_model_config(self, cfg: ModelConfig) -> None:
        for f in fields(ModelConfig):
            self._q.setValue(f"models/{f.name}", getattr(cfg, f.name))
        self._q.sync()

    @property
    def last_folder(self) -> str:
        return self._str("session/last_folder")

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self._q.setValue("session/last_folder", folder)
        self._q.sync()

    @property
    def prefetch_mb(self) -> int:
        """Memory budget for embeddings kept in the worker (current image plus prefetched ones)."""
        try:
            return int(self._q.value("models/prefetch_mb", 1024))
        except (TypeError, ValueError):
            return 1024

    @prefetch_mb.setter
    def prefetch_mb(self, value: int) -> None:
        self._q.setValue("models/prefetch_mb", int(value))
        self._q.sync()

    @property
    def polygons_export(self) -> bool:
        return self._str("export/polygons", "false").lower() == "true"

    @polygons_export.setter
    def polygons_export(self, value: bool) -> None:
        self._q.setValue("export/polygons", "true" if value else "false")

    def geometry(self) -> QByteArray | None:
        value = self._q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def state(self) -> QByteArray | None:
        value = self._q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)
        self._q.sync()


def merge_args(cfg: ModelConfig, args: object | None) -> ModelConfig:
    """Command-line values (an argparse namespace or anything with those attributes) override `cfg`."""
    if args is None:
        return cfg
    merged = ModelConfig(**{f.name: getattr(cfg, f.name) for f in fields(ModelConfig)})
    for f in fields(ModelConfig):
        value = getattr(args, f.name, None)
        if value not in (None, ""):
            setattr(merged, f.name, str(value))
    return merged


class SettingsDialog(QDialog):
    """Model files, device, vocabulary and prefetch budget; OK reloads the models in the worker."""

    def __init__(self, config: ModelConfig, prefetch_mb: int, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self._edits: dict[str, QLineEdit] = {}
        files = {
            "sam_checkpoint": ("SAM checkpoint", "Checkpoints (*.pth *.pt);;All files (*)"),
            "clip_weights": ("CLIP weights", "Weights (*.bin *.pt *.pth *.safetensors);;All (*)"),
            "clip_config": ("CLIP config", "JSON (*.json)"),
            "vocabulary": ("Vocabulary file", "Text (*.txt)"),
        }
        for key in (
            "sam_checkpoint",
            "clip_model",
            "clip_pretrained",
            "clip_weights",
            "clip_config",
        ):
            self._row(form, key, getattr(config, key), files.get(key))
        self.head = QComboBox()
        self.head.addItems(["", "pool", "crop"])
        self.head.setCurrentText(config.region_head)
        form.addRow("Region head (empty = default)", self.head)
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setCurrentText(config.device or "auto")
        form.addRow("Device", self.device)
        self._row(form, "vocabulary", config.vocabulary, files["vocabulary"])
        self._edits["vocabulary"].setPlaceholderText("default, coco, lvis, imagenet21k or a file")
        self.budget = QSpinBox()
        self.budget.setRange(64, 262144)
        self.budget.setSuffix(" MB")
        self.budget.setValue(prefetch_mb)
        form.addRow("Prefetch memory budget", self.budget)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _row(self, form: QFormLayout, key: str, value: str, browse) -> None:
        edit = QLineEdit(value)
        self._edits[key] = edit
        label = key.replace("_", " ").capitalize()
        if browse is None:
            form.addRow(label, edit)
            return
        title, pattern = browse
        button = QPushButton("…")
        button.setMaximumWidth(30)
        button.clicked.connect(lambda: self._browse(edit, title, pattern))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(button)
        form.addRow(title, row)

    def _browse(self, edit: QLineEdit, title: str, pattern: str) -> None:
        name, _ = QFileDialog.getOpenFileName(self, title, edit.text(), pattern)
        if name:
            edit.setText(name)

    def values(self) -> tuple[ModelConfig, int]:
        """The edited configuration and budget."""
        cfg = ModelConfig(**{k: e.text().strip() for k, e in self._edits.items()})
        cfg.region_head = self.head.currentText()
        cfg.device = self.device.currentText().strip() or "auto"
        return cfg, self.budget.value()
