"""The glibc allocator settings: `tune` (ADR 41, not shipped) and `encoding` (ADR 43, around every
encoder run), for issue 26's peak RSS.

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

# glibc's malloc, free and mallinfo2 (its own accounting) for the probes below
GLIBC = """
import ctypes, json
from annotator import allocator

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
"""

PROBE = (
    GLIBC
    + """
applied = allocator.tune()
assert allocator.tune() is applied  # once per process
libc.free(libc.malloc(16 << 20))  # a large buffer freed: glibc raises a dynamic threshold
before = libc.mallinfo2().hblks
small = libc.malloc(1 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(small)
print(json.dumps({"applied": applied, "mapped": mapped}))
"""
)


def _probe(program: str = PROBE, **env: str) -> dict:
    """`program` in a fresh interpreter (mallopt settings last for the process), without the
    caller's MALLOC_* settings unless given."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "ANNOTATOR_MALLOC"))
    }
    done = subprocess.run(
        [sys.executable, "-c", program],
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


ENCODING_PROBE = (
    GLIBC
    + """
def mapped_after_a_large_free(mib):
    # each call asks for more than any earlier call left free in the heap, so the answer is
    # glibc's choice for new memory: the heap (brk) or a mapping of its own
    libc.free(libc.malloc(16 << 20))  # glibc's dynamic threshold would rise past `mib`
    before = libc.mallinfo2().hblks
    small = libc.malloc(mib << 20)
    mapped = libc.mallinfo2().hblks - before
    libc.free(small)
    return mapped

result = {"before": mapped_after_a_large_free(1)}
with allocator.encoding():
    with allocator.encoding():  # nested (the text index thread beside an encode)
        result["nested"] = mapped_after_a_large_free(2)
    result["inner_left"] = mapped_after_a_large_free(3)  # still inside the outer one
result["after"] = mapped_after_a_large_free(4)
big = libc.malloc(48 << 20)  # over the resting 32 MiB threshold: still its own mapping
result["big_after"] = libc.mallinfo2().hblks
libc.free(big)
print(json.dumps(result))
"""
)


def _encoding_probe(**env: str) -> dict:
    return _probe(ENCODING_PROBE, **env)


def test_while_encoding_every_buffer_over_128_kib_is_its_own_mapping():
    result = _encoding_probe()
    assert result["before"] == 0  # glibc as it starts: the 1 MiB buffer from the heap
    assert result["nested"] == 1 and result["inner_left"] == 1  # the low threshold, nested too
    assert result["after"] == 0  # resting: mid-size buffers from the heap again (fast clicks)
    assert result["big_after"] >= 1


@pytest.mark.parametrize(
    "env", [{"ANNOTATOR_MALLOC": "default"}, {"MALLOC_MMAP_THRESHOLD_": "4194304"}]
)
def test_encoding_leaves_glibc_alone_when_told_or_when_the_user_set_it(env):
    result = _encoding_probe(**env)
    assert result["nested"] == 0 and result["inner_left"] == 0


TRIM_PROBE = (
    GLIBC
    + """
allocator.encoding  # (imported: its settings come with the first use)
with allocator.encoding():
    pass  # the resting thresholds from here on: mid-size buffers come from the heap
blocks = [libc.malloc(256 << 10) for _ in range(64)]  # 16 MiB of heap, under the trim threshold
for b in blocks:
    ctypes.memset(b, 1, 256 << 10)  # written: resident
keep = libc.malloc(1 << 10)  # at the top of the heap: the freed blocks below cannot shrink it
for b in blocks:
    libc.free(b)
result = {"free_before": libc.mallinfo2().fordblks}
with allocator.encoding():
    result["free_inside"] = libc.mallinfo2().fordblks
    result["rss_inside"] = int(open("/proc/self/statm").read().split()[1])
libc.free(keep)
print(json.dumps(result))
"""
)


def test_entering_encoding_trims_what_the_heaps_kept():
    """The free memory a heap kept after a click's work (below the resting trim threshold) is
    given back when an encode starts, before the encode adds its own peak. glibc's accounting
    keeps the freed chunks as free, so the proof is the pages: `malloc_trim` returns the free
    pages inside the heap, and the same probe with the resting thresholds set by the user (so
    `encoding()` leaves glibc alone) keeps them."""
    ours = _probe(TRIM_PROBE)
    resting = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
    theirs = _probe(TRIM_PROBE, **resting)
    assert ours["free_before"] >= 16 << 20 and theirs["free_before"] >= 16 << 20
    pages = (16 << 20) // 4096
    assert theirs["rss_inside"] - ours["rss_inside"] >= pages // 2  # 16 MiB resident less


def test_a_large_images_window_encodes_inside_encoding_a_whole_image_does_not(engine, monkeypatch):
    """Structure: Engine.embed runs the segmenter encode and the CLIP trunk of a large image's
    window (pixels given as a function with a key) while `encoding()` is held; a whole image's
    encoders run with glibc as it is (ADR 43: the setting costs encode time)."""
    import contextlib

    import numpy as np

    from annotator import allocator

    inside = {"depth": 0, "sam": [], "clip": []}

    @contextlib.contextmanager
    def recording():
        inside["depth"] += 1
        try:
            yield
        finally:
            inside["depth"] -= 1

    monkeypatch.setattr(allocator, "encoding", recording)
    sam_encode, prepare = engine.sam.encode, engine.head.prepare

    def spy_sam(pixels):
        inside["sam"].append(inside["depth"])
        return sam_encode(pixels)

    def spy_clip(pixels):
        inside["clip"].append(inside["depth"])
        return prepare(pixels)

    monkeypatch.setattr(engine.sam, "encode", spy_sam)
    monkeypatch.setattr(engine.head, "prepare", spy_clip)
    rng = np.random.default_rng(7)
    whole = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    engine.embed(whole)
    window = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    engine.embed(lambda: window, key=f"test-window-{rng.integers(1 << 30)}")
    assert inside == {"depth": 0, "sam": [0, 1], "clip": [0, 1]}
