"""What clicks, keys and worker results mean for the current image: prompts -> proposal -> annotation.

The annotating state (pending proposal, selection, the image's records) lives in the Qt-free
`annotator.app.session.Session`; this object turns canvas input and worker results into session
changes and every edit into an undoable command over `annotator.app.operations`. It gets the session,
the worker, the undo stack and the widgets it drives, never the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QUndoStack

from annotator.app.session import Pending, Session
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
from annotator.gui.suggestions import SuggestionPanel
from annotator.gui.worker import DecodeRequest, EngineWorker, RelabelRequest
from annotator.vocab.vocabulary import Entry

__all__ = ["Controller", "Pending", "record_mask"]


def record_mask(record: Any) -> np.ndarray:
    """The bool mask of a store record."""
    return np.asarray(record.mask(), dtype=bool)


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
        self._decode_req = -1  # newest decode sent
        self._decode_done = -1  # newest decode answered (or failed)
        self._accept_after: str | bool | None = None  # Enter pressed while a decode was running
        self._proposal_relabel = -1
        self._deferred: dict[int, Pending] = {}  # accepted before their labels came (relabel id)
        self._ann_labels: dict[int, list[tuple[str, float]]] = {}
        self._masks: dict[int, tuple[Any, np.ndarray]] = {}  # ann id -> (rle, mask)
        self._hidden: set[int] = set()
        self.awaiting_label = False
        self._vocab_timer = QTimer(self)
        self._vocab_timer.setSingleShot(True)
        self._vocab_timer.setInterval(300)
        self._vocab_timer.timeout.connect(self._send_vocabulary)

        session.events.annotations.connect(self.refresh)
        session.events.selection.connect(self._selection_changed)
        session.events.image.connect(lambda _image_id: self.image_changed())

    # the state lives in the session; these keep the controller's old spelling for callers
    @property
    def pending(self) -> Pending | None:
        return self.session.pending

    @pending.setter
    def pending(self, value: Pending | None) -> None:
        self.session.pending = value

    @property
    def selected(self) -> int | None:
        return self.session.selected

    @property
    def records(self) -> dict[int, Any]:
        return self.session.records

    def next_id(self) -> int:
        return self.session.next_id()

    # ------------------------------------------------------------------ prompts and proposals
    def prompts_changed(self) -> None:
        """New click or box: ask for a mask (the newest request wins in the worker)."""
        self._sync_prompts()
        if self.session.image_id is None or not self.canvas.has_prompts():
            return
        if not self.session.engine_ready:
            self.session.status(
                "No SAM model loaded: use the rectangle (R) or polygon (O) tools", 5000
            )
            return
        self._decode_req = self.next_id()
        points = tuple(self.canvas.points)
        self.worker.decode(
            DecodeRequest(
                self._decode_req,
                self.session.image_id,
                self.session.image_path(),
                points,
                self.canvas.box,
            )
        )
        if not self.worker.is_encoded(self.session.image_id):
            self.session.status("Encoding this image… your clicks are kept", 0)

    def _sync_prompts(self) -> None:
        """The canvas collects clicks; the session holds them for everyone else (compare view)."""
        self.session.set_prompts(tuple(self.canvas.points), self.canvas.box)

    def cycle_candidate(self) -> None:
        p = self.pending
        if p is None or p.proposal is None or len(p.proposal.candidates) < 2:
            return
        self._decode_req = self.next_id()
        nxt = (p.proposal.chosen + 1) % len(p.proposal.candidates)
        self.worker.decode(
            DecodeRequest(
                self._decode_req,
                p.image_id,
                self.session.image_path(),
                proposal=p.proposal,
                select=nxt,
            )
        )

    def on_proposal(self, image_id: int, request_id: int, proposal: Any) -> None:
        if image_id != self.session.image_id or request_id != self._decode_req:
            return  # stale: another image or a newer prompt state
        p = self.pending
        if request_id == self._decode_done and (
            p is None or p.proposal is None or p.mask is not p.proposal.mask
        ):
            return  # the labels of a mask already accepted, cleared or edited: nothing to fill in
        if request_id == self._decode_done and p.proposal.mask is proposal.mask:
            self._labels_arrived(p, proposal)
            return
        self._decode_done = request_id
        self.session.status("", 0)
        prompts = {"points": [list(p) for p in self.canvas.points], "box": self.canvas.box}
        self.pending = Pending(
            image_id,
            proposal.mask,
            float(proposal.score),
            list(proposal.labels or []),
            proposal,
            prompts,
        )
        self.canvas.set_preview(proposal.mask)
        self._show_proposal_labels(proposal)
        if self._accept_after is not None:
            label, self._accept_after = self._accept_after, None
            self.accept(label if isinstance(label, str) else None)

    def _labels_arrived(self, p: Pending, proposal: Any) -> None:
        """The second answer to a click made before the image's CLIP half existed: same mask, now
        with labels (and the region vector stored on accept)."""
        p.proposal = proposal
        if not p.labels:  # a label the user already picked or typed is kept
            p.labels = list(proposal.labels or [])
        self._show_proposal_labels(proposal)

    def _show_proposal_labels(self, proposal: Any) -> None:
        n = len(proposal.candidates)
        title = f"New mask (candidate {proposal.chosen + 1}/{n}, IoU {proposal.score:.2f})"
        if getattr(proposal, "labels_pending", False):
            title += ", labels follow"
        labels = self.pending.labels
        suggestions = list(getattr(proposal, "suggestions", ()))
        same = [s.name for s in suggestions] == [name for name, _ in labels]
        sources = [s.source for s in suggestions] if suggestions and same else None
        self.suggestions.set_suggestions(labels, title, sources)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == "relabel" and self._deferred.pop(request_id, None) is not None:
            self.session.error(f"A mask was not saved: its labels failed ({message})")
        if kind == "decode" and request_id == self._decode_req:
            self._decode_done = request_id
            self._accept_after = None

    def shape_drawn(self, mask: np.ndarray) -> None:
        """A manual rectangle or polygon becomes the pending mask; labels come from the CLIP head."""
        if self.session.image_id is None or not mask.any():
            return
        self.canvas.clear_prompts()
        self._sync_prompts()
        self.pending = Pending(
            self.session.image_id, mask, 1.0, [], None, {"tool": self.canvas.tool.value}
        )
        self.canvas.set_preview(mask)
        self.suggestions.set_suggestions([], "New shape: Enter accepts, or type a label")
        self._request_labels(mask, "proposal")

    def _request_labels(self, mask: np.ndarray, tag: str) -> None:
        if not self.session.engine_ready or self.session.image_id is None:
            return
        req = self.next_id()
        if tag == "proposal":
            self._proposal_relabel = req
        self.worker.relabel(
            RelabelRequest(req, self.session.image_id, self.session.image_path(), mask, tag)
        )

    def on_labels(self, image_id: int, request_id: int, tag: str, labels: list) -> None:
        if tag.startswith("accept:"):
            self._accept_labelled(request_id, labels)
            return
        if tag == "proposal":
            if self.pending is not None and request_id == self._proposal_relabel:
                self.pending.labels = list(labels or [])
                self.suggestions.set_suggestions(labels, "New mask")
            return
        ann_id = int(tag.split(":")[1])
        self._ann_labels[ann_id] = list(labels or [])
        if ann_id == self.selected:
            self.suggestions.set_suggestions(labels, self._title(ann_id))

    def clear(self) -> None:
        """Esc: drop prompts and the pending mask; a second Esc deselects."""
        if self.pending is None and not self.canvas.has_prompts() and not self.canvas.polygon:
            self.select(None)
        self.pending = None
        self._accept_after = None
        self._decode_req = self.next_id()  # results still on their way are now stale
        self.worker.cancel_decode()
        self.canvas.clear_prompts()
        self._sync_prompts()
        self.canvas.set_preview(None)
        self.awaiting_label = False
        self._show_selected_labels()

    # ------------------------------------------------------------------ accepting and labelling
    def accept(self, label: str | None = None) -> None:
        """Enter / Space: store the pending mask with `label` or its best suggestion."""
        if self.canvas.tool.value == "polygon" and self.canvas.close_polygon():
            return
        if self._decode_req > self._decode_done and self.canvas.has_prompts():
            self._accept_after = label if label is not None else True  # accept the newest mask
            return
        p = self.pending
        if p is None or p.image_id != self.session.image_id:
            return
        if not p.mask.any():
            self.session.status("The mask is empty: nothing to accept", 4000)
            return
        if label is None and not p.labels and getattr(p.proposal, "labels_pending", False):
            self._accept_when_labelled(p)
            return
        category = label or (p.labels[0][0] if p.labels else None)
        if category is None:
            self.awaiting_label = True
            self.session.status("Type a label for this mask (Enter to accept)", 0)
            self.suggestions.start_typing()
            return
        if not self.session.can_edit():
            return
        self.awaiting_label = False
        command = self._store(p, category)
        if command is None:
            return
        self.pending = None
        self.canvas.clear_prompts()
        self._sync_prompts()
        self.canvas.set_preview(None)
        self.select(command.ann_id)
        self.canvas.setFocus()
        self.session.categories_changed()

    def _store(self, p: Pending, category: str) -> AcceptCommand | None:
        """Save `p` as an annotation of its image (an undoable command); None when refused."""
        holder = self.session.project.claims().get(p.image_id)
        if holder is not None:  # another annotator has this image open (ADR 0011)
            self.session.error(f"{holder} is editing this image; the mask was not saved")
            return None
        command = AcceptCommand(
            self.session.project,
            self.session.annotations_changed,
            p.image_id,
            p.mask,
            category,
            p.score,
            p.prompts,
            self._region_vector(p),
        )
        self.undo_stack.push(command)
        if p.labels:
            self._ann_labels[command.ann_id] = p.labels
        return command

    def _accept_when_labelled(self, p: Pending) -> None:
        """Enter on a mask whose labels are still being computed (the image's CLIP half did not
        exist yet): the best label is taken as soon as it exists, even if the user has moved on
        to another image by then. A relabel request is never superseded by later clicks."""
        if not self.session.engine_ready:
            return
        req = self.next_id()
        self._deferred[req] = p
        self.worker.relabel(
            RelabelRequest(req, p.image_id, self.session.image_path(), p.mask, f"accept:{req}")
        )
        self.pending = None
        self.canvas.clear_prompts()
        self._sync_prompts()
        self.session.status("Saving the mask as soon as its labels are ready…", 0)

    def _accept_labelled(self, request_id: int, labels: list) -> None:
        p = self._deferred.pop(request_id, None)
        if p is None:
            return
        here = p.image_id == self.session.image_id
        if here:
            self.canvas.set_preview(None)
        self.session.status("", 0)
        if not labels:  # no name is encoded yet: the user types one
            if here and self.pending is None:
                self.pending = p
                self.canvas.set_preview(p.mask)
                self.awaiting_label = True
                self.session.status("Type a label for this mask (Enter to accept)", 0)
                self.suggestions.start_typing()
            else:
                self.session.error("A mask was not saved: no label was ready for it yet")
            return
        p.labels = list(labels)
        command = self._store(p, labels[0][0])
        if command is None:
            return
        if here:
            self.select(command.ann_id)
        self.session.categories_changed()

    def _region_vector(self, p: Pending) -> tuple[str, np.ndarray] | None:
        """The CLIP vector the click already computed for this mask, stored with the annotation so
        that "similar" needs no backfill for it; None when the mask is not the model's own."""
        model_id = (self.session.engine_info or {}).get("region_model_id")
        region = getattr(p.proposal, "region", None)
        if not model_id or region is None or p.mask is not p.proposal.mask:
            return None
        return model_id, np.asarray(region, dtype=np.float32)

    def pick_number(self, number: int) -> None:
        name = self.suggestions.pick(number)
        if name is not None:
            self.choose_label(name)

    def choose_label(self, name: str) -> None:
        """A suggestion or a typed name: accepts the pending mask, else relabels the selection."""
        if self.pending is not None:
            self.accept(name)
        elif self.selected is not None:
            record = self.records.get(self.selected)
            if record is not None and record.category != name and self.session.can_edit():
                self.undo_stack.push(
                    RelabelCommand(
                        self.session.project,
                        self.session.annotations_changed,
                        self.session.image_id,
                        self.selected,
                        record.category,
                        name,
                    )
                )
                self.session.categories_changed()
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
        if self.pending is not None or self.canvas.has_prompts():
            self.clear()
            return
        if self.selected is None or self.selected not in self.records:
            return
        if not self.session.can_edit():
            return
        record = self.records[self.selected]
        self.select(None)
        self.undo_stack.push(
            DeleteCommand(
                self.session.project,
                self.session.annotations_changed,
                self.session.image_id,
                record,
            )
        )

    def mask_edited(self, target: int | None, mask: np.ndarray) -> None:
        """A brush / eraser stroke: on the pending mask, or an undoable edit of an annotation."""
        if target is None:
            if self.pending is not None:
                self.pending.mask = mask
                self.canvas.set_preview(mask)
                self._request_labels(mask, "proposal")
            return
        if target not in self.records:
            return
        if not mask.any():
            self.session.status("That would erase the whole mask: press Delete to remove it", 5000)
            self.refresh(self.session.image_id)
            return
        if not self.session.can_edit():
            self.refresh(self.session.image_id)
            return
        old = self.mask_of(self.records[target])
        tool = self.canvas.tool.value
        self.undo_stack.push(
            MaskEditCommand(
                self.session.project,
                self.session.annotations_changed,
                self.session.image_id,
                target,
                old,
                mask,
                tool,
            )
        )
        self._request_labels(mask, f"ann:{target}")

    # ------------------------------------------------------------------ showing the image's annotations
    def mask_of(self, record: Any) -> np.ndarray:
        key = record.counts
        cached = self._masks.get(record.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        mask = record_mask(record)
        self._masks[record.id] = (key, mask)
        return mask

    def image_changed(self) -> None:
        """Another image is current (the session has dropped its pending mask and selection)."""
        self._accept_after = None
        self._decode_req = self.next_id()
        self._masks.clear()
        self.suggestions.set_suggestions([])

    def refresh(self, image_id: int | None) -> None:
        """Reload the image's annotations from the store into the canvas and the panel."""
        if self.session.project is None or image_id is None or image_id != self.session.image_id:
            return
        if self.canvas.image_size() is None:
            return
        records = list(self.session.project.annotations(image_id))
        self.session.set_records({r.id: r for r in records})
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
        self._show_selected_labels()

    def select(self, ann_id: int | None) -> None:
        """Select an annotation of the current image (None: none); the views follow the session."""
        self.session.select(ann_id)

    def _selection_changed(self, _ann_id: int | None) -> None:
        self.canvas.set_selected(self.selected)
        self.annotations.select(self.selected)
        self._show_selected_labels()

    def set_visible(self, ann_id: int, visible: bool) -> None:
        (self._hidden.discard if visible else self._hidden.add)(ann_id)
        self.canvas.set_visible(ann_id, visible)

    def _title(self, ann_id: int) -> str:
        record = self.records.get(ann_id)
        return f"Annotation {ann_id}: {record.category}" if record else "Suggestions"

    def _show_selected_labels(self) -> None:
        if self.pending is not None:
            return
        ann_id = self.selected
        if ann_id is None:
            self.suggestions.set_suggestions([], "Suggestions")
            return
        labels = self._ann_labels.get(ann_id)
        self.suggestions.set_suggestions(labels or [], self._title(ann_id))
        if labels is None and ann_id in self.records:
            self._request_labels(self.mask_of(self.records[ann_id]), f"ann:{ann_id}")

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
