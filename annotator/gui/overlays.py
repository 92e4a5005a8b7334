"""Mask overlays: an ARGB image of the mask's bounding box only, plus a cosmetic outline path."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainterPath, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsScene


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (x0, y0, x1, y1) of a bool mask, exclusive upper bounds; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def overlay_image(crop: np.ndarray, rgb: tuple[int, int, int], alpha: int) -> QImage:
    """A premultiplied ARGB image of a cropped bool mask filled with one colour."""
    h, w = crop.shape
    pixels = np.zeros((h, w, 4), np.uint8)
    a = alpha / 255.0
    # Memory order of Format_ARGB32_Premultiplied on little-endian machines is B, G, R, A.
    pixels[crop] = (int(rgb[2] * a), int(rgb[1] * a), int(rgb[0] * a), alpha)
    image = QImage(pixels.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
    return image.copy()


def outline_path(crop: np.ndarray, x0: int, y0: int) -> QPainterPath:
    """Outer and hole contours of a cropped mask as one path in image coordinates."""
    contours, _ = cv2.findContours(crop.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    path = QPainterPath()
    for contour in contours:
        pts = contour.reshape(-1, 2).astype(np.float64) + (x0 + 0.5, y0 + 0.5)
        if len(pts) < 2:
            continue
        path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in pts]))
        path.closeSubpath()
    return path


class MaskItem:
    """The fill and outline of one mask, added to a scene."""

    def __init__(self, scene: QGraphicsScene, z: float) -> None:
        self.fill = QGraphicsPixmapItem()
        self.fill.setZValue(z)
        self.outline = QGraphicsPathItem()
        self.outline.setZValue(z + 0.5)
        scene.addItem(self.fill)
        scene.addItem(self.outline)

    def show_mask(
        self, mask: np.ndarray, rgb: tuple[int, int, int], alpha: int, width: float, dashed=False
    ) -> None:
        box = mask_bbox(mask)
        if box is None:
            self.fill.setPixmap(QPixmap())
            self.outline.setPath(QPainterPath())
            return
        x0, y0, x1, y1 = box
        crop = mask[y0:y1, x0:x1]
        self.fill.setPixmap(QPixmap.fromImage(overlay_image(crop, rgb, alpha)))
        self.fill.setOffset(x0, y0)
        pen = QPen(QColor(*rgb), width)
        pen.setCosmetic(True)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.outline.setPen(pen)
        self.outline.setPath(outline_path(crop, x0, y0))

    def set_visible(self, visible: bool) -> None:
        self.fill.setVisible(visible)
        self.outline.setVisible(visible)

    def remove(self, scene: QGraphicsScene) -> None:
        scene.removeItem(self.fill)
        scene.removeItem(self.outline)
