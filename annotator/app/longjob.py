"""Long jobs (open a folder, import, export, later formats and autolabel) as plain functions:
`function(control, *args) -> result`, where `control` reports progress and says when to stop.

No Qt here: `gui/long_jobs.py` runs a `LongJob` off the GUI thread and turns its progress and end into
signals; a CLI could run the same function with a progress bar. A job that spends long stretches
inside one C call holding the GIL (json of a big COCO file) asks for a child process
(`process=True`), so the GUI thread is never starved; its function and arguments must then pickle
(a module-level function, paths rather than open connections).

Cancelling is cooperative (`control.check()` raises `Cancelled`); a process job that does not check
in time is terminated, and its `cleanup` runs. Either way a cancelled job must leave what existed
before it intact: write to a temporary name and rename at the end, or do all writes in one
transaction.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from annotator.errors import AnnotatorError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]  # done, total (0: unknown), what is being done


class Cancelled(AnnotatorError):
    """The user cancelled the job; whatever it did is rolled back."""


class JobControl:
    """Handed to a job function: progress (rate-limited) and cancellation."""

    def __init__(
        self,
        is_cancelled: Callable[[], bool],
        progress: ProgressFn | None = None,
        interval_s: float = 0.05,
    ) -> None:
        self._is_cancelled = is_cancelled
        self._progress = progress
        self._interval = interval_s
        self._last = 0.0

    def cancelled(self) -> bool:
        return bool(self._is_cancelled())

    def check(self) -> None:
        """Raise `Cancelled` once the user asked to stop."""
        if self._is_cancelled():
            raise Cancelled("cancelled")

    def progress(self, done: int, total: int = 0, text: str = "") -> None:
        """Report progress; calls closer than `interval_s` apart are dropped, except the last step."""
        if self._progress is None:
            return
        now = time.monotonic()
        if done < total and now - self._last < self._interval:
            return
        self._last = now
        self._progress(int(done), int(total), text)


@dataclass(frozen=True)
class LongJob:
    """What to run: `function(control, *args)`; `name` is shown while it runs ("Exporting COCO")."""

    name: str
    function: Callable[..., Any]
    args: tuple = ()
    process: bool = False  # run in a child process (work that holds the GIL for long)
    cleanup: Callable[[], None] | None = field(default=None, compare=False)  # after a kill
    # Applied to the result in the runner's thread before the GUI gets it: Python work (building
    # 20,000 row objects) that should not run on the GUI thread.
    finish: Callable[[Any], Any] | None = field(default=None, compare=False)


def run_here(job: LongJob, is_cancelled: Callable[[], bool] = lambda: False, progress=None) -> Any:
    """Run a job in the calling thread (the CLI, tests)."""
    result = job.function(JobControl(is_cancelled, progress), *job.args)
    return job.finish(result) if job.finish is not None else result


@contextmanager
def paused_gc() -> Iterator[None]:
    """No garbage collection while a job's large result (20,000 rows) is built or unpickled: a full
    collection of a process that has torch loaded walks millions of objects holding the GIL for
    ~0.1 s, and whichever thread triggers it, the GUI thread waits. Collection resumes after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def describe(error: BaseException) -> str:
    """One line for the user: our own errors (and OS errors) are phrased already."""
    if isinstance(error, AnnotatorError | OSError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def child_main(job_data: bytes, messages: Any, cancel: Any) -> None:
    """Entry point of a process job's child: lower its priority first (the window must win the
    CPU), then unpickle and run the job, sending ("progress", done, total, text) messages and one
    final ("finished", result) / ("failed", message) / ("cancelled",).

    Lives in this light module (no Qt) so that the child imports only what the job needs."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # other platforms, or not permitted
        pass

    def progress(done: int, total: int, text: str) -> None:
        messages.put(("progress", done, total, text))

    try:
        job: LongJob = pickle.loads(job_data)
        result = job.function(JobControl(cancel.is_set, progress), *job.args)
    except Cancelled:
        messages.put(("cancelled",))
    except BaseException as error:  # noqa: BLE001 - reported to the window as one line
        log.warning("long job failed:\n%s", traceback.format_exc())
        messages.put(("failed", describe(error)))
    else:
        messages.put(("finished", result))
