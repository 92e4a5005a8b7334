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
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from annotator.errors import ProjectError
from annotator.io.images import show_path as _show
from annotator.io.masks import (
    XYWH,
    mask_to_rle,
    rle_area,
    rle_bbox,
    rle_runs,
    rle_to_mask,
    runs_to_rle,
)
from annotator.names import category_name
from annotator.store import files, schema
from annotator.store.backend import current_user, is_url, url_project_class
from annotator.store.files import DB_NAME, PROJECT_DIR


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


class _Keep:
    """Sentinel: leave this field as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str  # relative to the project folder, '/' separated
    width: int
    height: int
    sha256: str | None
    added: str  # ISO 8601 UTC


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str


@dataclass(frozen=True)
class Annotation:
    """One stored mask. `mask()` decodes it; `rle` is the COCO compressed RLE (counts as str)."""

    id: int
    image_id: int
    category_id: int
    category: str  # the category's name at the time of reading
    counts: str  # COCO compressed RLE counts
    height: int
    width: int
    bbox: XYWH  # from the mask, COCO convention
    area: int  # mask pixel count
    score: float | None
    prompts_json: str | None  # JSON text of the prompts that made the mask
    created: str
    updated: str
    created_by: str = ""  # $ANNOTATOR_USER or the login name of whoever accepted it
    updated_by: str = ""  # ... and of whoever changed it last

    @property
    def rle(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}

    @property
    def prompts(self) -> Any:
        return None if self.prompts_json is None else json.loads(self.prompts_json)

    def mask(self) -> np.ndarray:
        """bool (H, W) mask."""
        return rle_to_mask(self.rle)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _name_bytes(name: str) -> bytes:
    """A file name as the bytes stored in the TEXT column (bound with CAST(? AS TEXT))."""
    return name.encode("utf-8", errors="surrogateescape")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, PurePosixPath)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _prompts_json(prompts: Any) -> str | None:
    if prompts is None:
        return None
    try:
        return json.dumps(prompts, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"prompts cannot be stored as JSON: {error}") from error


def _wanted_id(value: Any) -> int | None:
    """A caller's wished-for id if it is an int in 1..ID_LIMIT, else None (the store assigns one):
    ids read from files must not be able to exhaust the id space (ADR 0005)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    value = int(value)
    return value if 1 <= value <= schema.ID_LIMIT else None


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def normalise_file_name(file_name: str | os.PathLike) -> str:
    """A relative, '/'-separated file name; absolute paths and '..' are refused (ValueError)."""
    text = os.fsdecode(file_name).replace("\\", "/") if os.sep == "\\" else os.fsdecode(file_name)
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts or str(path) == ".":
        raise ValueError(
            f"image file name must be relative to the project folder, got {_show(text)!r}"
        )
    return str(path)


_ANNOTATION_COLUMNS = (
    "a.id, a.image_id, a.category_id, c.name, a.rle, a.height, a.width, a.bbox_x, a.bbox_y, a.bbox_w,"
    " a.bbox_h, a.area, a.score, a.prompts, a.created, a.updated, a.created_by, a.updated_by"
)


def _annotation(row: tuple) -> Annotation:
    return Annotation(
        id=row[0],
        image_id=row[1],
        category_id=row[2],
        category=row[3],
        counts=row[4],
        height=row[5],
        width=row[6],
        bbox=(row[7], row[8], row[9], row[10]),
        area=row[11],
        score=row[12],
        prompts_json=row[13],
        created=row[14],
        updated=row[15],
        created_by=row[16],
        updated_by=row[17],
    )


