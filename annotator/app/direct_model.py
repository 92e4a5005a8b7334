"""`ModelPort` without a thread: runs the `Engine` in the caller's thread and hands the answers back
when asked (`deliver`), in the order they were made — what the window's worker does across a thread,
so a script, the CLI or a test drives the annotating session end to end without Qt.

`masks_first=True` answers a click on an image whose CLIP half does not exist yet the way the
worker does: the mask first (`labels_pending`), then the same request again with its labels.
"""

from __future__ import annotations

from typing import Any

from annotator.app.model_port import (
    DecodeRequest,
    Failure,
    LabelsResult,
    ProposalResult,
    RelabelRequest,
)


class DirectModel:
    """The engine answering requests at once; `deliver()` passes the queued answers on."""

    def __init__(self, engine: Any, masks_first: bool = False) -> None:
        self.engine = engine
        self.masks_first = masks_first
        self.annotating: Any = None  # set by `attach`: where answers go
        self.queue: list[ProposalResult | LabelsResult | Failure] = []
        self.requests: list[DecodeRequest | RelabelRequest] = []  # everything asked, in order
        self._embeddings: dict[int, Any] = {}

    def attach(self, annotating: Any) -> None:
        self.annotating = annotating

    # ------------------------------------------------------------------ ModelPort
    def is_encoded(self, image_id: int) -> bool:
        return image_id in self._embeddings and self._embeddings[image_id].complete

    def cancel_decode(self) -> None:
        self.queue = [r for r in self.queue if not isinstance(r, ProposalResult)]

    def decode(self, request: DecodeRequest) -> None:
        self.requests.append(request)
        try:
            known = self._embeddings.get(request.image_id)
            clip = not (self.masks_first and known is None)
            embedding = self.engine.embed(request.path, clip=clip, known=known)
            self._embeddings[request.image_id] = embedding
            if request.select is not None and request.proposal is not None:
                proposal = self.engine.select(
                    embedding, request.proposal, request.select, restrict=request.restrict
                )
            else:
                proposal = self.engine.segment(
                    embedding, request.points, request.box, restrict=request.restrict
                )
            self.queue.append(ProposalResult(request.image_id, request.request_id, proposal))
            if proposal.labels_pending:
                embedding = self.engine.embed(request.path, known=embedding)
                self._embeddings[request.image_id] = embedding
                labelled = self.engine.label(embedding, proposal, restrict=request.restrict)
                self.queue.append(ProposalResult(request.image_id, request.request_id, labelled))
        except Exception as error:  # the worker reports a model's error the same way
            self.queue.append(Failure("decode", request.image_id, request.request_id, str(error)))

    def relabel(self, request: RelabelRequest) -> None:
        self.requests.append(request)
        try:
            embedding = self.engine.embed(
                request.path, known=self._embeddings.get(request.image_id)
            )
            self._embeddings[request.image_id] = embedding
            labels = self.engine.relabel(embedding, request.mask, 5, restrict=request.restrict)
            self.queue.append(
                LabelsResult(request.image_id, request.request_id, request.tag, labels)
            )
        except Exception as error:
            self.queue.append(Failure("relabel", request.image_id, request.request_id, str(error)))

    # ------------------------------------------------------------------ answers
    def deliver(self, count: int | None = None) -> int:
        """Pass the oldest `count` answers (all: None) to the session; how many were passed."""
        n = len(self.queue) if count is None else min(count, len(self.queue))
        for _ in range(n):
            result = self.queue.pop(0)
            if isinstance(result, ProposalResult):
                self.annotating.on_proposal(result)
            elif isinstance(result, LabelsResult):
                self.annotating.on_labels(result)
            else:
                self.annotating.on_failed(result)
        return n

    def settle(self) -> None:
        """Deliver until nothing is left (answers can cause requests: a selection's labels)."""
        while self.deliver():
            pass
