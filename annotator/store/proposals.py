"""Pending auto-label proposals and the per-image "done" marks that make an auto-label run resumable.

A proposal is not an annotation: it is never exported. Accepting one creates a normal annotation in
the same transaction that marks it accepted (and undoing it deletes that annotation and marks it
pending again, also one transaction). An auto-label run is named by a `run` key (the engine's
identity, the classes and the settings); one image's proposals and its done mark are written in one
transaction, so a run killed at any moment has, per image, either everything or nothing, and a rerun
with the same key skips exactly the finished images.

The two tables live next to the schema's own and are created idempotently (`CREATE ... IF NOT
EXISTS`) when a `ProposalStore` is opened: projects that never auto-label do not carry them, and the
schema version is not touched. Rows go with their image (`ON DELETE CASCADE`).

`refine --boxes` proposals (source `REFINE`) are a mask for one box-only annotation: their run is
`box_run(box id)`, one per box, so the done mark makes each box's refinement happen once. Accepting
one turns the box itself into the annotation (same id, its score and kept fields; `extras.mask_for_box`)
and undoing it brings the box back, so nothing is replaced until a reviewer says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from annotator.io.masks import mask_to_rle, rle_area, rle_bbox, rle_to_mask
from annotator.names import category_name
from annotator.store import extras
from annotator.store.project import Project

STATUSES = ("pending", "accepted", "rejected")
PENDING, ACCEPTED, REJECTED = STATUSES
REFINE = "refine"  # the source of a proposal that would give a box-only annotation its mask
_BOX_RUN = "box:"

_COLUMNS = (
    "id, image_id, run, source, category, score, rle, height, width,"
    " bbox_x, bbox_y, bbox_w, bbox_h, area, status, annotation_id"
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NewProposal:
    """One region an engine found for a class, before it is stored."""

    mask: np.ndarray | None  # bool (H, W); None when `rle` is given
    category: str
    score: float
    rle: dict | None = None  # full-image COCO RLE instead of `mask` (large images, issue 26)


@dataclass(frozen=True)
class StoredProposal:
    """A proposal row. `bbox` is XYWH as COCO."""

    id: int
    image_id: int
    run: str
    source: str
    category: str
    score: float
    counts: str
    height: int
    width: int
    bbox: tuple[float, float, float, float]
    area: int
    status: str
    annotation_id: int | None

    @property
    def rle(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}

    def mask(self) -> np.ndarray:
        return rle_to_mask(self.rle)


def box_run(box_id: int) -> str:
    """The run key of the refinement of one box: the done mark then means "this box was refined"."""
    return f"{_BOX_RUN}{int(box_id)}"


def refined_box(proposal: StoredProposal) -> int | None:
    """The box-only annotation a `refine --boxes` proposal would replace (None for auto-label's)."""
    if proposal.source != REFINE or not proposal.run.startswith(_BOX_RUN):
        return None
    return int(proposal.run[len(_BOX_RUN) :])


def _row(row: tuple) -> StoredProposal:
    return StoredProposal(
        id=int(row[0]),
        image_id=int(row[1]),
        run=row[2],
        source=row[3],
        category=row[4],
        score=float(row[5]),
        counts=row[6],
        height=int(row[7]),
        width=int(row[8]),
        bbox=(float(row[9]), float(row[10]), float(row[11]), float(row[12])),
        area=int(row[13]),
        status=row[14],
        annotation_id=None if row[15] is None else int(row[15]),
    )


class ProposalStore:
    """The proposals of one open `Project` (their tables are schema step 6, on both backends)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    # ------------------------------------------------------------------------------- runs
    def done_images(self, run: str) -> set[int]:
        """Ids of the images this run has finished."""
        rows = self.project.read("SELECT image_id FROM autolabel_done WHERE run = ?", (run,))
        return {int(r[0]) for r in rows}

    def refined_boxes(self) -> set[int]:
        """Ids of the box-only annotations `refine --boxes` has finished (their done marks)."""
        rows = self.project.read(
            "SELECT run FROM autolabel_done WHERE run LIKE ?", (_BOX_RUN + "%",)
        )
        return {int(r[0][len(_BOX_RUN) :]) for r in rows}

    def is_done(self, image_id: int, run: str) -> bool:
        rows = self.project.read(
            "SELECT 1 FROM autolabel_done WHERE image_id = ? AND run = ?", (image_id, run)
        )
        return bool(rows)

    def finish_image(
        self, image_id: int, run: str, source: str, found: Iterable[NewProposal]
    ) -> int | None:
        """Store one image's proposals and its done mark in ONE transaction; returns how many
        were stored, or None when this run had already finished the image (nothing written)."""
        image = self.project.image(image_id)
        rows = []
        for p in found:
            if p.rle is not None:  # a large image's mask, never decoded whole
                rle, shape = p.rle, tuple(p.rle["size"])
            else:
                mask = np.asarray(p.mask, dtype=bool)
                rle, shape = None, mask.shape
            if shape != (image.height, image.width):
                raise ValueError(
                    f"proposal mask {shape} does not fit image {image_id} "
                    f"({image.height}, {image.width})"
                )
            rle = rle or mask_to_rle(mask)
            area = rle_area(rle)
            if area == 0 or not str(p.category).strip():
                continue
            rows.append((p, rle, rle_bbox(rle), area))
        now = _now()
        with self.project.transaction():
            if self.is_done(image_id, run):
                return None
            for p, rle, bbox, area in rows:
                self.project.write(
                    "INSERT INTO proposals (image_id, run, source, category, score, rle, height,"
                    " width, bbox_x, bbox_y, bbox_w, bbox_h, area, status, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (
                        image_id,
                        run,
                        source,
                        str(p.category).strip(),
                        float(p.score),
                        rle["counts"],
                        image.height,
                        image.width,
                        *bbox,
                        int(area),
                        now,
                    ),
                )
            self.project.write(
                "INSERT INTO autolabel_done (image_id, run, proposals, finished) VALUES (?, ?, ?, ?)",
                (image_id, run, len(rows), now),
            )
        return len(rows)

    # ----------------------------------------------------------------------------- reading
    def proposals(
        self, status: str | None = PENDING, image_id: int | None = None
    ) -> list[StoredProposal]:
        """Proposals with this status (None: all), of one image or all, in id order."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if image_id is not None:
            where.append("image_id = ?")
            params.append(image_id)
        sql = f"SELECT {_COLUMNS} FROM proposals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_row(r) for r in self.project.read(sql + " ORDER BY id", tuple(params))]

    def get(self, proposal_id: int) -> StoredProposal:
        rows = self.project.read(f"SELECT {_COLUMNS} FROM proposals WHERE id = ?", (proposal_id,))
        if not rows:
            raise KeyError(f"no proposal with id {proposal_id}")
        return _row(rows[0])

    def summary(self) -> dict[str, int]:
        """Counts by status, and the number of images any run has finished."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.project.read(
            "SELECT status, count(*) FROM proposals GROUP BY status"
        ):
            out[status] = int(n)
        done = self.project.read("SELECT count(DISTINCT image_id) FROM autolabel_done")
        out["images_done"] = int(done[0][0])
        out["images"] = int(self.project.read("SELECT count(*) FROM images")[0][0])
        return out

    # ----------------------------------------------------------------------------- editing
    def _set(self, proposal_id: int, **fields: object) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.project.write(
            f"UPDATE proposals SET {sets} WHERE id = ?", (*fields.values(), proposal_id)
        )

    def accept(self, proposal_id: int, category: str | None = None) -> int:
        """Turn a pending proposal into a normal annotation (one transaction); returns its id."""
        with self.project.transaction():
            p = self.get(proposal_id)
            if p.status != PENDING:
                raise ValueError(f"proposal {proposal_id} is {p.status}, not pending")
            name = p.category if category is None else category
            box_id = refined_box(p)
            if box_id is not None:
                ann_id = extras.mask_for_box(
                    self.project, box_id, p.image_id, p.rle, name, p.score, p.id
                )
            else:
                prompts = {"autolabel": {"proposal": p.id, "source": p.source, "run": p.run}}
                ann_id = self.project.add_annotation_rle(p.image_id, p.rle, name, p.score, prompts)
            self._set(proposal_id, status=ACCEPTED, annotation_id=ann_id, category=name)
            return ann_id

    def unaccept(self, proposal_id: int) -> None:
        """Undo of `accept`: delete its annotation and make it pending again (one transaction)."""
        with self.project.transaction():
            p = self.get(proposal_id)
            if p.status != ACCEPTED:
                raise ValueError(f"proposal {proposal_id} is {p.status}, not accepted")
            if p.annotation_id is not None and refined_box(p) is not None:
                extras.box_for_mask(self.project, p.annotation_id)  # the box comes back
            elif p.annotation_id is not None:
                try:
                    self.project.delete_annotation(p.annotation_id)
                except KeyError:
                    pass  # deleted by hand since: nothing left to take back
            self._set(proposal_id, status=PENDING, annotation_id=None)

    def set_status(self, proposal_id: int, status: str) -> None:
        """Reject (or restore to pending) without touching annotations."""
        if status not in (PENDING, REJECTED):
            raise ValueError(f"use accept() / unaccept() for {status!r}")
        with self.project.transaction():
            p = self.get(proposal_id)
            if p.status == ACCEPTED:
                raise ValueError(f"proposal {proposal_id} is accepted; undo the accept first")
            self._set(proposal_id, status=status)

    def set_category(self, proposal_id: int, category: str) -> None:
        name = " ".join(str(category).split())
        if not name:
            raise ValueError("a class name cannot be empty")
        with self.project.transaction():
            self.get(proposal_id)
            self._set(proposal_id, category=name)

    def accept_many(self, proposal_ids: Sequence[int]) -> list[int]:
        """Accept several pending proposals in one transaction; returns the annotation ids."""
        with self.project.transaction():
            return [self.accept(i) for i in proposal_ids]

    def unaccept_many(self, proposal_ids: Sequence[int]) -> None:
        with self.project.transaction():
            for i in proposal_ids:
                self.unaccept(i)


def parse_classes(text: str) -> list[str]:
    """ "person, car,,dog" -> ["person", "car", "dog"] (order kept, duplicates and blanks dropped).
    Each name must pass `names.category_name` (InvalidName naming it otherwise)."""
    out: list[str] = []
    for part in str(text).split(","):
        name = " ".join(part.split())
        if name and name not in out:
            out.append(category_name(name, "classes"))
    return out


def run_key(parts: dict) -> str:
    """A stable, short key for an auto-label run's settings (JSON of `parts`, hashed)."""
    import hashlib

    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = [
    "ACCEPTED",
    "PENDING",
    "REFINE",
    "REJECTED",
    "NewProposal",
    "ProposalStore",
    "StoredProposal",
    "box_run",
    "parse_classes",
    "refined_box",
    "run_key",
]
