"""Claims: an image taken for editing by one window, so two people never edit it at once.

`Claims` is the claim API every annotating window uses and its meaning for an SQLite file, which
has one user: a claim always succeeds and nothing is refused. `PostgresClaims` (mixed into
`PostgresProject`) makes a claim a session advisory lock on (project, image): the server drops it
when the connection ends (window closed, process killed, network gone), so a claim never outlives
its holder; writers take the same lock shared for the length of their transaction, and an image
claimed by someone else refuses the write with one line naming the holder (ADR 0011). Every
annotation write calls `_check_claim` inside its transaction.
"""

from __future__ import annotations

import time
import zlib

from annotator.errors import ProjectError
from annotator.store.connection import utc_now
from annotator.store.images import ImageRecord, Images


def int32(value: int) -> int:
    """`value` folded into PostgreSQL's signed 32-bit int (an advisory lock takes two of them)."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def advisory_key(label: str) -> int:
    """The 32-bit advisory-lock key of `label` (a project's write lock, its claims): a CRC, so
    every process computes the same key for the same project."""
    return int32(zlib.crc32(label.encode()))


class Claims(Images):
    """The claims part of `Project` (SQLite: one user, so claims only remember what we hold)."""

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


class PostgresClaims(Claims):
    """Claims as advisory locks (see the module docstring); for `PostgresProject`."""

    holder: str  # user@host:pid, shown to others
    _claim_key: int
    _timeout: float

    def _holder(self, image_id: int) -> str | None:
        rows = self.read(
            "SELECT c.holder FROM claims c JOIN pg_locks l ON l.locktype = 'advisory'"
            " AND l.pid = c.pid AND l.granted AND l.mode = 'ExclusiveLock' AND l.objsubid = 2"
            " AND l.classid::bigint = ? AND l.objid::bigint = c.image_id % 4294967296"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " WHERE c.image_id = ?",
            (self._claim_key & 0xFFFFFFFF, int(image_id)),
        )
        return rows[0][0] if rows else None

    def claim(self, image_id: int) -> None:
        image = self.image(image_id)
        if image.id in self._claimed:
            return
        deadline = time.monotonic() + min(self._timeout, 2.0)
        with self._lock:
            while True:
                got = self.read(
                    "SELECT pg_try_advisory_lock(?, ?)", (self._claim_key, int32(image.id))
                )[0][0]
                if got:
                    break
                holder = self._holder(image.id)
                if holder is not None or time.monotonic() > deadline:
                    raise ProjectError(
                        f"{image.file_name}: being edited by {holder or 'another annotator'};"
                        " open another image"
                    )
                time.sleep(0.02)  # a writer holds it for the length of one save
            self._claimed.add(image.id)
            with self.transaction():
                self.write(
                    "INSERT INTO claims (image_id, holder, pid, since)"
                    " VALUES (?, ?, pg_backend_pid(), ?) ON CONFLICT (image_id) DO UPDATE"
                    " SET holder = excluded.holder, pid = excluded.pid, since = excluded.since",
                    (image.id, self.holder, utc_now()),
                )

    def release(self, image_id: int) -> None:
        image_id = int(image_id)
        if image_id not in self._claimed:
            return
        with self._lock:
            self._claimed.discard(image_id)
            with self.transaction():
                self.write(
                    "DELETE FROM claims WHERE image_id = ? AND pid = pg_backend_pid()", (image_id,)
                )
            self.read("SELECT pg_advisory_unlock(?, ?)", (self._claim_key, int32(image_id)))

    def claims(self) -> dict[int, str]:
        rows = self.read(
            "SELECT c.image_id, c.holder FROM claims c JOIN pg_locks l ON l.locktype = 'advisory'"
            " AND l.pid = c.pid AND l.granted AND l.mode = 'ExclusiveLock' AND l.objsubid = 2"
            " AND l.classid::bigint = ? AND l.objid::bigint = c.image_id % 4294967296"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " WHERE c.pid <> pg_backend_pid() ORDER BY c.image_id",
            (self._claim_key & 0xFFFFFFFF,),
        )
        return {int(image_id): holder for image_id, holder in rows}

    def _check_claim(self, image: ImageRecord) -> None:
        if image.id in self._claimed:
            return
        free = self.read(
            "SELECT pg_try_advisory_xact_lock_shared(?, ?)", (self._claim_key, int32(image.id))
        )[0][0]
        if not free:
            holder = self._holder(image.id)
            raise ProjectError(
                f"{image.file_name}: being edited by {holder or 'another annotator'}; not saved"
            )
