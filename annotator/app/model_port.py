"""What the annotating session and the model thread say to each other: plain requests out, plain
results back (no Qt, no `Any` read by attribute), and the two ports the session talks through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from annotator.app.session import Box, Pending, Point

if TYPE_CHECKING:  # the engine (torch) loads in the worker, not with this module
    from annotator.engine import Proposal

Labels = list[tuple[str, float]]


# ---------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class DecodeRequest:
    """One prompt state of one image. `select` asks for another candidate of `proposal` (Tab)."""

    request_id: int
    image_id: int
    path: str
    points: tuple[Point, ...] = ()
    box: Box | None = None
    proposal: Proposal | None = None  # the proposal to pick another candidate from
    select: int | None = None
    restrict: tuple[str, ...] | None = None  # score only these names (None: the vocabulary)
    window: Any = None  # a large image (issue 26): the `working_window.Window` to segment in


@dataclass(frozen=True)
class RelabelRequest:
    request_id: int
    image_id: int
    path: str
    mask: np.ndarray
    tag: str  # what the labels are for: "ann:<id>", "proposal" or "accept:<request id>"
    restrict: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ProposalResult:
    image_id: int
    request_id: int
    proposal: Proposal


@dataclass(frozen=True)
class LabelsResult:
    image_id: int
    request_id: int
    tag: str
    labels: Labels


@dataclass(frozen=True)
class Failure:
    kind: str  # "decode", "relabel", "encode", …
    image_id: int
    request_id: int
    message: str


class ModelPort(Protocol):
    """What the session asks of the model thread; answers come back as the result types above."""

    def decode(self, request: DecodeRequest) -> None: ...
    def cancel_decode(self) -> None: ...
    def relabel(self, request: RelabelRequest) -> None: ...
    def is_encoded(self, image_id: int) -> bool: ...


class EditPort(Protocol):
    """Undoable store edits; each calls `session.annotations_changed` after do and undo."""

    def accept(self, p: Pending, category: str, vector: tuple[str, np.ndarray] | None) -> int: ...
    def relabel(self, image_id: int, ann_id: int, old: str, new: str) -> None: ...
    def delete(self, image_id: int, record: Any) -> None: ...
    def edit_mask(
        self, image_id: int, ann_id: int, old: np.ndarray, new: np.ndarray, tool: str
    ) -> None: ...
