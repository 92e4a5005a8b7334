"""The one file hasher: sha256 of a file's bytes in constant memory.

Used for the embedding cache key (an image's content), model identities (a checkpoint's bytes) and
download verification — the same function, so the three can never disagree about a file.
(Decoded pixels are hashed by `io.images.sha256_pixels`, which includes shape and dtype.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from annotator.io.files import open_regular

CHUNK = 1 << 22  # 4 MiB: large enough that the hash, not the read calls, sets the speed


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes; a pipe, device, socket or folder raises `NotARegularFile`
    (an OSError) instead of blocking forever."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:  # never blocks on a named pipe or a device
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
