"""Where a project lives: an SQLite file (the default) or a PostgreSQL database, named by a URL.

`Project` is written in one SQL dialect (SQLite's: `?` placeholders, `INSERT OR REPLACE`,
`CAST(? AS TEXT)` for file names kept byte for byte). For PostgreSQL, `PgConnection` offers the
part of sqlite3's connection API that the store uses (`execute`, `executemany`, `lastrowid`,
`in_transaction`) and rewrites those few constructs, so every query method of `Project` runs
unchanged on both and the rest of the code cannot tell them apart (ADR 0011). What truly differs
(connecting, schema DDL, locking, integrity checks, error messages) lives in `store/postgres.py`.

psycopg 3 is an optional extra: importing this module never needs it; opening a postgresql:// URL
without it is one line saying how to install it.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from annotator.errors import ProjectError

SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = 'pip install "annotator[team]"'
_PROJECT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,47}")


def is_url(location: object) -> bool:
    """True when `location` names a PostgreSQL project (`postgresql://…`) rather than a path."""
    text = os.fspath(location) if isinstance(location, os.PathLike) else location
    if not isinstance(text, str):
        return False
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def current_user() -> str:
    """Who is editing: $ANNOTATOR_USER, else the login name (recorded as created_by/updated_by)."""
    name = os.environ.get("ANNOTATOR_USER", "").strip()
    if name:
        return name[:200]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def holder_id(user: str) -> str:
    """A claim's holder as people read it: user@host:pid."""
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class PgLocation:
    """A parsed project URL: the connection string (without `project`), the project name, and
    the image folder (`images=`) to record when the project is new."""

    conninfo: str
    project: str
    images: str | None
    shown: str  # the URL without a password, for messages

    @property
    def schema(self) -> str:
        """The PostgreSQL schema that holds this project's tables (several projects per db)."""
        return f"annotator_{self.project}"


def parse_url(url: str) -> PgLocation:
    """Split `postgresql://USER@HOST:PORT/DB?project=NAME[&images=/folder]` (ProjectError if bad)."""
    try:  # issue 22: a malformed URL (an open '[', a bad port, a NUL) is one line too
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        _ = parts.port
        if "\x00" in url:
            raise ValueError("a NUL character")
    except ValueError as error:
        raise ProjectError(
            f"not a valid PostgreSQL URL ({error}); "
            "expected postgresql://USER@HOST:PORT/DB?project=NAME"
        ) from None
    project = [v for k, v in query if k == "project"]
    images = [v for k, v in query if k == "images"]
    rest = [(k, v) for k, v in query if k not in ("project", "images")]
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        user = netloc.split("@", 1)[0].split(":", 1)[0]
        netloc = f"{user}:***@{netloc.split('@', 1)[1]}"
    shown = urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            urlencode([("project", project[-1])]) if project else "",
            "",
        )
    )
    if not parts.path.strip("/"):
        raise ProjectError(
            f"{shown}: the URL names no database (postgresql://USER@HOST:PORT/DB?project=NAME)"
        )
    name = project[-1] if project else "default"
    if not _PROJECT_NAME.fullmatch(name):
        raise ProjectError(
            f"{shown}: project name {name!r} must be 1-48 letters, digits, '_' or '-'"
        )
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    return PgLocation(conninfo, name, images[-1] if images else None, shown)


def import_psycopg() -> Any:
    """psycopg, or one line saying how to get it."""
    try:
        import psycopg
    except ImportError:
        raise ProjectError(f"PostgreSQL projects need psycopg 3: {INSTALL_HINT}") from None
    return psycopg


_URL_PROJECT: list[type] = []  # the Project subclass for URLs (store/postgres.py registers it)


def register_url_project(cls: type) -> type:
    """Make `cls` what `Project(url)` builds (a registry, so project.py never imports postgres.py)."""
    _URL_PROJECT[:] = [cls]
    return cls


def url_project_class() -> type:
    """The registered class (annotator.store's __init__ imports postgres.py before any use)."""
    return _URL_PROJECT[0]


