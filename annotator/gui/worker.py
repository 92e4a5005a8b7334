"""The one thread that hosts the engine: a QThread adapter around the Qt-free `app.model_host`.

The GUI never waits for it: every public method puts a plain request into the host's mailbox and
returns at once; the host's answers come back as this object's signals (queued to the GUI thread),
tagged with image id and request id, and the session drops stale ones. What the thread does, in
which order, and how it keeps embeddings is all in `annotator.app.model_host` (no Qt there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from annotator.app.annotate import DecodeRequest, RelabelRequest
from annotator.app.embedding_cache import embedding_nbytes
from annotator.app.jobs import YIELDING, DiscoveryRequest
from annotator.app.model_host import ModelHost, Outbox, describe_error, segmenter_name
from annotator.app.model_host import build_engine as _build_engine
from annotator.gui.image_loader import ImageLoader
from annotator.spec import ModelSpec

__all__ = [
    "DecodeRequest",
    "EngineWorker",
    "ImageLoader",
    "RelabelRequest",
    "YIELDING",
    "_build_engine",
    "describe_error",
    "embedding_nbytes",
    "segmenter_name",
]


class EngineWorker(QThread):
    """Owns the `ModelHost` (and so the `Engine`); every public method is called from the GUI
    thread and returns at once."""

    engine_loading = Signal(str)  # what is being loaded
    engine_ready = Signal(dict)  # {"device", "sam", "clip", "vocabulary"}
    engine_failed = Signal(str)
    progress = Signal(str, int, int)  # stage, done, total (model loading, text embeddings)
    encoded = Signal(int)  # image id whose embedding now exists
    encode_progress = Signal(int, int)  # encoded, total
    proposal_ready = Signal(int, int, object)  # image id, request id, Proposal
    labels_ready = Signal(int, int, str, object)  # image id, request id, tag, [(name, score)]
    vocabulary_ready = Signal(int)  # number of entries now used for suggestions
    failed = Signal(str, int, int, str)  # kind, image id, request id, message
    discovered = Signal(str, int, int, object)  # discovery kind, image id, request id, result

    def __init__(self, budget_mb: float = 1024, parent: QObject | None = None) -> None:
        super().__init__(parent)
        out = Outbox(
            self.engine_loading.emit,
            self.engine_ready.emit,
            self.engine_failed.emit,
            self.progress.emit,
            self.encoded.emit,
            self.encode_progress.emit,
            self.proposal_ready.emit,
            self.labels_ready.emit,
            self.vocabulary_ready.emit,
            self.failed.emit,
            self.discovered.emit,
        )
        self.host = ModelHost(out, budget_mb)

    # the host's state, under the names tests and benchmarks read
    engine_factory = property(
        lambda self: self.host.engine_factory,
        lambda self, value: setattr(self.host, "engine_factory", value),
    )
    _engine = property(lambda self: self.host.engine)
    _cache = property(lambda self: self.host.cache.items)

    # ------------------------------------------------------------------ requests (GUI thread)
    def load(self, spec: ModelSpec) -> None:
        self.host.load(spec)

    def labels_complete(self) -> bool:
        return self.host.labels_complete()

    def set_label_priority(self, names: list[str]) -> None:
        self.host.set_label_priority(names)

    def set_exemplars(self, exemplars: Any) -> None:
        self.host.set_exemplars(exemplars)

    def set_vocabulary(self, vocabulary: Any) -> None:
        self.host.set_vocabulary(vocabulary)

    def set_restrict(self, names: Sequence[str] | None) -> None:
        self.host.set_restrict(names)

    def decode(self, request: DecodeRequest) -> None:
        self.host.decode(request)

    def cancel_decode(self) -> None:
        self.host.cancel_decode()

    def relabel(self, request: RelabelRequest) -> None:
        self.host.relabel(request)

    def discover(self, request: DiscoveryRequest) -> None:
        self.host.discover(request)

    def set_order(self, images: Sequence[tuple[int, str]]) -> None:
        self.host.set_order(images)

    def set_budget(self, budget_mb: float) -> None:
        self.host.set_budget(budget_mb)

    def prefetch_windows(self, path: str, windows: Sequence[Any]) -> None:
        self.host.prefetch_windows(path, windows)

    def is_encoded(self, image_id: int) -> bool:
        return self.host.is_encoded(image_id)

    def stop(self) -> None:
        """Ask the loop to end after the current job, then wait for it."""
        self.host.request_stop()
        self.wait()

    # ------------------------------------------------------------------ the model thread
    def run(self) -> None:
        self.host.run()
