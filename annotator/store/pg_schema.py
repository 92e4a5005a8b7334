"""The project schema in PostgreSQL's dialect: the same versions as `schema.MIGRATIONS`.

Migration i here means what migration i means there (same tables, columns and rules), written for
PostgreSQL: BIGINT ids from a sequence that never goes back (SQLite's AUTOINCREMENT, including
explicit ids moving it forward), DOUBLE PRECISION for REAL, BYTEA for BLOB, plpgsql trigger
functions for SQLite's triggers. The version lives in the one-row table `schema_version`
(PostgreSQL has no user_version); all of a project's objects are in its own schema.
"""

from __future__ import annotations

# AUTOINCREMENT: a NULL id takes the next value; an explicit one moves the sequence past it, so
# ids are never reused. Writers are serialised by the project's write lock (postgres.py).
_NEXT_ID = """
CREATE FUNCTION next_id() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seq regclass := (TG_TABLE_NAME || '_id_seq')::regclass;
BEGIN
    IF NEW.id IS NULL THEN
        NEW.id := nextval(seq);
    ELSIF NEW.id > coalesce(pg_sequence_last_value(seq), 0) THEN
        PERFORM setval(seq, NEW.id);
    END IF;
    RETURN NEW;
END $$
"""


def _ids(table: str) -> tuple[str, str]:
    return (
        f"CREATE SEQUENCE {table}_id_seq AS BIGINT",
        f"CREATE TRIGGER {table}_next_id BEFORE INSERT ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION next_id()",
    )


def _function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
        "RETURN NULL; END $$"
    )


