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
