"""Similar images and annotated objects of a project, by CLIP embedding.

Vectors live in the project (`store/embeddings.py`): a whole-image vector per image and a region
vector per annotation, for one model id (CLIP model + region head). An accepted click's vector is
the one its labelling computed, stored in the same transaction as the annotation (the window's accept
and `segment --save`); everything else — drawn shapes, imports, other models — is filled in by
`backfill` (`embed_annotation` / `embed_image` per record). A query loads all vectors of one kind into one float32 matrix, kept in memory until
the table changes, and ranks them by one matrix-vector product (cosine: every row is unit length).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.engine import Engine, ImageEmbedding
from annotator.errors import AnnotatorError
from annotator.spec import ModelSpec
from annotator.store.embeddings import ANNOTATION, IMAGE, EmbeddingTable
from annotator.store.project import Project
from annotator.vectors import unit_vector
from annotator.vocab.index import matvec


@dataclass(frozen=True)
class Neighbour:
    """One result: an image id or an annotation id, and its cosine similarity to the query."""

    kind: str  # "image" | "annotation"
    ref_id: int
    score: float


# ------------------------------------------------------------------------------------- writing
def embed_annotation(
    project: Project,
    engine: Engine,
    embedding: ImageEmbedding,
    annotation_id: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Store the region vector of a saved annotation (call after saving it); returns the vector.

    `mask`: the mask just saved, when at hand (skips decoding the stored RLE).
    """
    if mask is None:
        mask = project.annotation(annotation_id).mask()
    vector = engine.region_embedding(embedding, mask)
    EmbeddingTable(project).put(ANNOTATION, annotation_id, engine.region_model_id, vector)
    return vector


def embed_image(
    project: Project, engine: Engine, embedding: ImageEmbedding, image_id: int
) -> np.ndarray:
    """Store the whole-image vector of a project image; returns it."""
    vector = engine.image_embedding(embedding)
    EmbeddingTable(project).put(IMAGE, image_id, engine.region_model_id, vector)
    return vector


@dataclass(frozen=True)
class BackfillReport:
    images: int  # image vectors written
    annotations: int  # annotation vectors written
    failed: list[str]  # one line per image that could not be read


def backfill(
    project: Project,
    engine: Engine,
    progress: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Embed whatever lacks a vector for this engine's model: each image that needs one (its own
    vector or one of its annotations') is embedded once (through the engine's cache); one
    transaction per image, so a cancel (an exception from `progress`) keeps what was done."""
    table = EmbeddingTable(project)
    model_id = engine.region_model_id
    missing_images = set(table.missing(IMAGE, model_id))
    missing_annotations = set(table.missing(ANNOTATION, model_id))
    by_image: dict[int, list] = {}
    for annotation in project.annotations():
        if annotation.id in missing_annotations:
            by_image.setdefault(annotation.image_id, []).append(annotation)
    todo = sorted(missing_images | set(by_image))
    if todo and project.folder is None:
        raise AnnotatorError(f"{project.path}: the project does not know its image folder")
    images = annotations = 0
    failed: list[str] = []
    if progress is not None:
        progress(0, len(todo))
    for done, image_id in enumerate(todo, 1):
        record = project.image(image_id)
        path = Path(project.folder) / record.file_name
        try:
            embedding = engine.embed(path)
            if embedding.size != (record.height, record.width):
                raise AnnotatorError(
                    f"{path}: is {embedding.size[1]}x{embedding.size[0]}, the project has "
                    f"{record.width}x{record.height}"
                )
        except (AnnotatorError, OSError) as error:
            failed.append(f"{record.file_name}: {error}")
        else:
            with project.transaction():
                if image_id in missing_images:
                    table.put(IMAGE, image_id, model_id, engine.image_embedding(embedding))
                    images += 1
                items = [
                    (a.id, engine.region_embedding(embedding, a.mask()))
                    for a in by_image.get(image_id, [])
                ]
                annotations += table.put_many(ANNOTATION, model_id, items)
        if progress is not None:
            progress(done, len(todo))
    return BackfillReport(images, annotations, failed)


# ------------------------------------------------------------------------------------- querying
class SimilarityIndex:
    """Nearest neighbours among a project's stored vectors of one model.

    The matrix of each kind is loaded on first use and reloaded only when the table's version
    counter for that kind and model changes. `load_seconds` records the last load (for reports)."""

    def __init__(self, project: Project, model_id: str) -> None:
        self.project = project
        self.model_id = model_id
        self.table = EmbeddingTable(project)
        self.load_seconds = 0.0
        self._loaded: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def matrix(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), vectors (N, D)) of one kind, from memory when the table has not changed."""
        signature = self.table.signature(kind, self.model_id)
        with self._lock:
            cached = self._loaded.get(kind)
            if cached is not None and cached[0] == signature:
                return cached[1], cached[2]
        start = time.perf_counter()
        ids, vectors = self.table.matrix(kind, self.model_id)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.load_seconds = time.perf_counter() - start
        with self._lock:
            self._loaded[kind] = (signature, ids, vectors)
        return ids, vectors

    def vector(self, kind: str, ref_id: int) -> np.ndarray:
        """The stored vector of an image or annotation (AnnotatorError when it has none)."""
        found = self.table.get(kind, ref_id, self.model_id)
        if found is None:
            raise AnnotatorError(
                f"{kind} {ref_id} has no stored embedding for this model: run "
                "`annotator similar PROJECT --index` first"
            )
        return found

    def query(
        self, vector: np.ndarray, kind: str = IMAGE, k: int = 10, exclude: int | None = None
    ) -> list[Neighbour]:
        """The k stored vectors of `kind` most similar to `vector`, best first (`exclude`: an id
        to leave out, e.g. the query's own)."""
        ids, vectors = self.matrix(kind)
        return rank(vectors, ids, vector, kind, k, exclude)

    def like_image(self, image_id: int, kind: str = IMAGE, k: int = 10) -> list[Neighbour]:
        """Images (or annotations) most similar to a project image; the image itself comes first
        when `kind` is image."""
        return self.query(self.vector(IMAGE, image_id), kind, k)

    def like_annotation(
        self, annotation_id: int, kind: str = ANNOTATION, k: int = 10
    ) -> list[Neighbour]:
        """Annotations (or images) most similar to an annotated object; the annotation itself
        comes first when `kind` is annotation."""
        return self.query(self.vector(ANNOTATION, annotation_id), kind, k)


