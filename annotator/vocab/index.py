"""TextIndex: the normalised text-embedding matrix of one (vocabulary, model, templates) triple.

Every text of every entry (its name and synonyms) is encoded once per prompt template; the template
embeddings are averaged and re-normalised (the CLIP "prompt ensemble"). The matrix holds one row per
distinct text; an entry's score is the maximum over its texts' rows, gathered through a precomputed
row order and `np.maximum.reduceat`, so a text shared by two entries is stored once.

Vectors are cached on disk in one `.npz` per (model id, templates), mapping text -> vector: an edited
vocabulary re-encodes only the texts the cache lacks. A corrupt or mismatched cache file is ignored
(and rewritten), never fatal.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from annotator.atomic import atomic_write_with
from annotator.models.precision import untagged
from annotator.vocab.vocabulary import Entry, Vocabulary, _shipped_entries

log = logging.getLogger(__name__)

# One template: encoding cost is linear in the number of templates and the default vocabulary has
# ~40k texts, so the 80-template ImageNet ensemble would take 80x the minutes for about a point of
# zero-shot accuracy; "a photo of a {}." is the single template CLIP's authors found best on its own.
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)  # short default; configurable

TextEncoder = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) float32 normalised

ENCODE_CHUNK = 512  # texts per encoder call: progress granularity and the unit saved on cancel


def cache_file(cache_dir: Path, model_id: str, templates: Sequence[str]) -> Path:
    """The cache file of one (model id, templates) pair inside `cache_dir`."""
    key = hashlib.sha256("\x1f".join([model_id, *templates]).encode("utf-8")).hexdigest()[:16]
    base = untagged(model_id)  # a precision tag stays readable however long the name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60] + model_id[len(base) :].replace("@", "_")
    return Path(cache_dir) / f"text-{slug}-{key}.npz"


class _VectorCache:
    """text -> (D,) float32 unit vector, persisted as one npz (texts, vectors); atomic writes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.index: dict[str, int] = {}
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.dirty = False
        if path is not None:
            self._read(path)

    def _read(self, path: Path) -> None:
        if not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                texts = data["texts"]
                vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            if vectors.ndim != 2 or texts.ndim != 1 or len(texts) != len(vectors):
                raise ValueError("texts and vectors do not match")
            if not np.isfinite(vectors).all():
                raise ValueError("non-finite vectors")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            log.warning(
                "ignoring the unreadable text cache %s (%s); it will be rebuilt", path, error
            )
            return
        self.index = {str(text): i for i, text in enumerate(texts.tolist())}
        self.vectors = vectors

    def __contains__(self, text: str) -> bool:
        return text in self.index

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.index[t] for t in texts]]

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        if self.vectors.shape[1] not in (0, vectors.shape[1]):
            # another model with the same id? keep only the new dimension
            log.warning("text cache dimension changed (%d -> %d): starting over",
                        self.vectors.shape[1], vectors.shape[1])  # fmt: skip
            self.index, self.vectors = {}, np.zeros((0, vectors.shape[1]), np.float32)
        start = len(self.vectors)
        fresh = [t for t in texts if t not in self.index]
        keep = [i for i, t in enumerate(texts) if t not in self.index]
        for offset, text in enumerate(fresh):
            self.index[text] = start + offset
        if self.vectors.size == 0:
            self.vectors = np.zeros((0, vectors.shape[1]), np.float32)
        self.vectors = np.concatenate([self.vectors, vectors[keep].astype(np.float32)])
        self.dirty = True

    def save(self) -> None:
        """Write atomically; a failure to write only costs re-encoding next time."""
        if self.path is None or not self.dirty:
            return
        texts = np.array(list(self.index), dtype=str)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_with(self.path, lambda f: np.savez(f, texts=texts, vectors=self.vectors))
        except OSError as error:
            log.warning("cannot write the text cache %s (%s)", self.path, error)
            return
        self.dirty = False


