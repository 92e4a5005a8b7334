"""The driver: a pool of Ray actors (`EmbedWorker`), fed batches of image paths, retried on death.

The driver sends paths, never pixels: workers read the images and write the cache themselves, so
both must be on a file system every node sees at the same path (docs/adr/0009-ray-embedding-farm.md).
Each actor has at most `DEPTH` batches queued, so a fast worker takes more of the work and none
waits on the driver. Ray restarts a dead actor (`max_restarts=-1`) but does not replay its tasks
(`max_task_retries=0`): the driver sees every death and decides. A lost batch goes to the front of
the queue for another worker; a batch lost twice is split into single images so that one image
that kills its worker (a decoder crash, memory) is isolated; an image lost `MAX_ATTEMPTS` times is
reported as failed. Images a dead worker had already written are cached and are skipped on the
retry, so every image is encoded once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotator.cluster.plan import DEFAULT_BATCH, WorkerPlan, batches
from annotator.cluster.worker import CACHED, EMBEDDED, FAILED, EmbedWorker, FaultHooks
from annotator.errors import AnnotatorError
from annotator.spec import ModelSpec

RAY_MISSING = 'embed --ray needs Ray, which is not installed: pip install "annotator[cluster]"'
DEPTH = 2  # batches queued per actor: one running, one ready to start
MAX_ATTEMPTS = 3  # deaths of a worker an image may ride along with before it counts as failed


def import_ray():
    """The `ray` module, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise AnnotatorError(RAY_MISSING) from None
    return ray


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextlib.contextmanager
def ray_session(address: str | None, **local: object) -> Iterator[object]:
    """Connect to the cluster at `address`, or start a local one (with `local` as `ray.init`
    arguments); shut down on exit. An already initialised Ray (a test, a notebook) is used as is
    and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, object] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    else:
        # Ray starts its workers at niceness 15 (the driver is the important process in its
        # model); here the workers ARE the job the user asked for, and at 15 any other busy
        # process on the machine starves them (0 of 6 images in 5 minutes beside two CPU-bound
        # processes). A cluster someone else started keeps its own setting.
        kwargs.update(
            {"include_dashboard": False, "_system_config": {"worker_niceness": 0}, **local}
        )
    try:
        ray.init(**kwargs)
    except Exception as error:  # ConnectionError, ValueError, RuntimeError depending on the cause
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise AnnotatorError(f"could not start {where}: {_first_line(error)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass
class _Batch:
    paths: list[str]
    attempts: int = 0
    avoid: int | None = None  # the worker it was lost on: give it to another one if possible


@dataclass
class FarmReport:
    embedded: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)
    seconds: float = 0.0
    workers: list[dict[str, str]] = field(default_factory=list)  # what each worker loaded
    deaths: int = 0  # worker deaths seen (each one's batches were retried)

    def summary(self) -> str:
        """The same words as a local `annotator embed`."""
        return f"{self.embedded} embedded, {self.cached} already cached, {len(self.failed)} failed"


# (results of one batch) -> None: progress for the bar, and a hook for tests.
BatchCallback = Callable[[list[tuple[str, str, str]]], None]


class Farm:
    """A pool of embedding actors on the connected Ray cluster."""

    def __init__(
        self,
        spec: ModelSpec,
        plan: WorkerPlan,
        batch_size: int = DEFAULT_BATCH,
        hooks: FaultHooks | None = None,
    ) -> None:
        ray = import_ray()
        self.plan = plan
        self.batch_size = batch_size
        self.cache_root = Path(spec.cache_dir) if spec.cache_dir is not None else None
        remote = ray.remote(EmbedWorker).options(
            num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=-1, max_task_retries=0
        )
        self.actors = [remote.remote(spec, plan.threads, hooks) for _ in range(plan.workers)]

    def run(self, paths: Sequence[str], on_batch: BatchCallback | None = None) -> FarmReport:
        """Encode every path not yet cached; returns the counts and the failures."""
        ray = import_ray()
        from ray.exceptions import RayActorError, RayTaskError

        start = time.perf_counter()
        since = _cache_clock(self.cache_root)
        report = FarmReport()
        queue = deque(_Batch(b) for b in batches(list(paths), self.batch_size))
        loads = {actor.load.remote(): i for i, actor in enumerate(self.actors)}
        ready: list[int] = []
        inflight: dict[object, tuple[int, _Batch]] = {}
        busy: Counter[int] = Counter()
        load_deaths: Counter[int] = Counter()

        def record(results: list[tuple[str, str, str]]) -> None:
            for path, status, message in results:
                if status == EMBEDDED:
                    report.embedded += 1
                elif status == CACHED:
                    report.cached += 1
                else:
                    report.failed.append((path, message))
            if on_batch is not None:
                on_batch(results)

        def lost(batch: _Batch, worker: int) -> None:
            batch.attempts += 1
            if len(batch.paths) > 1 and batch.attempts >= 2:
                queue.extendleft(_Batch([p], 1, worker) for p in reversed(batch.paths))
            elif batch.attempts >= MAX_ATTEMPTS:
                reason = f"its Ray worker died {batch.attempts} times while encoding it"
                record([(p, FAILED, reason) for p in batch.paths])
            else:
                batch.avoid = worker
                queue.appendleft(batch)

        while queue or inflight:
            for worker in ready:
                while busy[worker] < DEPTH and queue:
                    batch = _take(queue, worker, len(ready) > 1)
                    retry_since = since if batch.attempts else None
                    ref = self.actors[worker].embed_batch.remote(batch.paths, retry_since)
                    inflight[ref] = (worker, batch)
                    busy[worker] += 1
            waiting = [*loads, *inflight]
            if not waiting:  # every worker failed to start: nobody can take the rest
                break
            (ref,), _ = ray.wait(waiting, num_returns=1)
            if ref in loads:
                worker = loads.pop(ref)
                try:
                    report.workers.append(ray.get(ref))
                    ready.append(worker)
                except RayTaskError as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, AnnotatorError):
                        raise AnnotatorError(str(cause)) from None
                    raise AnnotatorError(
                        f"a Ray worker could not load the models: {cause}"
                    ) from None
                except RayActorError:
                    report.deaths += 1
                    load_deaths[worker] += 1
                    if load_deaths[worker] < MAX_ATTEMPTS:  # restarted: try again
                        loads[self.actors[worker].load.remote()] = worker
                continue
            worker, batch = inflight.pop(ref)
            busy[worker] -= 1
            try:
                record(ray.get(ref))
            except RayActorError:
                report.deaths += 1
                lost(batch, worker)
            except RayTaskError as error:  # a bug outside the per-image guard: name it, go on
                reason = _first_line(getattr(error, "cause", None) or error)
                record([(p, FAILED, reason) for p in batch.paths])
        for batch in queue:
            record([(p, FAILED, "no Ray worker could start") for p in batch.paths])
        report.seconds = time.perf_counter() - start
        return report

    def shutdown(self) -> None:
        """Stop the actors (a local cluster's `ray.shutdown` does it too)."""
        ray = import_ray()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)


