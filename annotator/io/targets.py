"""What no output may replace: a project's `.annotator/` folder and any SQLite database.

A primitive below `store/` (ADR 0028): every writer (the dataset formats, `io.outputs`, the store's
own copy) asks `export_target_problem` before writing, and none of them needs the store to do so.
`store.files` re-exports these names, as the project's folder layout is the store's.
"""

from __future__ import annotations

import os
from pathlib import Path

from annotator.io.files import NotARegularFile, open_regular

PROJECT_DIR = ".annotator"
SQLITE_MAGIC = b"SQLite format 3\x00"


def is_inside_project_dir(path: str | os.PathLike) -> bool:
    """True when `path` (resolved, symlinks followed) is a project folder `.annotator/` or lies in one.

    Writers of user files (exports) call this so that no output can replace the database, its WAL,
    or anything else the store keeps there.
    """
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        resolved = Path(os.path.abspath(path))
    return PROJECT_DIR in resolved.parts


def is_sqlite_file(path: str | os.PathLike) -> bool:
    """True when `path` is an existing regular file that starts with SQLite's header (any database);
    never blocks on a named pipe."""
    try:
        with open_regular(path) as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def export_target_problem(path: str | os.PathLike, single_file: bool = True) -> str | None:
    """Why an export must not be written to `path`, or None when it may. Every export (all formats,
    CLI and window) asks this before writing.

    Refused: anything inside a `.annotator/` folder (symlinks followed: the database, its WAL, the
    store's other files), an existing SQLite file (a project database kept elsewhere, e.g.
    `Project("x.db")`), which an export would replace; for a `single_file` format also an existing
    pipe, device or folder, which a file would replace to nobody's benefit.
    """
    if is_inside_project_dir(path) or PROJECT_DIR in Path(os.path.abspath(path)).parts:
        return (
            f"refusing to export into a project's {PROJECT_DIR} folder: an export must not "
            "replace project files; choose another path"
        )
    if is_sqlite_file(path):
        return "is an SQLite database (a project?); refusing to overwrite it with an export"
    if single_file:
        try:
            with open_regular(path):
                pass
        except NotARegularFile as error:
            return f"is {error}; choose a file to export to"
        except OSError:
            pass  # a new file, or one the write will fail on with its own message
    return None
