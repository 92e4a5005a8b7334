"""The review queue's change feed: proposals written by another process (`annotator autolabel`
running beside the window, or a teammate) show up in the review panel without reopening.

The window polls every 2 s, as it polls the annotations' change feed (ADR 0011). Proposals have no
change log of their own; their counts by status and the finished images are a cheap signature
that moves whenever another connection adds, accepts or rejects proposals or finishes an image
(one aggregate query; SQLite in WAL mode sees other processes' commits, PostgreSQL likewise).
"""

from __future__ import annotations

from typing import Any


class ReviewFeed:
    """`poll()` is True when the proposals changed since the last poll (or since it was made)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._last = self._signature()

    def _signature(self) -> tuple:
        return tuple(sorted(self.store.summary().items()))

    def poll(self) -> bool:
        now = self._signature()
        changed, self._last = now != self._last, now
        return changed

    def seen(self) -> None:
        """This window's own edits: already shown, not news."""
        self._last = self._signature()