def _cache_clock(root: Path | None) -> float | None:
    """The current time on the cache's file system (a shared one may run on another clock than
    the driver's): the modification time of a file created there now."""
    if root is None:
        return None
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".farm-clock.") as probe:
            return os.fstat(probe.fileno()).st_mtime - 1.0  # coarse mtimes: keep a second's slack
    except OSError:
        return None


def _take(queue: deque, worker: int, others: bool) -> _Batch:
    """The next batch for `worker`: the first of the next few not lost on it, if others exist."""
    if others:
        for i in range(min(8, len(queue))):
            if queue[i].avoid != worker:
                batch = queue[i]
                del queue[i]
                return batch
    return queue.popleft()


def embed_on_ray(
    paths: Sequence[Path],
    spec: ModelSpec,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    batch_size: int = DEFAULT_BATCH,
    hooks: FaultHooks | None = None,
    on_batch: BatchCallback | None = None,
    note: Callable[[str], None] | None = None,
    **local: object,
) -> FarmReport:
    """The whole `annotator embed --ray`: connect (or start a local cluster), size the pool, run.

    `local`: `ray.init` arguments for a local cluster (the tests pass `num_cpus=2`).
    """
    from annotator.cluster.plan import plan_workers

    spec = portable_spec(spec)
    with ray_session(address, **local) as ray:
        plan = plan_workers(ray.cluster_resources(), workers, cpus_per_worker, spec.device)
        if note is not None:
            note(f"annotator: ray: {plan.describe()}" + (f"; {plan.note}" if plan.note else ""))
        farm = Farm(spec, plan, batch_size, hooks)
        try:
            return farm.run([str(Path(p).resolve()) for p in paths], on_batch)
        finally:
            farm.shutdown()


def portable_spec(spec: ModelSpec) -> ModelSpec:
    """The spec with every path absolute and the cache folder explicit, so that every worker —
    started elsewhere, with another working directory and user cache — uses the same files."""
    from annotator.cache import default_cache_dir

    missing = spec.missing_files()
    if missing:
        raise AnnotatorError(f"no such file: {missing[0]}")
    changes: dict[str, object] = {
        "cache_dir": Path(spec.cache_dir or default_cache_dir()).expanduser().resolve()
    }
    for name in ("checkpoint", "clip_weights", "clip_config"):
        value = getattr(spec, name)
        if value is not None:
            changes[name] = Path(value).expanduser().resolve()
    vocabulary = spec.vocabulary
    if vocabulary is not None and Path(vocabulary).is_file():
        changes["vocabulary"] = str(Path(vocabulary).resolve())
    return spec.replace(**changes)
