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
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
)

from annotator.app.model_files import checkpoint_problem, family_choices, family_titles
from annotator.spec import PRECISIONS, ModelSpec


@dataclass
class ModelConfig:
    """The model choice as the settings dialog edits and QSettings stores it (strings, "" = unset);
    `to_spec()` turns it into the `ModelSpec` the engine is built from (plain data, crosses threads).
    """

    segmenter: str = ""  # a family of models.registry (sam, sam2, edgetam, sam_hq); "" = default
    checkpoint: str = ""  # the segmenter's file or transformers folder; "" = the cached default
    clip_model: str = ""
    clip_pretrained: str = ""
    clip_weights: str = ""
    clip_config: str = ""
    region_head: str = ""
    device: str = "auto"
    vocabulary: str = ""  # a file path or a shipped name ("default", "coco"...); "" = default
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (models/precision.py)

    def to_spec(self, cache_dir: str | None = None) -> ModelSpec:
        """The one model description (`annotator.spec`): what the worker builds the engine from.
        Raises AnnotatorError for a value the spec refuses (an unknown region head)."""
        saved = {f.name: getattr(self, f.name) for f in fields(self)}
        return ModelSpec.from_settings({**saved, "cache_dir": cache_dir or ""})

    def missing_files(self) -> list[str]:
        """Human-readable list of configured-but-absent or required-but-unset model files.

        A checkpoint may be a file (SAM 1 `.pth`) or a folder (the transformers families): both
        count as present; whether it is the right family is `checkpoint_problem`'s question."""
        missing = []
        if not self.checkpoint:
            missing.append("segmenter checkpoint (not configured)")
        elif not Path(self.checkpoint).exists():
            missing.append(f"segmenter checkpoint {self.checkpoint}")
        for label, value in (
            ("CLIP weights", self.clip_weights),
            ("CLIP config", self.clip_config),
        ):
            if value and not Path(value).is_file():
                missing.append(f"{label} {value}")
        return missing

    def segmenter_name(self) -> str:
        """What the window calls the segmenter: the checkpoint's file or folder name, else the
        chosen family's readable name, else "default segmenter"."""
        if self.checkpoint:
            return Path(self.checkpoint).name or self.checkpoint
        if self.segmenter:
            return family_titles().get(self.segmenter, self.segmenter)
        return "default segmenter"

    def checkpoint_problem(self) -> str | None:
        """One line when the checkpoint is not what the chosen family loads (a SAM 2 folder with
        family sam, a config.json of another model), else None. Reads only the file's name or
        the folder's config.json, so the GUI thread may ask before sending a load to the worker."""
        if not self.checkpoint or not Path(self.checkpoint).exists():
            return None  # unset or absent: `missing_files` names it
        return checkpoint_problem(self.checkpoint, self.segmenter)


# The family names the settings dialog shows, in its order ("" = the device's default).
FAMILY_NAMES = {  # the settings list: annotator/families.py's records
    "": "Default for this device",
    **family_choices(),
}
CHECKPOINT_PATTERN = "Checkpoints (*.pth *.pt *.safetensors);;All files (*)"
LEGACY_CHECKPOINT_KEY = "models/sam_checkpoint"  # before the families: a SAM 1 file only


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
        """The stored model configuration. Settings of older versions name a SAM 1 file under
        `models/sam_checkpoint`: it becomes the checkpoint (family sam) while none is stored."""
        cfg = ModelConfig()
        for f in fields(ModelConfig):
            setattr(cfg, f.name, self._str(f"models/{f.name}", getattr(cfg, f.name)))
        legacy = self._str(LEGACY_CHECKPOINT_KEY)
        if legacy and not cfg.checkpoint:
            cfg.checkpoint, cfg.segmenter = legacy, cfg.segmenter or "sam"
        return cfg

    def set_model_config(self, cfg: ModelConfig) -> None:
        """Store `cfg`. The legacy key is kept in step: it names the checkpoint while that is a
        SAM 1 file (an older version started on these settings still finds it) and is removed
        otherwise, so a checkpoint cleared here is not read back from it."""
        for f in fields(ModelConfig):
            self._q.setValue(f"models/{f.name}", getattr(cfg, f.name))
        if (
            cfg.checkpoint
            and cfg.segmenter in ("", "sam")
            and Path(cfg.checkpoint).suffix
            in (
                ".pth",
                ".pt",
            )
        ):
            self._q.setValue(LEGACY_CHECKPOINT_KEY, cfg.checkpoint)
        else:
            self._q.remove(LEGACY_CHECKPOINT_KEY)
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
    sam_checkpoint = getattr(args, "sam_checkpoint", None)
    if sam_checkpoint not in (None, "") and getattr(args, "checkpoint", None) in (None, ""):
        merged.checkpoint, merged.segmenter = str(sam_checkpoint), "sam"  # = --segmenter sam
    elif getattr(args, "checkpoint", None) not in (None, "") and not getattr(
        args, "segmenter", None
    ):
        merged.segmenter = ""  # a checkpoint from the command line says its own family
    return merged


