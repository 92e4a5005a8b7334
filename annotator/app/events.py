"""A tiny event: callbacks connected to a model field, called in order on `emit` (napari's idea).

The session is plain Python; the Qt side connects its slots here and renders, so the model is
testable without a screen. Callbacks run synchronously in the emitting thread (the GUI thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Event:
    """Connect callbacks, emit values to them; disconnecting an unknown callback is a no-op."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callback(s))"
