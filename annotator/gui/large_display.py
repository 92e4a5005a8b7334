"""A very large image on the canvas (issue 26, ADR 0036): drawn through its pyramid, a tile at a time.

`PyramidItem` paints the tiles of the level that fits the zoom (`app.large_view.LargeView.tiles`)
over the coarsest level's (a handful of tiles, always there first: the picture appears at once and
zooming never shows a hole); a tile not decoded yet is asked of `TileLoader`, one thread that opens
the pyramid (building missing levels once, cached) and decodes tiles newest-request-first into a
bounded `TileCache`. The GUI thread only draws QImages. `LargeDisplay` is the window's part: it
takes a large TIFF instead of the ordinary loader, keeps `session.large` (the view the click's
working window is taken from) and draws annotations from their RLE's box (`annotation_crop`).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, QRectF, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QGraphicsObject, QLineEdit

from annotator.app.large_view import (
    LargeView,
    TileCache,
    annotation_crop,
    is_large_path,
    open_pyramid,
    read_tile,
)
from annotator.app.window_prefetch import view_windows
from annotator.gui.annotation_panel import AnnotationRow
from annotator.gui.canvas import Tool
from annotator.gui.colors import category_rgb
from annotator.gui.overlays import MaskItem

FULL_MASK_TOOLS = (Tool.RECT, Tool.POLYGON, Tool.BRUSH, Tool.ERASER)
"""Tools that make a full-image mask: off while a large image is shown (clicks and boxes work)."""

SETTLE_MS = 400
"""A view unchanged this long has its working windows encoded ahead of a click (app/window_prefetch)."""


class TileLoader(QObject):
    """Opens one large image and decodes its tiles on its own thread (never the GUI's)."""

    opened = Signal(int, object, object)  # request id, pyramid, None | error text
    tile_ready = Signal(int, object)  # request id, tile key

    def __init__(self, cache: TileCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self._cond = threading.Condition()
        self._open: tuple[int, str, Any] | None = None
        self._wanted: list = []  # newest request first
        self._req = -1
        self._pyramid: Any = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="tile-loader", daemon=True)
        self._thread.start()

    def open(self, request_id: int, path: str, cache_dir: Any) -> None:
        with self._cond:
            self._open, self._wanted, self._req = (request_id, path, cache_dir), [], request_id
            self._cond.notify()

    def want(self, tiles: list) -> None:
        """Decode these (the view's, in drawing order); earlier wishes not repeated are dropped."""
        with self._cond:
            self._wanted = [t for t in tiles if (self._req, *t.key) not in self.cache]
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._closing or self._open or self._wanted):
                    self._cond.wait()
                if self._closing:
                    break
                job, self._open = self._open, None
                tile = None if job else self._wanted.pop(0)
                req = self._req
            if job is not None:
                self._do_open(*job)
            elif self._pyramid is not None:
                self._do_tile(req, tile)
        if self._pyramid is not None:
            self._pyramid.close()

    def _do_open(self, request_id: int, path: str, cache_dir: Any) -> None:
        if self._pyramid is not None:
            self._pyramid.close()
            self._pyramid = None
        try:
            self._pyramid = open_pyramid(path, cache_dir)
            error = None
        except Exception as failure:  # noqa: BLE001 - one line for the user, the window goes on
            error = str(failure)
        try:
            self.opened.emit(request_id, self._pyramid, error)
        except RuntimeError:  # the window is gone (closing)
            self._closing = True

    def _do_tile(self, request_id: int, tile: Any) -> None:
        key = (request_id, *tile.key)
        if key in self.cache:
            return
        try:
            rgb = read_tile(self._pyramid, tile)
        except Exception:  # noqa: BLE001 - a broken tile stays blank; the rest still shows
            return
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.cache.put(key, image, image.sizeInBytes())
        try:
            self.tile_ready.emit(request_id, tile.key)
        except RuntimeError:  # the window is gone (closing): nothing to tell
            self._closing = True


