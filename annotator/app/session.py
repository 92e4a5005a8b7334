"""The annotating session as a plain model: folder, images, current image, prompts, the pending
proposal, the selection, the engine's state. No Qt.

Every change goes through a method that emits an `Event`; the window and the panels subscribe and
render (napari's model/view split), so panels need the session, the worker and the undo stack, never
the window, and the state is testable without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotator.app.events import Event

Point = tuple[float, float, bool]
Box = tuple[float, float, float, float]


@dataclass
class ImageRow:
    """One image of the open folder as the list shows it."""

    image_id: int
    name: str
    path: str
    annotations: int = 0
    encoded: bool = False
    failed: str = ""  # why the image could not be encoded or loaded


@dataclass
class Pending:
    """A mask shown but not yet accepted."""

    image_id: int
    mask: np.ndarray
    score: float
    labels: list[tuple[str, float]] = field(default_factory=list)
    proposal: Any = None  # the engine's Proposal (for Tab)
    prompts: dict = field(default_factory=dict)


class SessionEvents:
    """What the views subscribe to; the arguments each event carries are noted."""

    def __init__(self) -> None:
        self.folder = Event("folder")  # () a folder (its project and rows) was opened
        self.image = Event("image")  # (image_id | None) another image is current (pixels loading)
        self.annotations = Event("annotations")  # (image_id) the store changed for this image
        self.selection = Event("selection")  # (ann_id | None)
        self.pending = Event("pending")  # (Pending | None)
        self.prompts = Event("prompts")  # () points / box changed
        self.categories = Event("categories")  # () project categories may have changed
        self.engine = Event("engine")  # (ready: bool)
        self.navigate = Event("navigate")  # (row) a panel asks to show another image
        self.status = Event("status")  # (text, timeout_ms)
        self.error = Event("error")  # (text) a message the user must see
        self.vocabulary = Event("vocabulary")  # () the vocabulary was edited: views refresh
        self.vocabulary_settled = Event("vocabulary_settled")  # () edits paused: save, re-embed
        self.busy = Event("busy")  # (text | None) a long job writes the store; edits wait


class Session:
    """State shared by the window, its panels and the controller (all on the GUI thread)."""

    def __init__(self, config: Any = None, vocabulary: Any = None) -> None:
        self.events = SessionEvents()
        self.config = config  # the model choice (ModelConfig today)
        self.vocabulary = vocabulary
        self.project: Any = None
        self.folder: Path | None = None
        self.rows: list[ImageRow] = []
        self.row: int | None = None
        self.image_id: int | None = None
        self.display_image: Any = None  # the shown image's pixels, in the view's own type
        self.points: tuple[Point, ...] = ()
        self.box: Box | None = None
        self.pending: Pending | None = None
        self.selected: int | None = None
        self.records: dict[int, Any] = {}  # the current image's annotations by id
        self.engine_ready = False
        self.engine_info: dict = {}
        self.busy: str | None = None
        self.large: Any = None  # app.large_view.LargeView while the shown image is large (issue 26)
        self._req = 0

    # ------------------------------------------------------------------ ids and paths
    def next_id(self) -> int:
        """A request id unique in this session (results carry it back; stale ones are dropped)."""
        self._req += 1
        return self._req

    def image_path(self) -> str:
        return self.rows[self.row].path if self.row is not None else ""

    def row_of(self, image_id: int) -> int | None:
        return next((i for i, r in enumerate(self.rows) if r.image_id == image_id), None)

    # ------------------------------------------------------------------ changes
    def set_folder(self, project: Any, folder: Path | None, rows: list[ImageRow]) -> None:
        """A newly opened folder replaces the old one (whose project is closed)."""
        if self.project is not None and self.project is not project:
            self.project.close()
        self.project, self.folder, self.rows = project, folder, rows  # shared with the list view
        self.row = self.image_id = None
        self.pending, self.selected, self.records = None, None, {}
        self.events.folder.emit()

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
        self.project, self.image_id = None, None

    def set_row(self, row: int) -> bool:
        """Make image `row` current; False when out of range or already current."""
        if not 0 <= row < len(self.rows) or row == self.row:
            return False
        self.row, self.image_id = row, self.rows[row].image_id
        self.display_image = None
        self.pending, self.selected, self.records = None, None, {}
        self.points, self.box = (), None
        self.events.image.emit(self.image_id)
        return True

    def show_frame(self, row: int, image_id: int, path: str) -> None:
        """A sequence's row shows another frame (issue 25): the row takes the frame's image id and
        file, and the next `set_row(row)` switches to it as to another image."""
        self.rows[row].image_id, self.rows[row].path = image_id, path
        if self.row == row:
            self.row = None

    def request_row(self, row: int) -> None:
        """A panel wants another image shown (the window loads it)."""
        self.events.navigate.emit(row)

    def set_prompts(self, points: tuple[Point, ...], box: Box | None) -> None:
        self.points, self.box = tuple(points), box
        self.events.prompts.emit()

    def set_pending(self, pending: Pending | None) -> None:
        self.pending = pending
        self.events.pending.emit(pending)

    def set_records(self, records: dict[int, Any]) -> None:
        self.records = dict(records)
        if self.selected not in self.records:
            self.selected = None

    def select(self, ann_id: int | None) -> None:
        self.selected = ann_id if ann_id in self.records else None
        self.events.selection.emit(self.selected)

    def annotations_changed(self, image_id: int) -> None:
        """Called after every store edit (and its undo): the list count and the canvas follow."""
        self.events.annotations.emit(image_id)

    def categories_changed(self) -> None:
        self.events.categories.emit()

    def set_engine(self, ready: bool, info: dict | None = None) -> None:
        self.engine_ready = ready
        if info is not None:
            self.engine_info = info
        self.events.engine.emit(ready)

    def set_busy(self, text: str | None) -> None:
        self.busy = text
        self.events.busy.emit(text)

    # ------------------------------------------------------------------ messages
    def status(self, text: str, timeout_ms: int = 4000) -> None:
        self.events.status.emit(text, timeout_ms)

    def error(self, text: str) -> None:
        self.events.error.emit(text)

    def canonical(self, text: str) -> str | None:
        """The vocabulary's or the project's spelling of `text` (case and spaces ignored)."""
        wanted = " ".join(text.split()).lower()
        if self.vocabulary is not None:
            entry = self.vocabulary.match(wanted)
            if entry is not None and entry.name.lower() == wanted:  # names, not synonyms
                return entry.name
        if self.project is not None:
            for category in self.project.categories():
                if category.name.lower() == wanted:
                    return category.name
        return None

    def can_edit(self) -> bool:
        """Edits wait while a long job writes the store (an import): say so instead of blocking."""
        if self.project is None:
            return False
        if self.busy:
            self.status(f"{self.busy}: edits wait until it finishes (or cancel it)", 5000)
            return False
        return True
