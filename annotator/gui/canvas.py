"""The image view: the picture, mask overlays with outlines, the session's prompts, zoom and pan.

What the mouse and keys mean is translated in `gui/canvas_input.py` (a mixin of `Canvas`); this
module draws. The prompts (points, box) belong to the annotating session (`app.annotate`): a click
is a session call, and the markers are redrawn from the session's `prompts` event.
Coordinates are image pixels (the image item sits at the scene origin with scale 1). Overlays are ARGB
images of each mask's bounding box only, plus a cosmetic outline path, so an 8k x 8k image with many
masks stays light. The canvas knows nothing of the store or the engine: it shows what it is given and
reports what the user did to the session, or by signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
)

from annotator.app.annotate import Annotating
from annotator.app.session import Session
from annotator.gui.canvas_input import CanvasInput, Tool
from annotator.gui.colors import NEGATIVE_RGB, POSITIVE_RGB, PREVIEW_RGB
from annotator.gui.overlays import MaskItem

__all__ = ["Canvas", "Tool"]

Point = tuple[float, float, bool]


class Canvas(CanvasInput, QGraphicsView):
    """QGraphicsView with the image, overlays and tools. Clicks and boxes go to the annotating
    session it is attached to (`attach`); edits, accepts and picks are emitted."""

    prompts_changed = Signal()  # the canvas sent a point or box to the session (after the call)
    shape_drawn = Signal(object)  # bool mask from the rectangle / polygon tools
    mask_edited = Signal(object, object)  # annotation id (None = the preview), new bool mask
    accept_requested = Signal()  # Space tapped (Space + drag pans instead)
    cycle_requested = Signal()  # Tab
    annotation_picked = Signal(int)  # Ctrl + click on a mask
    zoom_changed = Signal(float)
    text_typed = Signal(str)  # a letter typed while a mask waits: it starts the label

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setBackgroundBrush(QBrush(QColor(40, 40, 40)))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # which key context applies (`app.keys.CONTEXTS`): the window says whether a mask waits
        self.key_context: Callable[[], str] = lambda: "canvas"
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._scene.addItem(self._image_item)
        self._size: tuple[int, int] | None = None  # (H, W)
        self.tool = Tool.POINT
        # the prompts live in the annotating session; alone (tests) the canvas has a bare one
        self.prompts: Any = None
        self.attach(Annotating(Session(), None, None))
        self.brush_radius = 12.0
        self._markers: list[QGraphicsItem] = []
        self._box_item = self._make_rect_item(QColor(*PREVIEW_RGB))
        self._drag_item = self._make_rect_item(QColor(255, 255, 255))
        self._poly_item = QGraphicsPathItem()
        pen = QPen(QColor(255, 220, 0), 2)
        pen.setCosmetic(True)
        self._poly_item.setPen(pen)
        self._poly_item.setZValue(30)
        self._scene.addItem(self._poly_item)
        self.polygon: list[tuple[float, float]] = []
        self._hover: QPointF | None = None
        self._brush_item = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255), 1)
        pen.setCosmetic(True)
        self._brush_item.setPen(pen)
        self._brush_item.setZValue(40)
        self._brush_item.setVisible(False)
        self._scene.addItem(self._brush_item)
        self._preview = MaskItem(self._scene, 20)
        self.preview_mask: np.ndarray | None = None
        self._overlays: dict[int, MaskItem] = {}
        self.masks: dict[int, np.ndarray] = {}
        self._colors: dict[int, tuple[int, int, int]] = {}
        self._visible: dict[int, bool] = {}
        self.selected: int | None = None
        self._press: QPointF | None = None  # viewport position of a left press
        self._press_scene: QPointF | None = None
        self._pan_from: QPointF | None = None
        self._space = False
        self._space_panned = False
        self._paint: tuple[object, np.ndarray, QPointF] | None = None  # target, mask, last point

    def _make_rect_item(self, color: QColor) -> QGraphicsRectItem:
        item = QGraphicsRectItem()
        pen = QPen(color, 2)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(30)
        item.setVisible(False)
        self._scene.addItem(item)
        return item

    # ------------------------------------------------------------------ content
    def set_image(self, image: QImage) -> None:
        """Show a new image; prompts, preview and overlays of the previous one are cleared."""
        self.clear_prompts()
        self.clear_annotations()
        self.set_preview(None)
        self._image_item.setPixmap(QPixmap.fromImage(image))
        self._size = (image.height(), image.width())
        self._scene.setSceneRect(QRectF(0, 0, image.width(), image.height()))
        self.fit()

    def clear_image(self) -> None:
        self.clear_prompts()
        self.clear_annotations()
        self.set_preview(None)
        self._image_item.setPixmap(QPixmap())
        self._size = None

    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the shown image, None before one is loaded."""
        return self._size

    def fit(self) -> None:
        """Fit the whole image in the window."""
        if self._size is None:
            return
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom())

    def zoom(self) -> float:
        return float(self.transform().m11())

    def zoom_by(self, factor: float) -> None:
        new = self.zoom() * factor
        if 0.01 <= new <= 64:
            self.scale(factor, factor)
            self.zoom_changed.emit(self.zoom())

    def set_preview(self, mask: np.ndarray | None) -> None:
        """The proposal not yet accepted (dashed outline, blue)."""
        self.preview_mask = mask
        if mask is None:
            self._preview.set_visible(False)
            return
        self._preview.show_mask(mask, PREVIEW_RGB, 110, 2.0, dashed=True)
        self._preview.set_visible(True)

    def set_annotation(self, ann_id: int, mask: np.ndarray, rgb: tuple[int, int, int]) -> None:
        """Add or replace the overlay of one accepted annotation."""
        item = self._overlays.get(ann_id)
        if item is None:
            item = self._overlays[ann_id] = MaskItem(self._scene, 10)
        self.masks[ann_id] = mask
        self._colors[ann_id] = rgb
        self._render(ann_id)
        item.set_visible(self._visible.setdefault(ann_id, True))

    def _render(self, ann_id: int) -> None:
        selected = ann_id == self.selected
        self._overlays[ann_id].show_mask(
            self.masks[ann_id],
            self._colors[ann_id],
            115 if selected else 80,
            3.0 if selected else 1.5,
        )

    def remove_annotation(self, ann_id: int) -> None:
        item = self._overlays.pop(ann_id, None)
        if item is not None:
            item.remove(self._scene)
        self.masks.pop(ann_id, None)
        self._colors.pop(ann_id, None)
        self._visible.pop(ann_id, None)
        if self.selected == ann_id:
            self.selected = None

    def clear_annotations(self) -> None:
        for ann_id in list(self._overlays):
            self.remove_annotation(ann_id)

    def set_visible(self, ann_id: int, visible: bool) -> None:
        self._visible[ann_id] = visible
        if ann_id in self._overlays:
            self._overlays[ann_id].set_visible(visible)

    def set_selected(self, ann_id: int | None) -> None:
        previous, self.selected = self.selected, ann_id
        for key in (previous, ann_id):
            if key is not None and key in self._overlays:
                self._render(key)

    # ------------------------------------------------------------------ issue 26: large images
    def set_large_image(self, item: QGraphicsItem, width: int, height: int) -> None:
        """Show a large image drawn by `item` (gui/large_display.PyramidItem, tiles of its
        pyramid) instead of one pixmap; the caller removes the item when another image comes."""
        self.clear_image()
        self._scene.addItem(item)
        self._size = (height, width)
        self._scene.setSceneRect(QRectF(0, 0, width, height))
        self.fit()

    def preview_item(self) -> MaskItem:
        return self._preview

    # ------------------------------------------------------------------ prompts
    def attach(self, annotating: Any) -> None:
        """Send clicks and boxes to `annotating` (an `app.annotate.Annotating`) and draw its
        session's prompts whenever they change."""
        if self.prompts is not None:
            self.prompts.session.events.prompts.disconnect(self._prompts_changed)
        self.prompts = annotating
        annotating.session.events.prompts.connect(self._prompts_changed)

    @property
    def points(self) -> list[Point]:
        """The session's points (read-only here)."""
        return list(self.prompts.session.points)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        return self.prompts.session.box

    def _prompts_changed(self) -> None:
        """The session's prompts changed: redraw them; none left also drops an unfinished
        polygon, as accepting or Esc always did."""
        if not self.has_prompts():
            self.polygon = []
        self._redraw_prompts()

    def clear_prompts(self) -> None:
        """Forget points, box (in the session) and an unfinished polygon (Esc, a new image)."""
        self.polygon = []
        if self.has_prompts():
            self.prompts.session.set_prompts((), None)
        self._redraw_prompts()

    def add_point(self, x: float, y: float, positive: bool) -> None:
        self.prompts.add_point(x, y, positive)
        self.prompts_changed.emit()

    def set_box(self, box: tuple[float, float, float, float]) -> None:
        self.prompts.set_box(box)
        self.prompts_changed.emit()

    def has_prompts(self) -> bool:
        session = self.prompts.session
        return bool(session.points) or session.box is not None

    def _redraw_prompts(self) -> None:
        for item in self._markers:
            self._scene.removeItem(item)
        self._markers = []
        for x, y, positive in self.points:
            rgb = POSITIVE_RGB if positive else NEGATIVE_RGB
            item = QGraphicsEllipseItem(-5, -5, 10, 10)
            item.setBrush(QBrush(QColor(*rgb)))
            pen = QPen(QColor(255, 255, 255), 1.5)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            item.setPos(x, y)
            item.setZValue(35)
            self._scene.addItem(item)
            self._markers.append(item)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            self._box_item.setRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        self._box_item.setVisible(self.box is not None)
        self._draw_polygon()

    def _draw_polygon(self) -> None:
        path = QPainterPath()
        if self.polygon:
            path.moveTo(*self.polygon[0])
            for x, y in self.polygon[1:]:
                path.lineTo(x, y)
            if self._hover is not None and self.tool is Tool.POLYGON:
                path.lineTo(self._hover)
        self._poly_item.setPath(path)

    def close_polygon(self) -> bool:
        """Finish the polygon being drawn; True when it had at least three vertices."""
        if len(self.polygon) < 3 or self._size is None:
            return False
        mask = np.zeros(self._size, np.uint8)
        pts = np.round(np.asarray(self.polygon) - 0.5).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
        self.polygon = []
        self._draw_polygon()
        self.shape_drawn.emit(mask.astype(bool))
        return True

    # ------------------------------------------------------------------ queries
    def annotation_at(self, x: float, y: float) -> int | None:
        """The smallest visible mask under a pixel."""
        hits = [
            (int(m.sum()), i)
            for i, m in self.masks.items()
            if self._visible.get(i, True) and m[int(y), int(x)]
        ]
        return min(hits)[1] if hits else None
