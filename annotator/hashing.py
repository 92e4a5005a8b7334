"""The one file hasher: sha256 of a file's bytes in constant memory.

Used for the embedding cache key (an image's content), model identities (a checkpoint's bytes) and
download verification — the same function, so the three can never disagree about a file.
(Decoded pixels are hashed by `io.images.sha256_pixels`, which includes shape and dtype.)
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from annotator.io.files import open_regular

CHUNK = 1 << 22  # 4 MiB: large enough that the hash, not the read calls, sets the speed


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes; a pipe, device, socket or folder raises `NotARegularFile`
    (an OSError) instead of blocking forever. The result of a `hash_ahead` of the same unchanged
    file is taken when there is one."""
    ahead = _take_ahead(path)
    if ahead is not None:
        ahead.done.wait()
        if ahead.digest is not None:
            return ahead.digest
    return _sha256_now(path, chunk)


def _sha256_now(path: str | Path, chunk: int = CHUNK) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:  # never blocks on a named pipe or a device
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---- hashing ahead ---------------------------------------------------------------------------
# A model's identity is the sha256 of its weights, needed once the model is built. hashlib
# releases the GIL while it hashes, so the engine starts hashing the weight files on their own
# thread before it imports and builds the models, which hold the GIL on the other core: the
# 685 MB of convnext_base_w (0.35 s) and SAM 2.1 tiny's 156 MB come off a cold start's path.


class _Ahead:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.digest: str | None = None


MAX_AHEAD = 8  # a model load hashes two or three files ahead
_ahead: dict[tuple, _Ahead] = {}
_ahead_lock = threading.Lock()


def _key(path: str | Path) -> tuple:
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def hash_ahead(*paths: str | Path) -> None:
    """Start hashing these files in the background; a later `sha256_file` of a file that has not
    changed since (same inode, size and mtime) waits for that result instead of reading the file
    again. Each result is used once. Paths that are missing or not regular files are skipped:
    `sha256_file` reports them when it is called."""
    for path in paths:
        try:
            if not Path(path).is_file():
                continue
            key = _key(path)
        except OSError:
            continue
        with _ahead_lock:
            if key in _ahead:
                continue
            while len(_ahead) >= MAX_AHEAD:  # results a failed load never took: oldest first
                _ahead.pop(next(iter(_ahead)))
            job = _ahead[key] = _Ahead()

        def run(path: str | Path = path, job: _Ahead = job) -> None:
            try:
                job.digest = _sha256_now(path)
            except OSError:
                job.digest = None  # the caller hashes (and reports) it itself
            finally:
                job.done.set()

        threading.Thread(target=run, name="annotator-hash", daemon=True).start()


def _take_ahead(path: str | Path) -> _Ahead | None:
    if not _ahead:
        return None
    try:
        key = _key(path)
    except OSError:
        return None
    with _ahead_lock:
        return _ahead.pop(key, None)
