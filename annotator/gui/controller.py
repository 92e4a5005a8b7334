"""What clicks, keys and worker results mean for the current image: prompts -> proposal -> annotation.

The window owns the widgets; this object owns the annotating state (the pending proposal, the selected
annotation, request ids) and turns every edit into an undoable command on the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer

from annotator.gui.annotation_panel import AnnotationRow
from annotator.gui.colors import category_rgb
from annotator.gui.commands import (
    AcceptCommand,
    DeleteCommand,
    MaskEditCommand,
    RelabelCommand,
    VocabularyCommand,
)
from annotator.gui.worker import DecodeRequest, RelabelRequest
from annotator.vocab.vocabulary import Entry, Vocabulary

if TYPE_CHECKING:
    from annotator.gui.main_window import MainWindow


@dataclass
class Pending:
    """A mask shown but not yet accepted."""

    image_id: int
    mask: np.ndarray
    score: float
    labels: list[tuple[str, float]] = field(default_factory=list)
    proposal: Any = None  # the engine's Proposal (for Tab)
    prompts: dict = field(default_factory=dict)


def record_mask(record: Any) -> np.ndarray:
    """The bool mask of a store record."""
    return np.asarray(record.mask(), dtype=bool)


class Controller(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.pending: Pending | None = None
        self.selected: int | None = None
        self._req = 0
        self._decode_req = -1  # newest decode sent
        self._decode_done = -1  # newest decode answered (or failed)
        self._accept_after: str | bool | None = None  # Enter pressed while a decode was running
        self._proposal_relabel = -1
        self._ann_labels: dict[int, list[tuple[str, float]]] = {}
        self._masks: dict[int, tuple[Any, np.ndarray]] = {}  # ann id -> (rle, mask)
        self._hidden: set[int] = set()
        self.records: dict[int, Any] = {}
        self.awaiting_label = False
        self._vocab_timer = QTimer(self)
        self._vocab_timer.setSingleShot(True)
        self._vocab_timer.setInterval(300)
        self._vocab_timer.timeout.connect(self._send_vocabulary)

    def next_id(self) -> int:
        self._req += 1
        return self._req

    # ------------------------------------------------------------------ prompts and proposals
    def prompts_changed(self) -> None:
        """New click or box: ask for a mask (the newest request wins in the worker)."""
        w = self.w
        if w.image_id is None or not w.canvas.has_prompts():
            return
        if not w.engine_ready:
            w.show_status("No SAM model loaded: use the rectangle (R) or polygon (O) tools", 5000)
            return
        self._decode_req = self.next_id()
        points = tuple(w.canvas.points)
        w.worker.decode(
            DecodeRequest(self._decode_req, w.image_id, w.image_path(), points, w.canvas.box)
        )
        if not w.worker.is_encoded(w.image_id):
            w.show_status("Encoding this image… your clicks are kept", 0)

    def cycle_candidate(self) -> None:
        p = self.pending
        if p is None or p.proposal is None or len(p.proposal.candidates) < 2:
            return
        self._decode_req = self.next_id()
        nxt = (p.proposal.chosen + 1) % len(p.proposal.candidates)
        self.w.worker.decode(
            DecodeRequest(
                self._decode_req, p.image_id, self.w.image_path(), proposal=p.proposal, select=nxt
            )
        )

    def on_proposal(self, image_id: int, request_id: int, proposal: Any) -> None:
        if image_id != self.w.image_id or request_id != self._decode_req:
            return  # stale: another image or a newer prompt state
        self._decode_done = request_id
        self.w.clear_status()
        prompts = {"points": [list(p) for p in self.w.canvas.points], "box": self.w.canvas.box}
        self.pending = Pending(
            image_id,
            proposal.mask,
            float(proposal.score),
            list(proposal.labels or []),
            proposal,
            prompts,
        )
        self.w.canvas.set_preview(proposal.mask)
        n = len(proposal.candidates)
        title = f"New mask (candidate {proposal.chosen + 1}/{n}, IoU {proposal.score:.2f})"
        self.w.suggestions.set_suggestions(self.pending.labels, title)
        if self._accept_after is not None:
            label, self._accept_after = self._accept_after, None
            self.accept(label if isinstance(label, str) else None)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == "decode" and request_id == self._decode_req:
            self._decode_done = request_id
            self._accept_after = None

    def shape_drawn(self, mask: np.ndarray) -> None:
        """A manual rectangle or polygon becomes the pending mask; labels come from the CLIP head."""
        w = self.w
        if w.image_id is None or not mask.any():
            return
        w.canvas.clear_prompts()
        self.pending = Pending(w.image_id, mask, 1.0, [], None, {"tool": w.canvas.tool.value})
        w.canvas.set_preview(mask)
        w.suggestions.set_suggestions([], "New shape: Enter accepts, or type a label")
        self._request_labels(mask, "proposal")

    def _request_labels(self, mask: np.ndarray, tag: str) -> None:
        w = self.w
        if not w.engine_ready or w.image_id is None:
            return
        req = self.next_id()
        if tag == "proposal":
            self._proposal_relabel = req
        w.worker.relabel(RelabelRequest(req, w.image_id, w.image_path(), mask, tag))

    def on_labels(self, image_id: int, request_id: int, tag: str, labels: list) -> None:
        if tag == "proposal":
            if self.pending is not None and request_id == self._proposal_relabel:
                self.pending.labels = list(labels or [])
                self.w.suggestions.set_suggestions(labels, "New mask")
            return
        ann_id = int(tag.split(":")[1])
        self._ann_labels[ann_id] = list(labels or [])
        if ann_id == self.selected:
            self.w.suggestions.set_suggestions(labels, self._title(ann_id))

    def clear(self) -> None:
        """Esc: drop prompts and the pending mask; a second Esc deselects."""
        if self.pending is None and not self.w.canvas.has_prompts() and not self.w.canvas.polygon:
            self.select(None)
        self.pending = None
        self._accept_after = None
        self._decode_req = self.next_id()  # results still on their way are now stale
        self.w.worker.cancel_decode()
        self.w.canvas.clear_prompts()
        self.w.canvas.set_preview(None)
        self.awaiting_label = False
        self._show_selected_labels()

    # ------------------------------------------------------------------ accepting and labelling
    def accept(self, label: str | None = None) -> None:
        """Enter / Space: store the pending mask with `label` or its best suggestion."""
        w = self.w
        if w.canvas.tool.value == "polygon" and w.canvas.close_polygon():
            return
        if self._decode_req > self._decode_done and w.canvas.has_prompts():
            self._accept_after = label if label is not None else True  # accept the newest mask
            return
        p = self.pending
        if p is None or p.image_id != w.image_id:
            return
        if not p.mask.any():
            w.show_status("The mask is empty: nothing to accept", 4000)
            return
        category = label or (p.labels[0][0] if p.labels else None)
        if category is None:
            self.awaiting_label = True
            w.show_status("Type a label for this mask (Enter to accept)", 0)
            w.suggestions.start_typing()
            return
        self.awaiting_label = False
        command = AcceptCommand(
            w.project,
            w.refresh_image,
            p.image_id,
            p.mask,
            category,
            p.score,
            p.prompts,
            self._region_vector(p),
        )
        w.undo_stack.push(command)
        if p.labels:
            self._ann_labels[command.ann_id] = p.labels
        self.pending = None
        w.canvas.clear_prompts()
        w.canvas.set_preview(None)
        self.select(command.ann_id)
        w.canvas.setFocus()
        w.categories_changed()

    def _region_vector(self, p: Pending) -> tuple[str, np.ndarray] | None:
        """The CLIP vector the click already computed for this mask, stored with the annotation so
        that "similar" needs no backfill for it; None when the mask is not the model's own."""
        model_id = (self.w.engine_info or {}).get("region_model_id")
        region = getattr(p.proposal, "region", None)
        if not model_id or region is None or p.mask is not p.proposal.mask:
            return None
        return model_id, np.asarray(region, dtype=np.float32)

    def pick_number(self, number: int) -> None:
        name = self.w.suggestions.pick(number)
        if name is not None:
            self.choose_label(name)

    def choose_label(self, name: str) -> None:
        """A suggestion or a typed name: accepts the pending mask, else relabels the selection."""
        if self.pending is not None:
            self.accept(name)
        elif self.selected is not None:
            record = self.records.get(self.selected)
            if record is not None and record.category != name:
                self.w.undo_stack.push(
                    RelabelCommand(
                        self.w.project,
                        self.w.refresh_image,
                        self.w.image_id,
                        self.selected,
                        record.category,
                        name,
                    )
                )
                self.w.categories_changed()
        self.w.canvas.setFocus()

    def add_label(self, name: str) -> None:
        """A typed name that is not in the vocabulary: add it (undoable), then use it."""
        w = self.w
        w.undo_stack.beginMacro(f"new label {name!r}")
        try:
            if w.vocabulary.match(name) is None:
                self.edit_vocabulary(None, Entry(name))
            self.choose_label(name)
        finally:
            w.undo_stack.endMacro()

    def delete_selected(self) -> None:
        w = self.w
        if self.pending is not None or w.canvas.has_prompts():
            self.clear()
            return
        if self.selected is None or self.selected not in self.records:
            return
        record = self.records[self.selected]
        self.select(None)
        w.undo_stack.push(DeleteCommand(w.project, w.refresh_image, w.image_id, record))

    def mask_edited(self, target: int | None, mask: np.ndarray) -> None:
        """A brush / eraser stroke: on the pending mask, or an undoable edit of an annotation."""
        w = self.w
        if target is None:
            if self.pending is not None:
                self.pending.mask = mask
                w.canvas.set_preview(mask)
                self._request_labels(mask, "proposal")
            return
        if target not in self.records:
            return
        if not mask.any():
            w.show_status("That would erase the whole mask: press Delete to remove it", 5000)
            self.refresh(w.image_id)
            return
        old = self.mask_of(self.records[target])
        tool = w.canvas.tool.value
        w.undo_stack.push(
            MaskEditCommand(w.project, w.refresh_image, w.image_id, target, old, mask, tool)
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
        self.pending = None
        self.selected = None
        self._accept_after = None
        self._decode_req = self.next_id()
        self.records = {}
        self._masks.clear()
        self.w.suggestions.set_suggestions([])

    def refresh(self, image_id: int | None) -> None:
        """Reload the image's annotations from the store into the canvas and the panel."""
        w = self.w
        if w.project is None or image_id is None or image_id != w.image_id:
            return
        if w.canvas.image_size() is None:
            return
        records = list(w.project.annotations(image_id))
        self.records = {r.id: r for r in records}
        for ann_id in set(w.canvas.masks) - set(self.records):
            w.canvas.remove_annotation(ann_id)
        rows = []
        for r in records:
            w.canvas.set_annotation(r.id, self.mask_of(r), category_rgb(r.category))
            w.canvas.set_visible(r.id, r.id not in self._hidden)
            score = float(r.score) if r.score is not None else 1.0
            area = int(getattr(r, "area", 0) or self.mask_of(r).sum())
            rows.append(AnnotationRow(r.id, r.category, score, area, r.id not in self._hidden))
        if self.selected not in self.records:
            self.selected = None
        w.canvas.set_selected(self.selected)
        w.annotations.set_annotations(rows, self.selected)
        self._show_selected_labels()

    def select(self, ann_id: int | None) -> None:
        self.selected = ann_id if ann_id in self.records else None
        self.w.canvas.set_selected(self.selected)
        self.w.annotations.select(self.selected)
        self._show_selected_labels()

    def set_visible(self, ann_id: int, visible: bool) -> None:
        (self._hidden.discard if visible else self._hidden.add)(ann_id)
        self.w.canvas.set_visible(ann_id, visible)

    def _title(self, ann_id: int) -> str:
        record = self.records.get(ann_id)
        return f"Annotation {ann_id}: {record.category}" if record else "Suggestions"

    def _show_selected_labels(self) -> None:
        if self.pending is not None:
            return
        ann_id = self.selected
        if ann_id is None:
            self.w.suggestions.set_suggestions([], "Suggestions")
            return
        labels = self._ann_labels.get(ann_id)
        self.w.suggestions.set_suggestions(labels or [], self._title(ann_id))
        if labels is None and ann_id in self.records:
            self._request_labels(self.mask_of(self.records[ann_id]), f"ann:{ann_id}")

    # ------------------------------------------------------------------ vocabulary
    def edit_vocabulary(self, old: Entry | None, new: Entry | None) -> None:
        w = self.w
        if new is not None and (old is None or old.name.lower() != new.name.lower()):
            if w.vocabulary.get(new.name) is not None:
                w.show_status(f"{new.name!r} is already in the vocabulary", 5000)
                return
        w.undo_stack.push(VocabularyCommand(w.vocabulary, self.vocabulary_changed, old, new))

    def vocabulary_changed(self) -> None:
        """After an edit (or its undo): refresh the views now, re-embed the texts shortly after."""
        self.w.vocab_editor.refresh()
        self.w.update_completer()
        self._vocab_timer.start()

    def _send_vocabulary(self) -> None:
        w = self.w
        w.save_vocabulary()
        if w.engine_ready:
            w.worker.set_vocabulary(Vocabulary.loads(w.vocabulary.dumps()))
