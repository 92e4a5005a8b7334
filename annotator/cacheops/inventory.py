"""What is in the cache: embedding files grouped by kind and model, with size and age.

The layout is ArrayCache's: `ROOT/embeddings/KIND/MODEL_FOLDER/HH/HASH.npz`, plus the text indexes
in `ROOT/text/` and downloaded weights in `ROOT/weights/`. A model folder's name is a shortened,
hashed form of the model identity; the full identity is read from one file's metadata record, so a
report over a million files opens one file per model, not a million.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annotator.cache import read_meta
from annotator.errors import AnnotatorError

HASH_NAME = re.compile(r"^[0-9a-f]{64}\.npz$")
KIND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
FOLDER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
TEXT_NAME = re.compile(r"^text-[A-Za-z0-9._-]{1,160}\.npz$")

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class CacheFile:
    path: Path
    kind: str  # sam, clip, proposals… or "text" for a text index
    folder: str  # the model folder (for text indexes: "")
    size: int
    mtime: float


@dataclass
class CacheGroup:
    kind: str
    folder: str
    model_id: str  # the full identity, or the folder name when no file could be read
    count: int = 0
    size: int = 0
    oldest: float = float("inf")
    newest: float = 0.0

    def add(self, file: CacheFile) -> None:
        self.count += 1
        self.size += file.size
        self.oldest = min(self.oldest, file.mtime)
        self.newest = max(self.newest, file.mtime)


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '2w', '45s' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise AnnotatorError(
            f"an age is a number and a unit (s, m, h, d, w), e.g. 30d; not {text!r}"
        )
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def parse_size(text: str) -> int:
    """'500M', '2G', '1T', '1024' -> bytes (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text or "", re.IGNORECASE)
    if not match:
        raise AnnotatorError(f"a size is a number with an optional K, M, G or T; not {text!r}")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def _scandir(folder: Path) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


def iter_files(root: Path) -> Iterator[CacheFile]:
    """Every embedding file and text index under the cache `root` (symbolic links skipped)."""
    embeddings = root / "embeddings"
    for kind in _scandir(embeddings):
        if not (kind.is_dir(follow_symlinks=False) and KIND_NAME.match(kind.name)):
            continue
        for model in _scandir(Path(kind.path)):
            if not (model.is_dir(follow_symlinks=False) and FOLDER_NAME.match(model.name)):
                continue
            for prefix in _scandir(Path(model.path)):
                if not prefix.is_dir(follow_symlinks=False):
                    continue
                for entry in _scandir(Path(prefix.path)):
                    if HASH_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        yield CacheFile(
                            Path(entry.path), kind.name, model.name, st.st_size, st.st_mtime
                        )
    for entry in _scandir(root / "text"):
        if TEXT_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            yield CacheFile(Path(entry.path), "text", "", st.st_size, st.st_mtime)


def group_files(files: Iterator[CacheFile]) -> list[CacheGroup]:
    """Files grouped by (kind, model), the full model identity read from one file of each."""
    groups: dict[tuple[str, str], CacheGroup] = {}
    for file in files:
        # one row per text index file (model, templates and precision differ between them)
        key = (file.kind, file.path.name if file.kind == "text" else file.folder)
        group = groups.get(key)
        if group is None:
            group = groups[key] = CacheGroup(file.kind, file.folder, model_identity(file))
        group.add(file)
    return sorted(groups.values(), key=lambda g: (g.kind, g.model_id))


def model_identity(file: CacheFile) -> str:
    if file.kind == "text":
        return file.path.stem.removeprefix("text-")
    try:
        return str(read_meta(file.path).get("model_id") or file.folder)
    except (OSError, ValueError, KeyError):
        return file.folder


def folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`, not following links (for the weights line of the report)."""
    count = size = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            count += 1
            size += st.st_size
    return count, size


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, span in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{seconds:.0f}s"
