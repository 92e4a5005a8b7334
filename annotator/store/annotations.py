"""The annotations table: one COCO RLE mask per row, with its category, score, prompts and authors.

Masks are stored as COCO compressed RLE; bbox and area are derived from the mask with pycocotools,
never from the prompts. Each write checks the image's claim (claims.py) and records what it left
(`_left`) so `check_undo` (changes.py) can refuse to undo someone else's later change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from annotator.io.masks import (
    XYWH,
    mask_to_rle,
    rle_area,
    rle_bbox,
    rle_runs,
    rle_to_mask,
    runs_to_rle,
)
from annotator.store import schema
from annotator.store.categories import Categories
from annotator.store.claims import Claims
from annotator.store.connection import utc_now, wanted_id
from annotator.store.images import ImageRecord


class _Keep:
    """Sentinel: leave this field as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True)
class Annotation:
    """One stored mask. `mask()` decodes it; `rle` is the COCO compressed RLE (counts as str)."""

    id: int
    image_id: int
    category_id: int
    category: str  # the category's name at the time of reading
    counts: str  # COCO compressed RLE counts
    height: int
    width: int
    bbox: XYWH  # from the mask, COCO convention
    area: int  # mask pixel count
    score: float | None
    prompts_json: str | None  # JSON text of the prompts that made the mask
    created: str
    updated: str
    created_by: str = ""  # $ANNOTATOR_USER or the login name of whoever accepted it
    updated_by: str = ""  # ... and of whoever changed it last

    @property
    def rle(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}

    @property
    def prompts(self) -> Any:
        return None if self.prompts_json is None else json.loads(self.prompts_json)

    def mask(self) -> np.ndarray:
        """bool (H, W) mask."""
        return rle_to_mask(self.rle)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, PurePosixPath)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _prompts_json(prompts: Any) -> str | None:
    if prompts is None:
        return None
    try:
        return json.dumps(prompts, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"prompts cannot be stored as JSON: {error}") from error


ANNOTATION_COLUMNS = (
    "a.id, a.image_id, a.category_id, c.name, a.rle, a.height, a.width, a.bbox_x, a.bbox_y, a.bbox_w,"
    " a.bbox_h, a.area, a.score, a.prompts, a.created, a.updated, a.created_by, a.updated_by"
)
"""The columns `annotation_from_row` reads, from `annotations a JOIN categories c`."""


def annotation_from_row(row: tuple) -> Annotation:
    """An `Annotation` from one row of `SELECT {ANNOTATION_COLUMNS} ...` (the columns are in the
    dataclass's field order, the four bbox columns making its `bbox`)."""
    return Annotation(*row[:7], tuple(row[7:11]), *row[11:18])  # type: ignore[arg-type]


