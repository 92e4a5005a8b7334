"""The window's adapter to the annotating session: canvas input -> `app.annotate.Annotating` calls,
session events -> redraws, edits -> undoable `QUndoCommand`s.

What a click, a key or a model answer means lives in the Qt-free `annotator.app.annotate`; this
object only translates (ADR 0029). It gets the session, the worker, the undo stack and the widgets
it drives, never the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QUndoStack

from annotator.app.annotate import (
    Annotating,
    Failure,
    LabelsResult,
    ProposalResult,
)
from annotator.app.session import Pending, Session
from annotator.app.vocabulary import Entry
from annotator.gui.annotation_panel import AnnotationPanel, AnnotationRow
from annotator.gui.canvas import Canvas
from annotator.gui.colors import category_rgb
from annotator.gui.commands import (
    AcceptCommand,
    DeleteCommand,
    MaskEditCommand,
    RelabelCommand,
    VocabularyCommand,
)
from annotator.gui.large_display import for_window, place_preview
from annotator.gui.suggestions import SuggestionPanel
from annotator.gui.worker import EngineWorker

__all__ = ["Controller", "Pending", "QtEdits", "record_mask"]


def record_mask(record: Any) -> np.ndarray:
    """The bool mask of a store record."""
    return np.asarray(record.mask(), dtype=bool)


class QtEdits:
    """`app.annotate.EditPort` on the window's undo stack: each edit is a `QUndoCommand`."""

    def __init__(self, session: Session, undo_stack: QUndoStack) -> None:
        self.session, self.undo_stack = session, undo_stack

    def accept(self, p: Pending, category: str, vector: tuple[str, np.ndarray] | None) -> int:
        s = self.session
        mask = p.mask
        if hasattr(p.proposal, "window") and p.mask is p.proposal.mask:
            mask = p.proposal.rle()  # issue 26: a working window's mask, as a full-image RLE
        command = AcceptCommand(
            s.project,
            s.annotations_changed,
            p.image_id,
            mask,
            category,
            p.score,
            p.prompts,
            vector,
        )
        self.undo_stack.push(command)
        return command.ann_id

    def relabel(self, image_id: int, ann_id: int, old: str, new: str) -> None:
        s = self.session
        self.undo_stack.push(
            RelabelCommand(s.project, s.annotations_changed, image_id, ann_id, old, new)
        )

    def delete(self, image_id: int, record: Any) -> None:
        s = self.session
        self.undo_stack.push(DeleteCommand(s.project, s.annotations_changed, image_id, record))

    def edit_mask(
        self, image_id: int, ann_id: int, old: np.ndarray, new: np.ndarray, tool: str
    ) -> None:
        s = self.session
        self.undo_stack.push(
            MaskEditCommand(s.project, s.annotations_changed, image_id, ann_id, old, new, tool)
        )


