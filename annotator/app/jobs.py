"""Discovery jobs: plain functions the engine worker runs in its thread (find, tags, seed labels,
similar, compare), with the plain-data requests and results they exchange. No Qt.

`DISCOVERY_JOBS` is written out below (no registration as an import side effect): a new job is one
function and one line there. A job receives a `JobContext` (the engine, cached embeddings, "a click is
waiting" and progress callbacks) and returns plain data; the worker emits it back to the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.store.embeddings import ANNOTATION, IMAGE  # the similar job's two kinds

FIND, TAGS, SEED, SIMILAR, COMPARE = "find", "tags", "seed", "similar", "compare"
AUTOLABEL, REFINE = "autolabel", "refine"
# Jobs that give way to a click between two model calls (`annotator.preempt`): their result is
# then `YIELDED`, and whoever sent the request sends it again.
YIELDING = frozenset({FIND, AUTOLABEL, REFINE})
YIELDED = "yielded"


@dataclass(frozen=True)
class DiscoveryRequest:
    """One search / tags / similar / compare job; `kind` names its function in `DISCOVERY_JOBS`."""

    request_id: int
    image_id: int
    path: str
    kind: str
    params: Any = None  # plain data the job reads (a query, a mask, a model choice...)


@dataclass
class JobContext:
    """What a discovery job may use, in the worker thread only."""

    engine: Any
    embedding: Callable[[int, str], Any]  # (image id, path) -> ImageEmbedding, cached
    other_engine: Callable[[Any], Any]  # an engine for another model choice (kept)
    restrict: tuple[str, ...] | None
    state: dict  # per-engine scratch space (e.g. a proposal cache); cleared on reload
    superseded: Callable[[], bool]  # a newer request of the same kind is waiting
    urgent: Callable[[], bool]  # a click (decode) or relabel is waiting: a long job should yield
    progress: Callable[[str, int, int], None]  # stage, done, total (the status bar)


# ---------------------------------------------------------------------------------------- find
@dataclass(frozen=True)
class FindParams:
    query: str
    top_k: int = 10
    settings: Any = None  # a discovery ProposalSettings, or None for the defaults


def run_find(context: JobContext, request: DiscoveryRequest) -> list:
    """The image's proposals that best match the text, best first (`Match` list); the finder (and
    with it the image's proposals) is kept per settings, so a second query is one matrix product."""
    from annotator.discovery.find import Finder

    params: FindParams = request.params
    finders = context.state.setdefault("finders", {})
    finder = finders.get(params.settings)
    if finder is None:
        finder = finders[params.settings] = Finder(context.engine, params.settings)
    embedding = context.embedding(request.image_id, request.path)
    return finder.find(embedding, params.query, top_k=params.top_k)


# ---------------------------------------------------------------------------------- tags, seed
@dataclass(frozen=True)
class SeedParams:
    images: tuple[str, ...]  # paths of the project's images
    k: int = 5  # tags per image
    n: int = 20  # labels to seed
    min_score: float = 0.0


@dataclass(frozen=True)
class SeedResult:
    done: int
    total: int
    names: list[str] | None  # None while unfinished (the job yielded to a click)


def _tags_of(context: JobContext, path: str, k: int, embedding: Any = None) -> list:
    """Tags of one image, remembered per path for the seeding job."""
    from annotator.discovery.tags import tag_image

    memo = context.state.setdefault("tags", {})
    found = memo.get((path, k))
    if found is None:
        if embedding is None:
            embedding = context.engine.embed(Path(path))  # the disk cache, not the worker's memory
        found = memo[(path, k)] = tag_image(context.engine, embedding, k)
    return found


def run_tags(context: JobContext, request: DiscoveryRequest) -> list:
    """[(vocabulary name, probability)] for the whole image, best first; `params` is k."""
    memo = context.state.get("tags", {})
    if (request.path, request.params) in memo:
        return memo[(request.path, request.params)]
    embedding = context.embedding(request.image_id, request.path)
    return _tags_of(context, request.path, request.params, embedding)


def run_seed(context: JobContext, request: DiscoveryRequest) -> SeedResult:
    """Tag every image, then pick the names tagged most often; returns early (names None) whenever
    a click is waiting, and the caller asks again (tags already computed are remembered)."""
    from annotator.discovery.tags import seed_labels

    params: SeedParams = request.params
    total = len(params.images)
    memo = context.state.setdefault("tags", {})
    done = sum((path, params.k) in memo for path in params.images)
    for path in params.images:
        if (path, params.k) in memo:
            continue
        if context.urgent():
            return SeedResult(done, total, None)
        try:
            _tags_of(context, path, params.k)
        except Exception:  # noqa: BLE001 - an unreadable image counts as untagged
            memo[(path, params.k)] = []
        done += 1
        context.progress("tags", done, total)
    lists = [memo[(path, params.k)] for path in params.images]
    return SeedResult(total, total, seed_labels(lists, params.n, params.min_score))