class Annotations(Claims, Categories):
    """The annotations table's part of `Project`."""

    def _resolve_category(self, category: str | int) -> int:
        if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
            self.category(int(category))
            return int(category)
        return self.category_id(str(category), create=True)

    def _checked_rle(self, image: ImageRecord, rle: dict) -> tuple[str, XYWH, int]:
        if [int(v) for v in rle["size"]] != [image.height, image.width]:
            raise ValueError(
                f"mask is {rle['size'][0]}x{rle['size'][1]} but image {image.id} is {image.height}x{image.width}"
            )
        area = rle_area(rle)
        if area == 0:
            raise ValueError("an empty mask cannot be stored (delete the annotation instead)")
        return rle["counts"], rle_bbox(rle), area

    def _mask_rle(self, image: ImageRecord, mask: np.ndarray) -> tuple[str, XYWH, int]:
        mask = np.asarray(mask)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask shape {mask.shape} does not match image {image.id} ({image.height}, {image.width})"
            )
        return self._checked_rle(image, mask_to_rle(mask))

    def add_annotation(
        self,
        image_id: int,
        mask: np.ndarray,
        category: str | int,
        score: float | None = None,
        prompts: Any = None,
    ) -> int:
        """Store a bool (H, W) mask for an image; `category` is a name (created if new) or an id.

        bbox and area come from the mask. Raises KeyError for an unknown image, ValueError for a mask
        of the wrong size or an empty one.
        """
        with self.transaction():
            image = self.image(image_id)
            self._check_claim(image)
            return self._insert(image, category, self._mask_rle(image, mask), score, prompts)

    def add_annotation_rle(
        self,
        image_id: int,
        rle: dict,
        category: str | int,
        score: float | None = None,
        prompts: Any = None,
        annotation_id: int | None = None,
        authorship: dict | None = None,
    ) -> int:
        """Like `add_annotation` from a COCO RLE (compressed or not, validated) without decoding it.

        `annotation_id` is used if free (importers keep ids stable this way); `authorship` keeps
        the file's created / created_by / updated / updated_by where given.
        """
        runs = rle_runs(rle)
        with self.transaction():
            image = self.image(image_id)
            self._check_claim(image)
            canonical = runs_to_rle(runs, int(rle["size"][0]), int(rle["size"][1]))
            fields = self._checked_rle(image, canonical)
            annotation_id = wanted_id(annotation_id)
            if annotation_id is not None and self.read(
                "SELECT 1 FROM annotations WHERE id = ?", (annotation_id,)
            ):
                annotation_id = None
            return self._insert(image, category, fields, score, prompts, annotation_id, authorship)

    def _insert(
        self,
        image: ImageRecord,
        category: str | int,
        fields: tuple[str, XYWH, int],
        score: float | None,
        prompts: Any,
        annotation_id: int | None = None,
        authorship: dict | None = None,
    ) -> int:
        """Insert one checked mask (`fields`: counts, bbox, area) of `image`; the new id."""
        category_id = self._resolve_category(category)
        counts, bbox, area = fields
        now = utc_now()
        who = {"created": now, "updated": now, "created_by": self.user, "updated_by": self.user}
        who.update(authorship or {})
        cursor = self.write(
            "INSERT INTO annotations (id, image_id, category_id, rle, height, width, bbox_x, bbox_y, bbox_w,"
            " bbox_h, area, score, prompts, created, updated, created_by, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                annotation_id,
                image.id,
                category_id,
                counts,
                image.height,
                image.width,
                *bbox,
                area,
                None if score is None else float(score),
                _prompts_json(prompts),
                who["created"],
                who["updated"],
                who["created_by"],
                who["updated_by"],
            ),
        )
        self._left[int(cursor.lastrowid)] = (who["updated"], who["updated_by"])
        return int(cursor.lastrowid)

    def update_annotation(
        self,
        annotation_id: int,
        mask: np.ndarray | None = None,
        category: str | int | None = None,
        score: float | None = KEEP,
        prompts: Any = KEEP,
    ) -> Annotation:
        """Change the mask, category, score or prompts of an annotation; returns the new record.

        Fields left out stay as they are (`score=None` clears the score).
        """
        with self.transaction():
            old = self.annotation(annotation_id)
            image = self.image(old.image_id)
            self._check_claim(image)
            counts, bbox, area = (
                (old.counts, old.bbox, old.area) if mask is None else self._mask_rle(image, mask)
            )
            category_id = old.category_id if category is None else self._resolve_category(category)
            new_score = old.score if score is KEEP else (None if score is None else float(score))
            new_prompts = old.prompts_json if prompts is KEEP else _prompts_json(prompts)
            self.write(
                "UPDATE annotations SET category_id = ?, rle = ?, bbox_x = ?, bbox_y = ?, bbox_w = ?, bbox_h = ?,"
                " area = ?, score = ?, prompts = ?, updated = ?, updated_by = ? WHERE id = ?",
                (
                    category_id,
                    counts,
                    *bbox,
                    area,
                    new_score,
                    new_prompts,
                    utc_now(),
                    self.user,
                    annotation_id,
                ),
            )
            new = self.annotation(annotation_id)
            self._left[new.id] = (new.updated, new.updated_by)
            return new

    def delete_annotation(self, annotation_id: int) -> Annotation:
        """Delete an annotation; returns the deleted record (give it to `restore_annotation` to undo)."""
        with self.transaction():
            old = self.annotation(annotation_id)
            self._check_claim(self.image(old.image_id))
            self.write("DELETE FROM annotations WHERE id = ?", (annotation_id,))
            self._left[old.id] = None
            return old

    def restore_annotation(self, record: Annotation) -> int:
        """Put an annotation back exactly as recorded, with its id (undo of a delete or an update).

        Overwrites the annotation with that id if it exists. The category is found by id, or by name
        if that id is gone (recreated when missing).
        """
        if wanted_id(record.id) is None:
            raise ValueError(f"annotation id {record.id!r} is outside 1..{schema.ID_LIMIT}")
        with self.transaction():
            image = self.image(record.image_id)
            self._check_claim(image)
            if (record.height, record.width) != (image.height, image.width):
                raise ValueError(f"annotation {record.id} does not fit image {image.id}")
            if self.read("SELECT 1 FROM categories WHERE id = ?", (record.category_id,)):
                category_id = record.category_id
            else:
                category_id = self.category_id(record.category, create=True)
            self.write(
                "INSERT OR REPLACE INTO annotations (id, image_id, category_id, rle, height, width, bbox_x,"
                " bbox_y, bbox_w, bbox_h, area, score, prompts, created, updated, created_by,"
                " updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.image_id,
                    category_id,
                    record.counts,
                    record.height,
                    record.width,
                    *record.bbox,
                    record.area,
                    record.score,
                    record.prompts_json,
                    record.created,
                    record.updated,
                    record.created_by,
                    record.updated_by,
                ),
            )
            self._left[record.id] = (record.updated, record.updated_by)
            return record.id

    def annotations(self, image_id: int | None = None) -> list[Annotation]:
        """Annotations of one image (or all), in id order."""
        sql = f"SELECT {ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
        if image_id is None:
            rows = self.read(sql + " ORDER BY a.id")
        else:
            rows = self.read(sql + " WHERE a.image_id = ? ORDER BY a.id", (image_id,))
        return [annotation_from_row(row) for row in rows]

    def annotation_pages(self, size: int = 2000) -> Iterator[list[Annotation]]:
        """All annotations in id order, `size` rows at a time (keyset pages), so a reader of a big
        project can report how far it got; inside `snapshot()` the pages are one consistent read."""
        if size < 1:
            raise ValueError(f"page size must be at least 1, got {size}")
        sql = (
            f"SELECT {ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
            " WHERE a.id > ? ORDER BY a.id LIMIT ?"
        )
        last = 0
        while True:
            page = [annotation_from_row(row) for row in self.read(sql, (last, size))]
            if not page:
                return
            yield page
            if len(page) < size:
                return
            last = page[-1].id

    def annotation_count(self) -> int:
        """How many annotations the project holds (the total a paged read reports against)."""
        return int(self.read("SELECT count(*) FROM annotations")[0][0])

    def annotation(self, annotation_id: int) -> Annotation:
        """The annotation with this id (KeyError if none)."""
        rows = self.read(
            f"SELECT {ANNOTATION_COLUMNS} FROM annotations a JOIN categories c ON c.id = a.category_id"
            " WHERE a.id = ?",
            (annotation_id,),
        )
        if not rows:
            raise KeyError(f"no annotation with id {annotation_id}")
        return annotation_from_row(rows[0])

    def counts(self) -> dict[int, int]:
        """Number of annotations per image id (0 for images without any)."""
        rows = self.read(
            "SELECT i.id, count(a.id) FROM images i LEFT JOIN annotations a ON a.image_id = i.id"
            " GROUP BY i.id ORDER BY i.id"
        )
        return {int(image_id): int(n) for image_id, n in rows}
