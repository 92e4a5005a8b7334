"""The review queue over pending auto-label proposals: accept, reject, change class, undo.

Qt-free. Every edit is a command object with `do()` / `undo()` that calls the `ProposalStore` (each
call is one transaction); the window wraps them in its undo stack, the command line and the tests
run them through `History`. The queue lists the pending proposals ordered by image, class or score
and keeps a cursor that stays in place when the current item leaves the queue (the next slides in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from annotator.names import InvalidName
from annotator.store.proposals import (
    PENDING,
    REJECTED,
    ProposalStore,
    StoredProposal,
    parse_classes,
)

ORDERS = ("image", "class", "score")


class ReviewCommand:
    """One undoable review edit; `text` names it in the Edit menu."""

    text = ""

    def do(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError


@dataclass
class Accept(ReviewCommand):
    """Accept proposals (one or many) as annotations; `category` overrides the class of one."""

    store: ProposalStore
    ids: Sequence[int]
    category: str | None = None
    annotation_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:  # type: ignore[override]
        return "accept proposal" if len(self.ids) == 1 else f"accept {len(self.ids)} proposals"

    def do(self) -> None:
        with self.store.project.transaction():
            if self.category is not None and len(self.ids) == 1:
                self.annotation_ids = [self.store.accept(self.ids[0], self.category)]
            else:
                self.annotation_ids = self.store.accept_many(self.ids)

    def undo(self) -> None:
        self.store.unaccept_many(self.ids)


@dataclass
class Reject(ReviewCommand):
    store: ProposalStore
    proposal_id: int
    text = "reject proposal"

    def do(self) -> None:
        self.store.set_status(self.proposal_id, REJECTED)

    def undo(self) -> None:
        self.store.set_status(self.proposal_id, PENDING)


@dataclass
class ChangeClass(ReviewCommand):
    store: ProposalStore
    proposal_id: int
    category: str
    old: str | None = None
    text = "change class"

    def do(self) -> None:
        self.old = self.store.get(self.proposal_id).category
        self.store.set_category(self.proposal_id, self.category)

    def undo(self) -> None:
        if self.old is not None:
            self.store.set_category(self.proposal_id, self.old)


class History:
    """A plain undo/redo stack for commands (headless use; the window uses QUndoStack)."""

    def __init__(self) -> None:
        self.done: list[ReviewCommand] = []
        self.undone: list[ReviewCommand] = []

    def push(self, command: ReviewCommand) -> None:
        command.do()
        self.done.append(command)
        self.undone.clear()

    def undo(self) -> bool:
        if not self.done:
            return False
        command = self.done.pop()
        command.undo()
        self.undone.append(command)
        return True

    def redo(self) -> bool:
        if not self.undone:
            return False
        command = self.undone.pop()
        command.do()
        self.done.append(command)
        return True


class ReviewQueue:
    """Pending proposals of a project in review order, with a cursor and command factories."""

    def __init__(self, store: ProposalStore, order: str = "image") -> None:
        self.store = store
        self.items: list[StoredProposal] = []
        self.index = 0
        self._order = "image"
        self.set_order(order)

    # ------------------------------------------------------------------------------ listing
    @property
    def order(self) -> str:
        return self._order

    def set_order(self, order: str) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
        self._order = order
        self.refresh()

    def refresh(self) -> None:
        """Re-read the pending proposals (after any edit); the cursor keeps its position."""
        items = self.store.proposals(PENDING)
        if self._order == "image":
            items.sort(key=lambda p: (p.image_id, -p.score, p.id))
        elif self._order == "class":
            items.sort(key=lambda p: (p.category.casefold(), -p.score, p.id))
        else:
            items.sort(key=lambda p: (-p.score, p.id))
        self.items = items
        self.index = min(self.index, max(0, len(items) - 1))

    @property
    def current(self) -> StoredProposal | None:
        return self.items[self.index] if self.items else None

    def move(self, step: int) -> StoredProposal | None:
        if self.items:
            self.index = max(0, min(len(self.items) - 1, self.index + step))
        return self.current

    def select(self, proposal_id: int) -> bool:
        for i, p in enumerate(self.items):
            if p.id == proposal_id:
                self.index = i
                return True
        return False

    def counts(self) -> dict[str, int]:
        return self.store.summary()

    def classes(self, first: Sequence[str] = ()) -> list[str]:
        """Class names for the 1-9 keys: `first` (the run's classes), the proposals' classes in
        first-seen order, then the project's other categories."""
        names: list[str] = []
        for name in first:
            if name not in names:
                names.append(name)
        for p in self.store.proposals(None):
            if p.category not in names:
                names.append(p.category)
        for c in self.store.project.categories():
            if c.name not in names:
                names.append(c.name)
        return names

    # ----------------------------------------------------------------------------- commands
    def accept(self, category: str | None = None) -> Accept | None:
        p = self.current
        return None if p is None else Accept(self.store, [p.id], category)

    def reject(self) -> Reject | None:
        p = self.current
        return None if p is None else Reject(self.store, p.id)

    def change_class(self, category: str) -> ChangeClass | None:
        p = self.current
        name = " ".join(str(category).split())
        if p is None or not name or name == p.category:
            return None
        return ChangeClass(self.store, p.id, name)

    def accept_above(self, score: float) -> Accept | None:
        ids = [p.id for p in self.store.proposals(PENDING) if p.score >= score]
        return Accept(self.store, ids) if ids else None


__all__ = [
    "ORDERS",
    "Accept",
    "ChangeClass",
    "History",
    "Reject",
    "ReviewCommand",
    "ReviewQueue",
    "review_queue",
    "typed_classes",
]


def typed_classes(text: str) -> tuple[list[str], str]:
    """The class names typed in the window ("person, car"), checked by the rule every entry point
    shares (`names.category_name`): (names, "") or ([], the one line saying what is wrong)."""
    try:
        return parse_classes(text), ""
    except InvalidName as error:
        return [], str(error)


def review_queue(project: object) -> ReviewQueue:
    """The review queue of an open project (its pending proposals, in the store's own table)."""
    return ReviewQueue(ProposalStore(project))
