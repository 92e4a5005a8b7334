"""The project: images, categories and annotations in one SQLite file, every accepted edit committed.

Durability: WAL journal with `synchronous=FULL`, and every public mutating call is one transaction
committed before it returns. WAL + NORMAL would already survive the app being killed (kill -9, a crash)
because the commit is in the OS's hands when the call returns; FULL adds an fsync of the WAL per commit,
so an accepted edit also survives a power cut or OS crash. One fsync per user action (a click) costs a
few milliseconds; a COCO import is one transaction, hence one fsync.

Concurrency: SQLite's locking. Readers never block in WAL mode; writers take the write lock up front
(`BEGIN IMMEDIATE`) and wait up to `timeout` seconds for another writer (another process or window)
before a clear `ProjectError`. One `Project` may be shared between threads (calls are serialised by a
lock).

Masks are stored as COCO compressed RLE; bbox and area are derived from the mask with pycocotools, never
from the prompts. File names are stored relative to the project folder with '/' separators; on Linux a
name that is not valid UTF-8 is stored byte for byte (surrogate escapes), so such files still work.

The tables live in their own modules (ADR 0027): images.py, categories.py, annotations.py,
claims.py, changes.py, on top of connection.py (transactions, shared with postgres.py). This module
is the SQLite backend and the one name callers import: `from annotator.store.project import
Project, Annotation, Category, ImageRecord, KEEP, ...` keeps working.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

from annotator.errors import ProjectError
from annotator.io.images import show_path as _show
from annotator.store import files, schema
from annotator.store.annotations import KEEP, Annotation
from annotator.store.backend import current_user, is_url, url_project_class
from annotator.store.categories import Category
from annotator.store.changes import ChangeFeed, Changes
from annotator.store.files import DB_NAME, PROJECT_DIR
from annotator.store.images import ImageRecord, normalise_file_name

__all__ = [
    "KEEP",
    "Annotation",
    "Category",
    "Changes",
    "ImageRecord",
    "Project",
    "normalise_file_name",
]


def _make_project_dir(folder: Path) -> None:
    """Make `<images>/.annotator/` when missing (several processes may do so at once: mkdir first
    and look afterwards, so a folder another process just made is never taken for a file)."""
    name = _show(folder)
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:  # something that is not a folder has the name
        if not folder.is_dir():
            raise ProjectError(f"{name}: is a file, not the project folder; move it away") from None
    except FileNotFoundError:
        raise ProjectError(f"{_show(folder.parent)}: no such folder") from None
    except OSError as error:
        if folder.is_dir():
            return  # e.g. a read-only parent holding an existing project folder
        raise ProjectError(
            f"{name}: cannot create the project folder ({error.strerror})"
        ) from error


class Project(ChangeFeed):
    """An annotation project stored in one SQLite file.

    `Project.open_folder(folder)` uses `<folder>/.annotator/project.db`; `Project(db_path)` any file
    (created when missing, with its `.annotator/` folder when named so). A project file inside
    `.annotator/` knows its image folder (`folder`); elsewhere `folder` is the `folder` meta value or
    None. Use as a context manager or call `close()`.
    """

    def __new__(
        cls, db_path: str | os.PathLike | None = None, *args: Any, **kwargs: Any
    ) -> Project:
        """`Project("postgresql://…?project=NAME")` is a PostgreSQL project (store/postgres.py)."""
        if cls is Project and is_url(db_path):
            return super().__new__(url_project_class())
        return super().__new__(cls)

    _db_error = sqlite3.Error
    _integrity_error = sqlite3.IntegrityError

    def __init__(self, db_path: str | os.PathLike, timeout: float = 10.0) -> None:
        self.path = Path(db_path)
        self.user = current_user()
        self._init_session()
        name = _show(self.path)
        parent = self.path.parent
        if parent.name == PROJECT_DIR:
            _make_project_dir(parent)
        try:
            parent_is_dir = parent.is_dir()
            is_dir = self.path.is_dir()
            exists = self.path.exists()
        except OSError as error:
            raise ProjectError(
                f"{name}: cannot read the project file ({error.strerror})"
            ) from error
        if not parent_is_dir:
            raise ProjectError(f"{name}: the folder for the project file does not exist")
        if is_dir:
            raise ProjectError(f"{name}: is a folder, not a project file")
        if parent.name == PROJECT_DIR:
            files.clean_temp_files(parent)  # left by a killed creator
        if not exists:
            self._create(timeout)
        try:
            self._con = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise ProjectError(self._explain(error, "cannot open")) from error
        self._con.text_factory = lambda data: data.decode("utf-8", errors="surrogateescape")
        try:
            self._setup()
        except BaseException:
            self._con.close()
            raise
        if self.path.parent.name == PROJECT_DIR:
            self.folder: Path | None = self.path.parent.parent
        else:
            stored = self.get_meta("folder")
            self.folder = Path(stored) if stored else None

    def _create(self, timeout: float) -> None:
        """Publish a fully initialised database at `self.path` unless another process did first."""

        def initialise(con: sqlite3.Connection) -> None:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("BEGIN IMMEDIATE")
            schema.migrate(con)
            con.execute("COMMIT")

        try:
            files.create_database(self.path, initialise)
        except sqlite3.Error as error:
            raise ProjectError(self._explain(error, "cannot create")) from error
        except OSError as error:
            raise ProjectError(self._os_error(error, "cannot create the project")) from error

    @classmethod
    def open_folder(cls, folder: str | os.PathLike, timeout: float = 10.0) -> Project:
        """The project of an image folder, at `<folder>/.annotator/project.db` (created if missing)."""
        root = Path(folder)
        if not root.is_dir():
            raise ProjectError(f"{_show(root)}: not a folder")
        return cls(root / PROJECT_DIR / DB_NAME, timeout=timeout)

    # ----------------------------------------------------------------- connection and transactions
    def _setup(self) -> None:
        con = self._con
        try:
            con.execute("PRAGMA foreign_keys = ON")
            version, tables = self._version_and_tables()  # first read: fails on a non-SQLite file
            mode = "wal"
            if version == 0 or con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            con.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as error:
            raise ProjectError(self._explain(error, "cannot open")) from error
        self._check_version(version, tables)
        self.journal_mode = str(mode)
        if version < schema.SCHEMA_VERSION:
            with self.transaction():
                try:  # under the write lock: another process may have migrated meanwhile
                    version, tables = self._version_and_tables()
                    self._check_version(version, tables)
                    if version < schema.SCHEMA_VERSION:
                        schema.migrate(con)
                except sqlite3.DatabaseError as error:
                    raise ProjectError(self._explain(error, "cannot upgrade")) from error

    def _version_and_tables(self) -> tuple[int, int]:
        """The schema version and the number of schema objects, read in ONE statement (so one
        consistent snapshot: never the version from before another process's commit and the
        tables from after it)."""
        row = self._con.execute(
            "SELECT (SELECT user_version FROM pragma_user_version),"
            " (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def _check_version(self, version: int, tables: int) -> None:
        name = _show(self.path)
        if version > schema.SCHEMA_VERSION:
            raise ProjectError(
                f"{name}: made by a newer annotator (schema {version}, this one knows {schema.SCHEMA_VERSION})"
            )
        if version == 0 and tables:
            raise ProjectError(f"{name}: an SQLite file that is not an annotator project")

    def _os_error(self, error: OSError, doing: str) -> str:
        name = _show(self.path)
        if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return f"{name}: {doing}: the disk is full ({error.strerror})"
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{name}: {doing}: the project folder is read-only ({error.strerror})"
        return f"{name}: {doing} ({error.strerror or error})"

    def _explain(self, error: Exception, doing: str) -> str:
        name = _show(self.path)
        text = str(error)
        if "not a database" in text:
            return f"{name}: not an SQLite project file (or encrypted)"
        if "malformed" in text or "corrupt" in text:
            return f"{name}: the project file is corrupt ({text})"
        if "locked" in text or "busy" in text:
            return f"{name}: the project is locked by another program (another annotator window?)"
        if "readonly" in text or "read-only" in text:
            return f"{name}: the project file is read-only; nothing was saved"
        if "disk is full" in text or "full" in text:
            if self._ids_exhausted():
                return f"{name}: the project's ids are used up (an id near 2**63 was stored)"
            return (
                f"{name}: the disk is full (or the file size limit is reached); nothing was saved"
            )
        if "disk I/O error" in text:
            return f"{name}: the disk refused the write ({text}; full, too large or failing); nothing was saved"
        if "unable to open" in text:
            if not os.access(self.path.parent, os.W_OK):
                return f"{name}: the project folder is read-only; cannot open the project to write"
            return f"{name}: {doing} the project ({text})"
        return f"{name}: {doing} the project ({text})"

    def _ids_exhausted(self) -> bool:
        try:
            row = self._con.execute("SELECT max(seq) FROM sqlite_sequence").fetchone()
        except (sqlite3.Error, AttributeError):
            return False
        return bool(row and row[0] is not None and row[0] >= 2**63 - 1)

    # ------------------------------------------------------------------- transaction hooks
    def _begin_write(self) -> None:
        self._con.execute("BEGIN IMMEDIATE")  # the write lock up front: no deadlock on upgrade

    def _commit(self) -> None:
        self._con.execute("COMMIT")

    def _rollback(self) -> None:
        if self._con.in_transaction:
            self._con.execute("ROLLBACK")

    def _begin_snapshot(self) -> None:
        self._con.execute("BEGIN DEFERRED")

    def _end_snapshot(self) -> None:
        self._con.execute("COMMIT")

    def __enter__(self) -> Project:
        return self

    def integrity_ok(self) -> bool:
        """True when SQLite's integrity check and the foreign-key check both pass."""
        try:
            ok = self.read("PRAGMA integrity_check")
            fk = self.read("PRAGMA foreign_key_check")
        except ProjectError:
            return False
        return ok == [("ok",)] and not fk

    @property
    def schema_version(self) -> int:
        return int(self.read("PRAGMA user_version")[0][0])
