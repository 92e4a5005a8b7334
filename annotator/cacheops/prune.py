"""Removing cache files by model, kind and age (a removed file is only recomputed when needed).

Age is the file's modification time, i.e. when it was encoded: reading a cached embedding does
not write to it (the cache may be on a read-only or shared file system), so "not used for 30 days"
cannot be known; "encoded more than 30 days ago" can.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from annotator.atomic import clean_folder_temps
from annotator.cacheops.inventory import CacheFile, iter_files, model_identity


@dataclass
class PruneResult:
    files: list[CacheFile] = field(default_factory=list)
    size: int = 0
    temps: int = 0  # leftover temporary files of killed writes, removed


def matches(file: CacheFile, model: str | None, kind: str | None, cutoff: float | None) -> bool:
    if kind is not None and file.kind != kind:
        return False
    if cutoff is not None and file.mtime >= cutoff:
        return False
    return model is None or model in file.folder or model in _identity(file)


_identities: dict[tuple[str, str], str] = {}


def _identity(file: CacheFile) -> str:
    key = (file.kind, file.folder or file.path.name)
    if key not in _identities:
        _identities[key] = model_identity(file)
    return _identities[key]


def prune(
    root: Path,
    model: str | None = None,
    kind: str | None = None,
    older_than_s: float | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove (or with `dry_run` only list) the files that match every given filter."""
    cutoff = None if older_than_s is None else time.time() - older_than_s
    result = PruneResult()
    folders: set[Path] = set()
    for file in iter_files(root):
        if not matches(file, model, kind, cutoff):
            continue
        result.files.append(file)
        result.size += file.size
        if not dry_run:
            try:
                file.path.unlink()
            except FileNotFoundError:
                pass
            folders.add(file.path.parent)
    if not dry_run:
        for folder in folders:
            result.temps += clean_folder_temps(folder, older_than=3600)
            _remove_empty(folder, stop=root)
    return result


def _remove_empty(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents while empty, up to (not including) `stop`'s subfolders."""
    keep = {stop, stop / "embeddings", stop / "text"}
    while folder not in keep and stop in folder.parents:
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
