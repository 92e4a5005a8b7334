"""What a long job's status line says: done / total, percentage, ETA, and the truth at its end.

No Qt: the window's status bar and the review panel's auto-label line both print these, so a job
that was cancelled says what it did ("cancelled after 3 of 10 images"), never "finished".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def eta_text(seconds: float) -> str:
    """A short ETA: "8 s", "3 min", "1 h 20 min"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


def progress_text(done: int, total: int, elapsed_s: float) -> str:
    """ "40 / 100 (40%, ETA 12 s)"; without a total only the count; no ETA before the first step."""
    if total <= 0:
        return f"{done}" if done else ""
    percent = 100 * min(done, total) // total
    text = f"{done} / {total} ({percent}%"
    if 0 < done < total and elapsed_s > 0:
        text += f", ETA {eta_text(elapsed_s / done * (total - done))}"
    return text + ")"


class BatchStatus:
    """A batch over images (auto-label, refine): counts as they happen, the status line, and an
    end that says whether it finished or was cancelled (a result that arrives after the cancel is
    counted, and the line still says cancelled)."""

    def __init__(self, what: str, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self._clock = what, total, clock
        self.done = self.skipped = 0
        self.cancelled = False
        self.ended = False
        self._start = clock()

    def step(self, skipped: bool = False) -> None:
        self.done += 1
        self.skipped += int(skipped)

    def cancel(self) -> None:
        self.cancelled = True

    def end(self) -> None:
        self.ended = True

    def text(self) -> str:
        images = "image" if self.done == 1 else "images"
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        if self.cancelled:
            return (
                f"{self.what}: cancelled after {self.done} of {self.total} {images}{skipped}"
                " (run again to continue)"
            )
        if self.ended:
            return f"{self.what} finished: {self.done} {images}{skipped}"
        line = progress_text(self.done, self.total, self._clock() - self._start)
        return f"{self.what}: {line}{skipped}"


def import_summary(source: str, result: dict) -> str:
    """One line for the end of an import: what was added and what was skipped, and plainly when
    nothing was (our own export imported back: every annotation is already in the project)."""
    added = int(result.get("annotations_added", 0)) + int(result.get("boxes_added", 0))
    duplicates = int(result.get("skipped_duplicate", 0))
    images = int(result.get("images_added", 0))
    if added == 0 and duplicates:
        return (
            f"Nothing imported from {source}: all {duplicates} annotation(s) are already in this "
            "project (duplicates are skipped, so importing an export of it back changes nothing)"
        )
    skipped = [
        f"{int(result[key])} {what} skipped"
        for key, what in (
            ("skipped_duplicate", "duplicate(s)"),
            ("skipped_crowd", "crowd region(s)"),
            ("skipped_empty", "empty mask(s)"),
        )
        if result.get(key)
    ]
    tail = f"; {', '.join(skipped)}" if skipped else ""
    return f"Imported {added} annotation(s) from {source} ({images} new image(s){tail})"


def written_since(path: Path, since: float, limit: int = 100_000) -> int:
    """How many files at `path` (a file or a folder, searched to `limit` entries) were modified
    at or after `since` (a `time.time()`): what a stopped export really left."""
    if path.is_file():
        return int(path.stat().st_mtime >= since)
    count = 0
    if not path.is_dir():
        return 0
    for seen, entry in enumerate(path.rglob("*")):
        if seen >= limit:
            break
        try:
            if entry.is_file() and entry.stat().st_mtime >= since:
                count += 1
        except OSError:
            continue
    return count


def cancelled_export_text(name: str, path: Path, since: float) -> str:
    """The status line of a cancelled export: nothing changed, or how many files it had written."""
    written = written_since(path, since)
    if not written:
        return f"{name}: cancelled, nothing was changed"
    files = "1 file" if written == 1 else f"{written} files"
    return (
        f"{name}: cancelled; {files} in {path} had already been written (the export is incomplete)"
    )
