"""What an undo or redo step shows: the image it acted on, and the object if it still exists.

Undo must never change an image the user cannot see: the window goes to the step's image and
selects its object (issue 24). Each undoable command says what it is (`CREATES`, `REMOVES` or
`CHANGES` an object) and where; `shown_after` is the rule, with no Qt, so it is tested plainly.
"""

from __future__ import annotations

from dataclasses import dataclass

CREATES, REMOVES, CHANGES = "creates", "removes", "changes"


@dataclass(frozen=True)
class Shown:
    """The image to show after a step, and the object to select there (None: select nothing)."""

    image_id: int
    ann_id: int | None = None


def shown_after(kind: str, image_id: int | None, ann_id: int | None, undone: bool) -> Shown | None:
    """The view after undoing (`undone`) or redoing a step of `kind` on (`image_id`, `ann_id`):
    an object the step created is gone after its undo, one it removed is back, a changed one
    stays. None for a step that is not about an image (a vocabulary edit)."""
    if image_id is None:
        return None
    if kind == CREATES:
        exists = not undone
    elif kind == REMOVES:
        exists = undone
    elif kind == CHANGES:
        exists = True
    else:
        raise ValueError(f"unknown kind of step: {kind!r}")
    return Shown(image_id, ann_id if exists else None)


def first_shown(steps: list[Shown | None]) -> Shown | None:
    """A macro's view (a new label added, then used): its first step that shows an image."""
    return next((s for s in steps if s is not None), None)
