"""`annotator project copy SRC DST`: move a project between SQLite and PostgreSQL (ADR 0011).

All or nothing, even under kill -9 (issue 22): a PostgreSQL target is written in one transaction;
a new SQLite target is built in a hidden sibling `.project.db.copy-XXXXXXXX` (locked while it is
written, removed by the next copy when its writer is gone) and published with `os.link`, which
never replaces a file; an existing (empty) SQLite target is written in one transaction.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import uuid
from pathlib import Path

from annotator.cli.flags import open_project, project_db, project_location
from annotator.errors import ProjectError


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("project", help="manage projects (copy between SQLite and PostgreSQL)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser(
        "copy", help="copy a whole project into a new one, all or nothing (ids, authors kept)"
    )
    c.add_argument("source", type=project_location, help="project folder, .db file or URL")
    c.add_argument(
        "target",
        type=project_location,
        help="new project: folder, .db file or postgresql://…?project=NAME (must be empty)",
    )
    c.set_defaults(handler=cmd_copy)


_SIDE = ("", "-wal", "-shm", "-journal")


def _clean_stale_copies(db: Path) -> None:
    """Remove the hidden databases of copies into `db` that were killed (unlocked ones only)."""
    from annotator.store.files import lock_nb

    try:
        names = os.listdir(db.parent)
    except OSError:
        return
    prefixes = (f".{db.name}.copy-", f"..{db.name}.copy-")  # ours, and the creator's temp of it
    for name in names:
        if not name.startswith(prefixes) or name.endswith(_SIDE[1:]):
            continue
        path = db.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if lock_nb(fd):
                for suffix in _SIDE:
                    with contextlib.suppress(OSError):
                        os.unlink(f"{path}{suffix}")
        finally:
            os.close(fd)


def _copy_into_new_file(source, db: Path) -> dict:
    from annotator.atomic import fsync_dir
    from annotator.store import Project
    from annotator.store.copy import copy_project
    from annotator.store.files import lock

    db.parent.mkdir(exist_ok=True)
    _clean_stale_copies(db)
    tmp = db.parent / f".{db.name}.copy-{uuid.uuid4().hex[:8]}"
    fd = None
    try:
        with Project(tmp) as target:
            fd = os.open(tmp, os.O_RDONLY)
            lock(fd)
            counts = copy_project(source, target)
        os.fsync(fd)
        try:
            os.link(tmp, db)  # never replaces: a project that appeared meanwhile is kept
        except FileExistsError:
            raise ProjectError(
                f"{db}: a project appeared there meanwhile; nothing copied"
            ) from None
        fsync_dir(db.parent)
        return counts
    finally:
        for suffix in _SIDE:
            with contextlib.suppress(OSError):
                os.unlink(f"{tmp}{suffix}")
        if fd is not None:
            os.close(fd)


def cmd_copy(args: argparse.Namespace) -> int:
    from annotator.store.backend import is_url
    from annotator.store.copy import copy_project

    with open_project(args.source, create=False) as source:
        target_path = args.target
        if not is_url(args.target):
            db = project_db(Path(args.target))
            if not db.parent.parent.is_dir():
                raise ProjectError(f"{args.target}: no such folder")
            if not os.path.lexists(db):
                counts = _copy_into_new_file(source, db)
                target_path = db
        if target_path is args.target:
            with open_project(args.target) as target:
                counts = copy_project(source, target)
                target_path = target.path
    print(json.dumps({"source": str(source.path), "target": str(target_path), **counts}))
    return 0