class Controller(QObject):
    def __init__(
        self,
        session: Session,
        worker: EngineWorker,
        undo_stack: QUndoStack,
        canvas: Canvas,
        suggestions: SuggestionPanel,
        annotations: AnnotationPanel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.worker, self.undo_stack = session, worker, undo_stack
        self.canvas, self.suggestions, self.annotations = canvas, suggestions, annotations
        self.annotate = Annotating(session, worker, QtEdits(session, undo_stack))
        self._hidden: set[int] = set()
        self._vocab_timer = QTimer(self)
        self._vocab_timer.setSingleShot(True)
        self._vocab_timer.setInterval(300)
        self._vocab_timer.timeout.connect(self._send_vocabulary)

        session.events.annotations.connect(self._redraw)  # after `annotate` reloaded them
        session.events.selection.connect(self._selection_changed)
        canvas.attach(self.annotate)  # clicks go to the session, its prompts are drawn
        a = self.annotate.events
        a.preview.connect(self._preview)
        a.suggestions.connect(suggestions.set_suggestions)
        a.typing.connect(lambda: suggestions.start_typing())
        a.accepted.connect(lambda _ann_id: canvas.setFocus())

    # the state lives in the session; these keep the old spelling for callers and tests
    @property
    def pending(self) -> Pending | None:
        return self.session.pending

    @property
    def selected(self) -> int | None:
        return self.session.selected

    @property
    def records(self) -> dict[int, Any]:
        return self.session.records

    @property
    def awaiting_label(self) -> bool:
        return self.annotate.awaiting_label

    @property
    def _decode_req(self) -> int:
        return self.annotate.decode_sent

    @property
    def _decode_done(self) -> int:
        return self.annotate.decode_done

    def _preview(self, mask: np.ndarray | None) -> None:
        self.canvas.set_preview(mask)
        place_preview(self.canvas, self.session.pending)  # issue 26: a working window's place

    # ------------------------------------------------------------------ canvas -> session
    def cycle_candidate(self) -> None:
        self.annotate.cycle_candidate()

    def shape_drawn(self, mask: np.ndarray) -> None:
        self.annotate.shape_drawn(mask, self.canvas.tool.value)

    def clear(self) -> None:
        self.annotate.clear(bool(self.canvas.polygon))
        self.canvas.clear_prompts()

    def accept(self, label: str | None = None) -> None:
        if self.canvas.tool.value == "polygon" and self.canvas.close_polygon():
            return
        self.annotate.accept(label)

    def pick_number(self, number: int) -> None:
        name = self.suggestions.pick(number)
        if name is not None:
            self.choose_label(name)

    def choose_label(self, name: str) -> None:
        self.annotate.choose_label(name)
        self.canvas.setFocus()

    def add_label(self, name: str) -> None:
        """A typed name that is not in the vocabulary: add it (undoable), then use it."""
        self.undo_stack.beginMacro(f"new label {name!r}")
        try:
            if self.session.vocabulary.match(name) is None:
                self.edit_vocabulary(None, Entry(name))
            self.choose_label(name)
        finally:
            self.undo_stack.endMacro()

    def delete_selected(self) -> None:
        if self.pending is not None or self.annotate.has_prompts():
            self.clear()
            return
        self.annotate.delete_selected()

    def mask_edited(self, target: int | None, mask: np.ndarray) -> None:
        if not self.annotate.mask_edited(target, mask, self.canvas.tool.value):
            self.refresh(self.session.image_id)

    def select(self, ann_id: int | None) -> None:
        self.session.select(ann_id)

    # ------------------------------------------------------------------ worker -> session
    def on_proposal(self, image_id: int, request_id: int, proposal: Any) -> None:
        self.annotate.on_proposal(ProposalResult(image_id, request_id, proposal))

    def on_labels(self, image_id: int, request_id: int, tag: str, labels: list) -> None:
        self.annotate.on_labels(LabelsResult(image_id, request_id, tag, list(labels or [])))

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        self.annotate.on_failed(Failure(kind, image_id, request_id, message))

    # ------------------------------------------------------------------ session -> views
    def mask_of(self, record: Any) -> np.ndarray:
        return self.annotate.mask_of(record)

    def refresh(self, image_id: int | None) -> None:
        """Reload the image's annotations from the store into the canvas and the panel."""
        if image_id is not None and image_id == self.session.image_id:
            self.annotate.reload()
        self._redraw(image_id)

    def _redraw(self, image_id: int | None) -> None:
        """The session's records of the image into the canvas and the panel."""
        if self.session.project is None or image_id is None or image_id != self.session.image_id:
            return
        if self.canvas.image_size() is None:
            return
        if self.session.large is not None:  # issue 26: overlays from each RLE's box
            for_window(self.parent()).redraw(self)
            self.annotate.show_selected_labels()
            return
        records = list(self.session.records.values())
        for ann_id in set(self.canvas.masks) - set(self.records):
            self.canvas.remove_annotation(ann_id)
        rows = []
        for r in records:
            self.canvas.set_annotation(r.id, self.mask_of(r), category_rgb(r.category))
            self.canvas.set_visible(r.id, r.id not in self._hidden)
            score = float(r.score) if r.score is not None else 1.0
            area = int(getattr(r, "area", 0) or self.mask_of(r).sum())
            rows.append(
                AnnotationRow(r.id, r.category, score, area, r.id not in self._hidden, _author(r))
            )
        self.canvas.set_selected(self.selected)
        self.annotations.set_annotations(rows, self.selected)
        self.annotate.show_selected_labels()

    def _selection_changed(self, _ann_id: int | None) -> None:
        self.canvas.set_selected(self.selected)
        self.annotations.select(self.selected)

    def set_visible(self, ann_id: int, visible: bool) -> None:
        (self._hidden.discard if visible else self._hidden.add)(ann_id)
        self.canvas.set_visible(ann_id, visible)

    # ------------------------------------------------------------------ vocabulary
    def edit_vocabulary(self, old: Entry | None, new: Entry | None) -> None:
        if new is not None and (old is None or old.name.lower() != new.name.lower()):
            if self.session.vocabulary.get(new.name) is not None:
                self.session.status(f"{new.name!r} is already in the vocabulary", 5000)
                return
        command = VocabularyCommand(self.session.vocabulary, self.vocabulary_changed, old, new)
        self.undo_stack.push(command)

    def vocabulary_changed(self) -> None:
        """After an edit (or its undo): the views refresh now, the texts are re-embedded (and the
        file saved) once the edits pause (`events.vocabulary_settled`)."""
        self.session.events.vocabulary.emit()
        self._vocab_timer.start()

    def _send_vocabulary(self) -> None:
        self.session.events.vocabulary_settled.emit()


def _author(record: Any) -> str:
    """Who made and who last changed an annotation, for its tooltip."""
    made = getattr(record, "created_by", "")
    if not made:
        return ""
    text = f"created by {made} at {record.created[:19].replace('T', ' ')}"
    if record.updated != record.created:
        text += f"; changed by {record.updated_by} at {record.updated[:19].replace('T', ' ')}"
    return text