# ------------------------------------------------------------------------------------- similar
@dataclass(frozen=True)
class SimilarParams:
    db_path: str  # the project file (the job opens, and closes, its own connection)
    source: str  # "image" | "annotation"
    ref_id: int
    target: str  # "image" | "annotation"
    k: int = 20


@dataclass(frozen=True)
class SimilarRow:
    kind: str
    ref_id: int
    image_id: int
    file_name: str
    category: str  # "" for images
    score: float


@dataclass(frozen=True)
class SimilarResult:
    rows: list[SimilarRow] | None  # None: the backfill stepped aside for a click, ask again
    done: int = 0
    total: int = 0


class _StepAside(Exception):
    pass


def run_similar(context: JobContext, request: DiscoveryRequest) -> SimilarResult:
    """Backfill missing vectors, then the k nearest images or objects.

    Its own connection to the project file (the GUI's is never used from two threads), closed when
    the job returns, also when it steps aside or fails.
    """
    from annotator.discovery.similar import SimilarityIndex, backfill
    from annotator.store import Project

    params: SimilarParams = request.params
    engine = context.engine
    seen = [0, 0]

    def progress(done: int, total: int) -> None:
        seen[:] = [done, total]
        context.progress("similar", done, total)
        if done < total and context.urgent():
            raise _StepAside

    with Project(params.db_path) as project:
        try:
            backfill(project, engine, progress)
        except _StepAside:
            return SimilarResult(None, *seen)
        index = SimilarityIndex(project, engine.region_model_id)
        if params.source == IMAGE:
            found = index.like_image(params.ref_id, params.target, params.k)
        else:
            found = index.like_annotation(params.ref_id, params.target, params.k)
        rows = []
        for n in found:
            if n.kind == ANNOTATION:
                record = project.annotation(n.ref_id)
                image_id, category = record.image_id, record.category
            else:
                image_id, category = n.ref_id, ""
            name = project.image(image_id).file_name
            rows.append(SimilarRow(n.kind, n.ref_id, image_id, name, category, n.score))
    return SimilarResult(rows)


# ------------------------------------------------------------------------------------- compare
@dataclass(frozen=True)
class CompareParams:
    config_b: Any  # model B's `spec.ModelSpec` (the worker's `other_engine` builds it)
    points: tuple[tuple[float, float, bool], ...]
    box: tuple[float, float, float, float] | None = None


def run_compare(context: JobContext, request: DiscoveryRequest) -> Any:
    """A `Comparison` of the worker's engine and model B on the same clicks."""
    from annotator.discovery.compare import compare

    params: CompareParams = request.params
    engine_b = context.other_engine(params.config_b)
    return compare(context.engine, engine_b, Path(request.path), params.points, params.box, 5)


DiscoveryJob = Callable[[JobContext, DiscoveryRequest], Any]


@dataclass(frozen=True)
class AutolabelParams:
    classes: tuple[str, ...]
    store: Any  # the ProposalStore (its Project serialises calls from both threads)
    settings: Any = None  # ProposalSettings, None: the discovery defaults
    threshold: float | None = 0.2
    top_k: int = 10


def run_autolabel_image(context: JobContext, request: DiscoveryRequest) -> tuple[str, Any]:
    """Worker thread: (run key, the image's NewProposals), or (run key, None) if already done."""
    from annotator.discovery.autolabel import ProposalLabeler, run_id

    p: AutolabelParams = request.params
    key = ("autolabel", p.settings, p.threshold, p.top_k)
    labeler = context.state.get(key)
    if labeler is None:
        labeler = context.state[key] = ProposalLabeler(
            context.engine, p.settings, p.threshold, p.top_k
        )
    run = run_id(labeler, p.classes)
    if p.store.is_done(request.image_id, run):
        return run, None
    return run, labeler.label(request.path, p.classes)


@dataclass(frozen=True)
class RefineParams:
    boxes: tuple  # the image's box-only annotations (store.extras.Box) to refine
    clip: bool = True  # cut each mask to its box


def run_refine_image(context: JobContext, request: DiscoveryRequest) -> list:
    """Worker thread: one `app.refine.BoxMask` per box of the image, from its cached embedding;
    the GUI thread stores them (`app.refine.store_image`), as auto-label's results."""
    from annotator.app.refine import segment_boxes

    p: RefineParams = request.params
    embedding = context.embedding(request.image_id, request.path)
    return segment_boxes(context.engine, embedding, p.boxes, p.clip)


DISCOVERY_JOBS: dict[str, DiscoveryJob] = {
    FIND: run_find,
    TAGS: run_tags,
    SEED: run_seed,
    SIMILAR: run_similar,
    COMPARE: run_compare,
    AUTOLABEL: run_autolabel_image,
    REFINE: run_refine_image,
}
