"""glibc allocator settings while an encoder runs (issue 26's peak RSS; ADRs 41 and 43).

Why: the peak memory of encoding an image or a large image's working window (issue 26, <= 2 GB)
is set less by the tensors alive at once than by glibc's *dynamic* mmap threshold. After the
first large tensor is freed, glibc raises the threshold (up to 32 MiB), so the encoders' later
intermediate tensors (a few MiB each) come from the heap and arenas, where freed memory stays
resident and fragmented, and the SAM encoder's and CLIP trunk's peaks add up. A threshold of
128 KiB gives every tensor buffer its own mapping, returned the moment it is freed.

Fixed for the whole process (`tune`, ADR 41) it made a click's decode twice as slow (every
small buffer mapped and faulted in again), so the product does not call `tune`: `encoding()`
fixes the low threshold only while an encoder runs on a large image's working window, then sets
the values glibc's own dynamic rule reaches after large frees (mmap 32 MiB, trim 64 MiB), so
clicks allocate as before, and trims the heap once. Whole images keep glibc's default: the
setting costs encode time (ADR 43).

Settings are ones a user's `MALLOC_*` environment variables have not already made: theirs win;
`ANNOTATOR_MALLOC=default` leaves glibc alone (the benchmarks' baseline). Anywhere other than
glibc (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: (mallopt parameter, value, the environment variable that overrides it)
SETTINGS = ((M_MMAP_THRESHOLD, 128 * 1024, "MALLOC_MMAP_THRESHOLD_"),)

_applied: dict[str, int] | None = None


def tune() -> dict[str, int]:
    """Apply `SETTINGS` once per process (idempotent); what was set, by environment name."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = {}
    if not sys.platform.startswith("linux") or os.environ.get("ANNOTATOR_MALLOC") == "default":
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return _applied
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for param, value, env in SETTINGS:
        if env not in os.environ and mallopt(param, value) == 1:
            _applied[env] = value
    return _applied


#: while an encoder runs / after it (glibc's own dynamic maximum and the trim it pairs with)
ENCODING_MMAP_THRESHOLD = 128 * 1024
RESTING_MMAP_THRESHOLD = 32 * 1024 * 1024
RESTING_TRIM_THRESHOLD = 2 * RESTING_MMAP_THRESHOLD

_lock = threading.Lock()
_depth = 0
_libc: ctypes.CDLL | None | bool = None  # None: not looked up yet; False: not glibc / turned off


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        _libc = False
        overridden = any(
            env in os.environ for env in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
        )
        if (
            sys.platform.startswith("linux")
            and os.environ.get("ANNOTATOR_MALLOC") != "default"
            and not overridden
        ):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                libc.mallopt.restype = ctypes.c_int
                libc.malloc_trim.argtypes = (ctypes.c_size_t,)
                libc.malloc_trim.restype = ctypes.c_int
                _libc = libc
            except (OSError, AttributeError):  # not glibc
                pass
    return _libc or None


@contextmanager
def encoding() -> Iterator[None]:
    """Run an encoder with every tensor buffer over 128 KiB in its own mapping, the heaps trimmed
    first; afterwards the resting thresholds and one more `malloc_trim`. Nested and concurrent
    uses (the text index thread beside an image encode) share one low-threshold period: the
    first in sets it, the last out restores."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_THRESHOLD, ENCODING_MMAP_THRESHOLD)
            # what the heaps kept since the last encode (a click's decode and labels, up to the
            # resting 64 MiB trim threshold per arena) goes back before this encode adds its peak
            libc.malloc_trim(0)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_THRESHOLD, RESTING_MMAP_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, RESTING_TRIM_THRESHOLD)
                libc.malloc_trim(0)
