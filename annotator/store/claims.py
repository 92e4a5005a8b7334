"""Claims: an image taken for editing by one window, so two people never edit it at once.

This is the claim API every annotating window uses and its meaning for an SQLite file, which has
one user: a claim always succeeds and nothing is refused. A PostgreSQL project overrides these four
methods with advisory locks that the server drops with the connection (postgres.py, ADR 0011).
Every annotation write calls `_check_claim` inside its transaction.
"""

from __future__ import annotations

from annotator.store.images import ImageRecord, Images


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