class SettingsDialog(QDialog):
    """Segmenter family and checkpoint, CLIP files, device, vocabulary and prefetch budget; OK
    reloads the models in the worker. A checkpoint of another family than the one chosen is
    one line in the dialog (`error`), and OK waits until it is fixed."""

    def __init__(self, config: ModelConfig, prefetch_mb: int, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self._edits: dict[str, QLineEdit] = {}
        files = {
            "clip_weights": ("CLIP weights", "Weights (*.bin *.pt *.pth *.safetensors);;All (*)"),
            "clip_config": ("CLIP config", "JSON (*.json)"),
            "vocabulary": ("Vocabulary file", "Text (*.txt)"),
        }
        self.segmenter = QComboBox()
        for family, name in FAMILY_NAMES.items():
            self.segmenter.addItem(name, family)
        index = self.segmenter.findData(config.segmenter)
        if index < 0:  # a family this version does not know: shown, so OK does not drop it
            self.segmenter.addItem(config.segmenter, config.segmenter)
            index = self.segmenter.count() - 1
        self.segmenter.setCurrentIndex(index)
        form.addRow("Segmenter", self.segmenter)
        self._checkpoint_row(form, config.checkpoint)
        for key in ("clip_model", "clip_pretrained", "clip_weights", "clip_config"):
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
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentText(
            config.precision if config.precision in PRECISIONS else "auto"
        )
        self.precision.setToolTip(
            "auto: per model part, what this machine runs faster and is proven equal to fp32"
        )
        form.addRow("Precision", self.precision)
        self._row(form, "vocabulary", config.vocabulary, files["vocabulary"])
        self._edits["vocabulary"].setPlaceholderText("default, coco, lvis, imagenet21k or a file")
        self.budget = QSpinBox()
        self.budget.setRange(64, 262144)
        self.budget.setSuffix(" MB")
        self.budget.setValue(prefetch_mb)
        form.addRow("Prefetch memory budget", self.budget)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828")
        self.error.setVisible(False)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _checkpoint_row(self, form: QFormLayout, value: str) -> None:
        """A line edit with "File…" (a SAM 1 `.pth`, or a `.safetensors` inside a transformers
        folder: its folder is used) and "Folder…" (a transformers folder)."""
        edit = QLineEdit(value)
        edit.setPlaceholderText("empty = the default weights (downloaded on first start)")
        self._edits["checkpoint"] = edit
        self.checkpoint_file = QPushButton("File…")
        self.checkpoint_file.clicked.connect(self._browse_checkpoint_file)
        self.checkpoint_folder = QPushButton("Folder…")
        self.checkpoint_folder.clicked.connect(self._browse_checkpoint_folder)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(self.checkpoint_file)
        row.addWidget(self.checkpoint_folder)
        form.addRow("Checkpoint", row)

    def _browse_checkpoint_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Segmenter checkpoint", self._edits["checkpoint"].text(), CHECKPOINT_PATTERN
        )
        if name:
            path = Path(name)
            # transformers load a folder: a picked model.safetensors / config.json means its folder
            chosen = (
                path.parent if path.suffix == ".safetensors" or path.suffix == ".json" else path
            )
            self._edits["checkpoint"].setText(str(chosen))

    def _browse_checkpoint_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(
            self, "Segmenter folder (config.json + model.safetensors)",
            self._edits["checkpoint"].text(),
        )  # fmt: skip
        if name:
            self._edits["checkpoint"].setText(name)

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
        cfg.segmenter = str(self.segmenter.currentData() or "")
        cfg.region_head = self.head.currentText()
        cfg.device = self.device.currentText().strip() or "auto"
        cfg.precision = self.precision.currentText()
        return cfg, self.budget.value()

    def accept(self) -> None:
        """OK, unless the checkpoint is of another family than the one chosen (then one line)."""
        problem = self.values()[0].checkpoint_problem()
        self.error.setText(problem or "")
        self.error.setVisible(problem is not None)
        if problem is None:
            super().accept()
