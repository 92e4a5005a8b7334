"""The text index of an engine: building it from a vocabulary and a CLIP model, in the foreground
or on a background thread that can be cancelled and that yields the CPU (`IndexBuild`).

Separate from `engine.py` so that the window can start a build before the engine exists (the
engine's `on_index` hook, called once CLIP is loaded and before the segmenter loads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from annotator.models.precision import text_identity
from annotator.priority import BACKGROUND_NICE, lower_thread_priority
from annotator.vocab.index import TextIndex
from annotator.vocab.vocabulary import Vocabulary, load_vocabulary

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def text_index(
    vocabulary: Vocabulary | str | Path | None, clip: Any, cache_dir: Path | None
) -> TextIndex:
    """An unbuilt index of `vocabulary` (a `Vocabulary`, or what `load_vocabulary` takes) for
    `clip`'s text tower, cached under `cache_dir`; `build` encodes what that cache lacks."""
    if not isinstance(vocabulary, Vocabulary):
        vocabulary = load_vocabulary(vocabulary)
    return TextIndex(
        vocabulary,
        clip.encode_text,
        text_identity(clip),
        cache_dir=cache_dir,
        logit_scale=clip.logit_scale,
        after_encoding=getattr(clip, "release_text_pages", None),
    )


def build_index(
    vocabulary: Vocabulary | str | Path | None,
    clip: Any,
    cache_dir: Path | None,
    progress: Progress | None,
) -> TextIndex:
    """`text_index`, built in the foreground."""
    index = text_index(vocabulary, clip, cache_dir)
    index.build(progress=stage(progress, "text"))
    return index


def build_text_index(
    index: TextIndex,
    progress: Progress | None,
    priority: Sequence[str] = (),
    vocabulary: Vocabulary | None = None,
) -> None:
    """Build `index` (switched to `vocabulary` first, if given: only new texts are encoded),
    `priority` names first."""
    if vocabulary is not None:
        index.vocabulary = vocabulary
    index.build(progress=stage(progress, "text"), priority=priority)


def start_text_index_build(
    index: TextIndex,
    priority: Sequence[str] = (),
    progress: Progress | None = None,
    vocabulary: Vocabulary | None = None,
    on_done: Callable[[BaseException | None], None] | None = None,
) -> IndexBuild:
    """`build_text_index` on a background thread: `Engine.start_index_build`, and the window's
    start of the build while the engine is still loading (`on_index`)."""
    return IndexBuild(
        lambda report: build_text_index(index, report, priority, vocabulary), progress, on_done
    )


def stage(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    """A (done, total) callback reporting to `progress` as stage `name`."""
    return (lambda done, total: progress(name, done, total)) if progress else None


class IndexBuild:
    """A text-index build on a daemon thread. `cancel()` stops it after the current chunk (what was
    encoded is kept in the disk cache); `wait()` joins it and re-raises its error, if any.

    The thread (and the torch threads it starts) runs at a lower OS priority than the rest of the
    process (`BACKGROUND_NICE`): where a click's encode and a chunk of texts run at once, the
    encode gets most of the CPU instead of half — a chunk cannot be interrupted, and one takes
    seconds on a laptop CPU."""

    def __init__(
        self,
        build: Callable[[Progress], None],
        progress: Progress | None,
        on_done: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._cancelled = threading.Event()
        self.error: BaseException | None = None

        def report(stage: str, done: int, total: int) -> None:
            if self._cancelled.is_set():
                raise _Cancelled
            if progress is not None:
                progress(stage, done, total)

        def run() -> None:
            lower_thread_priority(BACKGROUND_NICE)
            try:
                build(report)
            except _Cancelled:
                pass
            except BaseException as error:  # reported to whoever waits; never kills the process
                self.error = error
            if on_done is not None:
                on_done(self.error)

        self._thread = threading.Thread(target=run, name="annotator-text-index", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the build has ended (then its error, if any, is raised)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self.error is not None:
            raise self.error
        return True


class _Cancelled(Exception):
    pass
