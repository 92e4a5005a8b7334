"""Unmap the resident pages of weights read from their file, once a batch job no longer needs them.

Why: CLIP's weights are mapped from their file (ADR 42), so a page counts in the process's memory
only once a forward reads it. The text tower (225 MB for convnext_base_w) is read end to end while
the vocabulary's text index is built, then rarely again: only for a vocabulary edit or a text query.
Its pages would otherwise stay in the window's resident set for the whole session, beside the
image encoders a large image's window needs (issue 26: a 2 GB peak). `release` gives the pages
back with `madvise(MADV_DONTNEED)`: they stay in the kernel's page cache, and a later read maps
them again without a disk read.

A private file mapping is copy-on-write: a page that something wrote to is no longer the file's,
and `MADV_DONTNEED` would throw the write away. So a tensor is released only when every one of its
resident pages is still the file's own (`/proc/self/pagemap` bit 61, "file page"), and only when
its memory lies inside a private mapping of a regular file (`/proc/self/maps`). Anything else
(weights read into memory, a GPU, a system without these files) is left alone: `release` then
returns 0.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import sys
from collections.abc import Iterable

import torch

MADV_DONTNEED = 4
_PRESENT = 1 << 63
_SWAPPED = 1 << 62  # a copy-on-write page written, then swapped out: not the file's
_FILE_PAGE = 1 << 61


def _file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's private mappings of regular files."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or fields[1][3] != "p" or not fields[5].startswith("/"):
                continue
            start, end = (int(v, 16) for v in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _inside(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= start and end <= hi for lo, hi in ranges)


def _pages(pagemap, start: int, end: int, page: int) -> tuple[int, bool]:
    """(resident pages, all resident ones still the file's) for [start, end)."""
    count = (end - start) // page
    pagemap.seek((start // page) * 8)
    data = pagemap.read(count * 8)
    resident, clean = 0, True
    for (entry,) in struct.iter_unpack("<Q", data):
        if entry & _SWAPPED:
            clean = False
        elif entry & _PRESENT:
            resident += 1
            clean = clean and bool(entry & _FILE_PAGE)
    return resident, clean


def _span(tensor: torch.Tensor, page: int) -> tuple[int, int] | None:
    """The whole pages inside a contiguous CPU tensor's own bytes (not its storage's: one storage
    may hold other tensors; the edge pages may hold a neighbour's bytes)."""
    if tensor.device.type != "cpu" or tensor.numel() == 0 or not tensor.is_contiguous():
        return None
    first = tensor.data_ptr()
    lo = -(-first // page) * page
    hi = (first + tensor.numel() * tensor.element_size()) // page * page
    return (lo, hi) if hi > lo else None


def release(tensors: Iterable[torch.Tensor]) -> int:
    """Unmap the resident pages of `tensors` that are the file's own; bytes released."""
    if not sys.platform.startswith("linux"):
        return 0
    page = mmap.PAGESIZE
    spans = {s for s in (_span(t, page) for t in tensors) if s is not None}
    if not spans:
        return 0
    try:
        mappings = _file_mappings()
        pagemap = open("/proc/self/pagemap", "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    released = 0
    with pagemap:
        for lo, hi in sorted(spans):
            if not _inside(lo, hi, mappings):
                continue
            resident, clean = _pages(pagemap, lo, hi, page)
            if resident and clean and libc.madvise(lo, hi - lo, MADV_DONTNEED) == 0:
                released += resident * page
    return released


def resident_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of `tensors`' whole pages that are resident (for tests and benchmarks)."""
    page = mmap.PAGESIZE
    total = 0
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for span in {s for s in (_span(t, page) for t in tensors) if s is not None}:
            total += _pages(pagemap, *span, page)[0] * page
    return total
