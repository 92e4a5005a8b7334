"""`annotator embed --ray`: an embedding farm of Ray actors writing the ordinary embedding cache.

Headless and argparse-free (the CLI is cli/segment.py). Ray is an optional extra
(`pip install "annotator[cluster]"`): nothing here imports it until a farm is started, and then
`import_ray` turns its absence into one line saying how to install it.
See docs/adr/0009-ray-embedding-farm.md and docs/cluster.md.
"""

from annotator.cluster.farm import (
    RAY_MISSING,
    Farm,
    FarmReport,
    embed_on_ray,
    import_ray,
    portable_spec,
    ray_session,
)
from annotator.cluster.plan import DEFAULT_BATCH, WorkerPlan, batches, plan_workers
from annotator.cluster.worker import EmbedWorker, FaultHooks

__all__ = [
    "DEFAULT_BATCH",
    "RAY_MISSING",
    "EmbedWorker",
    "Farm",
    "FarmReport",
    "FaultHooks",
    "WorkerPlan",
    "batches",
    "embed_on_ray",
    "import_ray",
    "plan_workers",
    "portable_spec",
    "ray_session",
]
