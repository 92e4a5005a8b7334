"""The image view: the picture, mask overlays with outlines, prompts, zoom and pan, and the drawing tools.

Coordinates are image pixels (the image item sits at the scene origin with scale 1). Overlays are ARGB
images of each mask's bounding box only, plus a cosmetic outline path, so an 8k x 8k image with many
masks stays light. The canvas knows nothing of the store or the engine: it shows what it is given and
reports what the user did by signal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
)

from annotator.app.keys import ACTIONS, TYPE
from annotator.gui.colors import NEGATIVE_RGB, POSITIVE_RGB, PREVIEW_RGB
from annotator.gui.keymap import key_of
from annotator.gui.overlays import MaskItem

Point = tuple[float, float, bool]


class Tool(enum.Enum):
    POINT = "point"  # SAM: left positive, right / shift+left negative
    BOX = "box"  # SAM: drag a box, then click points to refine
    RECT = "rect"  # manual rectangle, no model needed
    POLYGON = "polygon"  # manual polygon, no model needed
    BRUSH = "brush"  # add to the selected mask
    ERASER = "eraser"  # remove from the selected mask


class Canvas(QGraphicsView):
    """QGraphicsView with the image, overlays and tools; emits what the user asked for."""

    prompts_changed = Signal()  # points or box changed: time to decode
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
        self.points: list[Point] = []
        self.box: tuple[float, float, float, float] | None = None
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
    def clear_prompts(self) -> None:
        """Forget points, box and an unfinished polygon (Esc)."""
        self.points = []
        self.box = None
        self.polygon = []
        self._redraw_prompts()

    def show_prompts(self, points, box) -> None:
        """Draw the session's prompts (`app.annotate` owns them); none left also drops an
        unfinished polygon, as accepting or Esc always did."""
        self.points = list(points)
        self.box = box
        if not self.points and box is None:
            self.polygon = []
        self._redraw_prompts()

    def add_point(self, x: float, y: float, positive: bool) -> None:
        self.points.append((x, y, positive))
        self._redraw_prompts()
        self.prompts_changed.emit()

    def set_box(self, box: tuple[float, float, float, float]) -> None:
        self.box = box
        self._redraw_prompts()
        self.prompts_changed.emit()

    def has_prompts(self) -> bool:
        return bool(self.points) or self.box is not None

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

    # ------------------------------------------------------------------ tools
    def set_tool(self, tool: Tool) -> None:
        self.tool = tool
        self.polygon = []
        self._draw_polygon()
        self._brush_item.setVisible(False)
        cross = tool in (Tool.POINT, Tool.BOX, Tool.RECT, Tool.POLYGON)
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if cross else Qt.CursorShape.BlankCursor
        )

    def _scene_point(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def _clamped(self, p: QPointF) -> tuple[float, float]:
        h, w = self._size or (1, 1)
        return min(max(p.x(), 0.0), w - 0.001), min(max(p.y(), 0.0), h - 0.001)

    def _inside(self, p: QPointF) -> bool:
        if self._size is None:
            return False
        h, w = self._size
        return 0 <= p.x() < w and 0 <= p.y() < h

    def annotation_at(self, x: float, y: float) -> int | None:
        """The smallest visible mask under a pixel."""
        hits = [
            (int(m.sum()), i)
            for i, m in self.masks.items()
            if self._visible.get(i, True) and m[int(y), int(x)]
        ]
        return min(hits)[1] if hits else None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt naming
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            self._space and button == Qt.MouseButton.LeftButton
        ):
            self._pan_from = event.position()
            self._space_panned = True
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        p = self._scene_point(event)
        if self._size is None or not self._inside(p):
            return
        x, y = self._clamped(p)
        mods = event.modifiers()
        if mods & Qt.KeyboardModifier.ControlModifier and button == Qt.MouseButton.LeftButton:
            hit = self.annotation_at(x, y)
            if hit is not None:
                self.annotation_picked.emit(hit)
            return
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        left, right = button == Qt.MouseButton.LeftButton, button == Qt.MouseButton.RightButton
        if self.tool is Tool.POINT and (left or right):
            self.add_point(x, y, left and not shift)
        elif self.tool in (Tool.BOX, Tool.RECT) and left and not shift:
            self._press, self._press_scene = event.position(), QPointF(x, y)
        elif self.tool is Tool.BOX and (right or shift):
            self.add_point(x, y, False)
        elif self.tool is Tool.POLYGON and left:
            if len(self.polygon) >= 3 and self._near_first(event):
                self.close_polygon()
            else:
                self.polygon.append((x, y))
                self._draw_polygon()
        elif self.tool is Tool.POLYGON and right and self.polygon:
            self.polygon.pop()
            self._draw_polygon()
        elif self.tool in (Tool.BRUSH, Tool.ERASER) and left:
            target = self.selected if self.selected is not None else None
            base = self.masks.get(target) if target is not None else self.preview_mask
            if base is None:
                return
            self._paint = (target, base.copy(), QPointF(x, y))
            self._paint_to(QPointF(x, y))

    def _near_first(self, event: QMouseEvent) -> bool:
        first = self.mapFromScene(QPointF(*self.polygon[0]))
        return (QPointF(first) - event.position()).manhattanLength() < 10

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        p = self._scene_point(event)
        self._hover = p
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            r = self.brush_radius
            self._brush_item.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
            self._brush_item.setVisible(True)
            if self._paint is not None:
                self._paint_to(p)
            return
        if self._press is not None:
            x, y = self._clamped(p)
            self._drag_item.setRect(QRectF(self._press_scene, QPointF(x, y)).normalized())
            self._drag_item.setVisible(True)
        if self.tool is Tool.POLYGON and self.polygon:
            self._draw_polygon()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self.set_tool(self.tool)
            return
        if self._paint is not None and event.button() == Qt.MouseButton.LeftButton:
            target, mask, _ = self._paint
            self._paint = None
            self.mask_edited.emit(target, mask)
            return
        if self._press is None or event.button() != Qt.MouseButton.LeftButton:
            return
        start, start_scene = self._press, self._press_scene
        self._press = self._press_scene = None
        self._drag_item.setVisible(False)
        x, y = self._clamped(self._scene_point(event))
        dragged = (event.position() - start).manhattanLength() > 4
        box = (
            min(start_scene.x(), x),
            min(start_scene.y(), y),
            max(start_scene.x(), x),
            max(start_scene.y(), y),
        )
        if self.tool is Tool.BOX:
            if dragged:
                self.set_box(box)
            else:
                self.add_point(x, y, True)
        elif self.tool is Tool.RECT and dragged and self._size is not None:
            mask = np.zeros(self._size, bool)
            mask[int(box[1]) : int(np.ceil(box[3])), int(box[0]) : int(np.ceil(box[2]))] = True
            self.shape_drawn.emit(mask)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.tool is Tool.POLYGON and event.button() == Qt.MouseButton.LeftButton:
            self.close_polygon()
            return
        self.mousePressEvent(event)

    def _paint_to(self, p: QPointF) -> None:
        target, mask, last = self._paint
        stroke = np.zeros(mask.shape, np.uint8)
        r = max(1, int(round(self.brush_radius)))
        a = (int(round(last.x())), int(round(last.y())))
        b = (int(round(p.x())), int(round(p.y())))
        cv2.line(stroke, a, b, 1, thickness=2 * r)
        cv2.circle(stroke, b, r, 1, thickness=-1)
        if self.tool is Tool.BRUSH:
            mask |= stroke.astype(bool)
        else:
            mask &= ~stroke.astype(bool)
        self._paint = (target, mask, p)
        if target is None:
            self._preview.show_mask(mask, PREVIEW_RGB, 110, 2.0, dashed=True)
        elif target in self._overlays:
            self._overlays[target].show_mask(mask, self._colors[target], 115, 3.0)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier and self.tool in (
            Tool.BRUSH,
            Tool.ERASER,
        ):
            step = 1.15 if event.angleDelta().y() > 0 else 1 / 1.15
            self.brush_radius = float(np.clip(self.brush_radius * step, 1, 500))
            return
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.0015**delta)

    # ------------------------------------------------------------------ keys
    def event(self, event: QEvent) -> bool:  # noqa: D401 - Qt override
        if event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Tab:
            self.cycle_requested.emit()
            return True
        if event.type() == QEvent.Type.ShortcutOverride and self._types(event):
            event.accept()  # a letter while a mask waits types its label: no tool shortcut
            return True
        return super().event(event)

    def _types(self, event: QKeyEvent) -> bool:
        """The key model (`app.keys`): does this key type into the label field here?"""
        return ACTIONS.route(key_of(event), event.text(), self.key_context()) == TYPE

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space, self._space_panned = True, False
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if self._types(event):
            self.text_typed.emit(event.text())
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.set_tool(self.tool)
            if not self._space_panned:
                self.accept_requested.emit()
            return
        super().keyReleaseEvent(event)
