"""Per-thread CPU priority, so that background work yields the CPU to what a person waits for.

Linux gives every thread its own nice value, and threads a thread starts (torch's intra-op team
included) inherit it. The window's GUI thread keeps the process's priority; the model worker runs
at `WORKER_NICE` (a frame is never late because an encode wants both cores); a background text-index
build runs at `BACKGROUND_NICE` (a click's encode gets most of the CPU, not half, while a chunk of
texts is in flight). Elsewhere these calls do nothing.
"""

from __future__ import annotations

import os
import threading

WORKER_NICE = 5
BACKGROUND_NICE = 15  # CFS weights 335 vs 36: the worker's threads get ~90% of a shared core


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value to `nice`; never lowers it (a user who started the
    program under `nice -n 19` keeps that) and never fails."""
    try:
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) < nice:
            os.setpriority(os.PRIO_PROCESS, thread, nice)
    except (AttributeError, OSError):  # not Linux, or not permitted
        pass


def thread_priority() -> int | None:
    """The calling thread's nice value (None where it cannot be read)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return None
