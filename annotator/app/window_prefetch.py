"""A large image's working windows encoded before the click: the view's own window, then its
neighbours (issue 26: "prefetch covers the neighbouring tiles").

Why: a working window costs both encoders (SAM 2.1 and CLIP's dense features at 1,024 px: tens of
seconds on a laptop CPU), and a click in a place never visited waits for them. While the user pans
and aims, the model thread is idle: the window a click would get in the view as it is now
(`LargeView.window_for` at the view's centre) is encoded then, and after it the four windows of
the same size and level that share an edge with it (`NEIGHBOURS`). They go to the disk cache under
the region's content key, where a click's `window_embedding` finds them.

Prefetch never delays a click: it runs inside `interruptible(urgent, inside_models=True)`, so a
click (or a newer view) stops the encode within one encoder block (`models/lowmem.add_yield_points`)
and the window is tried again later. Qt-free: the window calls `ModelHost.prefetch_windows(path,
windows)`, the model thread runs `prefetch_step`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from annotator.app.working_window import Window
from annotator.preempt import StepAside, interruptible

log = logging.getLogger(__name__)


def neighbour_windows(window: Window, width: int, height: int) -> list[Window]:
    """The same-size windows around `window` at its level, edge neighbours first, then corners;
    shifted to lie inside the image (a window at an edge has fewer), none twice."""
    w, h = window.width, window.height
    found: list[Window] = []
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)):
        x0 = min(max(0, window.x0 + dx * w), max(0, width - w))
        y0 = min(max(0, window.y0 + dy * h), max(0, height - h))
        candidate = Window(x0, y0, min(width, x0 + w), min(height, y0 + h), window.level)
        if candidate.box != window.box and candidate not in found:
            found.append(candidate)
    return found


NEIGHBOURS = 4
"""Neighbours prefetched after the view's own window: the edge ones. Each costs both encoders (about
a minute of a laptop's CPU for SAM 2.1 + convnext_base_w at 1,024 px), so the corners are left to
a click."""


def view_windows(view: Any, neighbours: int = NEIGHBOURS) -> list[Window]:
    """The window a click at the centre of `view` (a `LargeView`) would get now, then up to
    `neighbours` of its neighbours (edge ones first)."""
    x0, y0, x1, y1 = view.view_box
    cx = min(max(0.0, (x0 + x1) / 2), view.width - 1.0)
    cy = min(max(0.0, (y0 + y1) / 2), view.height - 1.0)
    own = view.window_for([(cx, cy, True)])
    return [own, *neighbour_windows(own, view.width, view.height)[:neighbours]]


class WindowQueue:
    """The windows still to encode: the last `set`'s, in order. Thread-safe (the GUI thread sets,
    the model thread takes and marks done)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.path: str | None = None
        self._pending: list[Window] = []
        self.generation = 0  # bumped by each `set`: a running encode for an older view stops

    def set(self, path: str, windows: Sequence[Window]) -> None:
        with self._lock:
            self.path, self._pending = str(path), list(dict.fromkeys(windows))
            self.generation += 1

    def next(self) -> tuple[str, Window, int] | None:
        with self._lock:
            if not self._pending or not self.path:
                return None
            return self.path, self._pending[0], self.generation

    def done(self, path: str, window: Window) -> None:
        with self._lock:
            if path == self.path and window in self._pending:
                self._pending.remove(window)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def encode_window(
    engine: Any,
    pyramid: Any,
    window: Window,
    urgent: Callable[[], bool],
) -> bool:
    """Both halves of `window`'s embedding into the engine's disk cache (the segmenter half first,
    kept when a click stops the CLIP half), not into its memory: a window never clicked costs no
    RAM, and the click that comes reads it in milliseconds. False when `urgent()` made it step
    aside."""
    from annotator.app.working_window import window_embedding

    try:
        with interruptible(urgent, inside_models=True):
            known = window_embedding(engine, pyramid, window, clip=False, keep=False)
            window_embedding(engine, pyramid, window, known=known, keep=False)
    except StepAside:
        return False
    return True


def prefetch_step(
    engine: Any, item: tuple[str, Window, int], queue: WindowQueue, waiting: Callable[[], bool]
) -> bool:
    """The model thread's job for one queued window (`WindowQueue.next`): encoded and marked done,
    or dropped after an error (a prefetch reports nothing: a click on that place will), or kept
    for later when a click (`waiting()`) or a newer view stopped it. True when it is done."""
    from annotator.app.large_view import pyramid_of

    path, window, generation = item

    def urgent() -> bool:
        return waiting() or queue.generation != generation

    try:
        finished = encode_window(engine, pyramid_of(engine, path), window, urgent)
    except Exception as error:  # noqa: BLE001 - never kills the model thread
        log.warning("prefetch of %s in %s failed: %s", window.box, path, error)
        finished = True
    if finished:
        queue.done(path, window)
    return finished
