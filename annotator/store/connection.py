"""The connection both backends share: one write transaction, snapshots, reads and writes, meta.

A `Project` is this class plus one mixin per table (images.py, categories.py, annotations.py,
claims.py, changes.py) plus its backend: project.py (SQLite) or postgres.py (PostgreSQL). The
backend opens the connection and fills in the hooks below (`_begin_write`, `_commit`,
`_rollback`, `_begin_snapshot`, `_end_snapshot`, `_explain` and the two error classes); the
transaction logic itself (nesting, all or nothing, failures turned into one `ProjectError` line)
lives here once, so the two backends cannot drift apart (ADR 0027).

Every public mutating call of a table mixin runs inside `transaction()`; calls made inside it
join it, so an import or an accepted edit is committed (and fsynced) once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import numpy as np

from annotator.errors import ProjectError
from annotator.store import schema


def utc_now() -> str:
    """The time stamp stored with a row (ISO 8601 UTC, milliseconds): one format for every table,
    so rows written by either backend compare and sort as text."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def wanted_id(value: Any) -> int | None:
    """A caller's wished-for id if it is an int in 1..ID_LIMIT, else None (the store assigns one):
    ids read from files must not be able to exhaust the id space (ADR 0005)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    value = int(value)
    return value if 1 <= value <= schema.ID_LIMIT else None


class Connection:
    """One database connection with the transaction rules every table relies on.

    Thread-safe: calls are serialised by `_lock`, so one project may be shared between threads.
    """

    _con: Any  # sqlite3.Connection, or backend.PgConnection
    _db_error: type[Exception]  # the driver's base error: turned into ProjectError
    _integrity_error: type[Exception]  # a broken constraint: a caller's bug, kept as it is
    path: Any
    user: str

    def _init_session(self) -> None:
        """The per-connection state, set by each backend's `__init__` before it connects."""
        self._claimed: set[int] = set()  # images this connection has claimed (claims.py)
        self._left: dict[int, tuple[str, str] | None] = {}  # what our last write of an id left
        self._lock = threading.RLock()
        self._depth = 0

    # ------------------------------------------------------------------------ backend hooks
    def _begin_write(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _begin_snapshot(self) -> None:
        raise NotImplementedError

    def _end_snapshot(self) -> None:
        raise NotImplementedError

    def _explain(self, error: Exception, doing: str) -> str:
        """One line for the user: what failed on which project, and whether anything was saved."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- transactions
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
                self._begin_write()
            except self._db_error as error:
                self._rollback()
                raise ProjectError(self._explain(error, "cannot write")) from error
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            try:
                self._commit()
            except self._db_error as error:
                self._rollback()
                raise ProjectError(self._explain(error, "cannot write")) from error

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read view for several reads (an export); do not write inside it."""
        with self._lock:
            if self._depth:
                yield
                return
            try:
                self._begin_snapshot()
            except self._db_error as error:
                raise ProjectError(self._explain(error, "cannot read")) from error
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                self._end_snapshot()

    # ------------------------------------------------------------------------ reads, writes
    def write(self, sql: str, params: tuple | dict = ()) -> Any:
        """Execute one statement inside the current transaction (SQLite's `?` placeholders on both
        backends); a driver failure becomes a ProjectError line, a broken constraint stays a bug."""
        try:
            return self._con.execute(sql, params)
        except self._integrity_error:
            raise  # a constraint broken by the caller: a bug, keep the traceback
        except self._db_error as error:
            raise ProjectError(self._explain(error, "cannot write")) from error

    def write_many(self, sql: str, rows: list[tuple]) -> None:
        """`write` for many rows of one statement (a backfill batch)."""
        try:
            self._con.executemany(sql, rows)
        except self._integrity_error:
            raise
        except self._db_error as error:
            raise ProjectError(self._explain(error, "cannot write")) from error

    def read(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """All rows of one query; a driver failure becomes a ProjectError line."""
        with self._lock:
            try:
                return self._con.execute(sql, params).fetchall()
            except self._db_error as error:
                raise ProjectError(self._explain(error, "cannot read")) from error

    def close(self) -> None:
        """Close the connection (SQLite: the last one to close checkpoints the WAL into the file)."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------------- meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A project-wide setting (e.g. `folder`), or `default`."""
        rows = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        """Store a project-wide setting (replacing it)."""
        with self.transaction():
            self.write(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )
