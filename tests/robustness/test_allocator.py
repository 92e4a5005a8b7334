"""The glibc allocator settings the engine applies at start (ADR 41, issue 26's peak RSS).

Each case runs in a fresh interpreter: mallopt settings last for the process. What is checked is
glibc's own accounting (`mallinfo2().hblks`, the chunks served by their own mmap): after a large
buffer is freed, glibc's dynamic threshold would serve a 1 MiB buffer from the heap (where freed
memory stays resident); with the fixed threshold it gets its own mapping, returned when freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes, json, sys
from annotator import allocator
applied = allocator.tune()
assert allocator.tune() is applied  # once per process

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(16 << 20))  # a large buffer freed: glibc raises a dynamic threshold
before = libc.mallinfo2().hblks
small = libc.malloc(1 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(small)
print(json.dumps({"applied": applied, "mapped": mapped}))
"""


def _probe(**env: str) -> dict:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "ANNOTATOR_MALLOC"))
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt (elsewhere tune() does nothing)"
)


def test_tune_fixes_the_mmap_threshold():
    result = _probe()
    assert result == {"applied": {"MALLOC_MMAP_THRESHOLD_": 128 * 1024}, "mapped": 1}


def test_without_tuning_glibc_serves_the_buffer_from_the_heap():
    """The contrast that makes the test above able to fail."""
    assert _probe(ANNOTATOR_MALLOC="default") == {"applied": {}, "mapped": 0}


def test_a_users_malloc_environment_wins():
    result = _probe(MALLOC_MMAP_THRESHOLD_="4194304")
    assert result == {"applied": {}, "mapped": 0}  # their 4 MiB threshold: 1 MiB from the heap
