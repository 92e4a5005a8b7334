"""The change feed: what other people changed since a token, and the undo check built on it.

The `changes` table is filled by triggers on `annotations` (schema.py, pg_schema.py), so every
writer, in any process, is seen by a window polling `changes_since` with the token it got last.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotator.errors import ProjectError
from annotator.store.annotations import (
    ANNOTATION_COLUMNS,
    Annotation,
    Annotations,
    annotation_from_row,
)


@dataclass(frozen=True)
class Changes:
    """The answer of `Project.changes_since`: pass `token` to the next call."""

    token: int
    upserted: list[Annotation]  # added or changed annotations, as they are now
    deleted: list[int]  # ids of annotations that are gone
    images: frozenset[int]  # images whose annotations changed


class ChangeFeed(Annotations):
    """The change feed's part of `Project`."""

    def changes_since(self, token: int | None = None) -> Changes:
        """What changed after `token` (None: nothing yet, just the current token), for a window
        that shows other people's accepted work without a restart: poll with the token it gives."""
        with self.snapshot():
            last = int(self.read("SELECT coalesce(max(id), 0) FROM changes")[0][0])
            if token is None or token >= last:
                return Changes(last, [], [], frozenset())
            rows = self.read(
                "SELECT annotation_id, image_id FROM changes WHERE id > ? ORDER BY id", (token,)
            )
            ids = sorted({int(r[0]) for r in rows})
            current: dict[int, Annotation] = {}
            sql = f"SELECT {ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for row in self.read(f"{sql} WHERE a.id IN ({marks}) ORDER BY a.id", tuple(chunk)):
                    current[row[0]] = annotation_from_row(row)
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