def rank(
    vectors: np.ndarray,
    ids: np.ndarray,
    query: np.ndarray,
    kind: str,
    k: int,
    exclude: int | None = None,
) -> list[Neighbour]:
    """Top-k rows of a unit (N, D) matrix by cosine with `query` (one product + argpartition)."""
    if len(ids) == 0 or k <= 0:
        return []
    q = unit_vector(query)
    if vectors.shape[1] != q.shape[0]:
        raise AnnotatorError(
            f"the query has {q.shape[0]} dims but the stored vectors {vectors.shape[1]}"
        )
    scores = matvec(vectors, q.astype(vectors.dtype, copy=False))
    if exclude is not None:
        scores[ids == exclude] = -np.inf
    n = len(scores)
    take = min(int(k), n)
    top = np.argpartition(-scores, take - 1)[:take] if take < n else np.arange(n)
    top = top[np.argsort(-scores[top], kind="stable")]
    return [Neighbour(kind, int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def benchmark_query(
    project: Project, n: int = 100_000, dim: int = 512, repeats: int = 20, seed: int = 0
) -> dict:
    """Write `n` random unit annotation vectors into `project` (a scratch one: vectors are keyed
    by id only, no annotations are needed), then time loading the matrix and one query."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model_id = f"benchmark-{dim}"
    start = time.perf_counter()
    EmbeddingTable(project).put_many(
        ANNOTATION, model_id, zip(range(1, n + 1), vectors, strict=True)
    )
    insert = time.perf_counter() - start
    index = SimilarityIndex(project, model_id)
    start = time.perf_counter()
    index.matrix(ANNOTATION)
    load = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        index.query(vectors[i * 997 % n], ANNOTATION, 10)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    start = time.perf_counter()
    for _ in range(repeats):
        index.table.signature(ANNOTATION, model_id)
    check_ms = (time.perf_counter() - start) / repeats * 1e3
    return {
        "vectors": n,
        "dim": dim,
        "insert_s": insert,
        "load_s": load,
        "staleness_check_ms": check_ms,
        "query_median_ms": float(np.median(ms)),
        "query_max_ms": float(ms.max()),
    }


__all__ = [
    "ANNOTATION",
    "IMAGE",
    "BackfillReport",
    "Neighbour",
    "SimilarityIndex",
    "backfill",
    "benchmark_query",
    "embed_annotation",
    "embed_image",
    "rank",
]


def region_model_id(spec: ModelSpec) -> str:
    """The region model id a query over stored vectors needs: only the CLIP model and head are
    loaded (no segmenter, no text index), since a query reads vectors the project already holds."""
    from annotator.engine import load_region_model, region_id

    return region_id(*load_region_model(spec, device="cpu"))
