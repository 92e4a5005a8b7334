"""The one thread that hosts the engine: model loading, encoding, decoding, relabelling, text embeddings.

The GUI never waits for it. Requests are plain data put into a small mailbox under a lock:
- decode: one slot, the newest prompt state replaces an older one that has not started (a click is never
  rejected, only superseded);
- relabel: one slot per tag (annotation id or "proposal"), newest wins;
- encode: an ordered list (current image first, then the next ones); embeddings stay in memory within a
  budget, the engine's disk cache keeps the rest;
- load / vocabulary: the newest wins.
- discover: one slot per kind; the job functions live in `annotator.app.jobs` (plain functions).
Results and errors come back by signal, tagged with image id and request id; the GUI drops stale ones.
"""

from __future__ import annotations

import gc
import logging
import threading
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QImage

from annotator.app.annotate import DecodeRequest, RelabelRequest
from annotator.app.first_start import FIRST_NAMES_WAIT_S, WIDE_NAMES_WAIT_S, IndexSchedule
from annotator.app.jobs import DISCOVERY_JOBS, YIELDED, YIELDING, DiscoveryRequest, JobContext
from annotator.app.large_view import is_large_path, window_proposal  # issue 26
from annotator.errors import AnnotatorError
from annotator.gui.settings import FAMILY_NAMES
from annotator.preempt import StepAside, interruptible
from annotator.priority import WORKER_NICE, lower_thread_priority
from annotator.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class _Mailbox:
    load: ModelSpec | None = None
    vocabulary: Any = None
    decode: DecodeRequest | None = None
    relabels: dict[str, RelabelRequest] = field(default_factory=dict)
    order: list[tuple[int, str]] = field(default_factory=list)
    restrict: tuple[str, ...] | None = None
    discoveries: dict[str, DiscoveryRequest] = field(default_factory=dict)  # one slot per kind