MIGRATIONS: list[tuple[str, ...]] = [
    (
        _NEXT_ID,
        """
        CREATE TABLE images (
            id BIGINT PRIMARY KEY,
            file_name TEXT NOT NULL UNIQUE,
            width INTEGER NOT NULL CHECK (width > 0),
            height INTEGER NOT NULL CHECK (height > 0),
            sha256 TEXT,
            added TEXT NOT NULL
        )
        """,
        *_ids("images"),
        """
        CREATE TABLE categories (
            id BIGINT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
            supercategory TEXT NOT NULL DEFAULT ''
        )
        """,
        *_ids("categories"),
        """
        CREATE TABLE annotations (
            id BIGINT PRIMARY KEY,
            image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            category_id BIGINT NOT NULL REFERENCES categories (id),
            rle TEXT NOT NULL,
            height INTEGER NOT NULL,
            width INTEGER NOT NULL,
            bbox_x DOUBLE PRECISION NOT NULL,
            bbox_y DOUBLE PRECISION NOT NULL,
            bbox_w DOUBLE PRECISION NOT NULL,
            bbox_h DOUBLE PRECISION NOT NULL,
            area BIGINT NOT NULL CHECK (area > 0),
            score DOUBLE PRECISION,
            prompts TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
        *_ids("annotations"),
        "CREATE INDEX annotations_by_image ON annotations (image_id)",
        "CREATE INDEX annotations_by_category ON annotations (category_id)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        """
        CREATE TABLE embeddings (
            id BIGINT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('image', 'annotation')),
            ref_id BIGINT NOT NULL,
            model_id TEXT NOT NULL,
            vector BYTEA NOT NULL,
            UNIQUE (kind, model_id, ref_id)
        )
        """,
        *_ids("embeddings"),
        """
        CREATE TABLE embedding_versions (
            kind TEXT NOT NULL,
            model_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            PRIMARY KEY (kind, model_id)
        )
        """,
        # an upsert is an UPDATE here (a REPLACE is delete + insert in SQLite): both bump
        _function(
            "embeddings_bump",
            "IF TG_OP = 'DELETE' THEN "
            "INSERT INTO embedding_versions AS v (kind, model_id, version) VALUES (OLD.kind, OLD.model_id, 1)"
            " ON CONFLICT (kind, model_id) DO UPDATE SET version = v.version + 1; "
            "ELSE "
            "INSERT INTO embedding_versions AS v (kind, model_id, version) VALUES (NEW.kind, NEW.model_id, 1)"
            " ON CONFLICT (kind, model_id) DO UPDATE SET version = v.version + 1; "
            "END IF;",
        ),
        "CREATE TRIGGER embeddings_changed AFTER INSERT OR UPDATE OR DELETE ON embeddings"
        " FOR EACH ROW EXECUTE FUNCTION embeddings_bump()",
        _function(
            "embeddings_drop_image",
            "DELETE FROM embeddings WHERE kind = 'image' AND ref_id = OLD.id;",
        ),
        "CREATE TRIGGER embeddings_drop_image AFTER DELETE ON images"
        " FOR EACH ROW EXECUTE FUNCTION embeddings_drop_image()",
        _function(
            "embeddings_drop_annotation",
            "DELETE FROM embeddings WHERE kind = 'annotation' AND ref_id = OLD.id;",
        ),
        "CREATE TRIGGER embeddings_drop_annotation AFTER DELETE ON annotations"
        " FOR EACH ROW EXECUTE FUNCTION embeddings_drop_annotation()",
        _function(
            "embeddings_new_annotation",
            "DELETE FROM embeddings WHERE kind = 'annotation' AND ref_id = NEW.id;",
        ),
        "CREATE TRIGGER embeddings_new_annotation AFTER INSERT ON annotations"
        " FOR EACH ROW EXECUTE FUNCTION embeddings_new_annotation()",
        "CREATE TRIGGER embeddings_mask_changed AFTER UPDATE OF rle ON annotations"
        " FOR EACH ROW WHEN (OLD.rle IS DISTINCT FROM NEW.rle)"
        " EXECUTE FUNCTION embeddings_drop_annotation()",
    ),
    (
        "UPDATE images SET sha256 = NULL",
        "CREATE INDEX images_by_sha256 ON images (sha256)",
    ),
    # 3 -> 4: box-only annotations and a format's extra fields (schema.py's step 4). extras.py
    # moves the annotations' sequence through `sqlite_sequence`: here a view over the sequences
    # whose writes call setval, so that code runs unchanged.
    (
        """
        CREATE TABLE boxes (
            id BIGINT PRIMARY KEY,
            image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            category_id BIGINT NOT NULL REFERENCES categories (id),
            x DOUBLE PRECISION NOT NULL,
            y DOUBLE PRECISION NOT NULL,
            w DOUBLE PRECISION NOT NULL CHECK (w > 0),
            h DOUBLE PRECISION NOT NULL CHECK (h > 0),
            score DOUBLE PRECISION,
            created TEXT NOT NULL
        )
        """,
        "CREATE INDEX boxes_by_image ON boxes (image_id)",
        """
        CREATE TABLE extras (
            kind TEXT NOT NULL CHECK (kind IN ('image', 'category', 'annotation', 'box')),
            ref_id BIGINT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (kind, ref_id)
        )
        """,
        *(
            statement
            for kind, table in (
                ("image", "images"),
                ("category", "categories"),
                ("annotation", "annotations"),
                ("box", "boxes"),
            )
            for statement in (
                _function(
                    f"extras_drop_{kind}",
                    f"DELETE FROM extras WHERE kind = '{kind}' AND ref_id = OLD.id;",
                ),
                f"CREATE TRIGGER extras_drop_{kind} AFTER DELETE ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION extras_drop_{kind}()",
            )
        ),
        """
        CREATE VIEW sqlite_sequence AS
        SELECT name, seq FROM (
            SELECT 'images'::text AS name, pg_sequence_last_value('images_id_seq') AS seq
            UNION ALL SELECT 'categories', pg_sequence_last_value('categories_id_seq')
            UNION ALL SELECT 'annotations', pg_sequence_last_value('annotations_id_seq')
        ) s WHERE seq IS NOT NULL
        """,
        """
        CREATE FUNCTION sqlite_sequence_set() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            IF NEW.seq >= 1 THEN
                PERFORM setval((NEW.name || '_id_seq')::regclass, NEW.seq);
            END IF;
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER sqlite_sequence_set INSTEAD OF INSERT OR UPDATE ON sqlite_sequence"
        " FOR EACH ROW EXECUTE FUNCTION sqlite_sequence_set()",
    ),
    (
        "ALTER TABLE annotations ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE annotations ADD COLUMN updated_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE images ADD COLUMN added_by TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE changes (id BIGINT PRIMARY KEY, annotation_id BIGINT NOT NULL,"
        " image_id BIGINT NOT NULL, op TEXT NOT NULL)",
        *_ids("changes"),
        _function(
            "log_change",
            "IF TG_OP = 'DELETE' THEN "
            "INSERT INTO changes (annotation_id, image_id, op) VALUES (OLD.id, OLD.image_id, 'delete'); "
            "ELSE "
            "INSERT INTO changes (annotation_id, image_id, op) VALUES (NEW.id, NEW.image_id, 'upsert'); "
            "END IF;",
        ),
        "CREATE TRIGGER annotations_logged AFTER INSERT OR UPDATE OR DELETE ON annotations"
        " FOR EACH ROW EXECUTE FUNCTION log_change()",
        # who has an image open: a row is only a claim while its holder's advisory lock is held
        "CREATE TABLE claims (image_id BIGINT PRIMARY KEY, holder TEXT NOT NULL,"
        " pid INTEGER NOT NULL, since TEXT NOT NULL)",
    ),
    # 5 -> 6: auto-label proposals and done marks (schema.py's step 6).
    (
        """
        CREATE TABLE proposals (
            id BIGINT PRIMARY KEY,
            image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            run TEXT NOT NULL,
            source TEXT NOT NULL,
            category TEXT NOT NULL CHECK (length(category) > 0),
            score DOUBLE PRECISION NOT NULL,
            rle TEXT NOT NULL,
            height BIGINT NOT NULL,
            width BIGINT NOT NULL,
            bbox_x DOUBLE PRECISION NOT NULL, bbox_y DOUBLE PRECISION NOT NULL,
            bbox_w DOUBLE PRECISION NOT NULL, bbox_h DOUBLE PRECISION NOT NULL,
            area BIGINT NOT NULL CHECK (area > 0),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected')),
            annotation_id BIGINT,
            created TEXT NOT NULL
        )
        """,
        *_ids("proposals"),
        "CREATE INDEX proposals_by_image ON proposals (image_id)",
        "CREATE INDEX proposals_by_status ON proposals (status)",
        """
        CREATE TABLE autolabel_done (
            image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            run TEXT NOT NULL,
            proposals BIGINT NOT NULL,
            finished TEXT NOT NULL,
            PRIMARY KEY (image_id, run)
        )
        """,
    ),
    # ---- sequences and tracks (issue 25): schema.py's step 7 ------------------------------
    (
        """
        CREATE TABLE sequences (
            id BIGINT PRIMARY KEY,
            source TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('video', 'folder')),
            frame_count BIGINT NOT NULL CHECK (frame_count > 0),
            width INTEGER NOT NULL CHECK (width > 0),
            height INTEGER NOT NULL CHECK (height > 0),
            fps DOUBLE PRECISION,
            added TEXT NOT NULL
        )
        """,
        *_ids("sequences"),
        """
        CREATE TABLE sequence_frames (
            image_id BIGINT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
            sequence_id BIGINT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
            frame_index BIGINT NOT NULL CHECK (frame_index >= 0),
            UNIQUE (sequence_id, frame_index)
        )
        """,
        """
        CREATE TABLE tracks (
            id BIGINT PRIMARY KEY,
            sequence_id BIGINT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
            object_id BIGINT NOT NULL,
            category TEXT NOT NULL CHECK (length(category) > 0),
            prompts TEXT NOT NULL,
            UNIQUE (sequence_id, object_id)
        )
        """,
        *_ids("tracks"),
        """
        CREATE TABLE track_proposals (
            proposal_id BIGINT PRIMARY KEY REFERENCES proposals (id) ON DELETE CASCADE,
            track_id BIGINT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
            frame_index BIGINT NOT NULL
        )
        """,
        "CREATE INDEX track_proposals_by_track ON track_proposals (track_id)",
        """
        CREATE TABLE track_annotations (
            annotation_id BIGINT PRIMARY KEY REFERENCES annotations (id) ON DELETE CASCADE,
            track_id BIGINT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
            frame_index BIGINT NOT NULL
        )
        """,
        "CREATE INDEX track_annotations_by_track ON track_annotations (track_id)",
    ),
    # ---- end of sequences and tracks -------------------------------------------------------
]

SCHEMA_VERSION = len(MIGRATIONS)
