"""Side by side: the same image and clicks through two model choices, in one view.

Model A is the window's engine; model B (another segmenter checkpoint, CLIP model or region head) is set in a
small dialog and built once in the worker (`annotator.app.jobs.run_compare`) (only the region head differs: the models are shared). Each
click replays all clicks through both engines (`annotator.discovery.compare`), timing every
`Engine.segment`; the view overlays A's mask in orange and B's in cyan, lists both top-5 labels next to
each other and shows what each click cost.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QMouseEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.app.jobs import COMPARE, CompareParams, DiscoveryRequest
from annotator.app.session import Session
from annotator.errors import AnnotatorError
from annotator.gui.colors import NEGATIVE_RGB, POSITIVE_RGB
from annotator.gui.overlays import MaskItem
from annotator.gui.settings import ModelConfig
from annotator.gui.worker import EngineWorker

A_RGB, B_RGB = (255, 140, 0), (0, 200, 255)


def other_head(config: ModelConfig) -> ModelConfig:
    """The default model B: the same models with the other region head (pool <-> crop)."""
    return replace(config, region_head="crop" if config.region_head in ("", "pool") else "pool")


def describe(config: ModelConfig) -> str:
    """One line naming a model choice, read from its `ModelSpec` (what the worker builds)."""
    try:
        spec = config.to_spec()
    except AnnotatorError as error:
        return str(error)
    family = spec.segmenter or "auto"
    checkpoint = spec.checkpoint.name if spec.checkpoint is not None else "default"
    clip = spec.clip_model or (spec.clip_config.stem if spec.clip_config else "default CLIP")
    return f"{family} {checkpoint} · CLIP {clip} · head {spec.region_head or 'default'}"


class ModelChoiceDialog(QDialog):
    """Model B: checkpoint, CLIP model / weights / config and region head (prefilled)."""

    FIELDS = (
        "segmenter",
        "checkpoint",
        "clip_model",
        "clip_pretrained",
        "clip_weights",
        "clip_config",
    )

    def __init__(self, config: ModelConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model B")
        self._config = config
        form = QFormLayout(self)
        self.edits: dict[str, QLineEdit] = {}
        for key in self.FIELDS:
            edit = QLineEdit(getattr(config, key))
            self.edits[key] = edit
            form.addRow(key.replace("_", " ").capitalize(), edit)
        self.head = QComboBox()
        self.head.addItems(["", "pool", "crop"])
        self.head.setCurrentText(config.region_head)
        form.addRow("Region head (empty = default)", self.head)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def config(self) -> ModelConfig:
        values = {f.name: getattr(self._config, f.name) for f in fields(ModelConfig)}
        values.update({k: e.text().strip() for k, e in self.edits.items()})
        values["region_head"] = self.head.currentText()
        return ModelConfig(**values)


class _View(QGraphicsView):
    """The image with both masks; left click adds a positive point, right (or Shift) a negative one."""

    clicked = Signal(float, float, bool)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt naming
        p = self.mapToScene(event.position().toPoint())
        rect = self.sceneRect()
        if not rect.contains(p):
            return
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        positive = event.button() == Qt.MouseButton.LeftButton and not shift
        self.clicked.emit(float(p.x()), float(p.y()), positive)


class CompareView(QWidget):
    """A window: the image with A's and B's masks, both label lists, both timings."""

    compared = Signal(object)  # the Comparison shown

    def __init__(
        self, session: Session, worker: EngineWorker, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.session, self.worker = session, worker
        self.setWindowTitle("Compare models")
        self.resize(1000, 700)
        self.config_b = other_head(session.config)
        self.points: list[tuple[float, float, bool]] = []
        self.box: tuple[float, float, float, float] | None = None
        self.image_id: int | None = None
        self.path = ""
        self.comparison: Any = None
        self._req = -1
        self._markers: list[QGraphicsItem] = []
        self._scene = QGraphicsScene(self)
        self.view = _View(self._scene)
        self.view.setBackgroundBrush(QBrush(QColor(40, 40, 40)))
        self.view.clicked.connect(self.add_point)
        self._image = QGraphicsPixmapItem()
        self._scene.addItem(self._image)
        self.masks = {"a": MaskItem(self._scene, 10), "b": MaskItem(self._scene, 12)}
        self.title_a, self.title_b = QLabel(), QLabel()
        self.lists = {"a": QListWidget(), "b": QListWidget()}
        self.times = {"a": QLabel(), "b": QLabel()}
        self.iou = QLabel("Click on the image: left adds, right removes")
        b_button = QPushButton("Model B…")
        b_button.clicked.connect(lambda: self.choose_b())
        clear = QPushButton("Clear clicks")
        clear.clicked.connect(lambda: self.clear())
        top = QHBoxLayout()
        top.addWidget(self.iou, 1)
        top.addWidget(clear)
        top.addWidget(b_button)
        grid = QGridLayout()
        for col, (side, rgb, title) in enumerate(
            (("a", A_RGB, self.title_a), ("b", B_RGB, self.title_b))
        ):
            title.setStyleSheet(f"color: rgb{rgb}; font-weight: bold")
            title.setWordWrap(True)
            grid.addWidget(title, 0, col)
            grid.addWidget(self.lists[side], 1, col)
            grid.addWidget(self.times[side], 2, col)
            self.lists[side].setMaximumHeight(130)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(grid)
        self._titles()
        worker.discovered.connect(self.on_result)
        worker.failed.connect(self.on_failed)

    def open_current(self) -> None:
        """Show the window's current image and its clicks, and bring the view up."""
        s = self.session
        if s.image_id is not None:
            self.set_image(s.image_id, s.image_path(), s.display_image, s.points, s.box)
        self.show()
        self.raise_()

    # ------------------------------------------------------------------ inputs
    def set_image(
        self, image_id: int, path: str, image: QImage | None, points=(), box=None
    ) -> None:
        """The image to compare on (the window's current one) and its clicks so far."""
        self.image_id, self.path = image_id, path
        if image is not None:
            self._image.setPixmap(QPixmap.fromImage(image))
            self._scene.setSceneRect(QRectF(0, 0, image.width(), image.height()))
        self.points, self.box = [tuple(p) for p in points], box
        self._show_side("a", None)
        self._show_side("b", None)
        self._draw_points()
        self.fit()
        if self.points or self.box is not None:
            self.run()

    def fit(self) -> None:
        self.view.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        self.fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit()

    def choose_b(self) -> None:
        dialog = ModelChoiceDialog(self.config_b, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.set_config_b(dialog.config())

    def set_config_b(self, config: ModelConfig) -> None:
        self.config_b = config
        self._titles()
        self.run()

    def add_point(self, x: float, y: float, positive: bool) -> None:
        self.points.append((x, y, positive))
        self._draw_points()
        self.run()

    def clear(self) -> None:
        self.points, self.box, self._req, self.comparison = [], None, -1, None
        self._draw_points()
        self._show_side("a", None)
        self._show_side("b", None)
        self.iou.setText("Click on the image: left adds, right removes")

    def run(self) -> None:
        """Send the clicks through both models (in the worker); the newest request wins."""
        if self.image_id is None or (not self.points and self.box is None):
            return
        if not self.session.engine_ready:
            self.iou.setText("The models are not loaded")
            return
        try:
            spec_b = self.config_b.to_spec()  # the worker's cache folder is used for it
        except AnnotatorError as error:
            self.iou.setText(f"Model B: {error}")
            return
        self._req = self.session.next_id()
        params = CompareParams(spec_b, tuple(self.points), self.box)
        self.worker.discover(DiscoveryRequest(self._req, self.image_id, self.path, COMPARE, params))
        self.iou.setText("Comparing… (model B loads and encodes the image the first time)")

    # ------------------------------------------------------------------ results
    def on_result(self, kind: str, image_id: int, request_id: int, comparison: Any) -> None:
        if kind != COMPARE or request_id != self._req or image_id != self.image_id:
            return
        self._req = -1
        self.comparison = comparison
        self._show_side("a", comparison.a)
        self._show_side("b", comparison.b)
        self.iou.setText(
            f"mask IoU A/B {comparison.iou:.3f} · areas {comparison.a.area} / {comparison.b.area} px"
        )
        self.compared.emit(comparison)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == COMPARE and request_id == self._req:
            self._req = -1
            self.iou.setText(f"Compare failed: {message}")

    def _show_side(self, side: str, result: Any) -> None:
        listing, item = self.lists[side], self.masks[side]
        listing.clear()
        if result is None:
            item.set_visible(False)
            self.times[side].setText("")
            return
        rgb = A_RGB if side == "a" else B_RGB
        item.show_mask(result.mask, rgb, 90 if side == "a" else 60, 2.0, dashed=side == "b")
        item.set_visible(True)
        for i, (name, score) in enumerate(result.labels, start=1):
            listing.addItem(f"{i}   {name}   {score:.0%}")
        clicks = ", ".join(f"{t * 1e3:.1f}" for t in result.click_seconds)
        self.times[side].setText(
            f"embed {result.embed_seconds * 1e3:.1f} ms · per click {clicks} ms · "
            f"SAM score {result.score:.2f}"
        )

    def _titles(self) -> None:
        self.title_a.setText(f"A (orange): {describe(self.session.config)}")
        self.title_b.setText(f"B (cyan): {describe(self.config_b)}")

    def _draw_points(self) -> None:
        for marker in self._markers:
            self._scene.removeItem(marker)
        self._markers = []
        for x, y, positive in self.points:
            marker = QGraphicsEllipseItem(-5, -5, 10, 10)
            marker.setBrush(QBrush(QColor(*(POSITIVE_RGB if positive else NEGATIVE_RGB))))
            pen = QPen(QColor(255, 255, 255), 1.5)
            pen.setCosmetic(True)
            marker.setPen(pen)
            marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            marker.setPos(QPointF(x, y))
            marker.setZValue(30)
            self._scene.addItem(marker)
            self._markers.append(marker)