class Project:
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

    def __init__(self, db_path: str | os.PathLike, timeout: float = 10.0) -> None:
        self.path = Path(db_path)
        self.user = current_user()
        self._claimed: set[int] = set()
        self._left: dict[int, tuple[str, str] | None] = {}  # what our last write of an id left
        self._lock = threading.RLock()
        self._depth = 0
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

    def _explain(self, error: sqlite3.Error, doing: str) -> str:
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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; calls inside it join it. All or nothing, committed on exit."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise ProjectError(self._explain(error, "cannot write")) from error
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._con.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._con.execute("COMMIT")
            except sqlite3.Error as error:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise ProjectError(self._explain(error, "cannot write")) from error

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read view for several reads (an export); do not write inside it."""
        with self._lock:
            if self._depth:
                yield
                return
            try:
                self._con.execute("BEGIN DEFERRED")
            except sqlite3.Error as error:
                raise ProjectError(self._explain(error, "cannot read")) from error
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                self._con.execute("COMMIT")

    def _write(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        """Execute inside the current transaction, turning SQLite failures into ProjectError."""
        try:
            return self._con.execute(sql, params)
        except sqlite3.IntegrityError:
            raise  # a constraint broken by the caller: a bug, keep the traceback
        except sqlite3.Error as error:
            raise ProjectError(self._explain(error, "cannot write")) from error

    def _read(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._con.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise ProjectError(self._explain(error, "cannot read")) from error

    def _write_many(self, sql: str, rows: list[tuple]) -> None:
        """`_write` for many rows of one statement (a backfill batch)."""
        try:
            self._con.executemany(sql, rows)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as error:
            raise ProjectError(self._explain(error, "cannot write")) from error

    def close(self) -> None:
        """Close the connection (the last one to close checkpoints the WAL into the file)."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        """True when SQLite's integrity check and the foreign-key check both pass."""
        try:
            ok = self._read("PRAGMA integrity_check")
            fk = self._read("PRAGMA foreign_key_check")
        except ProjectError:
            return False
        return ok == [("ok",)] and not fk

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    # ------------------------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._write(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )

    # ---------------------------------------------------------------------------------- images
    def add_image(
        self,
        file_name: str | os.PathLike,
        width: int,
        height: int,
        sha256: str | None = None,
        image_id: int | None = None,
    ) -> int:
        """Id of the image `file_name`, added if new (idempotent by name, checked by content).

        `sha256` is the hex sha256 of the image file's bytes (`files.file_sha256`). When given and
        the project knows `file_name` with other content, the project's own file decides: if it now
        has this content (edited in place), the stored hash is updated; otherwise the caller holds a
        different picture with the same name and a ProjectError is raised, so no mask lands on the
        wrong image (ADR 0005). A stored image without a hash (made before schema 3, or by a caller
        that gave none) gets one here: the lazy part of the migration.

        `image_id` asks for that id when adding (ignored when taken or outside 1..ID_LIMIT). An
        existing image whose size differs raises ProjectError: its masks would no longer line up.
        """
        name = normalise_file_name(file_name)
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"image {_show(name)!r} has no pixels ({width}x{height})")
        if sha256 is not None and not _is_sha256(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        with self.transaction():
            found = self.image_by_name(name)
            if found is not None:
                if (found.width, found.height) != (width, height):
                    raise ProjectError(
                        f"{_show(name)}: the image is now {width}x{height} but the project has it as "
                        f"{found.width}x{found.height}"
                    )
                if sha256 and found.sha256 != sha256:
                    self._check_same_content(found, sha256)
                    self._write("UPDATE images SET sha256 = ? WHERE id = ?", (sha256, found.id))
                return found.id
            image_id = _wanted_id(image_id)
            if image_id is not None and self._read(
                "SELECT 1 FROM images WHERE id = ?", (image_id,)
            ):
                image_id = None
            cursor = self._write(
                "INSERT INTO images (id, file_name, width, height, sha256, added, added_by)"
                " VALUES (?, CAST(? AS TEXT), ?, ?, ?, ?, ?)",
                (image_id, _name_bytes(name), width, height, sha256, _now(), self.user),
            )
            return int(cursor.lastrowid)

    def _check_same_content(self, found: ImageRecord, sha256: str) -> None:
        """Raise unless an image of hash `sha256` may be `found` (whose stored hash differs or is
        unknown): the project's own file at that name is the judge when it can be read."""
        own = None if self.folder is None else self.folder / found.file_name
        try:
            disk = files.file_sha256(own) if own is not None and own.is_file() else None
        except OSError:
            disk = None
        if disk == sha256:
            return  # the caller's image is the project's file (now, or first time hashed)
        if disk is None and found.sha256 is None:
            return  # nothing to compare with (file moved away, no stored hash): as before
        raise ProjectError(
            f"{_show(found.file_name)}: the project already has a different image under this name "
            "(same name and size, other content); nothing was saved. Copy the image into the "
            "project folder under another name"
        )

    def add_image_file(self, path: str | os.PathLike, width: int, height: int) -> int:
        """Id of the image file `path` (anywhere), added if new: the save path of `segment --save`.

        Inside the project folder the image is named by its relative path; outside it, an image
        with the same content already in the project is that image, else it is added under its
        base name (a different picture under that name is refused, see `add_image`).
        """
        source = Path(path)
        try:
            sha256 = files.file_sha256(source)
        except OSError as error:
            raise ProjectError(
                f"{_show(source)}: cannot read the image to save its mask ({error.strerror})"
            ) from error
        name = None
        if self.folder is not None:
            try:
                name = str(source.resolve().relative_to(self.folder.resolve()))
            except (ValueError, OSError):
                name = None
        with self.transaction():
            if name is None:
                same = [
                    image
                    for image in self.images_by_sha256(sha256)
                    if (image.width, image.height) == (int(width), int(height))
                ]
                if same:
                    return same[0].id
                name = source.name
                found = self.image_by_name(name)
                if found is not None and found.sha256 is None and not self._own_file(found):
                    # a picture from elsewhere, and nothing to compare it with (issue 22): the
                    # project's file is not found and its content was never recorded
                    raise ProjectError(
                        f"{_show(source)}: cannot tell whether this is the project's image "
                        f"{_show(name)} (its file is not in the project folder and its content "
                        "was never recorded); nothing was saved. Open the project where its "
                        "images are, or copy the image into the project under another name"
                    )
            return self.add_image(name, width, height, sha256=sha256)

    def _own_file(self, record: ImageRecord) -> bool:
        return self.folder is not None and (self.folder / record.file_name).is_file()

    def images_by_sha256(self, sha256: str) -> list[ImageRecord]:
        """Images whose file had this content when last saved, in id order."""
        rows = self._read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE sha256 = ?"
            " ORDER BY id",
            (sha256,),
        )
        return [ImageRecord(*row) for row in rows]

    def images(self) -> list[ImageRecord]:
        """All images, in the order they were added."""
        rows = self._read(
            "SELECT id, file_name, width, height, sha256, added FROM images ORDER BY id"
        )
        return [ImageRecord(*row) for row in rows]

    def image(self, image_id: int) -> ImageRecord:
        """The image with this id (KeyError if none)."""
        rows = self._read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE id = ?",
            (image_id,),
        )
        if not rows:
            raise KeyError(f"no image with id {image_id}")
        return ImageRecord(*rows[0])

    def image_by_name(self, file_name: str | os.PathLike) -> ImageRecord | None:
        """The image with this relative file name, or None (also for a name no project image can
        have: absolute, or climbing out of the folder with '..', e.g. `similar --image ../x`)."""
        try:
            name = normalise_file_name(file_name)
        except ValueError:
            return None
        rows = self._read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE file_name = CAST(? AS TEXT)",
            (_name_bytes(name),),
        )
        return ImageRecord(*rows[0]) if rows else None

    # ------------------------------------------------------------------------------ categories
    def category_id(self, name: str, create: bool = True, supercategory: str = "") -> int:
        """Id of the category `name` (surrounding spaces ignored), created when missing and `create`.

        KeyError when missing and not `create`; ValueError for a blank name.
        """
        name = name.strip()  # a lookup finds any stored name; a new one is checked by add_category
        if not name:
            category_name(name)  # raises InvalidName (a ValueError): a blank name
        rows = self._read("SELECT id FROM categories WHERE name = ?", (name,))
        if rows:
            return int(rows[0][0])
        if not create:
            raise KeyError(f"no category named {name!r}")
        return self.add_category(name, supercategory)

    def add_category(
        self, name: str, supercategory: str = "", category_id: int | None = None
    ) -> int:
        """Id of the category `name`, added if new; `category_id` is used when adding if it is free."""
        name = category_name(name)
        with self.transaction():
            rows = self._read("SELECT id FROM categories WHERE name = ?", (name,))
            if rows:
                return int(rows[0][0])
            category_id = _wanted_id(category_id)
            if category_id is not None and self._read(
                "SELECT 1 FROM categories WHERE id = ?", (category_id,)
            ):
                category_id = None
            cursor = self._write(
                "INSERT INTO categories (id, name, supercategory) VALUES (?, ?, ?)",
                (category_id, name, supercategory or ""),
            )
            return int(cursor.lastrowid)

    def categories(self) -> list[Category]:
        """All categories by id."""
        return [
            Category(*row)
            for row in self._read("SELECT id, name, supercategory FROM categories ORDER BY id")
        ]

    def category(self, category_id: int) -> Category:
        rows = self._read(
            "SELECT id, name, supercategory FROM categories WHERE id = ?", (category_id,)
        )
        if not rows:
            raise KeyError(f"no category with id {category_id}")
        return Category(*rows[0])

    def rename_category(self, category_id: int, name: str) -> None:
        """Rename a category (its id, and so its annotations, stay). ProjectError if the name is taken."""
        name = category_name(name)
        with self.transaction():
            self.category(category_id)
            other = self._read("SELECT id FROM categories WHERE name = ?", (name,))
            if other and other[0][0] != category_id:
                raise ProjectError(f"a category named {name!r} already exists")
            self._write("UPDATE categories SET name = ? WHERE id = ?", (name, category_id))

    def delete_category(self, category_id: int) -> Category:
        """Delete an unused category (undo of adding it); ProjectError while annotations use it."""
        with self.transaction():
            old = self.category(category_id)
            used = self._read(
                "SELECT count(*) FROM annotations WHERE category_id = ?", (category_id,)
            )
            if used[0][0]:
                raise ProjectError(f"category {old.name!r} is used by {used[0][0]} annotation(s)")
            self._write("DELETE FROM categories WHERE id = ?", (category_id,))
            return old

    # ----------------------------------------------------------------------------- annotations
    def _resolve_category(self, category: str | int) -> int:
        if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
            self.category(int(category))
            return int(category)
        return self.category_id(str(category), create=True)

    def _checked_rle(self, image: ImageRecord, rle: dict) -> tuple[str, XYWH, int]:
        if [int(v) for v in rle["size"]] != [image.height, image.width]:
            raise ValueError(
                f"mask is {rle['size'][0]}x{rle['size'][1]} but image {image.id} is {image.height}x{image.width}"
            )
        area = rle_area(rle)
        if area == 0:
            raise ValueError("an empty mask cannot be stored (delete the annotation instead)")
        return rle["counts"], rle_bbox(rle), area

    def _mask_rle(self, image: ImageRecord, mask: np.ndarray) -> tuple[str, XYWH, int]:
        mask = np.asarray(mask)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask shape {mask.shape} does not match image {image.id} ({image.height}, {image.width})"
            )
        return self._checked_rle(image, mask_to_rle(mask))

    def add_annotation(
        self,
        image_id: int,
        mask: np.ndarray,
        category: str | int,
        score: float | None = None,
        prompts: Any = None,
    ) -> int:
        """Store a bool (H, W) mask for an image; `category` is a name (created if new) or an id.

        bbox and area come from the mask. Raises KeyError for an unknown image, ValueError for a mask
        of the wrong size or an empty one.
        """
        with self.transaction():
            image = self.image(image_id)
            self._check_claim(image)
            counts, bbox, area = self._mask_rle(image, mask)
            return self._insert(
                image.id,
                self._resolve_category(category),
                counts,
                image,
                bbox,
                area,
                score,
                prompts,
            )

    def add_annotation_rle(
        self,
        image_id: int,
        rle: dict,
        category: str | int,
        score: float | None = None,
        prompts: Any = None,
        annotation_id: int | None = None,
        authorship: dict | None = None,
    ) -> int:
        """Like `add_annotation` from a COCO RLE (compressed or not, validated) without decoding it.

        `annotation_id` is used if free (importers keep ids stable this way); `authorship` keeps
        the file's created / created_by / updated / updated_by where given.
        """
        runs = rle_runs(rle)
        with self.transaction():
            image = self.image(image_id)
            self._check_claim(image)
            canonical = runs_to_rle(runs, int(rle["size"][0]), int(rle["size"][1]))
            counts, bbox, area = self._checked_rle(image, canonical)
            annotation_id = _wanted_id(annotation_id)
            if annotation_id is not None and self._read(
                "SELECT 1 FROM annotations WHERE id = ?", (annotation_id,)
            ):
                annotation_id = None
            return self._insert(
                image.id,
                self._resolve_category(category),
                counts,
                image,
                bbox,
                area,
                score,
                prompts,
                annotation_id,
                authorship,
            )

    def _insert(
        self,
        image_id: int,
        category_id: int,
        counts: str,
        image: ImageRecord,
        bbox: XYWH,
        area: int,
        score: float | None,
        prompts: Any,
        annotation_id: int | None = None,
        authorship: dict | None = None,
    ) -> int:
        now = _now()
        who = {"created": now, "updated": now, "created_by": self.user, "updated_by": self.user}
        who.update(authorship or {})
        cursor = self._write(
            "INSERT INTO annotations (id, image_id, category_id, rle, height, width, bbox_x, bbox_y, bbox_w,"
            " bbox_h, area, score, prompts, created, updated, created_by, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                annotation_id,
                image_id,
                category_id,
                counts,
                image.height,
                image.width,
                *bbox,
                area,
                None if score is None else float(score),
                _prompts_json(prompts),
                who["created"],
                who["updated"],
                who["created_by"],
                who["updated_by"],
            ),
        )
        self._left[int(cursor.lastrowid)] = (who["updated"], who["updated_by"])
        return int(cursor.lastrowid)

    def update_annotation(
        self,
        annotation_id: int,
        mask: np.ndarray | None = None,
        category: str | int | None = None,
        score: float | None = KEEP,
        prompts: Any = KEEP,
    ) -> Annotation:
        """Change the mask, category, score or prompts of an annotation; returns the new record.

        Fields left out stay as they are (`score=None` clears the score).
        """
        with self.transaction():
            old = self.annotation(annotation_id)
            image = self.image(old.image_id)
            self._check_claim(image)
            counts, bbox, area = (
                (old.counts, old.bbox, old.area) if mask is None else self._mask_rle(image, mask)
            )
            category_id = old.category_id if category is None else self._resolve_category(category)
            new_score = old.score if score is KEEP else (None if score is None else float(score))
            new_prompts = old.prompts_json if prompts is KEEP else _prompts_json(prompts)
            self._write(
                "UPDATE annotations SET category_id = ?, rle = ?, bbox_x = ?, bbox_y = ?, bbox_w = ?, bbox_h = ?,"
                " area = ?, score = ?, prompts = ?, updated = ?, updated_by = ? WHERE id = ?",
                (
                    category_id,
                    counts,
                    *bbox,
                    area,
                    new_score,
                    new_prompts,
                    _now(),
                    self.user,
                    annotation_id,
                ),
            )
            new = self.annotation(annotation_id)
            self._left[new.id] = (new.updated, new.updated_by)
            return new

    def delete_annotation(self, annotation_id: int) -> Annotation:
        """Delete an annotation; returns the deleted record (give it to `restore_annotation` to undo)."""
        with self.transaction():
            old = self.annotation(annotation_id)
            self._check_claim(self.image(old.image_id))
            self._write("DELETE FROM annotations WHERE id = ?", (annotation_id,))
            self._left[old.id] = None
            return old

    def restore_annotation(self, record: Annotation) -> int:
        """Put an annotation back exactly as recorded, with its id (undo of a delete or an update).

        Overwrites the annotation with that id if it exists. The category is found by id, or by name
        if that id is gone (recreated when missing).
        """
        if _wanted_id(record.id) is None:
            raise ValueError(f"annotation id {record.id!r} is outside 1..{schema.ID_LIMIT}")
        with self.transaction():
            image = self.image(record.image_id)
            self._check_claim(image)
            if (record.height, record.width) != (image.height, image.width):
                raise ValueError(f"annotation {record.id} does not fit image {image.id}")
            if self._read("SELECT 1 FROM categories WHERE id = ?", (record.category_id,)):
                category_id = record.category_id
            else:
                category_id = self.category_id(record.category, create=True)
            self._write(
                "INSERT OR REPLACE INTO annotations (id, image_id, category_id, rle, height, width, bbox_x,"
                " bbox_y, bbox_w, bbox_h, area, score, prompts, created, updated, created_by,"
                " updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.image_id,
                    category_id,
                    record.counts,
                    record.height,
                    record.width,
                    *record.bbox,
                    record.area,
                    record.score,
                    record.prompts_json,
                    record.created,
                    record.updated,
                    record.created_by,
                    record.updated_by,
                ),
            )
            self._left[record.id] = (record.updated, record.updated_by)
            return record.id

    def annotations(self, image_id: int | None = None) -> list[Annotation]:
        """Annotations of one image (or all), in id order."""
        sql = f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
        if image_id is None:
            rows = self._read(sql + " ORDER BY a.id")
        else:
            rows = self._read(sql + " WHERE a.image_id = ? ORDER BY a.id", (image_id,))
        return [_annotation(row) for row in rows]

    def annotation(self, annotation_id: int) -> Annotation:
        """The annotation with this id (KeyError if none)."""
        rows = self._read(
            f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
            " WHERE a.id = ?",
            (annotation_id,),
        )
        if not rows:
            raise KeyError(f"no annotation with id {annotation_id}")
        return _annotation(rows[0])

    def counts(self) -> dict[int, int]:
        """Number of annotations per image id (0 for images without any)."""
        rows = self._read(
            "SELECT i.id, count(a.id) FROM images i LEFT JOIN annotations a ON a.image_id = i.id"
            " GROUP BY i.id ORDER BY i.id"
        )
        return {int(image_id): int(n) for image_id, n in rows}

    # ------------------------------------------------------------- team: claims, changes, undo
    def claim(self, image_id: int) -> None:
        """Take an image for editing (a window opening it): until `release`, `close` or the end of
        this process nobody else can change its annotations. ProjectError naming the holder when
        someone else has it. An SQLite file has one user, so there a claim always succeeds."""
        self.image(image_id)
        self._claimed.add(int(image_id))

    def release(self, image_id: int) -> None:
        """Give a claimed image back (the window moved on)."""
        self._claimed.discard(int(image_id))

    def claims(self) -> dict[int, str]:
        """Images that others have claimed: {image id: holder (user@host:pid)}."""
        return {}

    def _check_claim(self, image: ImageRecord) -> None:
        """Raise ProjectError when someone else has `image` claimed (inside the write)."""

    def changes_since(self, token: int | None = None) -> Changes:
        """What changed after `token` (None: nothing yet, just the current token), for a window
        that shows other people's accepted work without a restart: poll with the token it gives."""
        with self.snapshot():
            last = int(self._read("SELECT coalesce(max(id), 0) FROM changes")[0][0])
            if token is None or token >= last:
                return Changes(last, [], [], frozenset())
            rows = self._read(
                "SELECT annotation_id, image_id FROM changes WHERE id > ? ORDER BY id", (token,)
            )
            ids = sorted({int(r[0]) for r in rows})
            current: dict[int, Annotation] = {}
            sql = f"SELECT {_ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for row in self._read(f"{sql} WHERE a.id IN ({marks}) ORDER BY a.id", tuple(chunk)):
                    current[row[0]] = _annotation(row)
        deleted = [i for i in ids if i not in current]
        images = frozenset(int(r[1]) for r in rows)
        return Changes(last, list(current.values()), deleted, images)

    def check_undo(self, annotation_id: int) -> None:
        """Refuse (ProjectError) to undo an edit of `annotation_id` unless the annotation is still
        as this connection's last write left it, so undo never undoes someone else's change."""
        try:
            now = self.annotation(annotation_id)
        except KeyError:
            now = None
        if annotation_id not in self._left:
            raise ProjectError(f"annotation {annotation_id} was not changed here; nothing to undo")
        left = self._left[annotation_id]
        if left is None:
            if now is not None:
                raise ProjectError(
                    f"annotation {annotation_id} was put back by {now.updated_by or 'someone else'}"
                    f" at {now.updated}; undo refused"
                )
            return
        if now is None:
            raise ProjectError(
                f"annotation {annotation_id} was deleted by someone else; nothing to undo"
            )
        if (now.updated, now.updated_by) != left:
            raise ProjectError(
                f"annotation {annotation_id} was changed by {now.updated_by or 'someone else'} at"
                f" {now.updated}; undo would undo their change, refused"
            )


@dataclass(frozen=True)
class Changes:
    """The answer of `Project.changes_since`: pass `token` to the next call."""

    token: int
    upserted: list[Annotation]  # added or changed annotations, as they are now
    deleted: list[int]  # ids of annotations that are gone
    images: frozenset[int]  # images whose annotations changed
