"""`annotator cache`: report, prune, export and import the embedding cache (no argparse here).

Separate from `annotator.cache` (the read/write path every encode takes) because these are the
administrator's tools: walking a cache of a million files, deleting, and copying subsets between
machines (a cluster fills the cache, an annotator's laptop imports what one project needs).
"""

from annotator.cacheops.inventory import (
    CacheFile,
    CacheGroup,
    folder_size,
    group_files,
    human_age,
    human_size,
    iter_files,
    parse_age,
    parse_size,
)
from annotator.cacheops.prune import PruneResult, prune
from annotator.cacheops.transfer import ExportResult, ImportResult, export_subset, import_subset

__all__ = [
    "CacheFile",
    "CacheGroup",
    "ExportResult",
    "ImportResult",
    "PruneResult",
    "export_subset",
    "folder_size",
    "group_files",
    "human_age",
    "human_size",
    "import_subset",
    "iter_files",
    "parse_age",
    "parse_size",
    "prune",
]