def describe_error(error: BaseException) -> str:
    """One line for the user: our own errors are already phrased for them, others get their type."""
    if isinstance(error, AnnotatorError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def embedding_nbytes(embedding: Any) -> int:
    """Memory an `ImageEmbedding` holds (SAM features plus the region head's arrays)."""
    total = int(embedding.sam.features.nbytes)
    for value in (embedding.clip or {}).values():
        total += int(getattr(value, "nbytes", 0))
    return total


class EngineWorker(QThread):
    """Owns the `Engine`; every public method is called from the GUI thread and returns at once."""

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
        self._cond = threading.Condition()
        self._box = _Mailbox()
        self._stop = False
        self._engine: Any = None
        self._budget = int(max(budget_mb, 0.001) * 1024 * 1024)
        self._cache: OrderedDict[int, Any] = OrderedDict()  # image id -> ImageEmbedding
        self._done: set[int] = set()  # image ids encoded (in memory or on disk)
        self._failed_encode: set[int] = set()
        self.engine_factory = None  # tests: callable(spec, progress, on_index=None)
        self._spec: ModelSpec | None = None
        self._others: dict[ModelSpec, Any] = {}  # the compare view's B engines
        self._job_state: dict = {}
        self._schedule = IndexSchedule(self._cond)  # the text index building in the background
        self._priority: tuple[str, ...] = ()  # names whose text rows are encoded first
        self._exemplars: Any = None  # the project's accepted objects (vocab/exemplars.Exemplars)

    # ------------------------------------------------------------------ requests (GUI thread)
    def load(self, spec: ModelSpec) -> None:
        """(Re)build the engine from `spec`; embeddings already computed are forgotten."""
        with self._cond:
            self._box.load = spec
            self._cond.notify()

    def labels_complete(self) -> bool:
        """Whether the engine's text index covers the whole vocabulary (labels from every name) and
        no build is running any more (its `vocabulary_ready` has been sent)."""
        engine = self._engine
        if engine is None or self._schedule.running:
            return False
        status = getattr(engine, "index_status", None)
        return status is None or status[0] >= status[1]

    def set_label_priority(self, names: list[str]) -> None:
        """Names (the project's categories) whose labels the next text-index build makes first."""
        self._priority = tuple(names)

    def set_exemplars(self, exemplars: Any) -> None:
        """The project's accepted objects as visual exemplars (thread-safe `Exemplars`; the window
        keeps it in step with the store, the engine reads it for every suggestion)."""
        self._exemplars = exemplars
        engine = self._engine
        if engine is not None and hasattr(engine, "exemplars"):
            engine.exemplars = exemplars

    def set_vocabulary(self, vocabulary: Any) -> None:
        """Use an edited vocabulary (a snapshot the GUI will not touch again)."""
        with self._cond:
            self._box.vocabulary = vocabulary
            self._cond.notify()

    def set_restrict(self, names: Sequence[str] | None) -> None:
        """Restrict discovery jobs' labels to these names (project labels only), or None for the
        vocabulary; clicks carry their own restriction in their request (`app.annotate`)."""
        with self._cond:
            self._box.restrict = tuple(names) if names is not None else None

    def decode(self, request: DecodeRequest) -> None:
        """Replace any pending decode: only the newest prompt state matters."""
        with self._cond:
            self._box.decode = request
            self._cond.notify()

    def cancel_decode(self) -> None:
        with self._cond:
            self._box.decode = None

    def relabel(self, request: RelabelRequest) -> None:
        with self._cond:
            self._box.relabels[request.tag] = request
            self._cond.notify()

    def discover(self, request: DiscoveryRequest) -> None:
        """Queue a discovery job; a newer request of the same kind replaces one not yet started."""
        if request.kind not in DISCOVERY_JOBS:
            raise KeyError(f"unknown discovery job {request.kind!r}")
        with self._cond:
            self._box.discoveries[request.kind] = request
            self._cond.notify()

    def set_order(self, images: Sequence[tuple[int, str]]) -> None:
        """Images to encode, the current one first, then those to prefetch."""
        with self._cond:
            self._box.order = list(images)
            self._cond.notify()

    def set_budget(self, budget_mb: float) -> None:
        """Memory for embeddings kept in memory (the current image always stays)."""
        with self._cond:
            self._budget = int(max(budget_mb, 0.001) * 1024 * 1024)
            self._cond.notify()

    def is_encoded(self, image_id: int) -> bool:
        with self._cond:
            return image_id in self._done

    def stop(self) -> None:
        """Ask the loop to end after the current job, then wait for it."""
        self._cancel_index_build()
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait()

    # ------------------------------------------------------------------ the loop (worker thread)
    def run(self) -> None:
        lower_thread_priority(WORKER_NICE)  # the GUI thread wins the CPU when both want it
        while True:
            with self._cond:
                job = self._next_job()
                while job is None and not self._stop:
                    # while the index builds, a deferred encode may become due by time alone
                    self._cond.wait(0.2 if self._schedule.running else None)
                    job = self._next_job()
                if self._stop:
                    return
                kind, payload = job
                self._schedule.urgent = kind == "decode" or (
                    kind == "encode" and bool(self._box.order) and self._box.order[0] == payload
                )
            try:
                getattr(self, f"_do_{kind}")(payload)
            except Exception as error:  # noqa: BLE001 - a model error must never kill the thread
                log.warning("worker %s failed:\n%s", kind, traceback.format_exc())
                self._report(kind, payload, error)
            finally:
                self._schedule.set_urgent(False)  # the text index may go on

    def _next_job(self) -> tuple[str, Any] | None:
        box = self._box
        if box.load is not None:
            job, box.load = ("load", box.load), None
            return job
        if self._engine is None:
            return None
        if box.vocabulary is not None:
            job, box.vocabulary = ("vocabulary", box.vocabulary), None
            return job
        if box.decode is not None:
            job, box.decode = ("decode", box.decode), None
            return job
        current = box.order[0] if box.order else None
        if current is not None and current[0] not in self._cache:
            if current[0] not in self._failed_encode:  # the shown image's segmenter half first:
                if self._schedule.short_of(0, FIRST_NAMES_WAIT_S):
                    return None  # ...once the COCO names score (a second or so on a first start)
                return "encode", current  # a click then waits for nothing else
        if box.relabels:
            tag = next(iter(box.relabels))
            return "relabel", box.relabels.pop(tag)
        if box.discoveries:
            kind = next(iter(box.discoveries))
            return "discover", box.discoveries.pop(kind)
        for image_id, path in box.order[: self._prefetch_count()]:
            if image_id not in self._done and image_id not in self._failed_encode:
                if image_id != current[0] and self._schedule.short_of(1, WIDE_NAMES_WAIT_S):
                    return None  # other images wait while the LVIS names are encoded
                return "encode", (image_id, path)
        return None

    def _prefetch_count(self) -> int:
        """How many images of the order (current first) fit the memory budget; 1 until a size is known."""
        if not self._cache:
            return 1
        each = max(1, max(embedding_nbytes(e) for e in self._cache.values()))
        return max(1, self._budget // each)

    def _report(self, kind: str, payload: Any, error: BaseException) -> None:
        message = describe_error(error)
        if kind == "load":
            self._engine = None
            self.engine_failed.emit(message)
        elif kind in ("decode", "relabel"):
            self.failed.emit(kind, payload.image_id, payload.request_id, message)
        elif kind == "discover":
            self.failed.emit(payload.kind, payload.image_id, payload.request_id, message)
        elif kind == "encode":
            self._failed_encode.add(payload[0])
            self.failed.emit(kind, payload[0], -1, message)
        else:
            self.failed.emit(kind, -1, -1, message)

    def _do_load(self, spec: ModelSpec) -> None:
        self._engine = None
        self._cache.clear()
        self._done.clear()
        self._failed_encode.clear()
        self._others.clear()
        self._job_state = {}
        self._spec = spec
        self.engine_loading.emit(segmenter_name(spec))
        self._cancel_index_build()
        factory = self.engine_factory or _build_engine
        gc.unfreeze()  # the previous engine's objects may be collected again
        try:
            # the text index starts as soon as it exists, while the segmenter still loads
            self._engine = factory(spec, self.progress.emit, self._start_index_build)
        except BaseException:
            self._cancel_index_build()
            raise
        # The models and the vocabulary live as long as the engine: kept out of full collections,
        # which otherwise walk their ~10^6 objects holding the GIL (67 ms on a quiet core, far more
        # with both cores busy) and stall the window at random moments.
        gc.freeze()
        if hasattr(self._engine, "exemplars"):
            self._engine.exemplars = self._exemplars
        self.engine_ready.emit(self._engine_info(spec))
        if self._schedule.build is None:  # an engine without `on_index` (a test double)
            self._start_index_build()

    # Masks before labels: the engine comes without its text index; the index builds on its own
    # thread in priority order (the project's categories, then COCO, LVIS, the rest) while clicks
    # already give masks, and labels come from the part built so far (`progress("labels", ...)`).
    def _start_index_build(self, index: Any = None, vocabulary: Any = None) -> None:
        """Build `index` (default: the engine's) in the background. Called with the index by
        `build_engine(on_index=...)` before the segmenter loads, with none after a vocabulary
        edit or for an engine that has no `on_index`."""
        if index is None:
            if getattr(self._engine, "start_index_build", None) is None:
                return  # a test double without a text index
            index = self._engine.index
            if vocabulary is None and index.ready >= index.total:
                return  # already complete (cached texts): engine_ready said how many entries

        def report(ready: int, total: int) -> None:
            self.progress.emit("labels", ready, total)

        def done(error: BaseException | None) -> None:
            ready, total = index.ready, index.total
            if error is not None:
                self.failed.emit("vocabulary", -1, -1, f"the label index stopped: {error}")
            elif ready >= total:
                self.progress.emit("labels", ready, total)
                self._job_state.pop("tags", None)  # tags name vocabulary entries: recompute them
                self.vocabulary_ready.emit(total)

        self._schedule.start(index, self._priority, vocabulary, report, done)

    def _cancel_index_build(self) -> None:
        self._schedule.cancel()

    def _engine_info(self, spec: ModelSpec) -> dict:
        engine = self._engine
        vocabulary = getattr(engine, "vocabulary", None)
        clip_config = Path(spec.clip_config).stem if spec.clip_config else ""
        clip_name = spec.clip_model or clip_config or "default CLIP"
        return {
            "device": str(getattr(engine, "device", "?")),
            "sam": segmenter_name(spec),  # the key keeps its historical name
            "clip": clip_name,
            "vocabulary": len(vocabulary) if vocabulary is not None else 0,
            "region_model_id": str(getattr(engine, "region_model_id", "")),
        }

    def _do_vocabulary(self, vocabulary: Any) -> None:
        """An edited vocabulary: only its new texts are encoded, in the background like the first
        build (the running build stops after its chunk; what it encoded is cached)."""
        self._cancel_index_build()
        if getattr(self._engine, "start_index_build", None) is None:  # a test double
            self._engine.set_vocabulary(vocabulary)
            self.vocabulary_ready.emit(len(vocabulary))
            return
        self._start_index_build(vocabulary=vocabulary)

    def _embedding(self, image_id: int, path: str, clip: bool = True) -> Any:
        """From memory, else from the engine (its disk cache, else the encoder). `clip=False`: the
        segmenter half is enough (a mask); an embedding held with only that half is completed when
        the CLIP half is asked for."""
        embedding = self._cache.get(image_id)
        if embedding is not None and (not clip or getattr(embedding, "complete", True)):
            self._cache.move_to_end(image_id)
            return embedding
        if embedding is None and not clip:
            embedding = self._engine.embed(Path(path), clip=False)
        elif embedding is None:
            embedding = self._engine.embed(Path(path))
        else:
            embedding = self._engine.embed(Path(path), known=embedding)
        self._remember(image_id, embedding)
        return embedding

    def _remember(self, image_id: int, embedding: Any) -> None:
        complete = getattr(embedding, "complete", True)
        first = complete and image_id not in self._done
        self._cache[image_id] = embedding
        if complete:  # a segmenter-only embedding is completed by the next encode job
            self._done.add(image_id)
        with self._cond:
            order = [i for i, _ in self._box.order]
        rank = {i: r for r, i in enumerate(order)}
        keep = order[0] if order else image_id
        used = sum(embedding_nbytes(e) for e in self._cache.values())
        # Evict the embeddings whose images are furthest down the prefetch order first.
        while used > self._budget and len(self._cache) > 1:
            victim = max(
                (i for i in self._cache if i != keep), key=lambda i: rank.get(i, len(order))
            )
            used -= embedding_nbytes(self._cache.pop(victim))
        if first:
            self.encoded.emit(image_id)
            self.encode_progress.emit(len(self._done), len(order))

    def _do_encode(self, payload: tuple[int, str]) -> None:
        """The segmenter half first; when a click is waiting by then, it goes first (its mask
        needs nothing more) and this job comes back for the CLIP half."""
        image_id, path = payload
        if is_large_path(path):  # issue 26: a large image is encoded per working window, on a click
            self._failed_encode.add(image_id)  # (never as a whole: not asked for again)
            return
        if image_id not in self._cache:
            self._embedding(image_id, path, clip=False)
            with self._cond:
                if self._box.decode is not None:
                    return
        self._embedding(image_id, path)

    def _do_decode(self, request: DecodeRequest) -> None:
        """The mask as soon as the segmenter half exists; where the CLIP half did not exist yet,
        the same request's proposal is sent again with its labels once it does (masks before
        labels: the window shows the mask first, then fills in the names)."""
        if request.window is not None or hasattr(request.proposal, "window"):  # issue 26
            proposal = window_proposal(self._engine, request)  # app/large_view: its working window
            self.proposal_ready.emit(request.image_id, request.request_id, proposal)
            return
        embedding = self._embedding(request.image_id, request.path, clip=False)
        if self._superseded():
            return  # a newer prompt state arrived while the image was being encoded
        proposal = self._propose(embedding, request)
        self.proposal_ready.emit(request.image_id, request.request_id, proposal)
        if not getattr(proposal, "labels_pending", False):
            return
        self._schedule.let_first_names_score(self._interrupted)
        embedding = self._embedding(request.image_id, request.path)
        if self._superseded():
            return  # the newer prompt's own proposal brings its labels
        labelled = self._engine.label(embedding, proposal, restrict=request.restrict)
        self.proposal_ready.emit(request.image_id, request.request_id, labelled)

    def _interrupted(self) -> bool:
        """(Under the lock) a newer click, a reload or a stop is waiting."""
        return self._box.decode is not None or self._box.load is not None or self._stop

    def _propose(self, embedding: Any, request: DecodeRequest) -> Any:
        if request.select is not None and request.proposal is not None:
            return self._engine.select(
                embedding, request.proposal, request.select, restrict=request.restrict
            )
        return self._engine.segment(
            embedding, request.points, request.box, restrict=request.restrict
        )

    def _superseded(self) -> bool:
        with self._cond:
            return self._box.decode is not None

    def _do_relabel(self, request: RelabelRequest) -> None:
        embedding = self._embedding(request.image_id, request.path)
        labels = self._engine.relabel(embedding, request.mask, 5, restrict=request.restrict)
        self.labels_ready.emit(request.image_id, request.request_id, request.tag, labels)

    def _do_discover(self, request: DiscoveryRequest) -> None:
        with self._cond:
            restrict = self._box.restrict

        def superseded() -> bool:
            with self._cond:
                return request.kind in self._box.discoveries

        def urgent() -> bool:
            with self._cond:
                return self._box.decode is not None or bool(self._box.relabels)

        context = JobContext(
            self._engine,
            self._embedding,
            self._other_engine,
            restrict,
            self._job_state,
            superseded,
            urgent,
            self.progress.emit,
        )
        job = DISCOVERY_JOBS[request.kind]
        if request.kind in YIELDING:
            try:
                with interruptible(urgent):
                    result = job(context, request)
            except StepAside:  # a click waits: it goes first, the sender asks again
                result = YIELDED
        else:
            result = job(context, request)
        self.discovered.emit(request.kind, request.image_id, request.request_id, result)

    def _other_engine(self, spec: ModelSpec) -> Any:
        """An engine for another model choice, built once and kept (at most two besides ours);
        without a cache folder of its own it shares ours."""
        if spec.cache_dir is None and self._spec is not None:
            spec = spec.replace(cache_dir=self._spec.cache_dir)
        key = spec
        engine = self._others.get(key)
        if engine is None and self._spec is not None and hasattr(self._engine, "with_head"):
            if self._spec.differs_only_in_head(spec):
                from annotator.models.region import default_head_name

                head = spec.region_head or default_head_name(self._engine.clip)
                engine = self._engine.with_head(head)  # only the head differs: share the models
        if engine is None:
            factory = self.engine_factory or _build_engine
            engine = factory(spec, self.progress.emit)
        if key not in self._others:
            while len(self._others) >= 2:
                self._others.pop(next(iter(self._others)))
            self._others[key] = engine
        return engine


def segmenter_name(spec: ModelSpec) -> str:
    """What the window calls the segmenter: the checkpoint's file or folder name, else the
    chosen family's readable name, else "default segmenter"."""
    if spec.checkpoint:
        return Path(spec.checkpoint).name or str(spec.checkpoint)
    if spec.segmenter:
        return FAMILY_NAMES.get(spec.segmenter, spec.segmenter).split(" (")[0]
    return "default segmenter"


def _build_engine(spec: ModelSpec, progress, on_index: Any = None) -> Any:
    """`annotator.engine.build_engine`, imported (and with it torch) only here, inside the worker
    thread."""
    from annotator.engine import build_engine

    return build_engine(spec, progress=progress, build_index=False, on_index=on_index)


class ImageLoader(QObject):
    """Decodes images for display off the GUI thread (a big JPEG takes longer than a frame)."""

    loaded = Signal(int, int, QImage)  # image id, request id, image
    load_failed = Signal(int, int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: tuple[int, int, str] | None = None
        self._event = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="image-loader", daemon=True)
        self._closing = False
        self._thread.start()

    def request(self, image_id: int, request_id: int, path: str) -> None:
        with self._lock:
            self._pending = (image_id, request_id, path)
        self._event.set()

    def close(self) -> None:
        self._closing = True
        self._event.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from annotator.io.images import load_image

        while True:
            self._event.wait()
            self._event.clear()
            if self._closing:
                return
            with self._lock:
                job, self._pending = self._pending, None
            if job is None:
                continue
            image_id, request_id, path = job
            try:
                rgb = np.ascontiguousarray(load_image(Path(path)))
                h, w = rgb.shape[:2]
                image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            except Exception as error:  # noqa: BLE001 - shown to the user, the app goes on
                if not self._closing:
                    self.load_failed.emit(image_id, request_id, describe_error(error))
                continue
            if not self._closing:
                self.loaded.emit(image_id, request_id, image)
