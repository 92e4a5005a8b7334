"""Runs one `LongJob` at a time off the GUI thread and reports by signal: progress for the status
bar, then exactly one of finished / failed / cancelled.

A thread job runs in a Python thread; a process job in a child process started by multiprocessing's
fork server (a small process started once, `prepare_processes`; "spawn" where there is none): no Qt,
no inherited locks. A small reader thread turns the child's messages into signals. Cancel asks the
job to stop; a process job that has not stopped `KILL_AFTER_S` later is terminated and its `cleanup`
runs.

Closing the window cancels the job and waits; a job that outlives the wait (a child that is slow to
start on a loaded machine) keeps running on its thread, so every signal from that thread goes
through `_emit`, which stops relaying once the runner is closed or its Qt object is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue as queue_module
import threading
import time
import traceback
from typing import Any

from PySide6.QtCore import QObject, Signal

from annotator.app.longjob import (
    Cancelled,
    JobControl,
    LongJob,
    child_main,
    describe,
    paused_gc,
)

log = logging.getLogger(__name__)

KILL_AFTER_S = 1.0


class LongJobRunner(QObject):
    """`start(job)` returns at once; a second start while one runs is refused (returns False)."""

    started = Signal(str)  # job name
    progress = Signal(str, int, int, str)  # job name, done, total (0 = unknown), stage text
    finished = Signal(str, object)  # job name, result
    failed = Signal(str, str)  # job name, one-line message
    cancelled = Signal(str)  # job name

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job: LongJob | None = None
        self._cancel: Any = None
        self._context: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def prepare_processes(self) -> None:
        """Start what process jobs need (multiprocessing's resource tracker and, where there is one,
        its fork server) now, while nothing is waiting on the event loop: starting them forks this
        big process, which holds the GIL for ~0.1 s. Later jobs are forked by the small server."""
        if self._context is not None:
            return
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context(
            "forkserver" if "forkserver" in methods else "spawn"
        )
        self._context.Event()  # starts the resource tracker
        if self._context.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            self._context.set_forkserver_preload(["annotator.app.longjob"])
            forkserver.ensure_running()

    def busy(self) -> bool:
        return self.job is not None

    def start(self, job: LongJob) -> bool:
        if self.job is not None:
            return False
        self.job = job
        self.started.emit(job.name)
        self._cancel = threading.Event()
        target = self._run_process if job.process else self._run_thread
        self._thread = threading.Thread(
            target=target, args=(job, self._cancel), name="long-job", daemon=True
        )
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (a process job is terminated if it does not)."""
        if self.job is None or self._cancel is None:
            return
        self._cancel.set()

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the job's thread is done (closing the window, tests)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def close(self) -> None:
        """Cancel and wait (the window is closing). Final: from here on nothing is relayed and no
        result is finished, since the window that would receive it is going away."""
        self._closed = True
        self.cancel()
        self.wait(10)
        if self._thread is not None and self._thread.is_alive():
            log.warning(
                "long job %s still ending after the window closed", self.job and self.job.name
            )

    def _emit(self, signal: str, *args: Any) -> bool:
        """Emit the signal named `signal` from a background thread unless the runner is closed or
        deleted; False then (the caller stops its job). Looked up here, inside the `try`: on a
        deleted object the lookup itself may raise."""
        if self._closed:
            return False
        try:
            getattr(self, signal).emit(*args)
        except RuntimeError:  # the C++ object is gone: the window was deleted under the job
            self._closed = True
            return False
        return True

    # ------------------------------------------------------------------ background threads
    def _run_thread(self, job: LongJob, cancel: threading.Event) -> None:
        def progress(done: int, total: int, text: str) -> None:
            if not self._emit("progress", job.name, done, total, text):
                cancel.set()  # nobody is listening: stop at the job's next check

        try:
            result = job.function(JobControl(cancel.is_set, progress), *job.args)
        except Cancelled:
            self._end(job, "cancelled")
        except BaseException as error:  # noqa: BLE001 - reported to the user as one line
            log.warning("long job %s failed:\n%s", job.name, traceback.format_exc())
            self._end(job, "failed", describe(error))
        else:
            self._end(job, "finished", result)

    def _run_process(self, job: LongJob, cancel: threading.Event) -> None:
        """Start the child here, not on the GUI thread (the first start also starts
        multiprocessing's resource tracker), then relay its messages until it ends."""
        try:
            self.prepare_processes()
            if cancel.is_set():  # cancelled (or the window closed) while the server started
                self._end(job, "cancelled")
                return
            context = self._context
            child_cancel = context.Event()
            messages = context.Queue()
            data = pickle.dumps(job)
            process = context.Process(target=child_main, args=(data, messages, child_cancel))
            process.daemon = True
            process.start()
        except Exception as error:  # noqa: BLE001 - no process could be started
            self._end(job, "failed", describe(error))
            return
        final: tuple = ("failed", "the job's process ended without a result")
        kill_at: float | None = None
        while True:
            if cancel.is_set() and kill_at is None:
                child_cancel.set()  # a cooperative job stops at its next check()
                kill_at = time.monotonic() + KILL_AFTER_S
            if kill_at is not None and time.monotonic() > kill_at and process.is_alive():
                process.terminate()
                process.join(5)
                if job.cleanup is not None:
                    job.cleanup()
                final = ("cancelled",)
                break
            try:
                with paused_gc():
                    message = messages.get(timeout=0.1)
            except queue_module.Empty:
                if not process.is_alive() and messages.empty():
                    break
                continue
            if message[0] == "progress":
                if not self._emit("progress", job.name, *message[1:]):
                    cancel.set()  # nobody is listening: stop the child (terminated if it must be)
                continue
            final = message
            break
        process.join(5)
        self._end(job, *final)

    def _end(self, job: LongJob, kind: str, *payload: Any) -> None:
        if kind == "finished" and job.finish is not None and not self._closed:
            try:
                with paused_gc():
                    payload = (job.finish(payload[0]),)
            except Exception as error:  # noqa: BLE001 - reported as one line
                kind, payload = "failed", (describe(error),)
        self.job = None
        if kind == "finished":
            self._emit("finished", job.name, payload[0])
        elif kind == "cancelled":
            self._emit("cancelled", job.name)
        else:
            self._emit("failed", job.name, payload[0])
