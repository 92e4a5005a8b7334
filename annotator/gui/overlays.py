"""Mask overlays: an indexed image of the mask's bounding box only, plus a cosmetic outline path."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainterPath, QPen, QPixmap, QPolygonF, QTransform, qRgba
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsScene

from annotator.app.masks import mask_box


def overlay_image(
    crop: np.ndarray, rgb: tuple[int, int, int], alpha: int, outline: np.ndarray | None = None
) -> QImage:
    """An image of a cropped bool mask filled with one colour; `outline` pixels (if given) opaque,
    for masks too ragged for a vector outline.

    Built as an 8-bit indexed image straight from the mask's bytes (0 outside, 1 inside, 2 on the
    outline) with a three-entry colour table that Qt's C++ expands: a 1024x768 mask costs the GUI
    thread under a millisecond, where building ARGB pixels in numpy took ~17 ms (and several times
    that with both cores busy encoding), long enough to be a visible stall."""
    h, w = crop.shape
    index = np.ascontiguousarray(crop, dtype=np.uint8)  # a crop of a mask is a strided view
    if outline is not None:
        index[outline] = 2
    image = QImage(index.data, w, h, w, QImage.Format.Format_Indexed8)
    image.setColorTable([qRgba(0, 0, 0, 0), qRgba(*rgb, alpha), qRgba(*rgb, 255)])
    return image.copy()  # owns its pixels: `index` is freed on return


# A path is built point by point in Python, and OpenCV's contours of a speckled mask (a stray
# click, a poor model: tens of thousands of specks) take 0.1 s themselves: past this many boundary
# pixels, or this many contour points, the outline is drawn into the fill image instead, so showing
# any mask costs the GUI thread milliseconds, never a visible stall.
MAX_BOUNDARY_PIXELS = 20_000
MAX_PATH_POINTS = 4000


def contours_of(crop: np.ndarray) -> list[np.ndarray]:
    """Outer and hole contours of a cropped bool mask (OpenCV, simple chains)."""
    contours, _ = cv2.findContours(crop.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


def boundary_pixels(crop: np.ndarray) -> np.ndarray:
    """The mask's pixels that touch the outside (the raster outline)."""
    inner = cv2.erode(crop.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0)
    return crop & ~inner.astype(bool)


def outline_path(crop: np.ndarray, x0: int, y0: int, contours=None) -> QPainterPath:
    """Outer and hole contours of a cropped mask as one path in image coordinates."""
    if contours is None:
        contours = contours_of(crop)
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
        box = mask_box(mask)
        if box is None:
            self.fill.setPixmap(QPixmap())
            self.outline.setPath(QPainterPath())
            return
        x0, y0, x1, y1 = box
        crop = mask[y0:y1, x0:x1]
        outline = boundary_pixels(crop)
        contours = contours_of(crop) if outline.sum() <= MAX_BOUNDARY_PIXELS else []
        as_path = bool(contours) and sum(len(c) for c in contours) <= MAX_PATH_POINTS
        outline = None if as_path else outline
        image = overlay_image(crop, rgb, alpha, outline)
        self.fill.setPixmap(QPixmap.fromImage(image))
        self.fill.setOffset(x0, y0)
        pen = QPen(QColor(*rgb), width)
        pen.setCosmetic(True)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.outline.setPen(pen)
        self.outline.setPath(outline_path(crop, x0, y0, contours) if as_path else QPainterPath())

    def place(self, x0: float = 0.0, y0: float = 0.0, sx: float = 1.0, sy: float = 1.0) -> None:
        """Draw the shown mask's pixel (i, j) at image (x0 + sx * j, y0 + sy * i): a crop or a
        downsampled mask of a large image (issue 26); the defaults put a full-image mask back."""
        transform = QTransform(sx, 0, 0, sy, x0, y0)
        self.fill.setTransform(transform)
        self.outline.setTransform(transform)

    def set_visible(self, visible: bool) -> None:
        self.fill.setVisible(visible)
        self.outline.setVisible(visible)

    def remove(self, scene: QGraphicsScene) -> None:
        scene.removeItem(self.fill)
        scene.removeItem(self.outline)
