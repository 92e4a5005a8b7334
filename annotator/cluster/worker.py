"""One embedding worker: loads the models once, then encodes batches of image paths into the cache.

A plain class, made a Ray actor by the driver (`ray.remote(EmbedWorker)`), so this module imports
neither Ray nor torch and its logic can be called in-process. Each image goes through the same
`Engine.is_cached` / `Engine.embed` as a local `annotator embed`: the same content hash of the file's
bytes, the same cache keys and the same deterministic `.npz` writer, hence byte-identical files. A
cached image is skipped after hashing its bytes, without being decoded.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import AnnotatorError
from annotator.spec import ModelSpec

EMBEDDED, CACHED, FAILED = "embedded", "cached", "failed"

# (path, status, message): message is "" unless the image failed.
ImageResult = tuple[str, str, str]


@dataclass(frozen=True)
class FaultHooks:
    """Fault injection for the tests; never set by the command line.

    `trace`: a file to which every image written to the cache appends one line `PID HASH` (O_APPEND,
    so concurrent workers do not interleave), counting encodings across worker deaths.
    `kill_after`: this worker SIGKILLs its own process right after writing that many images, once
    per `kill_marker` file (a restarted worker finds the marker and carries on).
    """

    trace: str | None = None
    kill_after: int | None = None
    kill_marker: str | None = None


class EmbedWorker:
    """Encodes images with one engine, loaded at the first call (and again after a restart)."""

    def __init__(
        self, spec: ModelSpec, threads: int | None = None, hooks: FaultHooks | None = None
    ) -> None:
        self._spec = spec
        self._threads = threads
        self._hooks = hooks or FaultHooks()
        self._engine = None
        self._written = 0

    def _loaded(self):
        if self._engine is None:
            if self._threads:
                import torch

                torch.set_num_threads(self._threads)
            from annotator.engine import build_engine

            self._engine = build_engine(self._spec, build_index=False)
        return self._engine

    def load(self) -> dict[str, str]:
        """Load the models now (so a bad checkpoint is reported before any image is sent)."""
        try:
            engine = self._loaded()
        except AnnotatorError as error:
            raise AnnotatorError(f"worker on {socket.gethostname()}: {error}") from None
        return {
            "pid": str(os.getpid()),
            "host": socket.gethostname(),
            "device": str(engine.device),
            "model": engine.model_id,
        }

    def pid(self) -> int:
        return os.getpid()

    def embed_batch(
        self, paths: list[str], written_since: float | None = None
    ) -> list[ImageResult]:
        """Encode each image that is not cached yet; one result per path, in order.

        A bad image is one `failed` result with its one-line message and the batch carries on;
        only the death of the process loses a batch (the driver then retries it elsewhere).
        `written_since` (a retried batch: the run's start on the cache's own clock): a cached image
        whose files are that new was encoded by the worker that died, in this run, and is reported
        as embedded, so the summary counts it where it belongs.
        """
        engine = self._loaded()
        results: list[ImageResult] = []
        for name in paths:
            path = Path(name)
            cached = self._cached_at(engine, path)
            if cached is not None:
                fresh = written_since is not None and cached >= written_since
                results.append((name, EMBEDDED if fresh else CACHED, ""))
                continue
            try:
                embedding = engine.embed(path)
            except AnnotatorError as error:
                results.append((name, FAILED, str(error)))
                continue
            except Exception as error:  # a bug or an exhausted device: report it, keep going
                first_line = (str(error).strip().splitlines() or [""])[0]
                results.append((name, FAILED, f"{type(error).__name__}: {first_line}"))
                continue
            results.append((name, EMBEDDED, ""))
            self._after_write(embedding.image_hash)
        return results

    @staticmethod
    def _cached_at(engine, path: Path) -> float | None:
        """When the newer half of the image's cached embedding was written; None when not cached.
        Hashes the file's bytes only (what `Engine.is_cached` does): a cached image is not decoded."""
        from annotator.hashing import sha256_file

        if engine.cache is None:
            return None
        try:
            digest = sha256_file(path)
            files = (
                engine.cache.path("sam", engine.sam.identity, digest),
                engine.cache.path("clip", engine.region_model_id, digest),
            )
            return max(f.stat().st_mtime for f in files)
        except OSError:  # not cached, or the image is unreadable: `embed` says which
            return None

    def _after_write(self, image_hash: str) -> None:
        self._written += 1
        hooks = self._hooks
        if hooks.trace:
            fd = os.open(hooks.trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{os.getpid()} {image_hash}\n".encode())
            finally:
                os.close(fd)
        if hooks.kill_after is not None and self._written >= hooks.kill_after:
            marker = Path(hooks.kill_marker) if hooks.kill_marker else None
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
