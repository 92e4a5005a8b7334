"""The model thread's work without the thread: it hosts the `Engine` and answers plain requests.

`gui/worker.EngineWorker` is the Qt adapter (a QThread whose `run` is `ModelHost.run` and whose
signals are the `Outbox`); everything here is plain Python, so the scheduling is testable and the
window imports neither the engine nor torch. Requests are plain data put into a small mailbox
under a lock:
- decode: one slot, the newest prompt state replaces an older one that has not started (a click is
  never rejected, only superseded);
- relabel: one slot per tag (annotation id or "proposal"), newest wins;
- encode: an ordered list (current image first, then the next ones); embeddings stay in memory
  within a budget (`app.embedding_cache`), the engine's disk cache keeps the rest;
- load / vocabulary: the newest wins.
- discover: one slot per kind; the job functions live in `annotator.app.jobs` (plain functions).
- windows: a large image's working windows to encode ahead of a click (`app.window_prefetch`),
  the view's own first; the newest list wins, and a click stops one mid-encode.
Results and errors go out through the `Outbox`, tagged with image id and request id; the session
drops stale ones.
"""

from __future__ import annotations

import gc
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.app.embedding_cache import EmbeddingCache
from annotator.app.first_start import FIRST_NAMES_WAIT_S, WIDE_NAMES_WAIT_S, IndexSchedule
from annotator.app.host_text import describe_error, segmenter_name  # re-exported for the GUI
from annotator.app.jobs import DISCOVERY_JOBS, YIELDED, YIELDING, DiscoveryRequest, JobContext
from annotator.app.large_view import is_large_path, window_proposal  # issue 26
from annotator.app.model_port import DecodeRequest, RelabelRequest
from annotator.app.window_prefetch import WindowQueue, prefetch_step
from annotator.preempt import StepAside, interruptible
from annotator.priority import WORKER_NICE, lower_thread_priority
from annotator.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class Outbox:
    """Where the host's answers go (the worker's signals' `emit`; any callables in a test). Called
    from the model thread, and `progress` / `failed` / `vocabulary_ready` also from the text
    index's thread."""

    engine_loading: Callable[[str], None]  # what is being loaded
    engine_ready: Callable[[dict], None]  # {"device", "sam", "clip", "vocabulary", ...}
    engine_failed: Callable[[str], None]
    progress: Callable[[str, int, int], None]  # stage, done, total
    encoded: Callable[[int], None]  # image id whose embedding now exists
    encode_progress: Callable[[int, int], None]  # encoded, total
    proposal_ready: Callable[[int, int, Any], None]  # image id, request id, Proposal
    labels_ready: Callable[[int, int, str, Any], None]  # image id, request id, tag, labels
    vocabulary_ready: Callable[[int], None]  # entries now used for suggestions
    failed: Callable[[str, int, int, str], None]  # kind, image id, request id, message
    discovered: Callable[[str, int, int, Any], None]  # kind, image id, request id, result


@dataclass
class _Mailbox:
    load: ModelSpec | None = None
    vocabulary: Any = None
    decode: DecodeRequest | None = None
    relabels: dict[str, RelabelRequest] = field(default_factory=dict)
    order: list[tuple[int, str]] = field(default_factory=list)
    restrict: tuple[str, ...] | None = None
    discoveries: dict[str, DiscoveryRequest] = field(default_factory=dict)  # one slot per kind


def build_engine(spec: ModelSpec, progress, on_index: Any = None) -> Any:
    """`annotator.engine.build_engine`, imported (and with it torch) only here, inside the model
    thread."""
    from annotator.engine import build_engine as build

    return build(spec, progress=progress, build_index=False, on_index=on_index)


