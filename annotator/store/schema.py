"""The project database's schema and its migrations.

The version lives in `PRAGMA user_version` (no migrations table): migration i turns a version-i
database into version i+1, and all pending ones run in the same transaction as the open that needs
them, so a crash mid-migration leaves the old version intact. A migration step is an SQL statement
or a Python function of the connection (for data fixes SQL alone cannot express simply).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# Ids the store takes from callers (COCO import, undo) must lie in 1..ID_LIMIT; anything else gets an
# id assigned by SQLite. 2**53 - 1 keeps every real data set's ids (COCO's crowd ids are ~9e11) and
# JSON-safe, while leaving ~9.2e18 ids above it, so nothing read from a file can exhaust the
# int64 id space (AUTOINCREMENT fails with "database or disk is full" once 2**63 - 1 is used).
ID_LIMIT = 2**53 - 1


def _renumber(con: sqlite3.Connection, table: str, refs: list[tuple[str, str, str]]) -> None:
    """Give rows of `table` with ids above ID_LIMIT the next free ids at or below it, updating
    `refs` ((table, column, extra WHERE) pairs that point at them), and lower the sequence."""
    high = [
        row[0]
        for row in con.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id", (ID_LIMIT,))
    ]
    for old in high:
        new = con.execute(
            f"SELECT coalesce(max(id), 0) + 1 FROM {table} WHERE id <= ?", (ID_LIMIT,)
        )
        new_id = new.fetchone()[0]
        con.execute(f"UPDATE {table} SET id = ? WHERE id = ?", (new_id, old))
        for ref_table, column, where in refs:
            con.execute(
                f"UPDATE {ref_table} SET {column} = ? WHERE {column} = ?{where}", (new_id, old)
            )
    con.execute(
        "UPDATE sqlite_sequence SET seq = (SELECT coalesce(max(id), 0) FROM " + table + ")"
        " WHERE name = ?",
        (table,),
    )


def _bound_ids(con: sqlite3.Connection) -> None:
    """Projects made before version 3 could hold imported ids up to 2**63 - 1, after which every
    insert failed: renumber those rows (foreign keys are checked at commit)."""
    con.execute("PRAGMA defer_foreign_keys = ON")
    _renumber(
        con,
        "annotations",
        [("embeddings", "ref_id", " AND kind = 'annotation'")],
    )
    _renumber(
        con,
        "images",
        [("annotations", "image_id", ""), ("embeddings", "ref_id", " AND kind = 'image'")],
    )
    _renumber(con, "categories", [("annotations", "category_id", "")])


# Each entry is one migration: the statements that take the schema from version i to i + 1.
MIGRATIONS: list[tuple[str | Callable[[sqlite3.Connection], None], ...]] = [
    (
        """
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_name TEXT NOT NULL UNIQUE,      -- relative to the project folder, '/' separated
            width INTEGER NOT NULL CHECK (width > 0),
            height INTEGER NOT NULL CHECK (height > 0),
            sha256 TEXT,                         -- of the file's bytes (from version 3), when known
            added TEXT NOT NULL                  -- ISO 8601 UTC
        )
        """,
        """
        CREATE TABLE categories (
            id INTEGER PRIMARY KEY AUTOINCREMENT, -- stable: never reused, exported as the COCO id
            name TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
            supercategory TEXT NOT NULL DEFAULT ''
        )
        """,
        """
        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so undo can restore an id
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            category_id INTEGER NOT NULL REFERENCES categories (id),
            rle TEXT NOT NULL,                   -- COCO compressed RLE counts (column-major)
            height INTEGER NOT NULL,
            width INTEGER NOT NULL,
            bbox_x REAL NOT NULL,                -- XYWH from the mask (pycocotools toBbox)
            bbox_y REAL NOT NULL,
            bbox_w REAL NOT NULL,
            bbox_h REAL NOT NULL,
            area INTEGER NOT NULL CHECK (area > 0), -- mask pixel count
            score REAL,
            prompts TEXT,                        -- JSON: the clicks and box that made the mask
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
        "CREATE INDEX annotations_by_image ON annotations (image_id)",
        "CREATE INDEX annotations_by_category ON annotations (category_id)",
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """,
    ),
    # 1 -> 2: CLIP embeddings of whole images and of annotated objects (similarity search). A
    # vector belongs to one (kind, ref id, model id); triggers drop it when its image or annotation
    # is deleted or its mask changes, so a stored vector is never stale.
    (
        """
        CREATE TABLE embeddings (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('image', 'annotation')),
            ref_id INTEGER NOT NULL,             -- images.id or annotations.id
            model_id TEXT NOT NULL,              -- CLIP identity | region head identity
            vector BLOB NOT NULL,                -- float32, little endian, L2-normalised
            UNIQUE (kind, model_id, ref_id)
        )
        """,
        # A change counter per (kind, model): a loaded matrix checks it with one key lookup
        # instead of scanning 100k rows to tell whether it is stale.
        """
        CREATE TABLE embedding_versions (
            kind TEXT NOT NULL,
            model_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (kind, model_id)
        )
        """,
        """
        CREATE TRIGGER embeddings_inserted AFTER INSERT ON embeddings BEGIN
            INSERT INTO embedding_versions (kind, model_id, version)
            VALUES (NEW.kind, NEW.model_id, 1)
            ON CONFLICT (kind, model_id) DO UPDATE SET version = version + 1;
        END
        """,
        """
        CREATE TRIGGER embeddings_deleted AFTER DELETE ON embeddings BEGIN
            INSERT INTO embedding_versions (kind, model_id, version)
            VALUES (OLD.kind, OLD.model_id, 1)
            ON CONFLICT (kind, model_id) DO UPDATE SET version = version + 1;
        END
        """,
        """
        CREATE TRIGGER embeddings_drop_image AFTER DELETE ON images BEGIN
            DELETE FROM embeddings WHERE kind = 'image' AND ref_id = OLD.id;
        END
        """,
        """
        CREATE TRIGGER embeddings_drop_annotation AFTER DELETE ON annotations BEGIN
            DELETE FROM embeddings WHERE kind = 'annotation' AND ref_id = OLD.id;
        END
        """,
        """
        CREATE TRIGGER embeddings_new_annotation AFTER INSERT ON annotations BEGIN
            DELETE FROM embeddings WHERE kind = 'annotation' AND ref_id = NEW.id;
        END
        """,
        """
        CREATE TRIGGER embeddings_mask_changed AFTER UPDATE OF rle ON annotations
        WHEN OLD.rle IS NOT NEW.rle BEGIN
            DELETE FROM embeddings WHERE kind = 'annotation' AND ref_id = OLD.id;
        END
        """,
    ),
    # 2 -> 3: images are identified by content. images.sha256 is now the sha256 of the image
    # FILE's bytes (as the embedding cache keys it; no decoding needed). Version 2 wrote nothing
    # there through the app; any value is dropped because it may mean something else, and hashes
    # are filled lazily from the files the next time an image is saved. Ids above ID_LIMIT are
    # renumbered.
    (
        "UPDATE images SET sha256 = NULL",
        "CREATE INDEX images_by_sha256 ON images (sha256)",
        _bound_ids,
    ),
    # 3 -> 4: what dataset formats bring beside masks (additive: no existing table changes).
    # `boxes` are box-only annotations (detection datasets) waiting to become masks; they share the
    # annotations' id space (the store bumps the annotations' sequence past a box id), so an export
    # lists both without clashing ids. `extras` keeps a format's fields the store has no column for
    # (COCO attributes, keypoints, an image's license...) as JSON, so they survive import -> export.
    (
        """
        CREATE TABLE boxes (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            category_id INTEGER NOT NULL REFERENCES categories (id),
            x REAL NOT NULL,                     -- XYWH, image pixels
            y REAL NOT NULL,
            w REAL NOT NULL CHECK (w > 0),
            h REAL NOT NULL CHECK (h > 0),
            score REAL,
            created TEXT NOT NULL
        )
        """,
        "CREATE INDEX boxes_by_image ON boxes (image_id)",
        """
        CREATE TABLE extras (
            kind TEXT NOT NULL CHECK (kind IN ('image', 'category', 'annotation', 'box')),
            ref_id INTEGER NOT NULL,
            data TEXT NOT NULL,                  -- JSON object of the format's own fields
            PRIMARY KEY (kind, ref_id)
        )
        """,
        """
        CREATE TRIGGER extras_drop_image AFTER DELETE ON images BEGIN
            DELETE FROM extras WHERE kind = 'image' AND ref_id = OLD.id;
        END
        """,
        """
        CREATE TRIGGER extras_drop_category AFTER DELETE ON categories BEGIN
            DELETE FROM extras WHERE kind = 'category' AND ref_id = OLD.id;
        END
        """,
        """
        CREATE TRIGGER extras_drop_annotation AFTER DELETE ON annotations BEGIN
            DELETE FROM extras WHERE kind = 'annotation' AND ref_id = OLD.id;
        END
        """,
        """
        CREATE TRIGGER extras_drop_box AFTER DELETE ON boxes BEGIN
            DELETE FROM extras WHERE kind = 'box' AND ref_id = OLD.id;
        END
        """,
    ),
    # 4 -> 5 (ADR 0011): who added an image and who created / last changed an annotation, and a
    # change log (one row per insert, update or delete of an annotation, filled by triggers) that
    # other windows poll with `Project.changes_since` to show each other's accepted work.
    (
        "ALTER TABLE annotations ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE annotations ADD COLUMN updated_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE images ADD COLUMN added_by TEXT NOT NULL DEFAULT ''",
        """
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            annotation_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete'))
        )
        """,
        """
        CREATE TRIGGER annotations_logged_insert AFTER INSERT ON annotations BEGIN
            INSERT INTO changes (annotation_id, image_id, op) VALUES (NEW.id, NEW.image_id, 'upsert');
        END
        """,
        """
        CREATE TRIGGER annotations_logged_update AFTER UPDATE ON annotations BEGIN
            INSERT INTO changes (annotation_id, image_id, op) VALUES (NEW.id, NEW.image_id, 'upsert');
        END
        """,
        """
        CREATE TRIGGER annotations_logged_delete AFTER DELETE ON annotations BEGIN
            INSERT INTO changes (annotation_id, image_id, op) VALUES (OLD.id, OLD.image_id, 'delete');
        END
        """,
    ),
    # 5 -> 6: auto-label proposals waiting for review and the per-(image, run) done marks that
    # make a run resumable (store/proposals.py; created here for both backends, as every table).
    (
        """
        CREATE TABLE IF NOT EXISTS proposals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            run TEXT NOT NULL,                   -- the auto-label run key that made it
            source TEXT NOT NULL,                -- engine: 'sam3' or 'proposals'
            category TEXT NOT NULL CHECK (length(category) > 0),
            score REAL NOT NULL,
            rle TEXT NOT NULL,                   -- COCO compressed RLE counts
            height INTEGER NOT NULL,
            width INTEGER NOT NULL,
            bbox_x REAL NOT NULL, bbox_y REAL NOT NULL, bbox_w REAL NOT NULL, bbox_h REAL NOT NULL,
            area INTEGER NOT NULL CHECK (area > 0),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected')),
            annotation_id INTEGER,               -- the annotation an accept created
            created TEXT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS proposals_by_image ON proposals (image_id)",
        "CREATE INDEX IF NOT EXISTS proposals_by_status ON proposals (status)",
        """
        CREATE TABLE IF NOT EXISTS autolabel_done (
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            run TEXT NOT NULL,
            proposals INTEGER NOT NULL,
            finished TEXT NOT NULL,
            PRIMARY KEY (image_id, run)
        )
        """,
    ),
    # ---- sequences and tracks (issue 25; store/tracks.py) ---------------------------------
    # 6 -> 7 (additive: new tables only). A sequence is a video file or a folder of frames; each
    # frame is a project image (`sequence_frames` gives its sequence and index). A track is one
    # object of a sequence (the user's object id, its category, the prompts that started it);
    # its pending masks are proposals (`track_proposals`) and its accepted ones annotations
    # (`track_annotations`), each row dropped with what it points at.
    (
        """
        CREATE TABLE IF NOT EXISTS sequences (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL UNIQUE,         -- the video file or frame folder
            kind TEXT NOT NULL CHECK (kind IN ('video', 'folder')),
            frame_count INTEGER NOT NULL CHECK (frame_count > 0),
            width INTEGER NOT NULL CHECK (width > 0),
            height INTEGER NOT NULL CHECK (height > 0),
            fps REAL,
            added TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS sequence_frames (
            image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
            sequence_id INTEGER NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL CHECK (frame_index >= 0),
            UNIQUE (sequence_id, frame_index)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS tracks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sequence_id INTEGER NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
            object_id INTEGER NOT NULL,          -- the user's --object id within the sequence
            category TEXT NOT NULL CHECK (length(category) > 0),
            prompts TEXT NOT NULL,               -- JSON: {frame: {points, labels, box}}
            UNIQUE (sequence_id, object_id)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS track_proposals (
            proposal_id INTEGER PRIMARY KEY REFERENCES proposals (id) ON DELETE CASCADE,
            track_id INTEGER NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS track_proposals_by_track ON track_proposals (track_id)",
        """
        CREATE TABLE IF NOT EXISTS track_annotations (
            annotation_id INTEGER PRIMARY KEY REFERENCES annotations (id) ON DELETE CASCADE,
            track_id INTEGER NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS track_annotations_by_track ON track_annotations (track_id)",
    ),
    # ---- end of sequences and tracks -------------------------------------------------------
]

SCHEMA_VERSION = len(MIGRATIONS)


def user_version(con: sqlite3.Connection) -> int:
    return int(con.execute("PRAGMA user_version").fetchone()[0])


def migrate(con: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION inside the caller's open transaction; returns the old version.

    The caller checks first that the version is not newer than this code knows.
    """
    old = user_version(con)
    for version in range(old, SCHEMA_VERSION):
        for statement in MIGRATIONS[version]:
            if callable(statement):
                statement(con)
            else:
                con.execute(statement)
        con.execute(f"PRAGMA user_version = {version + 1}")
    return old
