"""Who gets the CPU while the text index builds in the background (a first start, a vocabulary edit).

The text index and the segmenter share the CPU; on a first start the index has ~40,000 texts to
encode while the person already clicks. The order this schedule keeps (docs/architecture.md,
"First start"):

1. the COCO names first (about 200 texts): the shown image's encode waits for them, at most
   FIRST_NAMES_WAIT_S; a click's mask does not wait, but between the mask and the CLIP half for
   its labels the index finishes them alone;
2. clicks and the shown image: the index yields to them between chunks (at most YIELD_S each
   time) and runs at a lower thread priority (`annotator.priority`);
3. the LVIS names before other images are prefetched (at most WIDE_NAMES_WAIT_S);
4. the rest of the vocabulary alongside prefetch.

Qt-free: the window's worker (`gui/worker.py`) owns the threads and signals; this class only
decides who waits. It shares the worker's condition variable, so a wait here wakes on the same
notifications as the worker's own job loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

FIRST_NAMES_WAIT_S = 3.0  # the longest a first encode waits for the COCO names to score
WIDE_NAMES_WAIT_S = 120.0  # the longest prefetch waits for the LVIS names to score
YIELD_S = 30.0  # the longest the index waits, each time, for a click or the shown image


class IndexSchedule:
    """The running background build of one text index, and the waits around it."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self.build: Any = None  # index_build.IndexBuild while one runs
        self._index: Any = None  # vocab.index.TextIndex being built
        self._started = 0.0  # time.monotonic() when the build began
        self.urgent = False  # a click's mask or the shown image's encode is being computed

    # ---- the build ------------------------------------------------------------------------------
    def start(
        self,
        index: Any,
        priority: Sequence[str],
        vocabulary: Any,
        report: Callable[[int, int], None],
        on_done: Callable[[BaseException | None], None],
    ) -> None:
        """Build `index` on a background thread, `priority` names first. After each chunk,
        `report(ready, total)` is called on that thread and the build then yields to urgent work."""
        from annotator.index_build import start_text_index_build

        handle: dict[str, Any] = {}

        def progress(_stage: str, _done: int, _total: int) -> None:
            report(index.ready, index.total)
            with self._cond:
                self._cond.notify_all()  # an encode deferred to a milestone may be due
            self._yield_to_urgent(lambda: handle.get("build"))  # (set once `start` returns)

        index.plan_milestones(priority, vocabulary)  # known before the first chunk
        self._index, self._started = index, time.monotonic()
        self.build = handle["build"] = start_text_index_build(
            index, priority, progress, vocabulary, on_done
        )

    def cancel(self) -> None:
        """Stop the running build after its chunk (what it encoded is cached) and wait for it."""
        build, self.build, self._index = self.build, None, None
        if build is not None:
            build.cancel()
            build.wait(60)  # at most one chunk of texts

    @property
    def running(self) -> bool:
        return self.build is not None and self.build.running

    def short_of(self, milestone: int, limit_s: float = float("inf")) -> bool:
        """Whether a running build has not yet passed milestone 0 (COCO) / 1 (LVIS), and began
        less than `limit_s` ago."""
        if not self.running or time.monotonic() - self._started > limit_s:
            return False
        milestones = getattr(self._index, "milestones", (0, 0))
        return self._index.ready < milestones[milestone]

    # ---- the waits ------------------------------------------------------------------------------
    def set_urgent(self, urgent: bool) -> None:
        """Whether the worker now computes what a person waits for (a click, the shown image)."""
        with self._cond:
            self.urgent = urgent
            self._cond.notify_all()

    def _yield_to_urgent(self, build: Callable[[], Any]) -> None:
        """Called by the index between chunks: wait while a click's mask or the shown image's
        encode is computed (at most YIELD_S each time). Sharing two cores, each took twice as
        long: a click at the moment the models were ready got its mask 4.5 s later instead of
        2.1 s (SAM 2.1 tiny, measured by benchmarks/bench_cold_start.py)."""
        deadline = time.monotonic() + YIELD_S
        with self._cond:
            while self.urgent and time.monotonic() < deadline:
                running = build()
                if running is not None and running.cancelled:
                    return
                self._cond.wait(0.1)

    def let_first_names_score(self, interrupted: Callable[[], bool]) -> None:
        """Between a click's mask and its labels: labels need the COCO names as much as the CLIP
        half of the image, so on a first start the index finishes those names first, alone on the
        CPU (at most FIRST_NAMES_WAIT_S, or until `interrupted()`, checked under the worker's
        lock). The labels come no later, and the names score seconds sooner (a click the moment
        the models were ready: COCO names 9.0 s after opening instead of 12.5)."""
        deadline = time.monotonic() + FIRST_NAMES_WAIT_S
        with self._cond:
            self.urgent = False
            self._cond.notify_all()
            while self.short_of(0) and time.monotonic() < deadline and not interrupted():
                self._cond.wait(0.1)
            self.urgent = True