class ModelHost:
    """Owns the `Engine`; the request methods are called from the GUI thread and return at once,
    `run` is the model thread's loop."""

    def __init__(self, out: Outbox, budget_mb: float = 1024) -> None:
        self.out = out
        self._cond = threading.Condition()
        self._box = _Mailbox()
        self._stop = False
        self.engine: Any = None
        self.cache = EmbeddingCache(budget_mb)
        self.windows = WindowQueue()  # issue 26: a large image's windows, encoded ahead of a click
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
        engine = self.engine
        if engine is None or self._schedule.running:
            return False
        status = getattr(engine, "index_status", None)
        return status is None or status[0] >= status[1]

    def set_label_priority(self, names: list[str]) -> None:
        """Names (the project's categories) whose labels the next text-index build makes first."""
        self._priority = tuple(names)

    def set_exemplars(self, exemplars: Any) -> None:
        """The project's accepted objects as visual exemplars (thread-safe `Exemplars`, kept in
        step with the store by `app.exemplars.ExemplarKeeper`; the engine reads it for every
        suggestion)."""
        self._exemplars = exemplars
        engine = self.engine
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

    def prefetch_windows(self, path: str, windows: Sequence[Any]) -> None:
        """A large image's working windows to encode when nothing else waits (replaces the last)."""
        self.windows.set(path, windows)
        with self._cond:
            self._cond.notify()

    def set_budget(self, budget_mb: float) -> None:
        """Memory for embeddings kept in memory (the current image always stays)."""
        with self._cond:
            self.cache.set_budget(budget_mb)
            self._cond.notify()

    def is_encoded(self, image_id: int) -> bool:
        with self._cond:
            return image_id in self.cache.done

    def request_stop(self) -> None:
        """Ask the loop to end after the current job (the caller then waits for the thread)."""
        self._schedule.cancel()
        with self._cond:
            self._stop = True
            self._cond.notify()

    # ------------------------------------------------------------------ the loop (model thread)
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
        if self.engine is None:
            return None
        if box.vocabulary is not None:
            job, box.vocabulary = ("vocabulary", box.vocabulary), None
            return job
        if box.decode is not None:
            job, box.decode = ("decode", box.decode), None
            return job
        current = box.order[0] if box.order else None
        if current is not None and current[0] not in self.cache.items:
            if current[0] not in self.cache.failed:  # the shown image's segmenter half first:
                if self._schedule.short_of(0, FIRST_NAMES_WAIT_S):
                    return None  # ...once the COCO names score (a second or so on a first start)
                return "encode", current  # a click then waits for nothing else
        if box.relabels:
            tag = next(iter(box.relabels))
            return "relabel", box.relabels.pop(tag)
        if box.discoveries:
            kind = next(iter(box.discoveries))
            return "discover", box.discoveries.pop(kind)
        for image_id, path in box.order[: self.cache.prefetch_count()]:
            if image_id not in self.cache.done and image_id not in self.cache.failed:
                if image_id != current[0] and self._schedule.short_of(1, WIDE_NAMES_WAIT_S):
                    return None  # other images wait while the LVIS names are encoded
                return "encode", (image_id, path)
        window = self.windows.next()
        return ("window", window) if window is not None else None

    def _report(self, kind: str, payload: Any, error: BaseException) -> None:
        message = describe_error(error)
        if kind == "load":
            self.engine = None
            self.out.engine_failed(message)
        elif kind in ("decode", "relabel"):
            self.out.failed(kind, payload.image_id, payload.request_id, message)
        elif kind == "discover":
            self.out.failed(payload.kind, payload.image_id, payload.request_id, message)
        elif kind == "encode":
            self.cache.failed.add(payload[0])
            self.out.failed(kind, payload[0], -1, message)
        else:
            self.out.failed(kind, -1, -1, message)

    def _do_load(self, spec: ModelSpec) -> None:
        self.engine = None
        self.cache.clear()
        self._others.clear()
        self._job_state = {}
        self._spec = spec
        self.out.engine_loading(segmenter_name(spec))
        self._schedule.cancel()
        factory = self.engine_factory or build_engine
        gc.unfreeze()  # the previous engine's objects may be collected again
        try:
            # the text index starts as soon as it exists, while the segmenter still loads
            self.engine = factory(spec, self.out.progress, self._start_index_build)
        except BaseException:
            self._schedule.cancel()
            raise
        # The models and the vocabulary live as long as the engine: kept out of full collections,
        # which otherwise walk their ~10^6 objects holding the GIL (67 ms on a quiet core, far more
        # with both cores busy) and stall the window at random moments.
        gc.freeze()
        if hasattr(self.engine, "exemplars"):
            self.engine.exemplars = self._exemplars
        self.out.engine_ready(self._engine_info(spec))
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
            if getattr(self.engine, "start_index_build", None) is None:
                return  # a test double without a text index
            index = self.engine.index
            if vocabulary is None and index.ready >= index.total:
                return  # already complete (cached texts): engine_ready said how many entries

        def report(ready: int, total: int) -> None:
            self.out.progress("labels", ready, total)

        def done(error: BaseException | None) -> None:
            ready, total = index.ready, index.total
            if error is not None:
                self.out.failed("vocabulary", -1, -1, f"the label index stopped: {error}")
            elif ready >= total:
                self.out.progress("labels", ready, total)
                self._job_state.pop("tags", None)  # tags name vocabulary entries: recompute them
                self.out.vocabulary_ready(total)

        self._schedule.start(index, self._priority, vocabulary, report, done)

    def _engine_info(self, spec: ModelSpec) -> dict:
        engine = self.engine
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
        self._schedule.cancel()
        if getattr(self.engine, "start_index_build", None) is None:  # a test double
            self.engine.set_vocabulary(vocabulary)
            self.out.vocabulary_ready(len(vocabulary))
            return
        self._start_index_build(vocabulary=vocabulary)

    def embedding(self, image_id: int, path: str, clip: bool = True) -> Any:
        """From memory, else from the engine (its disk cache, else the encoder). `clip=False`: the
        segmenter half is enough (a mask); an embedding held with only that half is completed when
        the CLIP half is asked for."""
        held = self.cache.get(image_id, clip)
        if held is not None:
            return held
        embedding = self.cache.items.get(image_id)
        if embedding is None and not clip:
            embedding = self.engine.embed(Path(path), clip=False)
        elif embedding is None:
            embedding = self.engine.embed(Path(path))
        else:
            embedding = self.engine.embed(Path(path), known=embedding)
        with self._cond:
            order = [i for i, _ in self._box.order]
        self.cache.remember(image_id, embedding, order, self._encoded)
        return embedding

    def _encoded(self, image_id: int, count: int) -> None:
        with self._cond:
            total = len(self._box.order)
        self.out.encoded(image_id)
        self.out.encode_progress(count, total)

    def _do_encode(self, payload: tuple[int, str]) -> None:
        """The segmenter half first; when a click is waiting by then, it goes first (its mask
        needs nothing more) and this job comes back for the CLIP half."""
        image_id, path = payload
        if is_large_path(path):  # issue 26: a large image is encoded per working window, on a click
            self.cache.failed.add(image_id)  # (never as a whole: not asked for again)
            return
        if image_id not in self.cache.items:
            self.embedding(image_id, path, clip=False)
            with self._cond:
                if self._box.decode is not None:
                    return
        self.embedding(image_id, path)

    def _do_window(self, item: tuple) -> None:
        prefetch_step(self.engine, item, self.windows, self._waiting)

    def _waiting(self) -> bool:
        with self._cond:
            return self._interrupted() or bool(self._box.relabels)

    def _do_decode(self, request: DecodeRequest) -> None:
        """The mask as soon as the segmenter half exists; where the CLIP half did not exist yet,
        the same request's proposal is sent again with its labels once it does (masks before
        labels: the window shows the mask first, then fills in the names)."""
        if request.window is not None or hasattr(request.proposal, "window"):  # issue 26
            proposal = window_proposal(self.engine, request)  # app/large_view: its working window
            self.out.proposal_ready(request.image_id, request.request_id, proposal)
            return
        embedding = self.embedding(request.image_id, request.path, clip=False)
        if self._superseded():
            return  # a newer prompt state arrived while the image was being encoded
        proposal = self._propose(embedding, request)
        self.out.proposal_ready(request.image_id, request.request_id, proposal)
        if not getattr(proposal, "labels_pending", False):
            return
        self._schedule.let_first_names_score(self._interrupted)
        embedding = self.embedding(request.image_id, request.path)
        if self._superseded():
            return  # the newer prompt's own proposal brings its labels
        labelled = self.engine.label(embedding, proposal, restrict=request.restrict)
        self.out.proposal_ready(request.image_id, request.request_id, labelled)

    def _interrupted(self) -> bool:
        """(Under the lock) a newer click, a reload or a stop is waiting."""
        return self._box.decode is not None or self._box.load is not None or self._stop

    def _propose(self, embedding: Any, request: DecodeRequest) -> Any:
        if request.select is not None and request.proposal is not None:
            return self.engine.select(
                embedding, request.proposal, request.select, restrict=request.restrict
            )
        return self.engine.segment(
            embedding, request.points, request.box, restrict=request.restrict
        )

    def _superseded(self) -> bool:
        with self._cond:
            return self._box.decode is not None

    def _do_relabel(self, request: RelabelRequest) -> None:
        embedding = self.embedding(request.image_id, request.path)
        labels = self.engine.relabel(embedding, request.mask, 5, restrict=request.restrict)
        self.out.labels_ready(request.image_id, request.request_id, request.tag, labels)

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
            self.engine,
            self.embedding,
            self._other_engine,
            restrict,
            self._job_state,
            superseded,
            urgent,
            self.out.progress,
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
        self.out.discovered(request.kind, request.image_id, request.request_id, result)

    def _other_engine(self, spec: ModelSpec) -> Any:
        """An engine for another model choice, built once and kept (at most two besides ours);
        without a cache folder of its own it shares ours."""
        if spec.cache_dir is None and self._spec is not None:
            spec = spec.replace(cache_dir=self._spec.cache_dir)
        key = spec
        engine = self._others.get(key)
        if engine is None and self._spec is not None and hasattr(self.engine, "with_head"):
            if self._spec.differs_only_in_head(spec):
                from annotator.models.region import default_head_name

                head = spec.region_head or default_head_name(self.engine.clip)
                engine = self.engine.with_head(head)  # only the head differs: share the models
        if engine is None:
            factory = self.engine_factory or build_engine
            engine = factory(spec, self.out.progress)
        if key not in self._others:
            while len(self._others) >= 2:
                self._others.pop(next(iter(self._others)))
            self._others[key] = engine
        return engine


__all__ = ["ModelHost", "Outbox", "build_engine", "describe_error", "segmenter_name"]
