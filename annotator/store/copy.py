"""Copy a whole project between stores (SQLite <-> PostgreSQL, or within one kind), all or nothing.

Rows keep their ids, authorship, times, prompts and CLIP vectors, so an export of the copy is the
export of the source. The source is read in one snapshot; the target is written in one transaction
and must hold no images, categories or annotations: nothing is merged, and a failure anywhere
leaves the target as it was.
"""

from __future__ import annotations

from annotator.errors import ProjectError
from annotator.store import extras
from annotator.store.images import name_bytes
from annotator.store.project import Project

_TABLES = {
    "images": "id, file_name, width, height, sha256, added, added_by",
    "categories": "id, name, supercategory",
    "annotations": "id, image_id, category_id, rle, height, width, bbox_x, bbox_y, bbox_w, bbox_h,"
    " area, score, prompts, created, updated, created_by, updated_by",
    "embeddings": "kind, ref_id, model_id, vector",
    "boxes": "id, image_id, category_id, x, y, w, h, score, created",
    "extras": "kind, ref_id, data",
    # the review queue (issue 22: it was left out): pending/decided proposals and the
    # auto-label "done" marks that make a run resume where it stopped
    "proposals": "id, image_id, run, source, category, score, rle, height, width, bbox_x, bbox_y,"
    " bbox_w, bbox_h, area, status, annotation_id, created",
    "autolabel_done": "image_id, run, proposals, finished",
    # sequences and tracks (issue 25): frames are images, pending track masks proposals
    "sequences": "id, source, kind, frame_count, width, height, fps, added",
    "sequence_frames": "image_id, sequence_id, frame_index",
    "tracks": "id, sequence_id, object_id, category, prompts",
    "track_proposals": "proposal_id, track_id, frame_index",
    "track_annotations": "annotation_id, track_id, frame_index",
    # filled by triggers while the rows above go in: replaced by the source's rows afterwards, so
    # the change log and the embedding change counters are the source's
    "changes": "id, annotation_id, image_id, op",
    "embedding_versions": "kind, model_id, version",
}
_ORDER = {
    "extras": "kind, ref_id",
    "embeddings": "kind, model_id, ref_id",
    "autolabel_done": "image_id, run",
    "sequence_frames": "image_id",
    "track_proposals": "proposal_id",
    "track_annotations": "annotation_id",
    "embedding_versions": "kind, model_id",
}
_TRIGGER_FILLED = ("changes", "embedding_versions")
NOT_COPIED = {
    "meta": "copied key by key (the target keeps its own schema version)",
    "sqlite_sequence": "each id sequence is moved to at least the source's",
    "schema_version": "PostgreSQL's version row: the target's own",
    "claims": "PostgreSQL: who has an image open now, only while that process lives",
}
"""Tables `copy_project` does not copy row for row, and why (tests/store/test_project_copy.py checks that
every table of a project is in `_TABLES` or here)."""


def _insert(table: str) -> str:
    columns = _TABLES[table]
    marks = ", ".join("?" for _ in columns.split(","))
    if table == "images":  # file names are bound as bytes (kept byte for byte in SQLite)
        marks = marks.replace("?, ?", "?, CAST(? AS TEXT)", 1)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})"


def copy_project(source: Project, target: Project, batch: int = 2000) -> dict:
    """Copy everything in `source` into the empty `target`; returns the row counts copied."""
    if source.schema_version != target.schema_version:
        raise ProjectError(
            f"{source.path}: schema {source.schema_version} differs from {target.path}'s"
            f" ({target.schema_version}); open both with this annotator first"
        )
    with source.snapshot():
        rows = {
            table: source.read(f"SELECT {columns} FROM {table} ORDER BY {_ORDER.get(table, 'id')}")
            for table, columns in _TABLES.items()
        }
        meta = source.read("SELECT key, value FROM meta ORDER BY key")
        sequences = source.read("SELECT name, seq FROM sqlite_sequence ORDER BY name")
    if source.folder is not None and "folder" not in {key for key, _ in meta}:
        meta.append(("folder", str(source.folder.resolve())))
    rows["images"] = [(r[0], name_bytes(r[1]), *r[2:]) for r in rows["images"]]
    with target.transaction():
        for table in ("images", "categories", "annotations"):
            if target.read(f"SELECT count(*) FROM {table}")[0][0]:
                raise ProjectError(
                    f"{target.path}: the target project is not empty (it has {table});"
                    " copy only into a new project"
                )
        for key, value in meta:
            target.write(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        for table in _TABLES:
            if table in _TRIGGER_FILLED:
                target.write(f"DELETE FROM {table}")
            sql = _insert(table)
            for start in range(0, len(rows[table]), batch):
                target.write_many(sql, [tuple(r) for r in rows[table][start : start + batch]])
        for name, seq in sequences:  # ids are never reused: not even those the source deleted
            if seq and name in _TABLES:
                _bump(target, name, int(seq))
        for table in _TABLES:
            copied = target.read(f"SELECT count(*) FROM {table}")[0][0]
            if copied != len(rows[table]):  # pragma: no cover - a bug, never a user's input
                raise ProjectError(f"{target.path}: copied {copied} of {len(rows[table])} {table}")
    return {table: len(found) for table, found in rows.items()}


def _bump(target: Project, name: str, seq: int) -> None:
    if name == "annotations":  # box ids share it: a later mask never takes one
        extras._bump_sequence(target, seq)
    elif target.read("SELECT 1 FROM sqlite_sequence WHERE name = ?", (name,)):
        target.write("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name))
    else:
        target.write("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq))


__all__ = ["NOT_COPIED", "copy_project"]
