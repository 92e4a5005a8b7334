"""Opening files named by the user, safely, and naming them in one printable line.

Kept free of heavy imports (no numpy, no Pillow): vocabulary and COCO readers use it too.
"""

from __future__ import annotations

import os
import re
import stat
from typing import BinaryIO

__all__ = ["FileTooLarge", "NotARegularFile", "open_regular", "read_regular", "show_path"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def show_path(path: str | os.PathLike) -> str:
    """A printable, one-line form of a path: bytes that are not UTF-8 (Linux file names) and control
    characters (newline, NUL, escape...) become \\xNN escapes, so a name cannot split an error line or
    drive the terminal."""
    try:
        raw = os.fsencode(path)
    except (TypeError, ValueError):  # pragma: no cover - not a path at all
        raw = str(path).encode("utf-8", errors="backslashreplace")
    text = raw.decode("utf-8", errors="backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


class NotARegularFile(OSError):
    """`open_regular` refused a pipe, device, socket or folder; str() says which."""


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise NotARegularFile(f"{kind}, not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a named pipe or a device.

    The kind is checked on the opened descriptor (no race with a rename). Raises NotARegularFile
    (an OSError) for anything but a regular file, and the usual OSErrors otherwise.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # a socket cannot be opened at all (ENXIO): say what it is if we can
        try:
            mode: int | None = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is not None:
            _require_regular(mode)
        raise
    try:
        _require_regular(os.fstat(fd).st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class FileTooLarge(OSError):
    """`read_regular` refused a file over its size bound; str() says the sizes."""


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked on the descriptor before anything
    is read, and again while reading, so a file that grows cannot exceed it either). Raises
    NotARegularFile, FileTooLarge (both OSErrors) or the usual OSErrors."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise FileTooLarge(f"{size} bytes, more than the {max_bytes} this file may have")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"more than the {max_bytes} bytes this file may have")
    return data