class PyramidItem(QGraphicsObject):
    """The image, painted from decoded tiles; it tells `view` what the canvas shows."""

    def __init__(self, view: LargeView, request_id: int, loader: TileLoader) -> None:
        super().__init__()
        self.view, self.request_id, self.loader = view, request_id, loader
        self.setZValue(-10)
        self.setFlag(QGraphicsObject.GraphicsItemFlag.ItemUsesExtendedStyleOption)
        self.drawn: set = set()  # tile keys painted at least once (tests look)
        self.on_paint: Any = None

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt naming
        return QRectF(0, 0, self.view.width, self.view.height)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: D401 - Qt override
        if self.view.source is not None:
            self.view.view_box, self.view.zoom = self.view.source()
        exposed = option.exposedRect  # (with ItemUsesExtendedStyleOption: the part to redraw)
        vx0, vy0, vx1, vy1 = self.view.view_box
        box = (
            max(exposed.left(), vx0),
            max(exposed.top(), vy0),
            min(exposed.right(), vx1),
            min(exposed.bottom(), vy1),
        )
        coarsest = len(self.view.levels) - 1
        level = self.view.level_for(self.view.zoom)
        layers = [self.view.tiles_at(coarsest, box)]
        if level != coarsest:
            layers.append(self.view.tiles_at(level, box))
        missing = []
        for tiles in layers:
            for tile in tiles:
                image = self.loader.cache.get((self.request_id, *tile.key))
                if image is None:
                    missing.append(tile)
                    continue
                x0, y0, x1, y1 = tile.rect
                painter.drawImage(QRectF(x0, y0, x1 - x0, y1 - y0), image)
                self.drawn.add(tile.key)
        # then the ring of tiles around the view at the same level (a pan finds them decoded)
        info = self.view.levels[level]
        mx, my = self.view.tile * info.sx, self.view.tile * info.sy
        ring = self.view.tiles_at(level, (vx0 - mx, vy0 - my, vx1 + mx, vy1 + my))
        cache = self.loader.cache
        missing += [t for t in ring if (self.request_id, *t.key) not in cache and t not in missing]
        self.loader.want(missing)
        if self.on_paint is not None:
            self.on_paint()

    def tile_ready(self, request_id: int, key: tuple) -> None:
        if request_id == self.request_id:
            level, tx, ty = key
            info, t = self.view.levels[level], self.view.tile
            self.update(QRectF(tx * t * info.sx, ty * t * info.sy, t * info.sx, t * info.sy))