# ------------------------------------------------------------------------------ SQL translation
_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\)", re.S)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+)\b", re.S)
# the unique key an `INSERT OR REPLACE` replaces on, per table
_CONFLICT = {"annotations": ("id",), "embeddings": ("kind", "model_id", "ref_id")}
_ID_TABLES = {"images", "categories", "annotations", "changes"}


def _split_placeholders(sql: str) -> list[str]:
    return sql.replace("%", "%%").split("?")


def _scalar_max_min(sql: str) -> str:
    """SQLite's scalar max(a, b, ...) / min(a, b, ...) is greatest / least in PostgreSQL."""
    out, i = [], 0
    lower = sql.lower()
    while True:
        starts = [j for j in (lower.find("max(", i), lower.find("min(", i)) if j >= 0]
        if not starts:
            out.append(sql[i:])
            return "".join(out)
        j = min(starts)
        if j > 0 and (sql[j - 1].isalnum() or sql[j - 1] == "_"):
            out.append(sql[i : j + 4])
            i = j + 4
            continue
        depth, k, comma = 0, j + 3, False
        while k < len(sql):
            if sql[k] == "(":
                depth += 1
            elif sql[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            elif sql[k] == "," and depth == 1:
                comma = True
            k += 1
        name = sql[j : j + 3]
        if comma:
            name = "greatest" if name.lower() == "max" else "least"
        out.append(sql[i:j] + name + "(")
        i = j + 4


def translate(sql: str, params: Any) -> tuple[str, Any, bool]:
    """The PostgreSQL form of one store statement and its parameters, and whether it returns
    the new row's id (sqlite3's `lastrowid`)."""
    sql = _scalar_max_min(sql).replace(
        "datetime('now')", "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    )
    pieces = _split_placeholders(sql)
    values = list(params) if isinstance(params, (tuple, list)) else params
    out = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        if out[-1].endswith("CAST(") and piece.startswith(" AS TEXT)"):
            out[-1] = out[-1][: -len("CAST(")]
            piece = piece[len(" AS TEXT)") :]
            values[i] = _text(values[i])
        out.append("%s")
        out.append(piece)
    text = "".join(out)
    replace = _REPLACE.match(text)
    if replace:
        table, columns = replace.group(1), [c.strip() for c in replace.group(2).split(",")]
        keys = _CONFLICT[table]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
        text = text.replace("INSERT OR REPLACE INTO", "INSERT INTO", 1)
        text += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    returning = False
    insert = _INSERT.match(text)
    if (
        insert
        and insert.group(1) in _ID_TABLES
        and "RETURNING" not in text
        and "ON CONFLICT" not in text
    ):
        text += " RETURNING id"
        returning = True
    return text, values, returning


def _text(value: Any) -> Any:
    """A file name bound as bytes (SQLite keeps them byte for byte): PostgreSQL text is UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProjectError(
                f"{value.decode('utf-8', 'replace')!r}: file name is not valid UTF-8; "
                "a PostgreSQL project needs UTF-8 file names (rename the file)"
            ) from None
    return value


class PgCursor:
    """The part of a sqlite3 cursor the store reads."""

    def __init__(self, cursor: Any, returning: bool) -> None:
        self._cursor = cursor
        self.lastrowid = cursor.fetchone()[0] if returning else None
        self.rowcount = cursor.rowcount

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()


class PgConnection:
    """A psycopg connection (autocommit; transactions are explicit BEGIN/COMMIT, as the store does
    with sqlite3) speaking the store's SQL."""

    def __init__(self, con: Any) -> None:
        self.raw = con

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        text, values, returning = translate(sql, params)
        cursor = self.raw.cursor()
        cursor.execute(text, values if values else None, prepare=True)
        return PgCursor(cursor, returning)

    def executemany(self, sql: str, rows: list) -> None:
        if not rows:
            return
        text, _, _ = translate(sql, rows[0])
        text = text.removesuffix(" RETURNING id")
        rows = [translate(sql, row)[1] for row in rows]
        with self.raw.cursor() as cursor:
            cursor.executemany(text, rows)

    @property
    def in_transaction(self) -> bool:
        from psycopg import pq

        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


__all__ = [
    "INSTALL_HINT",
    "PgConnection",
    "PgLocation",
    "current_user",
    "holder_id",
    "import_psycopg",
    "is_url",
    "parse_url",
    "translate",
]
