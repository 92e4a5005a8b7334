"""The annotating session: what a click, a key or a model answer means for the current image. No Qt.

It owns the prompts (points, box), the pending proposal and its candidates, the request ids that
tell a fresh model answer from a stale one, the label restriction (sent with every request so the
engine scores the allowed names once), deferred accepts and the labels shown per annotation. It
talks to the model worker through `ModelPort` (plain `DecodeRequest` / `RelabelRequest` out, plain
`ProposalResult` / `LabelsResult` / `Failure` in) and stores edits through `EditPort` (undoable:
the window's port pushes `QUndoCommand`s, `StoreEdits` here keeps a plain history). Views subscribe
to `AnnotateEvents` and to the `Session`'s events; none of them holds annotating state (ADR 0029).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from annotator.app.edits import StoreEdits
from annotator.app.events import Event
from annotator.app.model_port import (
    DecodeRequest,
    EditPort,
    Failure,
    Labels,
    LabelsResult,
    ModelPort,
    ProposalResult,
    RelabelRequest,
)
from annotator.app.session import Box, Pending, Point, Session

if TYPE_CHECKING:  # the engine (torch) loads in the worker, not with this module
    from annotator.engine import Proposal

__all__ = [
    "Annotating",
    "AnnotateEvents",
    "DecodeRequest",
    "EditPort",
    "Failure",
    "LabelsResult",
    "ModelPort",
    "ProposalResult",
    "RelabelRequest",
    "StoreEdits",
]


class AnnotateEvents:
    """What the canvas and the suggestions panel render; the arguments are noted."""

    def __init__(self) -> None:
        self.preview = Event("preview")  # (mask | None) the pending mask to draw
        self.suggestions = Event("suggestions")  # (labels, title, sources | None)
        self.typing = Event("typing")  # () a mask waits for a typed label
        self.accepted = Event("accepted")  # (ann_id) a mask was stored: the canvas takes focus


# ---------------------------------------------------------------------------------------- session
class Annotating:
    """Prompts -> proposal -> annotation for the session's current image (on one thread)."""

    def __init__(self, session: Session, model: ModelPort, edits: EditPort) -> None:
        self.session, self.model, self.edits = session, model, edits
        self.events = AnnotateEvents()
        self.restrict: tuple[str, ...] | None = None
        self.decode_sent = -1  # newest decode sent
        self.decode_done = -1  # newest decode answered (or failed)
        self.awaiting_label = False
        self._accept_after: str | bool | None = None  # Enter pressed while a decode was running
        self._proposal_relabel = -1
        self._deferred: dict[int, Pending] = {}  # accepted before their labels came (relabel id)
        self._ann_labels: dict[int, Labels] = {}
        self._masks: dict[int, tuple[Any, np.ndarray]] = {}  # ann id -> (rle counts, mask)
        session.events.selection.connect(lambda _ann_id: self.show_selected_labels())
        session.events.image.connect(lambda _image_id: self._image_changed())
        session.events.annotations.connect(self._annotations_changed)

    # ------------------------------------------------------------------ state
    @property
    def pending(self) -> Pending | None:
        return self.session.pending

    @property
    def points(self) -> tuple[Point, ...]:
        return self.session.points

    @property
    def box(self) -> Box | None:
        return self.session.box

    def has_prompts(self) -> bool:
        return bool(self.session.points) or self.session.box is not None

    def waiting(self) -> bool:
        """A decode is on its way (its answer is the one that counts)."""
        return self.decode_sent > self.decode_done

    def set_restrict(self, names: Sequence[str] | None) -> None:
        """Suggest only these names (the project's labels), None: the whole vocabulary."""
        self.restrict = tuple(names) if names is not None else None

    # ------------------------------------------------------------------ prompts and proposals
    def add_point(self, x: float, y: float, positive: bool = True) -> None:
        self.set_prompts((*self.session.points, (x, y, positive)), self.session.box)

    def set_box(self, box: Box) -> None:
        self.set_prompts(self.session.points, box)

    def set_prompts(self, points: Sequence[Point], box: Box | None) -> None:
        """New click or box: the session holds them (views redraw), then a mask is asked for."""
        self.session.set_prompts(tuple(points), box)
        self.request_mask()

    def request_mask(self) -> None:
        """Ask for the current prompts' mask (the newest request wins in the worker)."""
        s = self.session
        if s.image_id is None or not self.has_prompts():
            return
        if not s.engine_ready:
            s.status("No SAM model loaded: use the rectangle (R) or polygon (O) tools", 5000)
            return
        self.decode_sent = s.next_id()
        # a large image (issue 26) is segmented in the working window its view shows
        window = s.large.window_for(s.points, s.box) if s.large is not None else None
        request = DecodeRequest(
            self.decode_sent,
            s.image_id,
            s.image_path(),
            s.points,
            s.box,
            restrict=self.restrict,
            window=window,
        )
        self.model.decode(request)
        if not self.model.is_encoded(s.image_id):
            s.status("Encoding this image… your clicks are kept", 0)

    def cycle_candidate(self) -> None:
        p = self.pending
        if p is None or p.proposal is None or len(p.proposal.candidates) < 2:
            return
        self.decode_sent = self.session.next_id()
        nxt = (p.proposal.chosen + 1) % len(p.proposal.candidates)
        request = DecodeRequest(
            self.decode_sent,
            p.image_id,
            self.session.image_path(),
            proposal=p.proposal,
            select=nxt,
            restrict=self.restrict,
        )
        self.model.decode(request)

    def on_proposal(self, result: ProposalResult) -> None:
        """A mask (or, for a click made before the image's CLIP half existed, its labels)."""
        proposal, request_id = result.proposal, result.request_id
        if result.image_id != self.session.image_id or request_id != self.decode_sent:
            return  # stale: another image or a newer prompt state
        p = self.pending
        if request_id == self.decode_done:
            if p is None or p.proposal is None or p.mask is not p.proposal.mask:
                return  # the labels of a mask already accepted, cleared or edited
            if p.proposal.mask is proposal.mask:
                self._labels_arrived(p, proposal)
                return
        self.decode_done = request_id
        self.session.status("", 0)
        prompts = {"points": [list(q) for q in self.session.points], "box": self.session.box}
        pending = Pending(
            result.image_id,
            proposal.mask,
            float(proposal.score),
            list(proposal.labels),
            proposal,
            prompts,
        )
        self.session.set_pending(pending)
        self.events.preview.emit(proposal.mask)
        self._show_proposal_labels(proposal, own=True)
        if self._accept_after is not None:
            label, self._accept_after = self._accept_after, None
            self.accept(label if isinstance(label, str) else None)

    def _labels_arrived(self, p: Pending, proposal: Proposal) -> None:
        p.proposal = proposal
        own = not p.labels  # a label the user already picked or typed is kept
        if own:
            p.labels = list(proposal.labels)
        self._show_proposal_labels(proposal, own)

    def _show_proposal_labels(self, proposal: Proposal, own: bool) -> None:
        """`own`: the pending labels are the proposal's, so their evidence (text / exemplars) shows."""
        n = len(proposal.candidates)
        title = f"New mask (candidate {proposal.chosen + 1}/{n}, IoU {proposal.score:.2f})"
        if proposal.labels_pending:
            title += ", labels follow"
        sources = [s.source for s in proposal.suggestions] if own and proposal.suggestions else None
        self.events.suggestions.emit(self.pending.labels, title, sources)

    def on_failed(self, failure: Failure) -> None:
        if failure.kind == "relabel" and self._deferred.pop(failure.request_id, None) is not None:
            self.session.error(f"A mask was not saved: its labels failed ({failure.message})")
        if failure.kind == "decode" and failure.request_id == self.decode_sent:
            self.decode_done = failure.request_id
            self._accept_after = None

    def shape_drawn(self, mask: np.ndarray, tool: str) -> None:
        """A manual rectangle or polygon becomes the pending mask; labels come from the CLIP head."""
        if self.session.image_id is None or not mask.any():
            return
        self.session.set_prompts((), None)
        self.session.set_pending(
            Pending(self.session.image_id, mask, 1.0, [], None, {"tool": tool})
        )
        self.events.preview.emit(mask)
        self.events.suggestions.emit([], "New shape: Enter accepts, or type a label", None)
        self._request_labels(mask, "proposal")

    def _request_labels(self, mask: np.ndarray, tag: str) -> None:
        s = self.session
        if not s.engine_ready or s.image_id is None:
            return
        req = s.next_id()
        if tag == "proposal":
            self._proposal_relabel = req
        self.model.relabel(
            RelabelRequest(req, s.image_id, s.image_path(), mask, tag, self.restrict)
        )

    def on_labels(self, result: LabelsResult) -> None:
        tag, labels = result.tag, list(result.labels)
        if tag.startswith("accept:"):
            self._accept_labelled(result.request_id, labels)
            return
        if tag == "proposal":
            if self.pending is not None and result.request_id == self._proposal_relabel:
                self.pending.labels = labels
                self.events.suggestions.emit(labels, "New mask", None)
            return
        ann_id = int(tag.split(":")[1])
        self._ann_labels[ann_id] = labels
        if ann_id == self.session.selected:
            self.events.suggestions.emit(labels, self._title(ann_id), None)

    def clear(self, polygon_open: bool = False) -> None:
        """Esc: drop prompts and the pending mask; a second Esc deselects."""
        if self.pending is None and not self.has_prompts() and not polygon_open:
            self.session.select(None)
        self.session.set_pending(None)
        self._accept_after = None
        self.decode_sent = self.session.next_id()  # results still on their way are now stale
        self.model.cancel_decode()
        self.session.set_prompts((), None)
        self.events.preview.emit(None)
        self.awaiting_label = False
        self.show_selected_labels()

    # ------------------------------------------------------------------ accepting and labelling
    def accept(self, label: str | None = None) -> None:
        """Enter / Space: store the pending mask with `label` or its best suggestion."""
        if self.waiting() and self.has_prompts():
            self._accept_after = label if label is not None else True  # accept the newest mask
            return
        p = self.pending
        if p is None or p.image_id != self.session.image_id:
            return
        if not p.mask.any():
            self.session.status("The mask is empty: nothing to accept", 4000)
            return
        if label is None and not p.labels and p.proposal is not None and p.proposal.labels_pending:
            self._accept_when_labelled(p)
            return
        category = label or (p.labels[0][0] if p.labels else None)
        if category is None:
            self.awaiting_label = True
            self.session.status("Type a label for this mask (Enter to accept)", 0)
            self.events.typing.emit()
            return
        if not self.session.can_edit():
            return
        self.awaiting_label = False
        ann_id = self._store(p, category)
        if ann_id is None:
            return
        self.session.set_pending(None)
        self.session.set_prompts((), None)
        self.events.preview.emit(None)
        self.session.select(ann_id)
        self.events.accepted.emit(ann_id)
        self.session.categories_changed()

    def _store(self, p: Pending, category: str) -> int | None:
        """Save `p` as an annotation of its image (undoable); None when another annotator holds
        the image (ADR 0011)."""
        holder = self.session.project.claims().get(p.image_id)
        if holder is not None:
            self.session.error(f"{holder} is editing this image; the mask was not saved")
            return None
        ann_id = self.edits.accept(p, category, self._region_vector(p))
        if p.labels:
            self._ann_labels[ann_id] = p.labels
        return ann_id

    def _accept_when_labelled(self, p: Pending) -> None:
        """Enter on a mask whose labels are still being computed: the best label is taken as soon
        as it exists, even if the user has moved on by then (never superseded by later clicks)."""
        s = self.session
        if not s.engine_ready:
            return
        req = s.next_id()
        self._deferred[req] = p
        path = s.image_path()
        self.model.relabel(
            RelabelRequest(req, p.image_id, path, p.mask, f"accept:{req}", self.restrict)
        )
        s.set_pending(None)
        s.set_prompts((), None)
        s.status("Saving the mask as soon as its labels are ready…", 0)

    def _accept_labelled(self, request_id: int, labels: Labels) -> None:
        p = self._deferred.pop(request_id, None)
        if p is None:
            return
        here = p.image_id == self.session.image_id
        if here:
            self.events.preview.emit(None)
        self.session.status("", 0)
        if not labels:  # no name is encoded yet: the user types one
            if here and self.pending is None:
                self.session.set_pending(p)
                self.events.preview.emit(p.mask)
                self.awaiting_label = True
                self.session.status("Type a label for this mask (Enter to accept)", 0)
                self.events.typing.emit()
            else:
                self.session.error("A mask was not saved: no label was ready for it yet")
            return
        p.labels = labels
        ann_id = self._store(p, labels[0][0])
        if ann_id is None:
            return
        if here:
            self.session.select(ann_id)
        self.session.categories_changed()

    def _region_vector(self, p: Pending) -> tuple[str, np.ndarray] | None:
        """The CLIP vector the click already computed for this mask, stored with the annotation
        ("similar" needs no backfill for it); None when the mask is not the model's own."""
        model_id = (self.session.engine_info or {}).get("region_model_id")
        if not model_id or p.proposal is None or p.proposal.region is None:
            return None
        if p.mask is not p.proposal.mask:
            return None
        return model_id, np.asarray(p.proposal.region, dtype=np.float32)

    def choose_label(self, name: str) -> None:
        """A suggestion or a typed name: accepts the pending mask, else relabels the selection."""
        s = self.session
        if self.pending is not None:
            self.accept(name)
        elif s.selected is not None:
            record = s.records.get(s.selected)
            if record is not None and record.category != name and s.can_edit():
                self.edits.relabel(s.image_id, s.selected, record.category, name)
                s.categories_changed()

    def delete_selected(self, polygon_open: bool = False) -> None:
        s = self.session
        if self.pending is not None or self.has_prompts():
            self.clear(polygon_open)
            return
        if s.selected is None or s.selected not in s.records or not s.can_edit():
            return
        record = s.records[s.selected]
        s.select(None)
        self.edits.delete(s.image_id, record)

    def mask_edited(self, target: int | None, mask: np.ndarray, tool: str) -> bool:
        """A brush / eraser stroke on the pending mask or (undoable) on an annotation; False when
        refused (the views show the stored mask again)."""
        s = self.session
        if target is None:
            if self.pending is not None:
                self.pending.mask = mask
                self.events.preview.emit(mask)
                self._request_labels(mask, "proposal")
            return True
        if target not in s.records:
            return True
        if not mask.any():
            s.status("That would erase the whole mask: press Delete to remove it", 5000)
            return False
        if not s.can_edit():
            return False
        old = self.mask_of(s.records[target])
        self.edits.edit_mask(s.image_id, target, old, mask, tool)
        self._request_labels(mask, f"ann:{target}")
        return True

    # ------------------------------------------------------------------ the image's annotations
    def mask_of(self, record: Any) -> np.ndarray:
        cached = self._masks.get(record.id)
        if cached is not None and cached[0] == record.counts:
            return cached[1]
        mask = np.asarray(record.mask(), dtype=bool)
        self._masks[record.id] = (record.counts, mask)
        return mask

    def reload(self) -> list[Any]:
        """The current image's annotations from the store, into the session."""
        s = self.session
        if s.project is None or s.image_id is None:
            return []
        records = list(s.project.annotations(s.image_id))
        s.set_records({r.id: r for r in records})
        return records

    def _annotations_changed(self, image_id: int) -> None:
        """An edit (or its undo) on this image: the session's records follow the store first, so
        every view that subscribes after this session reads them fresh."""
        if image_id == self.session.image_id:
            self.reload()

    def _image_changed(self) -> None:
        self._accept_after = None
        self.decode_sent = self.session.next_id()
        self._masks.clear()
        self.events.suggestions.emit([], "Suggestions", None)

    def _title(self, ann_id: int) -> str:
        record = self.session.records.get(ann_id)
        return f"Annotation {ann_id}: {record.category}" if record else "Suggestions"

    def show_selected_labels(self) -> None:
        """The selection's labels (asked for once per annotation) unless a mask is pending; not on
        a large image (its stored masks are never decoded at full size, issue 26)."""
        if self.pending is not None or self.session.large is not None:
            return
        ann_id = self.session.selected
        if ann_id is None:
            self.events.suggestions.emit([], "Suggestions", None)
            return
        labels = self._ann_labels.get(ann_id)
        self.events.suggestions.emit(labels or [], self._title(ann_id), None)
        if labels is None and ann_id in self.session.records:
            self._request_labels(self.mask_of(self.session.records[ann_id]), f"ann:{ann_id}")