class TextIndex:
    """Scores a region embedding against every vocabulary entry (max over its texts)."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        encode: TextEncoder,
        model_id: str,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        cache_dir: Path | None = None,
        logit_scale: float = 100.0,
        after_encoding: Callable[[], object] | None = None,
    ) -> None:
        """`after_encoding` is called when a build that encoded texts ends (the engine gives
        CLIP's `release_text_pages`: the text tower is idle until the next edit)."""
        if not templates or any("{}" not in t for t in templates):
            raise ValueError(f"each prompt template needs a '{{}}' placeholder: {templates!r}")
        self.vocabulary = vocabulary
        self.encode = encode
        self.after_encoding = after_encoding
        self.model_id = model_id
        self.templates = tuple(templates)
        self.logit_scale = float(logit_scale)
        self.cache_path = None if cache_dir is None else cache_file(cache_dir, model_id, templates)
        self._cache = _VectorCache(self.cache_path)
        self.encoded_texts = 0  # texts sent to the encoder by this object (tests, diagnostics)
        self._lock = threading.Lock()
        self._names: list[str] = []
        self.matrix = np.zeros((0, 0), dtype=np.float32)  # (distinct texts, D), unit rows
        self._order: np.ndarray | None = None  # entry-ordered text rows, None when identity
        self._starts = np.zeros(0, dtype=np.intp)  # first position of each entry in _order
        self._buffer = np.zeros(0, dtype=np.float32)
        self.ready = 0  # entries scored now (a prefix in priority order while building)
        self.total = len(vocabulary)
        # (first, wide) entry counts of the last build: see `_milestones`
        self.milestones: tuple[int, int] = (0, 0)

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray, names: Sequence[str], logit_scale: float = 100.0
    ) -> TextIndex:
        """An index over given unit rows, one entry (without synonyms) per row; no encoder.

        For benchmarks and for scoring against embeddings computed elsewhere.
        """
        index = cls(Vocabulary._trusted(Entry(n) for n in names), _no_encoder, "matrix",
                    logit_scale=logit_scale)  # fmt: skip
        with index._lock:
            index.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
            index._names = list(names)
            index._order = None
            index._starts = np.arange(len(names), dtype=np.intp)
            index._buffer = np.empty(len(names), dtype=np.float32)
            index.ready = index.total = len(names)
        return index

    # ---- building ------------------------------------------------------------------------------
    def plan_milestones(self, priority: Sequence[str] = (), vocabulary=None) -> tuple[int, int]:
        """Set (and return) the milestones a `build(priority=...)` over `vocabulary` (default:
        the current one) will pass, before it starts: a scheduler can then rely on them from
        the first moment of the build."""
        vocabulary = self.vocabulary if vocabulary is None else vocabulary
        entries, n_first = _prioritised(list(vocabulary), priority)
        self.milestones = _milestones(entries, n_first)
        return self.milestones

    def build(
        self,
        progress: Callable[[int, int], None] | None = None,
        priority: Sequence[str] = (),
    ) -> None:
        """Encode what the disk cache lacks (only changed entries after an edit).

        Entries are encoded in priority order — those named in `priority` (e.g. the project's own
        categories) first, then the vocabulary's order (the default vocabulary lists COCO, then LVIS,
        then ImageNet-21k) — and the index is republished as it grows (after the priority entries,
        then each time the encoded part doubles), so `topk` answers from the part built so far
        while the rest is encoded (`ready` / `total` say how far it is). A first start therefore
        labels with COCO names after a few hundred texts, not after all ~40,000.
        """
        entries, n_first = _prioritised(list(self.vocabulary), priority)
        texts = list(dict.fromkeys(t for entry in entries for t in entry.texts))
        missing = [t for t in texts if t not in self._cache]
        self.total = len(entries)
        self.milestones = _milestones(entries, n_first)
        if not missing:
            self._assemble(entries, texts)
            return
        if len(missing) < len(texts):  # the cached part answers at once
            ready = _ready_prefix(entries, self._cache)
            if ready:
                self._publish(entries[:ready])
        # each milestone, counted in missing texts, is a publication mark of its own
        ends = _missing_text_ends(entries, set(missing), (n_first, *self.milestones))
        marks = _publication_marks(ends[0], len(missing), ends[1:])
        try:
            self._encode_missing(missing, progress, marks, entries)
        finally:
            self._cache.save()  # also after a cancel (an exception from `progress`)
            if self.after_encoding is not None:
                self.after_encoding()
        self._assemble(entries, texts)

    def update(self, vocabulary: Vocabulary, progress=None, priority: Sequence[str] = ()) -> None:
        """Switch to an edited vocabulary: only texts not seen before are encoded."""
        self.vocabulary = vocabulary
        self.build(progress, priority)

    @property
    def complete(self) -> bool:
        """Every entry of the vocabulary is scored (False while a build is under way)."""
        return self.ready >= self.total

    def _encode_missing(self, missing: list[str], progress, marks=(), entries=()) -> None:
        total = len(missing)
        marks = sorted(set(marks))
        if progress is not None:
            progress(0, total)
        start = 0
        while start < total:
            # a chunk ends at the next publication mark, so the index is republished right there
            stop = min([start + ENCODE_CHUNK, total, *(m for m in marks if m > start)])
            chunk = missing[start:stop]
            self._cache.add(chunk, self.embed_texts(chunk))
            done = start = stop
            if marks and done >= marks[0] and done < total:
                while marks and done >= marks[0]:
                    marks.pop(0)
                ready = _ready_prefix(entries, self._cache)
                if ready > self.ready:
                    self._publish(entries[:ready])
            if progress is not None:
                progress(done, total)

    def _publish(self, entries) -> None:
        """Make the fully encoded entries (a prefix in priority order) the scored ones."""
        self._assemble(entries, list(dict.fromkeys(t for entry in entries for t in entry.texts)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32: per text, the re-normalised mean of its template embeddings."""
        prompts = [template.format(text) for text in texts for template in self.templates]
        out = np.asarray(self.encode(prompts), dtype=np.float32)
        if out.ndim != 2 or len(out) != len(prompts):
            raise ValueError(f"text encoder returned {out.shape} for {len(prompts)} prompts")
        self.encoded_texts += len(texts)
        out = out.reshape(len(texts), len(self.templates), -1).mean(axis=1)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _assemble(self, entries, texts: list[str]) -> None:
        matrix = np.ascontiguousarray(self._cache.rows(texts), dtype=np.float32)
        row = {t: i for i, t in enumerate(texts)}
        order = [row[t] for entry in entries for t in entry.texts]
        counts = np.array([len(entry.texts) for entry in entries], dtype=np.intp)
        starts = np.zeros(len(entries), dtype=np.intp)
        if len(entries) > 1:
            np.cumsum(counts[:-1], out=starts[1:])
        # one distinct text per entry: the text scores are the entry scores
        identity = len(order) == len(texts) == len(entries)
        with self._lock:
            self.matrix = matrix
            self._names = [entry.name for entry in entries]
            self._order = None if identity else np.asarray(order, dtype=np.intp)
            self._starts = starts
            self._buffer = np.empty(len(texts), dtype=np.float32)
            self.ready = len(entries)

    # ---- scoring -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Entry display names in row order of `scores()`."""
        return list(self._names)

    @property
    def rows(self) -> int:
        """Distinct texts encoded (the matrix height)."""
        return len(self.matrix)

    def scores(self, region: np.ndarray) -> np.ndarray:
        """(num_entries,) cosine similarity per entry (max over its synonyms), in `names` order."""
        with self._lock:
            return self._scores(region).copy()

    def named_scores(self, region: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(names, scores) read together: consistent even while a build republishes the index."""
        with self._lock:
            return list(self._names), self._scores(region).copy()

    def _scores(self, region: np.ndarray) -> np.ndarray:
        if not self._names:
            return np.zeros(0, dtype=np.float32)
        v = np.asarray(region, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"region has {v.shape[0]} dims, the text index {self.matrix.shape[1]}")
        norm = float(np.sqrt(v @ v))
        if norm > 0 and abs(norm - 1.0) > 1e-4:
            v = v / norm
        matvec(self.matrix, v, self._buffer)
        if self._order is None:
            return self._buffer
        return np.maximum.reduceat(self._buffer[self._order], self._starts)

    def topk(self, region: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """Best k entries, best first, as (display name, probability).

        Probability: softmax over all entries of `logit_scale * cosine`.
        """
        with self._lock:
            s = self._scores(region)
            return _topk(s, self._names, self.logit_scale, k)


# The scores are one matrix-vector product over ~45 MB (22k x 512 float32): memory bound, ~2 ms on
# one core here. Two threads halve it when a second core is free. Not BLAS threads: OpenBLAS's
# multi-threaded sgemv busy-waits and took ~8 ms whenever anything else (SAM encoding, the tests)
# held a core. Instead the rows are cut into chunks that the calling thread and one helper claim
# from a shared counter; numpy's einsum loop releases the GIL, and when the helper is not scheduled
# the caller simply does every chunk itself.
_CHUNKS = 8
_MIN_SPLIT_ROWS = 4096  # below this a thread hand-off costs more than it saves
_helper = (
    ThreadPoolExecutor(1, thread_name_prefix="annotator-topk")
    if (os.cpu_count() or 1) > 1
    else None
)


def matvec(matrix: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`matrix @ v` for a large row-major float32 matrix, split across the caller and one helper
    thread (see above); the similarity search uses it too."""
    rows = matrix.shape[0]
    if out is None:
        out = np.empty(rows, dtype=np.result_type(matrix, v))
    if _helper is None or rows < _MIN_SPLIT_ROWS:
        np.einsum("ij,j->i", matrix, v, out=out)
        return out
    bounds = np.linspace(0, rows, _CHUNKS + 1).astype(int)
    claims = itertools.count()  # next() on a count is atomic under the GIL

    def work() -> None:
        while (i := next(claims)) < _CHUNKS:
            a, b = bounds[i], bounds[i + 1]
            np.einsum("ij,j->i", matrix[a:b], v, out=out[a:b])

    helper = _helper.submit(work)
    work()
    helper.result()  # at most the one chunk the helper is inside (or nothing, if it never ran)
    return out


def _prioritised(entries: list[Entry], priority: Sequence[str]) -> tuple[list[Entry], int]:
    """Entries named (by name or synonym, case-insensitively) in `priority` first, in that order,
    then the rest in vocabulary order; and how many came first."""
    if not priority:
        return entries, 0
    wanted = {name.casefold(): rank for rank, name in enumerate(priority)}
    first: list[tuple[int, int]] = []
    for i, entry in enumerate(entries):
        ranks = [wanted[t.casefold()] for t in entry.texts if t.casefold() in wanted]
        if ranks:
            first.append((min(ranks), i))
    chosen = {i for _, i in first}
    ordered = [entries[i] for _, i in sorted(first)]
    return ordered + [e for i, e in enumerate(entries) if i not in chosen], len(ordered)


def _ready_prefix(entries: Sequence[Entry], cache: _VectorCache) -> int:
    """How many leading entries have every text encoded."""
    for i, entry in enumerate(entries):
        if any(t not in cache for t in entry.texts):
            return i
    return len(entries)


def _publication_marks(first_texts: int, missing: int, extra: Sequence[int] = ()) -> list[int]:
    """Counts of encoded texts after which the growing index is republished: after the priority
    entries' texts, at each of `extra` (the milestones: where COCO's and LVIS's names end), and
    at 32, 64, 128, ... texts — about log2(N) copies of the matrix in all. Chunks end at the
    marks, and the window's worker can only interrupt the index between chunks: the first ones
    are short so that a click at start-up waits for a quarter of a second of text encoding, not
    for 512 texts (4 s on a CPU)."""
    marks = {m for m in (first_texts, *extra) if 0 < m < missing}
    mark = 32
    while mark < missing:
        marks.add(mark)
        mark *= 2
    return sorted(marks)


def _milestones(entries: Sequence[Entry], n_first: int) -> tuple[int, int]:
    """(first, wide): how many leading entries (in build order) cover the project's own names and
    the COCO names, and then the LVIS names too. Labels from the first part are what a click on a
    first start needs within seconds; the window schedules its work around both
    (`app/first_start.py`). Only the names the vocabulary holds count; without any, the priority
    entries alone.

    A shipped name counts as covered by the first entry holding it as its name *or a synonym*:
    the union folds LVIS's "computer keyboard" into COCO's "keyboard", and ImageNet-21k adds its
    own "computer keyboard" far down (entry 6,813); the LVIS category is labelled by the first one.
    Counting display names only put the LVIS milestone at 6,814 entries (12,974 texts) instead of
    1,205 (2,365 texts)."""
    position: dict[str, int] = {}
    for i, entry in enumerate(entries):
        for text in entry.texts:
            position.setdefault(text.casefold(), i)

    def end_of(shipped: str) -> int:
        found = [
            position[e.name.casefold()]
            for e in _shipped_entries(shipped)
            if e.name.casefold() in position
        ]
        return 1 + max(found) if found else 0

    first = max(n_first, end_of("coco"))
    return first, max(first, end_of("lvis"))


def _missing_text_ends(
    entries: Sequence[Entry], missing: set[str], ends: Sequence[int]
) -> list[int]:
    """For each entry count in `ends`, how many of the missing texts the entries before it hold
    (texts are encoded in entry order, each once)."""
    seen: set[str] = set()
    counts = [0]
    for entry in entries[: max(ends, default=0)]:
        for text in entry.texts:
            if text in missing and text not in seen:
                seen.add(text)
        counts.append(len(seen))
    return [counts[min(e, len(counts) - 1)] for e in ends]


def _topk(scores: np.ndarray, names: list[str], logit_scale: float, k: int):
    n = len(scores)
    k = max(0, min(int(k), n))
    if k == 0:
        return []
    idx = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    top = float(scores[idx[0]])
    z = np.exp(logit_scale * (scores - top))  # max at 1: no overflow
    total = float(z.sum())
    return [(names[i], float(z[i]) / total) for i in idx]


def benchmark_topk(rows: int = 22000, dim: int = 512, repeats: int = 200, k: int = 5) -> dict:
    """Time `topk` on a random normalised (rows, dim) float32 matrix, one text per entry.

    Returns {"rows", "dim", "median_ms", "p90_ms", "min_ms"} for the integrator's benchmark script.
    """
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((rows, dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = TextIndex.from_matrix(matrix, [f"e{i}" for i in range(rows)])
    regions = rng.standard_normal((16, dim), dtype=np.float32)
    regions /= np.linalg.norm(regions, axis=1, keepdims=True)
    for region in regions[:4]:
        index.topk(region, k)  # warm up BLAS threads and caches
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        index.topk(regions[i % len(regions)], k)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {
        "rows": rows,
        "dim": dim,
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
    }


def _no_encoder(texts: Sequence[str]) -> np.ndarray:
    raise RuntimeError("this TextIndex was built from a matrix and has no text encoder")
