"""The canvas's input translation: mouse, wheel and keys become session calls (a click is
`Annotating.add_point`, a drag `set_box`), tool gestures (rectangle, polygon, brush strokes) and
view changes (zoom, pan). A mixin of `gui.canvas.Canvas`, which draws; nothing here keeps a prompt.
"""

from __future__ import annotations

import enum

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent

from annotator.app.keys import ACTIONS, TYPE
from annotator.gui.colors import PREVIEW_RGB
from annotator.gui.keymap import key_of


class Tool(enum.Enum):
    POINT = "point"  # SAM: left positive, right / shift+left negative
    BOX = "box"  # SAM: drag a box, then click points to refine
    RECT = "rect"  # manual rectangle, no model needed
    POLYGON = "polygon"  # manual polygon, no model needed
    BRUSH = "brush"  # add to the selected mask
    ERASER = "eraser"  # remove from the selected mask


class CanvasInput:
    """Event handlers of the canvas (a `QGraphicsView`; the drawing half is `Canvas`)."""

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


__all__ = ["CanvasInput", "Tool"]
