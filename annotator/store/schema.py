"""The project database's schema and its migrations.

The version lives in `PRAGMA user_version` (no migrations table): migration i turns a version-i
database into version i+1, and all pending ones run in the same transaction as the open that needs
them, so a crash mid-migration leaves the old version intact.
"""

from __future__ import annotations

import sqlite3

# Each entry is one migration: the statements that take the schema from version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_name TEXT NOT NULL UNIQUE,      -- relative to the project folder, '/' separated
            width INTEGER NOT NULL CHECK (width > 0),
            height INTEGER NOT NULL CHECK (height > 0),
            sha256 TEXT,                         -- of the decoded RGB pixels, when known
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
            con.execute(statement)
        con.execute(f"PRAGMA user_version = {version + 1}")
    return old
