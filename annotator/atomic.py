"""The one atomic write: readers see the old file or the new one, whole, never a mix.

Policy (docs/adr/0008-atomic-writes.md): the data goes to a temporary file in the target's folder,
named `.NAME.<8 random>.tmp`; the file is fsynced, renamed over the target with `os.replace`, and the
folder is fsynced so the rename itself survives a power cut. A new file gets the mode the user's
umask gives (0644 under umask 022), an existing file keeps its mode; a symbolic link at the target is
written through (its target file is replaced), so the link the user made stays a link.

A writer killed half-way leaves its temporary file behind; the next write to the same target removes
such leftovers (`clean_stale_temps`): only names of exactly our pattern for that target, only regular
files, only when no live writer holds them — each writer keeps an exclusive `flock` on its temporary
file while it writes — and, as a second guard (the only one where `flock` does not exist), only when
untouched for `STALE_AFTER` seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

STALE_AFTER = 2.0
"""Seconds a temporary file must be untouched before another writer may remove it (besides being
unlocked): covers the instant between mkstemp and flock of a live writer."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_pattern(name: str) -> re.Pattern[str]:
    """The names atomic writes give temporary files for a target called `name`."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale_temps(target: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Remove temporary files that killed writers of `target` left; returns what was removed."""
    target = Path(target)
    return _clean(target.parent, temp_pattern(target.name), STALE_AFTER, now)


_ANY_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def clean_folder_temps(folder: str | os.PathLike, older_than: float = STALE_AFTER) -> int:
    """Remove leftover temporary files of any target in `folder` (a cache folder being pruned),
    with the same guards; returns how many."""
    return len(_clean(Path(folder), _ANY_TEMP, max(older_than, STALE_AFTER), None))


def _clean(folder: Path, pattern: re.Pattern[str], min_age: float, now: float | None) -> list[Path]:
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not pattern.fullmatch(name):
            continue
        candidate = folder / name
        try:
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < min_age:
                continue
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer holds it
            os.unlink(candidate)
            removed.append(candidate)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """`with atomic_open(p, "w", encoding="utf-8") as f: f.write(...)`: replaces `p` on success
    only; on any exception the temporary file is removed and `p` is untouched."""
    target = Path(os.path.realpath(path))
    clean_stale_temps(target)
    try:
        file_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        file_mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, mode, closefd=False, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode)
        else:  # pragma: no cover - Windows
            os.chmod(tmp, file_mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock, after the rename
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`atomic_open` for a bytes payload."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """`atomic_open` for a text payload (newlines written as given)."""
    with atomic_open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """`atomic_open` for writers that take a binary file object (np.savez, json.dump on bytes…)."""
    with atomic_open(path, "wb") as handle:
        write(handle)
