"""How many workers, with what resources, and how the images are cut into batches (no Ray here).

Pure functions of the cluster's resource totals and the user's flags, so the sizing rules are tested
without a cluster: one worker per GPU when the cluster has GPUs (and the device is not forced to the
CPU), else one worker per `cpus_per_worker` cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from annotator.errors import AnnotatorError

DEFAULT_CPUS_PER_WORKER = (
    4  # SAM ViT-B + ConvNeXt CLIP: ~1.5 GB a worker; 4 threads use a core well
)
DEFAULT_BATCH = 8  # images per task: amortises the scheduling, small enough to balance the load


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    cpus: float  # per worker
    gpus: float  # per worker
    threads: int  # torch intra-op threads per worker
    note: str = ""  # one line for the user when the request was adjusted

    def describe(self) -> str:
        kind = f"{self.gpus:g} GPU + {self.cpus:g} CPU" if self.gpus else f"{self.cpus:g} CPU"
        return f"{self.workers} worker{'s' if self.workers != 1 else ''} ({kind} each)"


def plan_workers(
    resources: dict[str, float],
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    device: str = "auto",
) -> WorkerPlan:
    """The worker pool for a cluster with these resource totals (`ray.cluster_resources()`)."""
    if workers is not None and workers < 1:
        raise AnnotatorError(f"--ray-workers must be at least 1, not {workers}")
    if cpus_per_worker is not None and cpus_per_worker <= 0:
        raise AnnotatorError(f"--ray-cpus-per-worker must be positive, not {cpus_per_worker:g}")
    total_cpus = float(resources.get("CPU", 0.0))
    total_gpus = int(resources.get("GPU", 0.0))
    use_gpus = total_gpus > 0 and not device.startswith(("cpu", "mps"))
    if use_gpus:
        cpus = cpus_per_worker if cpus_per_worker is not None else 1.0
        count = workers if workers is not None else total_gpus
        fits = min(total_gpus, int(total_cpus // cpus)) if cpus else total_gpus
        gpus = 1.0
    else:
        if total_cpus <= 0:
            raise AnnotatorError("the Ray cluster has no CPUs to run workers on")
        cpus = (
            cpus_per_worker
            if cpus_per_worker is not None
            else min(float(DEFAULT_CPUS_PER_WORKER), total_cpus)
        )
        if cpus > total_cpus:
            raise AnnotatorError(
                f"--ray-cpus-per-worker {cpus:g} is more than the cluster's {total_cpus:g} CPUs"
            )
        fits = int(total_cpus // cpus)
        count = workers if workers is not None else fits
        gpus = 0.0
    note = ""
    if count > fits:
        note = f"the cluster has room for {fits} of the {count} workers asked for; using {fits}"
        count = fits
    if count < 1:
        raise AnnotatorError("the Ray cluster has no room for a single worker")
    return WorkerPlan(count, cpus, gpus, max(1, int(cpus)), note)


def batches(paths: Sequence[str], size: int) -> list[list[str]]:
    """`paths` in consecutive batches of `size` (the last one shorter)."""
    if size < 1:
        raise AnnotatorError(f"--ray-batch must be at least 1, not {size}")
    return [list(paths[i : i + size]) for i in range(0, len(paths), size)]
