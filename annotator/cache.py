"""On-disk cache of per-image embeddings, so an image is encoded once per model.

The SAM part and the CLIP part are stored in separate files, each keyed by the image's content hash and the
identity of the model that produced it. Switching the CLIP model or the region head therefore reuses the
(expensive) SAM embedding, and vice versa. Files are uncompressed ``.npz`` archives written atomically; the zip
CRC-32 of every member is checked on read, so a truncated or corrupted file is detected, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import platformdirs

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """`$ANNOTATOR_CACHE` if set, else the platform's user cache dir."""
    env = os.environ.get("ANNOTATOR_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("annotator"))


def _slug(model_id: str) -> str:
    """A short file-system-safe folder name for a model identity."""
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)[:48]
    return f"{readable}-{digest}"


class ArrayCache:
    """Named groups of numpy arrays keyed by (content hash, model identity)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir() / "embeddings"

    def path(self, kind: str, model_id: str, content_hash: str) -> Path:
        return self.root / kind / _slug(model_id) / content_hash[:2] / f"{content_hash}.npz"

    def load(self, kind: str, model_id: str, content_hash: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or unreadable (an unreadable file is removed)."""
        path = self.path(kind, model_id, content_hash)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
            if meta.get("version") != FORMAT_VERSION or meta.get("model_id") != model_id:
                raise ValueError(f"written for {meta.get('model_id')!r} v{meta.get('version')}")
            return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            log.warning("discarding unreadable cache file %s: %s", path, error)
            path.unlink(missing_ok=True)
            return None

    def save(
        self, kind: str, model_id: str, content_hash: str, arrays: dict[str, np.ndarray]
    ) -> None:
        """Write atomically; a failure to write only costs a recomputation later."""
        path = self.path(kind, model_id, content_hash)
        meta = json.dumps({"version": FORMAT_VERSION, "model_id": model_id}).encode()
        payload = {"__meta__": np.frombuffer(meta, dtype=np.uint8), **arrays}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(handle, **payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            log.warning("could not write cache file %s: %s", path, error)

    def contains(self, kind: str, model_id: str, content_hash: str) -> bool:
        return self.path(kind, model_id, content_hash).is_file()
