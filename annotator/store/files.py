"""The project's files on disk: race-free creation, leftover temp files, what an export may overwrite.

Creation (ADR 0005): a new project database is built completely in a temp file beside its final
name (schema, WAL mode) and then published with `os.link`, which fails instead of replacing when
another process published first; the loser deletes its temp file and opens the winner's database.
So nobody ever opens a half-initialised `project.db`, and no save can be overwritten by a late
creator. A creator holds an exclusive `flock` on its temp file, so the clean-up on open removes only
temp files whose writer is gone (killed), never one that is being written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

from annotator.atomic import fsync_dir
from annotator.hashing import sha256_file

# Below the store so that every writer can ask them (ADR 0028); re-exported here.
from annotator.io.targets import (  # noqa: F401
    PROJECT_DIR,
    SQLITE_MAGIC,
    export_target_problem,
    is_inside_project_dir,
    is_sqlite_file,
)

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: an open file cannot be deleted anyway
    fcntl = None  # type: ignore[assignment]

DB_NAME = "project.db"
TEMP_SUFFIX = ".tmp"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes: an image's identity in the project, the same function (and
    so the same value) as the embedding cache key."""
    return sha256_file(path)


def lock_nb(fd: int) -> bool:
    """Take an exclusive lock (flock) on an open file without waiting; True when taken (always
    True without flock). The creation lock of a project file; `project copy` takes it too."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def lock(fd: int) -> None:
    """Take an exclusive lock (flock) on an open file, waiting for it (see `lock_nb`)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def clean_temp_files(folder: Path) -> list[Path]:
    """Delete `.*.tmp` files in `folder` whose writer is gone (a killed write), with SQLite's side
    files of such a temp database; returns what was removed.

    A file still locked by its writer (another process creating the project right now) is kept.
    Failures (read-only folder, a file vanishing meanwhile) are ignored: this is housekeeping.
    """
    removed: list[Path] = []
    try:
        names = {entry.name for entry in os.scandir(folder)}
    except OSError:
        return removed
    for name in sorted(names):
        path = Path(folder, name)
        if name.startswith(".") and name.endswith(TEMP_SUFFIX):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:  # a symlink, gone meanwhile, unreadable: leave it
                continue
            try:
                if not lock_nb(fd) or not os.path.isfile(path):
                    continue
                os.unlink(path)
                removed.append(path)
                for suffix in _SQLITE_SIDE_FILES:
                    with contextlib.suppress(OSError):
                        os.unlink(f"{path}{suffix}")
            except OSError:
                pass
            finally:
                os.close(fd)
        elif name.startswith(".") and any(
            name.endswith(TEMP_SUFFIX + s) for s in _SQLITE_SIDE_FILES
        ):
            main = name[: name.rindex(TEMP_SUFFIX) + len(TEMP_SUFFIX)]
            if main not in names:  # its temp database is gone: nobody can be using it
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(path)
    return removed


def _new_locked_temp(path: Path) -> tuple[Path, int]:
    """A new temp file beside `path`, locked by us: retried when a clean-up in another process
    removed it between its creation and our lock."""
    while True:
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            lock(fd)
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return tmp, fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def create_database(path: Path, initialise: Callable[[sqlite3.Connection], None]) -> bool:
    """Create the SQLite file `path`, fully initialised by `initialise(con)`, unless it exists.

    Returns True when this call published the file, False when another process did first. Raises
    OSError or sqlite3.Error (the caller turns them into one-line errors); nothing is left behind.
    """
    tmp, fd = _new_locked_temp(path)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            initialise(con)
        finally:
            con.close()  # the only connection: WAL is checkpointed and -wal/-shm are removed
        os.fsync(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a file that is already there
        except FileExistsError:
            return False
        except OSError:
            # a file system without hard links: rename only when nothing is there yet (the
            # window between the check and the rename is the one race left on such systems)
            if path.exists():
                return False
            os.replace(tmp, path)
        fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        for suffix in _SQLITE_SIDE_FILES:
            with contextlib.suppress(OSError):
                os.unlink(f"{tmp}{suffix}")
        os.close(fd)
