"""A project in a PostgreSQL database: `Project("postgresql://USER@HOST:PORT/DB?project=NAME")`.

Every query method is `Project`'s own (PgConnection translates its SQL), and so is the one
`transaction` (connection.py, ADR 0027); this class fills in what differs (ADR 0011):
- each project is a schema `annotator_NAME` (several projects per database), created and migrated
  under the project's write lock by whoever opens it first;
- a write transaction takes a transaction-scoped advisory lock of the project first, as SQLite's
  `BEGIN IMMEDIATE` takes its write lock: read-check-insert sequences (a category by name, an
  image by name) stay race-free, and change-log ids are in commit order, so a poller that
  remembers the last id it saw misses nothing;
- a claim is a session advisory lock on (project, image), dropped by the server with the
  connection (`claims.PostgresClaims`).
"""

from __future__ import annotations

from pathlib import Path

from annotator.errors import ProjectError
from annotator.store import pg_schema
from annotator.store.backend import (
    PgConnection,
    current_user,
    holder_id,
    import_psycopg,
    parse_url,
    register_url_project,
)
from annotator.store.claims import PostgresClaims, advisory_key
from annotator.store.project import Project


@register_url_project
class PostgresProject(PostgresClaims, Project):
    """A `Project` whose tables live in PostgreSQL (see the module docstring)."""

    def __init__(self, db_path: str, timeout: float = 10.0) -> None:
        psycopg = import_psycopg()
        self._pg = psycopg
        self.location = parse_url(str(db_path))
        self.url = str(db_path)
        self.path = self.location.shown  # type: ignore[assignment]  # what messages show
        self.user = current_user()
        self.holder = holder_id(self.user)
        self._init_session()
        self._db_error = psycopg.Error
        self._integrity_error = psycopg.IntegrityError
        self._timeout = timeout
        self._write_key = advisory_key(f"annotator-write:{self.location.schema}")
        self._claim_key = advisory_key(f"annotator-claim:{self.location.schema}")
        try:
            raw = psycopg.connect(
                self.location.conninfo,
                autocommit=True,
                connect_timeout=max(1, int(timeout)),
                application_name="annotator",
            )
        except psycopg.Error as error:
            raise ProjectError(f"{self.path}: cannot connect ({_first_line(error)})") from error
        self._con = PgConnection(raw)  # type: ignore[assignment]
        try:
            self._setup()
        except BaseException:
            raw.close()
            raise
        self.journal_mode = "postgresql"
        stored = self.get_meta("folder")
        if self.location.images and not stored:
            stored = str(Path(self.location.images).resolve())
            self.set_meta("folder", stored)
        self.folder = Path(stored) if stored else None

    # --------------------------------------------------------------------------- connection
    def _setup(self) -> None:
        sql = self._pg.sql
        raw = self._con.raw
        schema_name = sql.Identifier(self.location.schema)
        try:
            raw.execute(sql.SQL("SET search_path TO {}").format(schema_name))
            raw.execute(f"SET lock_timeout = '{int(self._timeout * 1000)}ms'")
        except self._pg.Error as error:
            raise ProjectError(self._explain(error, "cannot open")) from error
        version = self._stored_version()
        if version is not None and version >= pg_schema.SCHEMA_VERSION:
            self._check_newer(version)
            return
        with self.transaction():
            try:
                raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema_name))
                raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = raw.execute("SELECT max(version) FROM schema_version").fetchone()
                if row[0] is None:
                    raw.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = int(row[0] or 0)
                self._check_newer(version)
                for step in range(version, pg_schema.SCHEMA_VERSION):
                    for statement in pg_schema.MIGRATIONS[step]:
                        raw.execute(statement)
                raw.execute("UPDATE schema_version SET version = %s", (pg_schema.SCHEMA_VERSION,))
            except self._pg.Error as error:
                raise ProjectError(self._explain(error, "cannot upgrade")) from error

    def _stored_version(self) -> int | None:
        try:
            row = self._con.raw.execute(
                "SELECT to_regclass('schema_version') IS NOT NULL"
            ).fetchone()
            if not row[0]:
                return None
            return int(
                self._con.raw.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            )
        except self._pg.Error as error:
            raise ProjectError(self._explain(error, "cannot open")) from error

    def _check_newer(self, version: int) -> None:
        if version > pg_schema.SCHEMA_VERSION:
            raise ProjectError(
                f"{self.path}: made by a newer annotator (schema {version}, this one knows"
                f" {pg_schema.SCHEMA_VERSION})"
            )

    def _explain(self, error: Exception, doing: str) -> str:  # type: ignore[override]
        errors = self._pg.errors
        text = _first_line(error)
        if isinstance(error, (errors.LockNotAvailable, errors.QueryCanceled)):
            return (
                f"{self.path}: the project is busy (another writer held it for {self._timeout:g}s);"
                " nothing was saved"
            )
        if isinstance(error, errors.DiskFull):
            return f"{self.path}: the database server's disk is full; nothing was saved"
        if isinstance(error, (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)):
            return f"{self.path}: {doing} the project: not allowed ({text}); nothing was saved"
        if isinstance(error, self._pg.OperationalError):
            return f"{self.path}: lost the database connection ({text}); nothing was saved"
        return f"{self.path}: {doing} the project ({text})"

    # ------------------------------------------------------------------- transaction hooks
    def _begin_write(self) -> None:
        """BEGIN, then the project's write lock (as SQLite's BEGIN IMMEDIATE, see the docstring)."""
        raw = self._con.raw
        raw.execute("BEGIN")
        raw.execute("SELECT pg_advisory_xact_lock(%s, 0)", (self._write_key,))

    def _commit(self) -> None:
        self._con.raw.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            if self._con.in_transaction:
                self._con.raw.execute("ROLLBACK")
        except self._pg.Error:
            pass  # the connection is gone: the server rolled back

    def _begin_snapshot(self) -> None:
        self._con.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def _end_snapshot(self) -> None:
        self._rollback()

    def close(self) -> None:
        """Close the connection: the server drops this session's claims with it."""
        with self._lock:
            try:
                if self._claimed and not self._con.raw.closed:
                    self._con.raw.execute("DELETE FROM claims WHERE pid = pg_backend_pid()")
            except self._pg.Error:
                pass
            self._claimed.clear()
            self._con.close()

    def integrity_ok(self) -> bool:
        """True when nothing dangles and every mask fits its image (PostgreSQL checks its own
        pages; this checks what the store promises)."""
        checks = (
            "SELECT count(*) FROM annotations a LEFT JOIN images i ON i.id = a.image_id"
            " WHERE i.id IS NULL OR a.height <> i.height OR a.width <> i.width OR a.area <= 0",
            "SELECT count(*) FROM annotations a LEFT JOIN categories c ON c.id = a.category_id"
            " WHERE c.id IS NULL",
            "SELECT count(*) FROM (SELECT id FROM annotations GROUP BY id HAVING count(*) > 1) d",
            "SELECT count(*) FROM embeddings e WHERE (e.kind = 'annotation' AND NOT EXISTS"
            " (SELECT 1 FROM annotations a WHERE a.id = e.ref_id)) OR (e.kind = 'image' AND NOT"
            " EXISTS (SELECT 1 FROM images i WHERE i.id = e.ref_id))",
        )
        try:
            return all(self.read(check)[0][0] == 0 for check in checks)
        except ProjectError:
            return False

    @property
    def schema_version(self) -> int:
        return int(self.read("SELECT max(version) FROM schema_version")[0][0])


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


__all__ = ["PostgresProject"]
