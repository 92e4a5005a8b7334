"""glibc allocator settings, NOT applied by the product any more (ADR 41: a click twice as slow).

Why: the peak memory of encoding a large image's working window (issue 26, <= 2 GB) was set
less by the tensors alive at once than by glibc's *dynamic* mmap threshold. After the first
large tensor is freed, glibc raises the threshold (up to 32 MiB), so the encoders' later
intermediate tensors (a few MiB each) come from the heap and arenas, where freed memory stays
resident and fragmented (`malloc_trim` gave back little) and the SAM encoder's and CLIP tower's
peaks add up. A fixed threshold of 128 KiB keeps every tensor buffer in its own mapping, given
back to the system the moment it is freed. The speed cost is measured in
`benchmarks/bench_large_image.py` (`ANNOTATOR_MALLOC=default` runs without these settings).

Settings are ones a user's `MALLOC_*` environment variable has not already made: theirs win.
Anywhere other than glibc (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

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