class LargeDisplay(QObject):
    """The window's large-image path: open, show, overlays; `show` says whether it took the path."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.cache = TileCache()
        self.loader = TileLoader(self.cache, self)
        self.loader.opened.connect(self._opened)
        self.item: PyramidItem | None = None
        self._overlays: dict[int, MaskItem] = {}
        self._pending: tuple[int, int, str] | None = None
        self._settle = QTimer(self)  # the view's windows go to the worker once it stops moving
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._prefetch)
        self._prefetched: tuple = ()

    def _prefetch(self) -> None:
        """The window a click would get in the view as it is now, and its neighbours, to the
        worker (encoded while nothing else waits; a click stops them)."""
        worker = getattr(self.window, "worker", None)
        if self.item is None or not hasattr(worker, "prefetch_windows"):
            return
        view = self.item.view
        if view.source is not None:
            view.view_box, view.zoom = view.source()
        windows = tuple(view_windows(view))
        if windows != self._prefetched:
            self._prefetched = windows
            worker.prefetch_windows(view.path, list(windows))

    def show(self, image_id: int, request_id: int, path: str) -> bool:
        """Take `path` when it is a large TIFF (opened off the GUI thread); else forget the last."""
        self._drop()
        if not is_large_path(path):
            return False
        self._pending = (image_id, request_id, path)
        self.window.show_status("Opening a large image (its overview levels)…", 0)
        self.loader.open(request_id, path, self.window.cache_dir)
        return True

    def _drop(self) -> None:
        canvas = self.window.canvas
        for item in self._overlays.values():
            item.remove(canvas.scene())
        self._overlays.clear()
        if self.item is not None:
            self.loader.tile_ready.disconnect(self.item.tile_ready)
            canvas.scene().removeItem(self.item)
            self.item = None
            self.cache.clear()
            self._settle.stop()
            worker = getattr(self.window, "worker", None)
            if self._prefetched and hasattr(worker, "prefetch_windows"):
                worker.prefetch_windows("", [])  # another image: its windows are not wanted
            self._prefetched = ()
        self.window.session.large = None
        self._pending = None
        self._full_mask_tools(True)

    def _full_mask_tools(self, enabled: bool) -> None:
        actions = getattr(self.window, "tool_actions", {})
        for tool in FULL_MASK_TOOLS:
            if tool in actions:
                actions[tool].setEnabled(enabled)
        if not enabled and self.window.canvas.tool in FULL_MASK_TOOLS:
            self.window.set_tool(Tool.POINT)

    def _opened(self, request_id: int, pyramid: Any, error: str | None) -> None:
        if self._pending is None or self._pending[1] != request_id:
            return
        image_id, _req, path = self._pending
        w = self.window
        if error is not None:
            w.images.model_.update(image_id, failed=error)
            w.show_error(error)
            return
        view = LargeView.of(path, pyramid)
        view.source = lambda canvas=w.canvas: shown_box(canvas)
        self.item = PyramidItem(view, request_id, self.loader)
        self.item.on_paint = self._settle.start  # (re)started by each paint: a pan or a zoom
        self.loader.tile_ready.connect(self.item.tile_ready)
        w.canvas.set_large_image(self.item, view.width, view.height)
        w.session.large = view
        self._full_mask_tools(False)
        w.session.display_image = None
        w.clear_status()
        w.controller.refresh(image_id)
        focus = QApplication.focusWidget()
        if focus is None or not isinstance(focus, QLineEdit):
            w.canvas.setFocus()
        w.image_shown.emit(image_id)

    # ------------------------------------------------------------------ overlays
    def redraw(self, controller: Any) -> None:
        """The image's annotations: each drawn from its RLE's box (downsampled past a few MP)."""
        canvas, session = controller.canvas, controller.session
        scene = canvas.scene()
        records = list(session.records.values())
        for ann_id in set(self._overlays) - set(session.records):
            self._overlays.pop(ann_id).remove(scene)
        rows = []
        for r in records:
            item = self._overlays.get(r.id)
            if item is None:
                item = self._overlays[r.id] = MaskItem(scene, 10)
                x0, y0, step, crop = annotation_crop(r)
                item.crop = (x0, y0, step, crop)
            x0, y0, step, crop = item.crop
            selected = r.id == session.selected
            rgb = category_rgb(r.category)
            item.show_mask(crop, rgb, 115 if selected else 80, 3.0 if selected else 1.5)
            item.place(x0, y0, step, step)
            item.set_visible(r.id not in controller._hidden)
            score = float(r.score) if r.score is not None else 1.0
            rows.append(
                AnnotationRow(
                    r.id, r.category, score, int(r.area), r.id not in controller._hidden, ""
                )
            )
        controller.annotations.set_annotations(rows, session.selected)

    def overlay(self, ann_id: int) -> MaskItem | None:
        return self._overlays.get(ann_id)


def shown_box(canvas: Any) -> tuple[tuple[float, float, float, float], float]:
    """(the box the canvas shows in level-0 pixels, its zoom)."""
    seen = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    return (seen.left(), seen.top(), seen.right(), seen.bottom()), float(canvas.transform().m11())


def place_preview(canvas: Any, pending: Any) -> None:
    """The pending mask where its working window lies (identity for an ordinary image)."""
    placement = getattr(getattr(pending, "proposal", None), "placement", None)
    if pending is None or placement is None or pending.mask is not pending.proposal.mask:
        placement = (0.0, 0.0, 1.0, 1.0)
    canvas.preview_item().place(*placement)


def for_window(window: Any) -> LargeDisplay:
    """The window's `LargeDisplay`, made on first use."""
    display = getattr(window, "_large_display", None)
    if display is None:
        display = window._large_display = LargeDisplay(window)
    return display


def close_for(window: Any) -> None:
    """Stop the window's tile thread (when it has one) before the window goes: a thread left
    running would emit into a deleted object."""
    display = getattr(window, "_large_display", None)
    if display is not None:
        display.loader.close()


__all__ = ["LargeDisplay", "PyramidItem", "TileLoader", "close_for", "for_window", "place_preview"]
