"""The edits a user makes, as plain functions on the store: accept, relabel, edit, delete, restore,
add / remove categories. One transaction each (one user action = one commit, see store/project.py).

The window's undo commands (gui/commands.py) and `annotator segment --save` both call these, so a mask
is stored the same way whichever front end accepted it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import AnnotatorError, ProjectError
from annotator.names import category_name
from annotator.store.embeddings import ANNOTATION, EmbeddingTable

Vector = tuple[str, np.ndarray]  # (region model id, unit CLIP vector of the mask)


def find_record(project: Any, image_id: int, ann_id: int) -> Any:
    """The store's record of one annotation (what `restore_annotation` takes back)."""
    for record in project.annotations(image_id):
        if record.id == ann_id:
            return record
    raise KeyError(f"annotation {ann_id} is not in image {image_id}")


def check_acceptable(mask: np.ndarray, category: str | None) -> None:
    """Refuse what must never be stored: an empty mask, or one without a label."""
    if not np.asarray(mask).any():
        raise AnnotatorError("the mask is empty: nothing was saved (try another point or a box)")
    if not category:
        raise AnnotatorError("no label to save the mask under: pass --category NAME")
    category_name(
        category, "label"
    )  # the one rule (annotator/names.py), before anything is written


def accept(
    project: Any,
    image_id: int,
    mask: np.ndarray | dict,
    category: str,
    score: float | None,
    prompts: dict | None,
    vector: Vector | None = None,
) -> int:
    """Store an accepted mask (a bool array, or a COCO RLE dict) (and the CLIP vector the click computed, for "similar") in one
    transaction; returns the new annotation id."""
    with project.transaction():
        if isinstance(mask, dict):  # a full-image RLE (a large image's working window)
            ann_id = project.add_annotation_rle(image_id, mask, category, score, prompts)
        else:
            ann_id = project.add_annotation(image_id, mask, category, score, prompts)
        if vector is not None:
            EmbeddingTable(project).put(ANNOTATION, ann_id, vector[0], vector[1])
    return ann_id


def restore(project: Any, record: Any, vector: Vector | None = None) -> int:
    """Put a deleted annotation back with its id (redo of an accept, undo of a delete)."""
    with project.transaction():
        ann_id = project.restore_annotation(record)
        if vector is not None:
            EmbeddingTable(project).put(ANNOTATION, record.id, vector[0], vector[1])
    return ann_id


def accept_for_file(
    project: Any,
    image: Path,
    mask: np.ndarray,
    category: str | None,
    score: float | None,
    prompts: dict | None,
    vector: Vector | None = None,
) -> int:
    """`segment --save`: add the image file if new (matched by content, ADR 0005) and store the
    mask with its vector, all in one transaction — the same `accept` as the window's.

    Raises AnnotatorError (one line) for an empty mask or a missing label: nothing is written then.
    """
    check_acceptable(mask, category)
    height, width = np.asarray(mask).shape
    with project.transaction():
        image_id = project.add_image_file(image, width, height)
        return accept(project, image_id, mask, str(category), score, prompts, vector)


def delete(project: Any, ann_id: int) -> Any:
    """Remove one annotation; returns its record (to restore it)."""
    return project.delete_annotation(ann_id)


def relabel(project: Any, ann_id: int, category: str) -> None:
    project.update_annotation(ann_id, category=category)


def edit_mask(project: Any, ann_id: int, mask: np.ndarray) -> None:
    """A brush / eraser result replaces the stored mask (bbox and area follow)."""
    project.update_annotation(ann_id, mask=mask)


def add_categories(project: Any, names: Iterable[str], ids: dict[str, int]) -> dict[str, int]:
    """Add the names the project lacks (seeding labels), reusing the ids in `ids` so that COCO
    category ids stay stable across undo / redo; returns name -> id of those added."""
    known = {c.name for c in project.categories()}
    added: dict[str, int] = {}
    with project.transaction():
        for name in names:
            if name not in known:
                added[name] = project.add_category(name, category_id=ids.get(name))
    return added


def remove_unused_categories(project: Any, category_ids: Iterable[int]) -> list[int]:
    """Remove these categories where still unused (another window may have used one meanwhile:
    it stays); returns the ids removed."""
    existing = {c.id for c in project.categories()}
    removed = []
    with project.transaction():
        for category_id in category_ids:
            if category_id in existing:
                try:
                    project.delete_category(category_id)
                except ProjectError:
                    continue
                removed.append(category_id)
    return removed
