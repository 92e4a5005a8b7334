"""CLIP vectors of images and annotated objects, kept in the project next to what they describe.

One row per (kind, ref id, model id): kind is 'image' or 'annotation', the model id names the CLIP
model and region head that made the vector (vectors of different models never mix). Vectors are
float32 blobs. Triggers in the schema delete a vector when its image or annotation goes or its mask
changes, so whatever is stored is current; what is missing is listed by `missing` and backfilled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from annotator.store.project import Project

KINDS = ("image", "annotation")
IMAGE, ANNOTATION = KINDS


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"embedding kind must be one of {KINDS}, not {kind!r}")
    return kind


def _blob(vector: np.ndarray) -> bytes:
    v = np.asarray(vector, dtype="<f4").reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError("an embedding must be a non-empty vector of finite numbers")
    return v.tobytes()


class EmbeddingTable:
    """Read/write access to the `embeddings` table of one open `Project`."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def put(self, kind: str, ref_id: int, model_id: str, vector: np.ndarray) -> None:
        """Store (or replace) one vector, in its own transaction."""
        self.put_many(kind, model_id, [(ref_id, vector)])

    def put_many(self, kind: str, model_id: str, items: Iterable[tuple[int, np.ndarray]]) -> int:
        """Store several vectors in one transaction (a backfill batch); returns how many."""
        _check_kind(kind)
        rows = [(kind, int(ref), model_id, _blob(vec)) for ref, vec in items]
        with self.project.transaction():
            # REPLACE deletes a conflicting row and inserts a new one: the insert trigger bumps
            # the version, so a replacement is seen as a change too
            self.project.write_many(
                "INSERT OR REPLACE INTO embeddings (kind, ref_id, model_id, vector)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def get(self, kind: str, ref_id: int, model_id: str) -> np.ndarray | None:
        """The stored (D,) float32 vector, or None."""
        rows = self.project.read(
            "SELECT vector FROM embeddings WHERE kind = ? AND model_id = ? AND ref_id = ?",
            (_check_kind(kind), model_id, int(ref_id)),
        )
        return np.frombuffer(rows[0][0], dtype="<f4").astype(np.float32) if rows else None

    def signature(self, kind: str, model_id: str) -> int:
        """A counter that changes whenever a vector of this kind and model is added, replaced or
        deleted (kept by triggers), so a loaded matrix knows it is stale: one key lookup."""
        rows = self.project.read(
            "SELECT version FROM embedding_versions WHERE kind = ? AND model_id = ?",
            (_check_kind(kind), model_id),
        )
        return int(rows[0][0]) if rows else 0

    def matrix(self, kind: str, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,) int64, vectors (N, D) float32) of every stored vector, by ref id."""
        rows = self.project.read(
            "SELECT ref_id, vector FROM embeddings WHERE kind = ? AND model_id = ? ORDER BY ref_id",
            (_check_kind(kind), model_id),
        )
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        dims = {len(r[1]) for r in rows}
        if len(dims) != 1:
            raise ValueError(f"stored {kind} vectors of model {model_id!r} differ in length")
        flat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
        return ids, flat.reshape(len(rows), -1).astype(np.float32, copy=False)

    def missing(self, kind: str, model_id: str) -> list[int]:
        """Ids of images / annotations without a vector for this model."""
        table = {"image": "images", "annotation": "annotations"}[_check_kind(kind)]
        rows = self.project.read(
            f"SELECT t.id FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM embeddings e"
            " WHERE e.kind = ? AND e.model_id = ? AND e.ref_id = t.id) ORDER BY t.id",
            (kind, model_id),
        )
        return [int(r[0]) for r in rows]

    def delete(self, kind: str, ref_ids: Sequence[int], model_id: str | None = None) -> None:
        """Forget vectors (of one model, or of all models)."""
        _check_kind(kind)
        with self.project.transaction():
            for ref in ref_ids:
                if model_id is None:
                    self.project.write(
                        "DELETE FROM embeddings WHERE kind = ? AND ref_id = ?", (kind, int(ref))
                    )
                else:
                    self.project.write(
                        "DELETE FROM embeddings WHERE kind = ? AND ref_id = ? AND model_id = ?",
                        (kind, int(ref), model_id),
                    )


__all__ = ["KINDS", "EmbeddingTable"]
